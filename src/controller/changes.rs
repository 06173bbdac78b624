//! Change detection for one store: what Password Safe currently says about every source in use.
//!
//! A background poller re-reads, once per interval, the bulk listings that cover every source at once
//! (`GET ManagedAccounts` paged, `GET Aliases`, one `GET Secrets-Safe/Secrets` per folder in use, or one
//! paged listing of every secret when that takes fewer calls) and asks
//! the controller to reconcile the resources whose sources moved. A reconcile that needs fresher facts than
//! the last poll (an announced NextChangeDate has just passed) looks the one source up directly. So steady
//! state costs a few calls per store per interval, however many resources there are.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use super::compact::{digest, wide_digest};
use crate::api::PasswordSafeSecret;
use crate::passwordsafe::{Client, Error as PsError, FolderPath, RotationInfo, SecretSummary};
use crate::sync::resolve::{Source, folder_fingerprint};

/// What Password Safe says about a source now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceInfo {
    pub rotation: Option<RotationInfo>,
    pub modified_on: Option<Timestamp>,
    pub folder_fingerprint: Option<String>,
}

impl SourceInfo {
    /// Whether the source's content may differ from `synced`: a newer change date or different folder content.
    pub fn moved_since(&self, synced: &SourceInfo) -> bool {
        self.mark().moved_since(&synced.mark())
    }

    fn mark(&self) -> Mark {
        Mark {
            changed: self.rotation.as_ref().and_then(|r| r.last_change_date),
            modified_on: self.modified_on,
            folder: self.folder_fingerprint.as_ref().map(digest),
        }
    }
}

/// What [`SourceInfo::moved_since`] compares: the change date, the modification date, and a digest of the
/// folder content. Kept for every registered resource and source, in place of the whole `SourceInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    changed: Option<Timestamp>,
    modified_on: Option<Timestamp>,
    folder: Option<u64>,
}

impl Mark {
    fn moved_since(&self, synced: &Mark) -> bool {
        self.changed != synced.changed
            || (synced.modified_on.is_some() && self.modified_on != synced.modified_on)
            || (synced.folder.is_some() && self.folder != synced.folder)
    }
}

/// A registered resource, by namespace and name (half the size of an `ObjectRef`, which also has room for a
/// UID and a resourceVersion).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Reader {
    namespace: Box<str>,
    name: Box<str>,
}

impl Reader {
    fn of(object: &ObjectRef<PasswordSafeSecret>) -> Self {
        Self { namespace: object.namespace.as_deref().unwrap_or_default().into(), name: object.name.as_str().into() }
    }

