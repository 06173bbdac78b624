//! Reconciling one PasswordSafeSecret: decide whether Password Safe must be asked again, build the Secret,
//! apply it, restart workloads when the data changed, report status and events, and schedule the next look.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::changes::SourceInfo;
use super::compact::uid_key;
use super::events::{Event, EventPublisher, EventType};
use super::queue::Next;
use super::reported::{Reported, ReportedStatuses, hmac_digest, synced_digest};
use super::rollout;
use super::stores::{StoreError, StoreHandle, StoreKey, StoreRegistry};
use super::versions::{self, SecretVersions};
use crate::api::{CreationPolicy, DeletionPolicy, PasswordSafeSecret, PasswordSafeSecretStatus, SourceStatus};
use crate::passwordsafe::RotationInfo;
use crate::sync::desired::{self, BuildError, FIELD_MANAGER, Owner, TakeoverError};
use crate::sync::hmac::DataHmac;
use crate::sync::resolve::{self, ResolveError, Resolved, Source, SourceState};
use crate::sync::schedule::{self, ScheduleInput, SourceTiming};
use crate::sync::template::{self, TemplateError};
use crate::sync::{SecretData, StoredData, duration};
use crate::telemetry::metrics::Metrics;

/// Finalizer on the PasswordSafeSecrets whose deletion policy has work to do before the resource goes (see
/// [`needs_cleanup`]).
pub const FINALIZER: &str = "passwordsafe.dev/cleanup";
/// Shortest refreshInterval accepted.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Condition types.
pub const READY: &str = "Ready";
pub const ROTATION_LOOP: &str = "RotationLoop";
/// A rotation this soon after our own check-in, and not announced by NextChangeDate, is taken to be caused
/// by the check-in (ChangePasswordAfterAnyReleaseFlag). Rotations made by hand within minutes after each of
/// two consecutive syncs look the same; that is rare, and costs only a back-off.
const LOOP_WINDOW: SignedDuration = SignedDuration::from_mins(5);
/// Consecutive self-caused rotations before the loop is reported and backed off.
const LOOP_THRESHOLD: u32 = 2;

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub kube: kube::Client,
    pub events: EventPublisher,
    pub stores: Arc<StoreRegistry>,
    pub hmac: DataHmac,
    pub default_refresh: Duration,
    pub metrics: Arc<Metrics>,
    /// By UID (as a number: one entry per resource for as long as the operator runs).
    synced: Mutex<HashMap<u128, Arc<Synced>>>,
    failures: Mutex<HashMap<u128, u32>>,
    /// Fed by the owned-Secret watch (see [`super::versions`]).
    pub secret_versions: Arc<SecretVersions>,
    /// What each status says, kept when we write it (see [`super::reported`]).
    pub reported: ReportedStatuses,
}

impl Context {
    pub fn new(
        kube: kube::Client,
        events: EventPublisher,
        stores: Arc<StoreRegistry>,
        hmac: DataHmac,
        default_refresh: Duration,
    ) -> Self {
        Self {
            kube,
            events,
            stores,
            hmac,
            default_refresh,
            metrics: Arc::default(),
            synced: Mutex::default(),
            failures: Mutex::default(),
            secret_versions: Arc::default(),
            reported: ReportedStatuses::default(),
        }
    }

    /// Reports to these metrics (the process's) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn synced(&self, uid: &str) -> Option<Arc<Synced>> {
        self.synced.lock().unwrap_or_else(PoisonError::into_inner).get(&uid_key(uid)).cloned()
    }

    fn failures(&self, uid: &str) -> u32 {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).get(&uid_key(uid)).copied().unwrap_or(0)
    }

    /// What the resource's status says: as this process last wrote it, or else as the cache has it.
    fn reported(&self, pss: &PasswordSafeSecret) -> Option<Reported> {
        self.reported.get(&pss.uid().unwrap_or_default()).or_else(|| pss.status.as_deref().map(Reported::of))
    }

    /// Drops what memory holds about a resource that is gone: its synced values, its change-detection
    /// registration, its failure count, what is known of its Secret.
    pub fn forget(&self, pss: &PasswordSafeSecret) {
        let uid = pss.uid().unwrap_or_default();
        let (forgotten, managed) = {
            let mut map = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
            let forgotten = map.remove(&uid_key(&uid));
            (forgotten, map.len())
        };
        self.metrics.set_managed_secrets(managed);
        if let Some(prev) = forgotten
            && let Some(store) = self.stores.existing(&prev.store)
        {
            store.changes.unregister(&ObjectRef::from_obj(pss), prev.sources());
        }
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&uid_key(&uid));
        self.reported.forget(&uid);
        let target = desired::target_name(&pss.spec.target, &pss.name_any());
        self.secret_versions.forget(&pss.namespace().unwrap_or_default(), &target);
    }
}