    fn object_ref(&self) -> ObjectRef<PasswordSafeSecret> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

/// A managed account by system and account name, case-insensitively, as a number: the listing of every
/// account is kept between polls (thousands of them), and only looked up by name.
type AccountKey = u128;

fn account_key(system: &str, account: &str) -> AccountKey {
    wide_digest(&(system.to_lowercase(), account.to_lowercase()))
}
/// A Secrets Safe folder as `a/b/c` in lower case ([`FolderPath::key`]): one entry however a resource spells it.
type FolderKey = String;

fn folder_key(folder: &str, separator: &str) -> FolderKey {
    FolderPath::with_separator(folder, separator).key()
}

#[derive(Default)]
struct Snapshot {
    accounts_at: Option<Timestamp>,
    accounts: HashMap<AccountKey, RotationInfo>,
    aliases_at: Option<Timestamp>,
    aliases: HashMap<String, RotationInfo>,
    folders: HashMap<FolderKey, (Timestamp, Vec<SecretSummary>)>,
}

/// Who reads which source, and what each of them last synced from it. Kept small: one entry per resource and
/// source, for every resource of the store (a source usually has one reader, so a list, not a map). There is
/// no index by resource: the caller knows which sources it registered last time (see [`ChangeTracker::register`]).
type Dependents = HashMap<Source, Vec<(Reader, Mark)>>;

pub struct ChangeTracker {
    client: Client,
    interval: Duration,
    snapshot: Mutex<Snapshot>,
    dependents: Mutex<Dependents>,
    stopped: AtomicBool,
    /// Pages the last listing of every secret took (0: not tried; `usize::MAX`: unusable).
    all_secrets_pages: AtomicUsize,
    /// Held while the managed-account listing is read, so concurrent callers share one listing.
    accounts_listing: tokio::sync::Mutex<()>,
}

/// Registered sources from which, with no recent poll, one managed-account listing is cheaper than a look-up
/// per resource (a listing takes one call per 1000 accounts).
const LIST_INSTEAD_OF_LOOKUPS: usize = 64;

impl ChangeTracker {
    /// A tracker whose poller sends the resources to reconcile into `trigger` (when given).
    pub fn new(
        client: Client,
        interval: Duration,
        trigger: Option<mpsc::UnboundedSender<ObjectRef<PasswordSafeSecret>>>,
    ) -> Arc<Self> {
        let tracker = Arc::new(Self {
            client,
            interval,
            snapshot: Mutex::default(),
            dependents: Mutex::default(),
            stopped: AtomicBool::new(false),
            all_secrets_pages: AtomicUsize::new(0),
            accounts_listing: tokio::sync::Mutex::new(()),
        });
        if let Some(trigger) = trigger {
            let weak = Arc::downgrade(&tracker);
            tracing::debug!(interval_s = interval.as_secs(), "change detection started");
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let Some(tracker) = weak.upgrade() else {
                        tracing::debug!("change detection ended: store client dropped");
                        return;
                    };
                    if tracker.stopped.load(Ordering::Relaxed) {
                        tracing::debug!("change detection ended: store client replaced");
                        return;
                    }
                    for object in tracker.poll().await {
                        if trigger.send(object).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        tracker
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Records which sources a resource reads and what it last synced from each, in place of what it registered
    /// before (`previous`, the sources of its last registration here): the poller asks for a reconcile whenever
    /// Password Safe says otherwise.
    pub fn register<'a>(
        &self,
        object: &ObjectRef<PasswordSafeSecret>,
        sources: Vec<(Source, SourceInfo)>,
        previous: impl IntoIterator<Item = &'a Source>,
    ) {
        let reader = Reader::of(object);
        let mut deps = self.dependents.lock().unwrap_or_else(PoisonError::into_inner);
        remove_reader(&mut deps, &reader, previous);
        for (source, synced) in sources {
            let readers = deps.entry(source).or_insert_with(|| Vec::with_capacity(1));
            readers.push((reader.clone(), synced.mark()));
        }
    }

    /// Forgets a resource's registration (`sources`: those it registered last).
    pub fn unregister<'a>(
        &self,
        object: &ObjectRef<PasswordSafeSecret>,
        sources: impl IntoIterator<Item = &'a Source>,
    ) {
        remove_reader(
            &mut self.dependents.lock().unwrap_or_else(PoisonError::into_inner),
            &Reader::of(object),
            sources,
        );
    }

    /// What Password Safe says about `source`, from a poll no older than `fresh_after`, or else from one
    /// direct look-up.
    pub async fn current(&self, source: &Source, fresh_after: Timestamp) -> Result<SourceInfo, PsError> {
        if let Some(info) = self.polled_info(source, fresh_after) {
            return Ok(info);
        }
        match source {
            Source::ManagedAccount { system, account } => {
                // No poll yet (a new store client: start-up, restart, a changed store) while many resources
                // are registered: one listing serves them all, where a look-up each would cost one call per
                // resource.
                if !self.accounts_polled_lately() && self.sources() >= LIST_INSTEAD_OF_LOOKUPS {
                    self.list_accounts(Some(fresh_after)).await;
                    if let Some(info) = self.polled_info(source, fresh_after) {
                        return Ok(info);
                    }
                }
                let found = self.client.find_managed_account(system, account).await?;
                Ok(SourceInfo { rotation: Some(found.rotation()), ..Default::default() })
            }
            Source::Alias { name } => {
                let found = self.client.find_alias(name).await?;
                Ok(SourceInfo { rotation: Some(found.rotation()), ..Default::default() })
            }
            Source::Secret { folder, separator, .. } | Source::Folder { folder, separator } => {
                let summaries = self.client.list_secrets(&FolderPath::with_separator(folder, separator)).await?;
                let info = folder_info(source, &summaries);
                self.snapshot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .folders
                    .insert(folder_key(folder, separator), (Timestamp::now(), summaries));
                Ok(info)
            }
        }
    }

    fn polled_info(&self, source: &Source, fresh_after: Timestamp) -> Option<SourceInfo> {
        let snap = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = |at: Option<Timestamp>| at.is_some_and(|at| at >= fresh_after);
        match source {
            Source::ManagedAccount { system, account } if fresh(snap.accounts_at) => snap
                .accounts
                .get(&account_key(system, account))
                .map(|r| SourceInfo { rotation: Some(r.clone()), ..Default::default() }),
            Source::Alias { name } if fresh(snap.aliases_at) => snap
                .aliases
                .get(&name.to_lowercase())
                .map(|r| SourceInfo { rotation: Some(r.clone()), ..Default::default() }),
            Source::Secret { folder, separator, .. } | Source::Folder { folder, separator } => {
                let (at, summaries) = snap.folders.get(&folder_key(folder, separator))?;
                fresh(Some(*at)).then(|| folder_info(source, summaries))
            }
            _ => None,
        }
    }

    /// One poll: refresh every listing in use, and return the resources whose sources differ from what they
    /// last synced.
    async fn poll(&self) -> Vec<ObjectRef<PasswordSafeSecret>> {
        let in_use = Listings::of(self.dependents.lock().unwrap_or_else(PoisonError::into_inner).keys());
        tracing::debug!(sources = self.sources(), "change detection poll");
        if in_use.is_empty() {
            return Vec::new();
        }
        self.refresh(in_use).await;
        let deps = self.dependents.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stale = HashSet::new();
        for (source, readers) in deps.iter() {
            let Some(now) = self.polled_info(source, Timestamp::MIN).map(|info| info.mark()) else { continue };
            for (reader, synced) in readers {
                if now.moved_since(synced) {
                    tracing::debug!(%source, namespace = %reader.namespace, name = %reader.name, "source changed in Password Safe");
                    stale.insert(reader);
                }
            }
        }
        stale.into_iter().map(Reader::object_ref).collect()
    }

    async fn refresh(&self, in_use: Listings) {
        let now = Timestamp::now();
        if in_use.accounts {
            self.list_accounts(None).await;
        }
        if in_use.aliases {
            match self.client.list_aliases().await {
                Ok(list) => {
                    let aliases = list.iter().map(|a| (a.alias_name.to_lowercase(), a.rotation())).collect();
                    let mut snap = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
                    snap.aliases = aliases;
                    snap.aliases_at = Some(now);
                }
                Err(e) => tracing::warn!(error = %e, "change detection: alias listing failed"),
            }
        }
        let folders = in_use.folders;
        if self.listed_all_secrets(&folders, now).await {
            return;
        }
        for (key, folder) in folders {
            match self.client.list_secrets(&folder).await {
                Ok(summaries) => {
                    self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).folders.insert(key, (now, summaries));
                }
                Err(e) => tracing::warn!(error = %e, %folder, "change detection: Secrets Safe listing failed"),
            }
        }
    }
}

impl ChangeTracker {
    /// Re-reads the managed-account listing, one caller at a time; with `unless_since`, not when a listing
    /// started at or after that time is already in the snapshot (another caller just read it).
    async fn list_accounts(&self, unless_since: Option<Timestamp>) {
        let _listing = self.accounts_listing.lock().await;
        let listed_at = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).accounts_at;
        if unless_since.is_some_and(|since| listed_at.is_some_and(|at| at >= since)) {
            return;
        }
        let now = Timestamp::now();
        let listing =
            self.client.list_managed_accounts_as(|a| (account_key(&a.system_name, &a.account_name), a.rotation()));
        match listing.await {
            Ok(list) => {
                // Refilled in place: a second map of every account beside the first was a peak every poll.
                let mut snap = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
                snap.accounts.clear();
                snap.accounts.extend(list);
                snap.accounts_at = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "change detection: managed account listing failed"),
        }
    }

    /// Whether the account snapshot comes from a listing of the last two intervals (the poller is running).
    fn accounts_polled_lately(&self) -> bool {
        let interval = jiff::SignedDuration::try_from(self.interval).unwrap_or_default() * 2;
        let listed_at = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).accounts_at;
        listed_at.is_some_and(|at| at >= Timestamp::now() - interval)
    }

    /// Sources registered by resources.
    fn sources(&self) -> usize {
        self.dependents.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Refreshes the snapshots of `folders` from one listing of every secret, when that takes fewer calls than
    /// one listing per folder (it did last time, or has not been tried). Returns whether it did.
    async fn listed_all_secrets(&self, folders: &HashMap<FolderKey, FolderPath>, now: Timestamp) -> bool {
        let pages = self.all_secrets_pages.load(Ordering::Relaxed);
        if folders.len() < 2 || pages == usize::MAX || (pages != 0 && pages >= folders.len()) {
            return false;
        }
        let all = match self.client.list_all_secrets().await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!(error = %e, "change detection: listing every secret failed; listing by folder");
                return false;
            }
        };
        let page_size = self.client.page_size().max(1) as usize;
        // A server that leaves out the folder paths cannot be sorted by folder: list by folder from now on.
        let pages = if all.iter().any(|s| s.folder_key().is_empty()) { usize::MAX } else { all.len() / page_size + 1 };
        self.all_secrets_pages.store(pages, Ordering::Relaxed);
        if pages == usize::MAX {
            return false;
        }
        // Sorted into the folders in use; the others' secrets are dropped as they come (a listing of every
        // secret is re-read every poll, and its transient copies showed in the operator's peak memory).
        let mut by_folder: HashMap<FolderKey, Vec<SecretSummary>> =
            folders.keys().map(|key| (key.clone(), Vec::new())).collect();
        for summary in all {
            if let Some(summaries) = by_folder.get_mut(&summary.folder_key()) {
                summaries.push(summary);
            }
        }
        let mut snap = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, summaries) in by_folder {
            snap.folders.insert(key, (now, summaries));
        }
        true
    }
}