/// What the last successful sync of a resource produced (kept in memory: the values never leave the process
/// except into the Secret).
struct Synced {
    generation: Option<i64>,
    store: Arc<StoreKey>,
    resolved: Resolved,
    data: StoredData,
    hmac: String,
    loops: u32,
    /// When Password Safe was last asked (for the rotation-loop back-off).
    fetched_at: Timestamp,
}

impl Synced {
    fn sources(&self) -> impl Iterator<Item = &Source> {
        self.resolved.sources.iter().map(|s| &s.source)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Takeover(#[from] TakeoverError),
    #[error("invalid spec: {0}")]
    Invalid(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The condition reason, event reason and metric label of this error.
    /// The event `action`: the Password Safe operation that failed, else `Sync`. Kubernetes groups repeated
    /// events by reason *and* action and keeps the first one's note, so a later failure with the same reason
    /// in another operation (a refused sign-in after a failed `GET Credentials`) gets its own event.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Resolve(ResolveError::Source { error, .. }) => error.operation,
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.action(),
                _ => "Sync",
            },
            _ => "Sync",
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Store(e) => e.reason(),
            Self::Resolve(e) => e.reason(),
            Self::Template(_) => "TemplateError",
            Self::Build(_) => "InvalidTarget",
            Self::Takeover(_) => "SecretNotOwned",
            Self::Invalid(_) => "InvalidSpec",
            Self::Kube(_) => "KubernetesError",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.reason(),
                _ => "FinalizerError",
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The reconcile entry point. Resources whose deletion policy needs work at deletion carry the finalizer and
/// go through kube's finalizer helper ([`apply`], then [`cleanup`] once deleted); the rest (the default,
/// `Owner`+`Delete`, which the garbage collector completes) are applied directly: a finalizer would cost a
/// write and a second reconcile per resource, and hold deletions while the operator is down, for nothing.
#[tracing::instrument(skip(pss, ctx), fields(namespace = pss.namespace().unwrap_or_default(), name = pss.name_any()))]
pub async fn reconcile(pss: Arc<PasswordSafeSecret>, ctx: Arc<Context>) -> Result<Next> {
    let api: Api<PasswordSafeSecret> = Api::namespaced(ctx.kube.clone(), &pss.namespace().unwrap_or_default());
    let has_finalizer = pss.finalizers().iter().any(|f| f == FINALIZER);
    let deleting = pss.meta().deletion_timestamp.is_some();
    if needs_cleanup(&pss.spec.target) || (has_finalizer && deleting) {
        // kube's helper speaks in its own `Action`, which does not tell its delay back: the next look is kept
        // aside. When the helper only adds the finalizer, the resulting watch event reconciles again.
        let mut next = Next::OnChange;
        let next_slot = &mut next;
        finalizer(&api, FINALIZER, pss, |event| async move {
            *next_slot = match event {
                Finalized::Apply(pss) => apply(&pss, &ctx).await?,
                Finalized::Cleanup(pss) => cleanup(&pss, &ctx).await?,
            };
            Ok::<_, Error>(Action::await_change())
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))?;
        return Ok(next);
    }
    if deleting {
        // Nothing of ours to do; the watch's delete event clears memory once the object is gone.
        return Ok(Next::OnChange);
    }
    if has_finalizer {
        // Set by an earlier version, or under a policy that has changed since.
        remove_finalizer(&api, &pss).await.map_err(Error::Kube)?;
    }
    apply(&pss, &ctx).await
}

/// Whether deleting a resource with this target leaves work the garbage collector does not do: dropping the
/// owner reference (`Owner`+`Retain`), deleting an unowned Secret (`Orphan`+`Delete`), removing merged keys
/// (`Merge`+`Delete`).
pub fn needs_cleanup(target: &crate::api::SecretTarget) -> bool {
    matches!(
        (target.creation_policy, target.deletion_policy),
        (CreationPolicy::Owner, DeletionPolicy::Retain)
            | (CreationPolicy::Orphan, DeletionPolicy::Delete)
            | (CreationPolicy::Merge, DeletionPolicy::Delete)
    )
}

/// Removes our finalizer, guarded by the resourceVersion so that a concurrent change of the list is not lost.
async fn remove_finalizer(api: &Api<PasswordSafeSecret>, pss: &PasswordSafeSecret) -> kube::Result<()> {
    let remaining: Vec<&String> = pss.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let patch = json!({ "metadata": { "finalizers": remaining, "resourceVersion": pss.resource_version() } });
    api.patch(&pss.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Requeue after a failure with the resource's own backoff.
pub fn error_policy(pss: &PasswordSafeSecret, error: &Error, ctx: &Context) -> Next {
    let failures = ctx.failures(&pss.uid().unwrap_or_default()).max(1);
    let input = ScheduleInput {
        now: Timestamp::now(),
        refresh_interval: ctx.default_refresh,
        sources: Vec::new(),
        consecutive_errors: failures,
        rotation_loops: 0,
        jitter: rand::random(),
    };
    let (delay, _) = schedule::next_sync(&input);
    tracing::warn!(namespace = pss.namespace().unwrap_or_default(), name = pss.name_any(), reason = error.reason(), error = %error, retry_in_s = delay.as_secs(), "sync failed");
    Next::After(delay)
}

/// What one successful sync did.
struct Outcome {
    synced: Arc<Synced>,
    fetched: Option<&'static str>,
    applied: bool,
    next: Duration,
    /// The latest the schedule would have chosen: the refresh interval unless something sooner is due.
    latest: Duration,
    /// Sources whose LastChangeDate / ModifiedOn moved since the previous sync, with the new date.
    rotated: Vec<(Source, Timestamp)>,
    /// The synced data differs from the previous sync's.
    changed: bool,
    /// Changed, and not the first sync: the workloads reading it restart.
    restart_workloads: bool,
}

async fn apply(pss: &PasswordSafeSecret, ctx: &Context) -> Result<Next> {
    let uid = pss.uid().unwrap_or_default();
    let reported = ctx.reported(pss);
    match sync(pss, ctx, reported.as_ref()).await {
        Ok(outcome) => {
            ctx.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&uid_key(&uid));
            ctx.metrics.rotations_observed(outcome.rotated.len());
            if outcome.restart_workloads && !pss.spec.rollout_restart_targets.is_empty() {
                rollout::restart(ctx, pss).await;
            }
            publish_success_events(ctx, pss, &outcome, outcome.changed).await;
            // A reconcile between planned syncs (our own Secret write, a store update, a restarted watch) that
            // found nothing to do keeps the planned next sync, and with it the status that announces it.
            if let Some(planned) = planned_sync_kept(pss, reported.as_ref(), &outcome, Timestamp::now()) {
                return Ok(Next::After(planned));
            }
            write_status_success(ctx, pss, reported.as_ref(), &outcome).await?;
            Ok(Next::After(outcome.next))
        }
        Err(error) => {
            let failures = {
                let mut map = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
                let n = map.entry(uid_key(&uid)).or_insert(0);
                *n += 1;
                *n
            };
            let delay = schedule::next_sync(&ScheduleInput {
                now: Timestamp::now(),
                refresh_interval: ctx.default_refresh,
                sources: Vec::new(),
                consecutive_errors: failures,
                rotation_loops: 0,
                jitter: 0.0,
            })
            .0;
            write_status_failure(ctx, pss, reported.as_ref(), &error, delay).await;
            Err(error)
        }
    }
}

/// Decide, fetch when needed, build and apply the Secret, record what was synced.
async fn sync(pss: &PasswordSafeSecret, ctx: &Context, reported: Option<&Reported>) -> Result<Outcome> {
    let namespace = pss.namespace().unwrap_or_default();
    let name = pss.name_any();
    let uid = pss.uid().ok_or_else(|| Error::Invalid("resource has no UID".into()))?;
    let spec = &pss.spec;
    let refresh = match &spec.refresh_interval {
        Some(text) => {
            duration::parse_at_least(text, MIN_REFRESH).map_err(|e| Error::Invalid(format!("refreshInterval: {e}")))?
        }
        None => ctx.default_refresh,
    };
    let store = ctx.stores.for_secret(&spec.store_ref, &namespace).await?;
    let now = Timestamp::now();
    let previous = match ctx.synced(&uid) {
        Some(previous) => Some(previous),
        None => adopt(pss, ctx, &store).await,
    };
    let decision = decide(previous.as_deref(), pss, &store, now).await?;

    let (resolved, data, loops, fetched_at) = match (decision.fetch, &previous) {
        (None, Some(prev)) => {
            let mut resolved = prev.resolved.clone();
            // A held release that ended without changing anything leaves nothing to wait for.
            for source in &mut resolved.sources {
                source.held_until = source.held_until.filter(|t| *t > now);
            }
            (resolved, prev.data.to_data(), prev.loops, prev.fetched_at)
        }
        (reason, _) => {
            let options = store.request_options(spec.request.as_ref());
            let mut resolved = resolve::resolve(&store.client, spec, &options).await?;
            // The values are kept once, as the Secret's data; what stays of the fetch are its source facts.
            let data = match &spec.target.template {
                Some(t) => template::render(t, &resolved.data)?,
                None => std::mem::take(&mut resolved.data),
            };
            resolved.data = SecretData::new();
            let loops = if decision.self_caused_rotation { previous.as_ref().map_or(1, |p| p.loops + 1) } else { 0 };
            tracing::info!(reason = reason.unwrap_or("first sync"), keys = data.len(), "fetched from Password Safe");
            (resolved, data, loops, now)
        }
    };

    let owner = Owner { name: name.clone(), namespace: namespace.clone(), uid: uid.clone() };
    let desired = desired::desired_secret(&spec.target, &owner, data.clone())?;
    let target_name = desired::target_name(&spec.target, &name);
    let applied = write_secret(ctx, &desired, &owner, &target_name, spec.target.creation_policy).await?;

    let rotated =
        previous.as_deref().map(|prev| rotations(&prev.resolved.sources, &resolved.sources)).unwrap_or_default();
    let hmac = ctx.hmac.digest(&data);
    register_sources(ctx, pss, &store, &resolved, previous.as_deref());
    // Compared with what this process synced last, or (after a restart) with what status says was synced.
    let previous_hmac = previous.as_ref().map(|p| hmac_digest(&p.hmac)).or_else(|| reported.and_then(|r| r.data_hmac));
    let changed = previous_hmac != Some(hmac_digest(&hmac));
    let restart_workloads = changed && previous_hmac.is_some();
    let synced = Arc::new(Synced {
        generation: pss.meta().generation,
        store: store.key.clone(),
        resolved,
        data: data.into(),
        hmac,
        loops,
        fetched_at,
    });
    let managed = {
        let mut map = ctx.synced.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(uid_key(&uid), synced.clone());
        map.len()
    };
    ctx.metrics.set_managed_secrets(managed);

    let timings = if decision.fetch.is_some() { timings_of(&synced.resolved.sources) } else { decision.timings };
    let (next, why) = schedule::next_sync(&ScheduleInput {
        now,
        refresh_interval: refresh,
        sources: timings,
        consecutive_errors: 0,
        rotation_loops: loops.saturating_sub(LOOP_THRESHOLD - 1),
        jitter: rand::random(),
    });
    tracing::debug!(next_s = next.as_secs(), ?why, fetched = decision.fetch, applied, "synced");
    let latest = if why == schedule::Reason::Refresh { refresh } else { next };
    Ok(Outcome { synced, fetched: decision.fetch, applied, next, latest, rotated, changed, restart_workloads })
}

/// Applies `desired` unless the live Secret already matches it. When the Secret watch has confirmed that the
/// Secret is still as we last wrote it, and we want the same again, there is nothing to read or write.
/// Returns whether it applied.
async fn write_secret(
    ctx: &Context,
    desired: &Secret,
    owner: &Owner,
    target_name: &str,
    policy: CreationPolicy,
) -> Result<bool> {
    let namespace = &owner.namespace;
    let digest = versions::digest(desired);
    if ctx.secret_versions.is_current(namespace, target_name, digest) {
        return Ok(false);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), namespace);
    let live = secrets.get_opt(target_name).await.map_err(Error::Kube)?;
    if let Some(live) = &live {
        desired::check_takeover(live, owner, policy)?;
    }
    let (applied, version) = match live {
        Some(live) if !drifted(&live, desired, owner, policy) => (false, live.resource_version()),
        _ => {
            let written = secrets
                .patch(target_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired))
                .await
                .map_err(Error::Kube)?;
            (true, written.resource_version())
        }
    };
    ctx.secret_versions.written(namespace, target_name, version.as_deref(), digest);
    Ok(applied)
}

/// Tells the store's change detection what this sync read, in place of what the previous sync registered (with
/// this store, or with the store the resource used before).
fn register_sources(
    ctx: &Context,
    pss: &PasswordSafeSecret,
    store: &StoreHandle,
    now: &Resolved,
    prev: Option<&Synced>,
) {
    let object = ObjectRef::from_obj(pss);
    let registered_here = prev.filter(|p| p.store == store.key);
    if let Some(prev) = prev.filter(|p| p.store != store.key)
        && let Some(old) = ctx.stores.existing(&prev.store)
    {
        old.changes.unregister(&object, prev.sources());
    }
    let facts = now.sources.iter().map(|s| (s.source.clone(), info_of(s))).collect();
    store.changes.register(&object, facts, registered_here.into_iter().flat_map(Synced::sources));
}

/// After a restart or a leader change nothing is in memory. Rather than request every credential again at
/// once, take the live Secret as what we synced when (a) status says this generation was synced, (b) the live
/// data matches status.dataHmac (keyed: only our key can produce it), and (c) Password Safe reports every
/// source unchanged since that sync (status keeps microseconds). Anything else means a normal fetch.
async fn adopt(pss: &PasswordSafeSecret, ctx: &Context, store: &StoreHandle) -> Option<Arc<Synced>> {
    let status = pss.status.as_ref()?;
    if status.observed_generation != pss.meta().generation || pss.spec.target.creation_policy == CreationPolicy::Merge {
        return None;
    }
    let digest = status.data_hmac.as_deref()?;
    let synced_at = status.last_sync_time.as_ref()?.0;
    let name = desired::target_name(&pss.spec.target, &pss.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &pss.namespace().unwrap_or_default());
    let live = secrets.get_opt(&name).await.ok()??;
    let data = desired::live_data(&live);
    if !ctx.hmac.matches(&data, digest) {
        return None;
    }
    let mut states = Vec::new();
    for source in Source::all_of(&pss.spec) {
        let recorded = status.sources.iter().find(|s| s.source == source.to_string())?;
        let info = store.changes.current(&source, synced_at).await.ok()?;
        let micros = |t: Option<Timestamp>| t.map(|t| t.as_microsecond());
        let last_change = info.rotation.as_ref().and_then(|r| r.last_change_date);
        let unchanged = micros(last_change) == recorded.last_change_date.as_ref().map(|t| t.0.as_microsecond())
            && micros(info.modified_on) == recorded.modified_on.as_ref().map(|t| t.0.as_microsecond());
        if !unchanged || info.rotation.as_ref().is_some_and(in_flux) {
            return None;
        }
        states.push(SourceState {
            keys: recorded.key.split(',').map(str::to_owned).collect(),
            rotation: info.rotation,
            modified_on: info.modified_on,
            folder_fingerprint: info.folder_fingerprint,
            held_until: None,
            checked_in: false,
            fetched_at: synced_at,
            source,
        });
    }
    tracing::info!(secret = name, "adopted the live Secret after a restart: Password Safe reports no change");
    Some(Arc::new(Synced {
        generation: pss.meta().generation,
        store: store.key.clone(),
        resolved: Resolved { data: SecretData::new(), sources: states },
        hmac: digest.to_owned(),
        data: data.into(),
        loops: 0,
        fetched_at: synced_at,
    }))
}

/// Whether to ask Password Safe again, and the latest timing facts either way.
struct Decision {
    fetch: Option<&'static str>,
    timings: Vec<SourceTiming>,
    self_caused_rotation: bool,
}

async fn decide(
    previous: Option<&Synced>,
    pss: &PasswordSafeSecret,
    store: &StoreHandle,
    now: Timestamp,
) -> Result<Decision> {
    let fetch = |reason| Decision { fetch: Some(reason), timings: Vec::new(), self_caused_rotation: false };
    let Some(prev) = previous else { return Ok(fetch("first sync")) };
    if prev.generation != pss.meta().generation {
        return Ok(fetch("spec changed"));
    }
    if prev.store != store.key {
        return Ok(fetch("store changed"));
    }
    let mut decision = Decision { fetch: None, timings: Vec::new(), self_caused_rotation: false };
    for state in &prev.resolved.sources {
        let mut timing = timing_of(state);
        // After an announced change we need facts from after it; otherwise the last poll will do. That one may
        // be up to two intervals old while the next poll is still listing (every listing of a large store
        // takes a while), which is no reason for a look-up of our own: the poller reports what it finds.
        let announced = state.rotation.as_ref().and_then(|r| r.next_change_date).filter(|t| *t <= now);
        let poll = SignedDuration::try_from(store.changes.interval()).unwrap_or(SignedDuration::ZERO) * 2;
        let mut fresh_after = announced.unwrap_or(now - poll).max(state.fetched_at.min(now - poll));
        // A release we held (ISA, or a failed check-in) has ended: the account may rotate now ("change password
        // after any release"). Look with facts from after the expiry and fetch only if the source moved; asking
        // for the credential again would open another release, and so on every expiry.
        if let Some(expiry) = state.held_until.filter(|t| *t <= now) {
            fresh_after = fresh_after.max(expiry);
            timing.held_until = None;
        }
        let info = store.changes.current(&state.source, fresh_after).await.map_err(|error| {
            Error::Resolve(ResolveError::Source {
                key: state.keys.first().cloned().unwrap_or_default(),
                source_name: state.source.to_string(),
                error,
            })
        })?;
        let in_flux_now = info.rotation.as_ref().is_some_and(in_flux);
        if let Some(r) = &info.rotation {
            timing.next_change = r.next_change_date;
            timing.in_flux = in_flux_now;
        }
        let moved = info.moved_since(&info_of(state));
        let was_in_flux = state.rotation.as_ref().is_some_and(in_flux);
        if !in_flux_now && (moved || was_in_flux) {
            decision.fetch.get_or_insert(if moved { "source rotated" } else { "change completed" });
            if moved && self_caused(state, info.rotation.as_ref()) {
                decision.self_caused_rotation = true;
            }
        }
        decision.timings.push(timing);
    }
    // In a rotation loop every fetch causes the next rotation: wait out the back-off whatever triggered us.
    if prev.loops >= LOOP_THRESHOLD && decision.fetch == Some("source rotated") {
        let backoff =
            SignedDuration::try_from(schedule::loop_backoff(prev.loops - LOOP_THRESHOLD + 1)).unwrap_or_default();
        if now < prev.fetched_at + backoff {
            decision.fetch = None;
            decision.self_caused_rotation = false;
        }
    }
    Ok(decision)
}

/// Sources whose change date moved between two fetches.
fn rotations(before: &[SourceState], after: &[SourceState]) -> Vec<(Source, Timestamp)> {
    after
        .iter()
        .filter_map(|now| {
            let then = before.iter().find(|b| b.source == now.source)?;
            let changed = |s: &SourceState| s.rotation.as_ref().and_then(|r| r.last_change_date).or(s.modified_on);
            match (changed(then), changed(now)) {
                (Some(a), Some(b)) if a != b => Some((now.source.clone(), b)),
                _ => None,
            }
        })
        .collect()
}

/// What a fetch learned about a source, in the change tracker's terms.
fn info_of(state: &SourceState) -> SourceInfo {
    SourceInfo {
        rotation: state.rotation.clone(),
        modified_on: state.modified_on,
        folder_fingerprint: state.folder_fingerprint.clone(),
    }
}

fn in_flux(r: &RotationInfo) -> bool {
    r.is_changing || r.change_state.is_in_flux()
}

/// A change that happened soon after our own check-in without having been announced.
fn self_caused(state: &SourceState, now: Option<&RotationInfo>) -> bool {
    if !state.checked_in {
        return false;
    }
    let Some(changed_at) = now.and_then(|r| r.last_change_date) else { return false };
    let announced = state.rotation.as_ref().and_then(|r| r.next_change_date).is_some_and(|next| next <= changed_at);
    !announced && changed_at >= state.fetched_at && changed_at <= state.fetched_at + LOOP_WINDOW
}

fn timing_of(state: &SourceState) -> SourceTiming {
    SourceTiming {
        next_change: state.rotation.as_ref().and_then(|r| r.next_change_date),
        in_flux: state.rotation.as_ref().is_some_and(in_flux),
        held_until: state.held_until,
    }
}

fn timings_of(states: &[SourceState]) -> Vec<SourceTiming> {
    states.iter().map(timing_of).collect()
}

/// Whether the live Secret differs from what we would apply: our data keys, our labels and annotations, the
/// type, and our owner reference.
fn drifted(live: &Secret, desired: &Secret, owner: &Owner, policy: CreationPolicy) -> bool {
    let live_data = live.data.clone().unwrap_or_default();
    let want_data = desired.data.clone().unwrap_or_default();
    let data_differs = match policy {
        CreationPolicy::Merge => want_data.iter().any(|(k, v)| live_data.get(k) != Some(v)),
        _ => live_data != want_data,
    };
    let subset = |want: &Option<BTreeMap<String, String>>, have: &Option<BTreeMap<String, String>>| {
        want.iter().flatten().all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let labels_differ = !subset(&desired.metadata.labels, &live.metadata.labels);
    let annotations_differ = !subset(&desired.metadata.annotations, &live.metadata.annotations);
    let type_differs = desired.type_.is_some() && desired.type_ != live.type_;
    let has_our_owner_ref = live.owner_references().iter().any(|r| r.uid == owner.uid);
    let owner_ref_differs = has_our_owner_ref != (policy == CreationPolicy::Owner);
    data_differs || labels_differ || annotations_differ || type_differs || owner_ref_differs
}

/// The finalizer's cleanup: honour `deletionPolicy` for the target Secret.
async fn cleanup(pss: &PasswordSafeSecret, ctx: &Context) -> Result<Next> {
    let namespace = pss.namespace().unwrap_or_default();
    let name = pss.name_any();
    let uid = pss.uid().unwrap_or_default();
    let owner = Owner { name: name.clone(), namespace: namespace.clone(), uid: uid.clone() };
    let target = &pss.spec.target;
    let target_name = desired::target_name(target, &name);
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let live = secrets.get_opt(&target_name).await.map_err(Error::Kube)?;
    let note = match (live, target.creation_policy, target.deletion_policy) {
        (None, _, _) => "the target Secret no longer exists".to_owned(),
        (Some(live), _, _) if target.creation_policy != CreationPolicy::Merge && !desired::is_ours(&live, &uid) => {
            format!("left Secret {target_name} alone: it is not managed by this resource")
        }
        (Some(live), CreationPolicy::Owner, DeletionPolicy::Retain) => {
            // Retain an owned Secret: drop our owner reference so the garbage collector keeps it.
            let refs: Vec<_> = live.owner_references().iter().filter(|r| r.uid != uid).cloned().collect();
            let patch = json!({ "metadata": { "ownerReferences": refs } });
            secrets.patch(&target_name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::Kube)?;
            format!("retained Secret {target_name} (owner reference removed)")
        }
        (Some(_), CreationPolicy::Owner, DeletionPolicy::Delete) => {
            format!("Secret {target_name} is deleted by the garbage collector through its owner reference")
        }
        (Some(_), CreationPolicy::Orphan, DeletionPolicy::Delete) => {
            secrets.delete(&target_name, &Default::default()).await.map_err(Error::Kube)?;
            format!("deleted Secret {target_name}")
        }
        (Some(_), CreationPolicy::Merge, DeletionPolicy::Delete) => {
            let emptied = desired::merge_cleanup_secret(target, &owner);
            secrets
                .patch(&target_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&emptied))
                .await
                .map_err(Error::Kube)?;
            format!("removed the operator's keys from Secret {target_name}")
        }
        (Some(_), _, DeletionPolicy::Retain) => format!("retained Secret {target_name}"),
    };
    ctx.forget(pss);
    publish(ctx, pss, EventType::Normal, "Cleanup", "Delete", note).await;
    Ok(Next::OnChange)
}

async fn publish_success_events(ctx: &Context, pss: &PasswordSafeSecret, outcome: &Outcome, changed: bool) {
    let secret_name = desired::target_name(&pss.spec.target, &pss.name_any());
    for (source, at) in &outcome.rotated {
        let note = format!("{source} was rotated in Password Safe at {at}");
        publish(ctx, pss, EventType::Normal, "Rotated", "Sync", note).await;
    }
    if changed {
        let why = outcome.fetched.unwrap_or("Secret restored");
        let note = format!("synced {} keys into Secret {secret_name} ({why})", outcome.synced.data.len());
        publish(ctx, pss, EventType::Normal, "Synced", "Sync", note).await;
    } else if outcome.applied {
        let note = format!("restored Secret {secret_name}: it was edited or deleted outside the operator");
        publish(ctx, pss, EventType::Normal, "SecretRestored", "Sync", note).await;
    }
    if outcome.synced.loops >= LOOP_THRESHOLD {
        publish(ctx, pss, EventType::Warning, "RotationLoop", "Sync", rotation_loop_message(&outcome.synced)).await;
    }
}

fn rotation_loop_message(synced: &Synced) -> String {
    format!(
        "the password rotates after every check-in ({} times in a row): the account has \"change password after any \
         release\" set. Set spec.request.rotateOnCheckin: false (the access policy must allow the API rotation \
         override). Backing off meanwhile",
        synced.loops
    )
}

pub(crate) async fn publish(
    ctx: &Context,
    pss: &PasswordSafeSecret,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event { type_, reason, action, note };
    if let Err(e) = ctx.events.publish(&event, &pss.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

/// When nothing was fetched, written or learned and the status already says all this sync would write, the
/// time until the sync the status announces (`nextSyncTime`), unless this sync would plan an earlier one.
fn planned_sync_kept(
    pss: &PasswordSafeSecret,
    reported: Option<&Reported>,
    outcome: &Outcome,
    now: Timestamp,
) -> Option<Duration> {
    let synced = &outcome.synced;
    if outcome.fetched.is_some()
        || outcome.applied
        || outcome.changed
        || !outcome.rotated.is_empty()
        || synced.loops >= LOOP_THRESHOLD
    {
        return None;
    }
    let reported = reported?;
    let name = desired::target_name(&pss.spec.target, &pss.name_any());
    let sources: Vec<SourceStatus> = synced.resolved.sources.iter().map(source_status).collect();
    let current = !reported.in_doubt
        && reported.ready.is_some_and(|c| c.says(true, "Synced", &ready_message(&name)))
        && !reported.rotation_loop.is_some_and(|c| c.is_true)
        && reported.observed_generation == pss.meta().generation
        && reported.synced == synced_digest(Some(&name), &sources)
        && reported.data_hmac == Some(hmac_digest(&synced.hmac));
    let planned = Duration::try_from(reported.next_sync?.duration_since(now)).ok()?;
    (current && planned >= schedule::MIN_DELAY && planned <= outcome.latest).then_some(planned)
}

fn ready_message(secret_name: &str) -> String {
    format!("Secret {secret_name} holds the current data")
}

async fn write_status_success(
    ctx: &Context,
    pss: &PasswordSafeSecret,
    reported: Option<&Reported>,
    outcome: &Outcome,
) -> Result<()> {
    let now = Timestamp::now();
    let synced = &outcome.synced;
    let name = desired::target_name(&pss.spec.target, &pss.name_any());
    let ready_since = transition_time(reported, READY, true);
    let mut conditions = vec![condition(pss, READY, "True", "Synced", &ready_message(&name), ready_since)];
    if synced.loops >= LOOP_THRESHOLD {
        let message = rotation_loop_message(synced);
        conditions.push(condition(
            pss,
            ROTATION_LOOP,
            "True",
            "RotatesAfterCheckin",
            &message,
            transition_time(reported, ROTATION_LOOP, true),
        ));
    }
    let status = PasswordSafeSecretStatus {
        conditions,
        observed_generation: pss.meta().generation,
        secret_name: Some(name),
        last_sync_time: Some(Time(now)),
        next_sync_time: Some(Time(now + SignedDuration::try_from(outcome.next).unwrap_or_default())),
        sources: synced.resolved.sources.iter().map(source_status).collect(),
        data_hmac: Some(synced.hmac.clone()),
    };
    write_status(ctx, pss, reported, status).await.map_err(Error::Kube)
}

async fn write_status_failure(
    ctx: &Context,
    pss: &PasswordSafeSecret,
    reported: Option<&Reported>,
    error: &Error,
    retry_in: Duration,
) {
    let now = Timestamp::now();
    let message = error.to_string();
    let previous = reported.and_then(|r| r.ready);
    if !previous.is_some_and(|c| c.says(false, error.reason(), &message)) {
        publish(ctx, pss, EventType::Warning, error.reason(), error.action(), message.clone()).await;
    }
    let since = transition_time(reported, READY, false);
    let status = PasswordSafeSecretStatus {
        conditions: vec![condition(pss, READY, "False", error.reason(), &message, since)],
        observed_generation: pss.meta().generation,
        next_sync_time: Some(Time(now + SignedDuration::try_from(retry_in).unwrap_or_default())),
        ..Default::default()
    };
    if let Err(e) = write_status(ctx, pss, reported, status).await {
        tracing::warn!(error = %e, "could not write status");
    }
}

/// Merge-patches the status (fields left out stay as they are) and keeps a note of what it now says. The note
/// is taken before the write, because the watch may deliver the write before its response arrives. A write
/// the API server refused (4xx) puts the previous note back; any other failure (the connection broke with the
/// patch sent, a 5xx) may or may not have been applied, so the note is kept in doubt: the next reconcile writes
/// the status again rather than trusting either version.
async fn write_status(
    ctx: &Context,
    pss: &PasswordSafeSecret,
    reported: Option<&Reported>,
    status: PasswordSafeSecretStatus,
) -> kube::Result<()> {
    let uid = pss.uid().unwrap_or_default();
    let note = reported.map_or_else(|| Reported::of(&status), |r| r.after(&status));
    let replaced = ctx.reported.set(&uid, note);
    let api: Api<PasswordSafeSecret> = Api::namespaced(ctx.kube.clone(), &pss.namespace().unwrap_or_default());
    let patch = json!({ "status": status });
    match api.patch_status(&pss.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            match &e {
                kube::Error::Api(status) if (400..500).contains(&status.code) => ctx.reported.restore(&uid, replaced),
                _ => ctx.reported.doubt(&uid),
            }
            Err(e)
        }
    }
}

/// The lastTransitionTime of a condition about to be written: kept while its status stays the same.
fn transition_time(reported: Option<&Reported>, type_: &str, is_true: bool) -> Time {
    let previous = reported.and_then(|r| if type_ == READY { r.ready } else { r.rotation_loop });
    match previous {
        Some(p) if p.is_true == is_true => Time(p.since),
        _ => Time(Timestamp::now()),
    }
}

fn condition(
    pss: &PasswordSafeSecret,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    since: Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: pss.meta().generation,
        last_transition_time: since,
    }
}

fn source_status(state: &SourceState) -> SourceStatus {
    SourceStatus {
        key: state.keys.join(","),
        source: state.source.to_string(),
        last_change_date: state.rotation.as_ref().and_then(|r| r.last_change_date).map(MicroTime),
        next_change_date: state.rotation.as_ref().and_then(|r| r.next_change_date).map(MicroTime),
        modified_on: state.modified_on.map(MicroTime),
    }
}