/// The listings a poll reads: what the registered sources need (a poll used to copy every source for this,
/// thousands of them, each time).
#[derive(Default)]
struct Listings {
    accounts: bool,
    aliases: bool,
    /// Each folder in use, with one of the spellings resources use.
    folders: HashMap<FolderKey, FolderPath>,
}

impl Listings {
    fn of<'a>(sources: impl Iterator<Item = &'a Source>) -> Self {
        let mut listings = Self::default();
        for source in sources {
            match source {
                Source::ManagedAccount { .. } => listings.accounts = true,
                Source::Alias { .. } => listings.aliases = true,
                Source::Secret { folder, separator, .. } | Source::Folder { folder, separator } => {
                    let path = FolderPath::with_separator(folder, separator);
                    listings.folders.entry(path.key()).or_insert(path);
                }
            }
        }
        listings
    }

    fn is_empty(&self) -> bool {
        !self.accounts && !self.aliases && self.folders.is_empty()
    }
}

fn remove_reader<'a>(deps: &mut Dependents, reader: &Reader, sources: impl IntoIterator<Item = &'a Source>) {
    for source in sources {
        if let Some(readers) = deps.get_mut(source) {
            readers.retain(|(registered, _)| registered != reader);
            if readers.is_empty() {
                deps.remove(source);
            }
        }
    }
}

fn folder_info(source: &Source, summaries: &[SecretSummary]) -> SourceInfo {
    match source {
        Source::Secret { title, .. } => {
            let modified_on = summaries
                .iter()
                .find(|s| s.title.eq_ignore_ascii_case(title))
                .and_then(|s| s.modified_on.or(s.created_on));
            SourceInfo { modified_on, ..Default::default() }
        }
        _ => SourceInfo {
            modified_on: summaries.iter().filter_map(|s| s.modified_on.or(s.created_on)).max(),
            folder_fingerprint: Some(folder_fingerprint(summaries.iter())),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwordsafe::{Auth, ClientConfig, SecretString, TlsConfig};
    use passwordsafe_simulator::{SecretUpdate, Seed, ServeOptions};

    const SEED: &str = r#"
users:
  - name: svc
    userId: 2
apiKeys:
  - key: "change-detection-test-key"
    runAs: [svc]
    requirePassword: false
secretsSafe:
  folders:
    - path: prod/db
      secrets:
        - title: db-creds
          type: credential
          username: dbuser
          password: "first"
    - path: dev
      secrets:
        - title: other
          type: text
          text: "dev text"
"#;

    fn secret(folder: &str, separator: &str, title: &str) -> Source {
        Source::Secret { folder: folder.into(), separator: separator.into(), title: title.into() }
    }

    fn names(objects: Vec<ObjectRef<PasswordSafeSecret>>) -> Vec<String> {
        let mut names: Vec<String> = objects.into_iter().map(|o| o.name).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_poll_reads_every_folder_once_and_names_the_readers_of_a_changed_secret() {
        let sim =
            passwordsafe_simulator::start(Seed::from_yaml_str(SEED).unwrap(), ServeOptions::default()).await.unwrap();
        let auth =
            Auth::ApiKey { key: SecretString::new("change-detection-test-key"), run_as: "svc".into(), password: None };
        let mut config = ClientConfig::new(&sim.base_url(), auth).unwrap();
        config.tls =
            TlsConfig { system_roots: false, insecure_skip_verify: false, ca_bundle_pem: None, identity: None };
        let tracker = ChangeTracker::new(Client::new(config).unwrap(), Duration::from_secs(3600), None);
        // Two resources read the same secret through two spellings of its folder; a third reads another folder.
        let readers = [
            ("a", secret("prod/db", "/", "db-creds")),
            ("b", secret("PROD\\db", "\\", "db-creds")),
            ("c", secret("dev", "/", "other")),
        ];
        for (name, source) in &readers {
            let info = tracker.current(source, Timestamp::now()).await.unwrap();
            assert!(info.modified_on.is_some(), "{name}: {info:?}");
            tracker.register(&ObjectRef::new(name).within("ns"), vec![(source.clone(), info)], []);
        }
        assert!(tracker.poll().await.is_empty(), "nothing changed yet");
        let listed = tracker.snapshot.lock().unwrap().folders.keys().cloned().collect::<HashSet<_>>();
        assert_eq!(listed, HashSet::from(["prod/db".to_owned(), "dev".to_owned()]));

        let update = SecretUpdate { password: Some("second".into()), ..Default::default() };
        sim.handle().update_secret("prod/db", "db-creds", update).unwrap();
        assert_eq!(names(tracker.poll().await), ["a", "b"]);
    }
}
