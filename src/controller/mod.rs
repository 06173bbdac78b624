//! kube-runtime wiring: the PasswordSafeSecret work queue and its triggers, the two store controllers, and
//! shutdown.
//!
//! ```text
//!  PasswordSafeSecret (watch → Cache: what reconciles read) ──┐ new, or spec or lifecycle changed
//!  PasswordSafeStore ─┐ (reflector)  ┌> StoreRegistry: one    │
//!  ClusterPSStore ────┤              │  Password Safe client  ├─> queue (namespace/name, due time) ─> reconcile
//!  Secret metadata ───┼─ map to ─────┘  per store             │     → Secret (server-side apply), status, events
//!  owned Secrets ─────┘ dependents ───────────────────────────┤
//!                       (owned Secrets: our own writes' echoes│
//!                        dropped by SecretVersions)           │
//!  ChangeTracker (per store): polls listings ─────────────────┘
//! ```

mod cache;
mod changes;
mod compact;
pub mod events;
mod queue;
pub mod reconcile;
mod reported;
mod rollout;
mod stores;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::{FutureExt, StreamExt, future};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream_shim::UnboundedReceiverStream;

use cache::Cache;
use compact::uid_key;
use events::EventPublisher;
pub use queue::Next;
pub use reconcile::{Context, FINALIZER};
pub use stores::{StoreKey, StoreRegistry, client_config, selector_matches};
use versions::SecretVersions;

use crate::api::{ClusterPasswordSafeStore, PasswordSafeSecret, PasswordSafeStore, StoreKind};
use crate::passwordsafe::SecretBytes;
use crate::sync::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION};
use crate::sync::hmac::DataHmac;
use crate::telemetry::metrics::{Health, Metrics};

/// Settings of the controller process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Namespace of the operator's own Secret holding the HMAC key.
    pub operator_namespace: String,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Refresh interval of resources that do not set one.
    pub default_refresh: Duration,
    /// Change-detection poll interval of stores that do not set one.
    pub poll_interval: Duration,
    /// `reportingController` of events.
    pub reporter: String,
    /// After SIGTERM, how long in-flight syncs get to finish and check in before the process exits anyway
    /// (half for the syncs, half for check-ins and sign-out). Below the pod's termination grace period.
    pub shutdown_timeout: Duration,
    /// Where the controllers report (`/metrics`), and their readiness (`/readyz`).
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Name of the operator-owned Secret with the HMAC key.
pub const HMAC_SECRET: &str = "passwordsafe-operator-hmac-key";

/// Runs the controllers until `shutdown` resolves, then signs every Password Safe session out.
pub async fn run(
    kube: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let secrets_api: Api<PasswordSafeSecret> = scoped(&kube, config.namespace.as_deref());
    secrets_api.list(&ListParams::default().limit(1)).await.context(
        "cannot list PasswordSafeSecrets: are the CRDs installed? (passwordsafe-operator crd | kubectl apply -f -)",
    )?;
    let hmac = DataHmac::new(hmac_key(&kube, &config.operator_namespace).await?).map_err(anyhow::Error::msg)?;

    let (store_reader, store_writer) = reflector::store::<PasswordSafeStore>();
    let (cluster_reader, cluster_writer) = reflector::store::<ClusterPasswordSafeStore>();
    let stores_api: Api<PasswordSafeStore> = scoped(&kube, config.namespace.as_deref());
    let cluster_api: Api<ClusterPasswordSafeStore> = Api::all(kube.clone());
    // Ready (`/readyz`) once these three watches have their first listing.
    config.health.expect_listings(3);
    let store_stream = watcher(stores_api.clone(), watcher::Config::default()).inspect(first_listing(&config.health));
    let store_stream = spec_changes_and_deletions(reflector::reflector(store_writer, store_stream)).default_backoff();
    let cluster_stream =
        watcher(cluster_api.clone(), watcher::Config::default()).inspect(first_listing(&config.health));
    let cluster_stream =
        spec_changes_and_deletions(reflector::reflector(cluster_writer, cluster_stream)).default_backoff();

    let (trigger_tx, trigger_rx) = mpsc::unbounded_channel();
    let registry = Arc::new(StoreRegistry::new(
        kube.clone(),
        store_reader.clone(),
        cluster_reader.clone(),
        config.metrics.clone(),
        config.poll_interval,
        Some(trigger_tx.clone()),
    ));
    let events = EventPublisher::new(kube.clone(), &config.reporter);
    let ctx = Arc::new(
        Context::new(kube.clone(), events, registry.clone(), hmac, config.default_refresh)
            .with_metrics(config.metrics.clone()),
    );

    // `Api<PartialObjectMeta<_>>` watches metadata only: the values never travel to the operator.
    let owned_secrets: Api<PartialObjectMeta<Secret>> = scoped(&kube, config.namespace.as_deref());
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let owned_changes =
        owned_secret_changes(watcher(owned_secrets, owned).default_backoff(), ctx.secret_versions.clone(), trigger_tx);
    // Only spec changes and lifecycle (finalizers, deletion) start a reconcile: our own status writes change the
    // object too, and reacting to them would make every sync schedule another. The cache keeps what reconciles
    // read (`strip_unread`): one copy of every resource for as long as the operator runs.
    let cache = Arc::new(Cache::default());
    let (strip_ctx, forget_ctx) = (ctx.clone(), ctx.clone());
    let pss_watch = watcher(secrets_api, watcher::Config::default())
        .inspect(first_listing(&config.health))
        .modify(move |pss| strip_unread(pss, &strip_ctx))
        .default_backoff();
    let pss_changes = reconcile_worthy(pss_watch, cache.clone(), move |pss| forget_ctx.forget(pss));
    let (d1, d2, d3) = (cache.clone(), cache.clone(), cache.clone());
    let metadata_registry = registry.clone();
    let (store_registry, cluster_registry) = (registry.clone(), registry.clone());
    let shutdown = (Box::pin(shutdown) as future::BoxFuture<'static, ()>).shared();
    // Credential Secrets of stores: metadata only and no cache, just to notice changes.
    let secret_metadata =
        watcher(scoped::<PartialObjectMeta<Secret>>(&kube, config.namespace.as_deref()), watcher::Config::default())
            .touched_objects()
            .default_backoff();

    // Every trigger names the resource to reconcile (name and namespace); the queue looks it up in the cache
    // when its turn comes. Related objects map to their dependents here.
    let triggers = futures::stream::select_all([
        pss_changes.boxed(),
        related_changes(owned_changes, "owned Secret", |secret| owner_of(&secret)).boxed(),
        related_changes(store_stream, "PasswordSafeStore", move |store| {
            let key =
                StoreKey { kind: StoreKind::PasswordSafeStore, namespace: store.namespace(), name: store.name_any() };
            store_changed(&store_registry, &d1, key)
        })
        .boxed(),
        related_changes(cluster_stream, "ClusterPasswordSafeStore", move |store| {
            let key = StoreKey { kind: StoreKind::ClusterPasswordSafeStore, namespace: None, name: store.name_any() };
            store_changed(&cluster_registry, &d2, key)
        })
        .boxed(),
        related_changes(secret_metadata, "Secret", move |secret| {
            let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            let mut stores = metadata_registry.invalidate_secret(&ns, &name);
            stores.extend(metadata_registry.stores_using_secret(&ns, &name));
            dependents_of(&d3, &stores)
        })
        .boxed(),
        UnboundedReceiverStream(trigger_rx).boxed(),
    ]);
    let reconcile_ctx = ctx.clone();
    let main = queue::run(cache, triggers, usize::from(config.concurrency), shutdown.clone(), move |pss| {
        measured_reconcile(pss, reconcile_ctx.clone())
    });

    let store_status = run_store_controllers(kube.clone(), stores_api, cluster_api, registry.clone(), shutdown.clone());
    let controllers = future::join(main, store_status);
    // Graceful shutdown lets in-flight syncs finish; a sync stuck on a slow server must not hold the process
    // past the pod's grace period. Its request cycle runs on as a task, and closing the clients below waits
    // for it to check in (or checks in what it left open).
    let deadline = async {
        shutdown.clone().await;
        tokio::time::sleep(config.shutdown_timeout / 2).await;
    };
    tokio::select! {
        _ = controllers => {}
        _ = deadline => tracing::warn!(
            timeout_s = config.shutdown_timeout.as_secs(),
            "syncs still running at shutdown; abandoning them after checking their requests in"
        ),
    }
    let signed_out = registry.sign_out_all(config.shutdown_timeout / 2).await;
    tracing::info!(signed_out, "stopped; signed out of Password Safe");
    Ok(())
}

/// [`reconcile::reconcile`], counted and timed in the metrics; a failure goes to [`reconcile::error_policy`].
async fn measured_reconcile(pss: Arc<PasswordSafeSecret>, ctx: Arc<Context>) -> Next {
    let started = std::time::Instant::now();
    let result = reconcile::reconcile(pss.clone(), ctx.clone()).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err().map(reconcile::Error::reason));
    result.unwrap_or_else(|error| reconcile::error_policy(&pss, &error, &ctx))
}

/// Marks `health` once the watch delivers its first complete listing (its first `InitDone`).
fn first_listing<K>(health: &Arc<Health>) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let health = health.clone();
    let mut counted = false;
    move |event| {
        if !counted && matches!(event, Ok(watcher::Event::InitDone)) {
            counted = true;
            health.listed();
        }
    }
}

/// Drops from a cached PasswordSafeSecret what the operator does not read there: Kubernetes bookkeeping, its
/// labels and annotations (kubectl's last-applied copy of the spec among them), and the status once this process has written it and keeps what reconciles need of it (see [`reported`]).
fn strip_unread(pss: &mut PasswordSafeSecret, ctx: &Context) {
    let meta = pss.meta_mut();
    (meta.managed_fields, meta.labels, meta.annotations, meta.owner_references) = (None, None, None, None);
    if ctx.reported.contains(&pss.uid().unwrap_or_default()) {
        pss.status = None;
    }
}

/// Objects of a store watch worth telling the dependents about: created, spec changed (generation) or deleted.
/// The store controller's status writes (every few minutes) are not.
fn spec_changes_and_deletions<K: Resource>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> {
    let mut seen = Seen::default();
    events.filter_map(move |event| {
        let news = match event {
            Err(e) => Some(Err(e)),
            Ok(event) => seen.news(event, |obj| compact::digest(&obj.meta().generation)).map(Ok),
        };
        future::ready(news)
    })
}

/// What a watch last delivered of each object, as a digest of what matters about it, by UID. Tells news (a
/// new object, a change in what the digest covers, a deletion) from repeats. A listing after the watch lost
/// its place drops the objects it no longer contains (their deletion was never delivered).
#[derive(Default)]
struct Seen {
    digests: HashMap<u128, (u64, u32)>,
    listing: u32,
}

impl Seen {
    /// The object of `event` when it is news.
    fn news<K: Resource>(&mut self, event: watcher::Event<K>, digest: impl Fn(&K) -> u64) -> Option<K> {
        match event {
            watcher::Event::Init => {
                self.listing = self.listing.wrapping_add(1);
                None
            }
            watcher::Event::InitDone => {
                let listing = self.listing;
                self.digests.retain(|_, (_, listed)| *listed == listing);
                None
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let now = digest(&obj);
                let before = self.digests.insert(uid_key(&obj.uid().unwrap_or_default()), (now, self.listing));
                (before.map(|(d, _)| d) != Some(now)).then_some(obj)
            }
            watcher::Event::Delete(obj) => {
                self.digests.remove(&uid_key(&obj.uid().unwrap_or_default()));
                Some(obj)
            }
        }
    }
}

/// Owned Secrets that changed for a reason other than our own last write (see [`versions`]). After the watch
/// lists again (it lost its place), the owners of Secrets that are no longer there reconcile too: their
/// deletion was never delivered as an event.
fn owned_secret_changes(
    events: impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>,
    versions: Arc<SecretVersions>,
    trigger: mpsc::UnboundedSender<ObjectRef<PasswordSafeSecret>>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> {
    events.filter_map(move |event| {
        let news = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Init) => {
                versions.begin_listing();
                None
            }
            Ok(watcher::Event::InitDone) => {
                for (namespace, owner) in versions.end_listing() {
                    let _ = trigger.send(ObjectRef::new(&owner).within(&namespace));
                }
                None
            }
            Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
                let owner = owner_of(&secret).map(|o| o.name);
                versions.seen(&namespace, &name, secret.resource_version().as_deref(), owner).then_some(Ok(secret))
            }
            Ok(watcher::Event::Delete(secret)) => {
                versions.forget(&secret.namespace().unwrap_or_default(), &secret.name_any());
                Some(Ok(secret))
            }
        };
        future::ready(news)
    })
}

/// The PasswordSafeSecret that wrote a Secret, from the owner annotation every written Secret carries (owned,
/// orphaned and merged alike), in the Secret's own namespace.
fn owner_of(secret: &PartialObjectMeta<Secret>) -> Option<ObjectRef<PasswordSafeSecret>> {
    let namespace = secret.namespace()?;
    let (owner_namespace, owner) = secret.annotations().get(OWNER_ANNOTATION)?.split_once('/')?;
    (owner_namespace == namespace).then(|| ObjectRef::new(owner).within(&namespace))
}

/// Feeds the PasswordSafeSecret watch into `cache`, and yields the resources to reconcile: new ones, and those
/// whose [`spec_or_lifecycle`] changed. Deletions need no reconcile; what the operator kept of a resource that
/// is gone (deleted, or missing from a new listing: deleted while the watch was away) is forgotten. Watch
/// errors are logged here (the watch retries with backoff).
fn reconcile_worthy(
    events: impl futures::Stream<Item = Result<watcher::Event<PasswordSafeSecret>, watcher::Error>>,
    cache: Arc<Cache<PasswordSafeSecret>>,
    forget: impl Fn(&PasswordSafeSecret),
) -> impl futures::Stream<Item = ObjectRef<PasswordSafeSecret>> {
    events.filter_map(move |event| {
        let news = match event {
            Err(e) => {
                tracing::warn!(error = %e, "PasswordSafeSecret watch failed; retrying");
                None
            }
            Ok(event) => {
                let applied = cache.apply(event, spec_or_lifecycle);
                applied.gone.iter().for_each(|pss| forget(pss));
                applied.changed
            }
        };
        future::ready(news)
    })
}

/// What decides whether a PasswordSafeSecret event is worth a reconcile: its generation (spec), its finalizers
/// (the finalizer helper continues after its own patch) and its deletion.
fn spec_or_lifecycle(pss: &PasswordSafeSecret) -> u64 {
    let meta = pss.meta();
    compact::digest(&(meta.generation, &meta.finalizers, meta.deletion_timestamp.as_ref().map(|t| t.0.as_second())))
}

fn scoped<K>(kube: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    }
}

/// The PasswordSafeSecrets to reconcile when related objects change, by `dependents`. Watch errors are logged
/// here (the watch retries with backoff).
fn related_changes<O, I>(
    watch: impl futures::Stream<Item = Result<O, watcher::Error>>,
    kind: &'static str,
    dependents: impl Fn(O) -> I,
) -> impl futures::Stream<Item = ObjectRef<PasswordSafeSecret>>
where
    I: IntoIterator<Item = ObjectRef<PasswordSafeSecret>>,
{
    watch
        .filter_map(move |change| {
            future::ready(match change {
                Ok(object) => Some(futures::stream::iter(dependents(object))),
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch failed; retrying");
                    None
                }
            })
        })
        .flatten()
}

/// A store was created, changed or deleted (the store streams carry deletions too): a deleted store's client
/// is signed out; every dependent reconciles (and reports a missing store).
fn store_changed(
    registry: &StoreRegistry,
    secrets: &Cache<PasswordSafeSecret>,
    key: StoreKey,
) -> Vec<ObjectRef<PasswordSafeSecret>> {
    if !registry.exists(&key) {
        registry.forget(&key);
    }
    dependents_of(secrets, &[key])
}

/// Every PasswordSafeSecret that uses one of `stores`.
fn dependents_of(secrets: &Cache<PasswordSafeSecret>, stores: &[StoreKey]) -> Vec<ObjectRef<PasswordSafeSecret>> {
    if stores.is_empty() {
        return Vec::new();
    }
    let dependents = secrets.select(|pss| {
        let key = StoreKey::for_ref(&pss.spec.store_ref, &pss.namespace().unwrap_or_default());
        stores.contains(&key)
    });
    tracing::debug!(stores = ?stores, dependents = dependents.len(), "store changed: reconciling its dependents");
    dependents
}

/// The HMAC key in the operator's own Secret, created with a random key the first time.
async fn hmac_key(kube: &kube::Client, namespace: &str) -> anyhow::Result<SecretBytes> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    if let Some(existing) =
        api.get_opt(HMAC_SECRET).await.with_context(|| format!("reading Secret {namespace}/{HMAC_SECRET}"))?
        && let Some(key) = existing.data.as_ref().and_then(|d| d.get("key"))
    {
        return Ok(SecretBytes::new(key.0.clone()));
    }
    let key = DataHmac::generate_key();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": HMAC_SECRET, "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE } },
        "type": "Opaque",
    }))?;
    let mut secret = secret;
    secret.data = Some([("key".to_owned(), k8s_openapi::ByteString(key.expose().to_vec()))].into());
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(key),
        // Another replica created it first: use theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(HMAC_SECRET).await?;
            let bytes =
                existing.data.and_then(|d| d.get("key").map(|k| k.0.clone())).context("HMAC Secret has no key")?;
            Ok(SecretBytes::new(bytes))
        }
        Err(e) => Err(e).with_context(|| format!("creating Secret {namespace}/{HMAC_SECRET}")),
    }
}

/// Store status: whether sign-in works with the current settings. Rechecked every 10 minutes and on change.
async fn run_store_controllers(
    kube: kube::Client,
    stores: Api<PasswordSafeStore>,
    cluster: Api<ClusterPasswordSafeStore>,
    registry: Arc<StoreRegistry>,
    shutdown: future::Shared<future::BoxFuture<'static, ()>>,
) {
    let ctx = Arc::new(StoreContext { kube, registry });
    let namespaced = Controller::new(stores, watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_store, |_, _, _| Action::requeue(Duration::from_secs(30)), ctx.clone())
        .for_each(|_| future::ready(()));
    let clustered = Controller::new(cluster, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_cluster_store, |_, _, _| Action::requeue(Duration::from_secs(30)), ctx)
        .for_each(|_| future::ready(()));
    future::join(namespaced, clustered).await;
}

/// What the store controllers share.
pub struct StoreContext {
    pub kube: kube::Client,
    pub registry: Arc<StoreRegistry>,
}

/// Checks a PasswordSafeStore's sign-in and writes its status.
pub async fn reconcile_store(store: Arc<PasswordSafeStore>, ctx: Arc<StoreContext>) -> Result<Action, kube::Error> {
    let key = StoreKey { kind: StoreKind::PasswordSafeStore, namespace: store.namespace(), name: store.name_any() };
    let api: Api<PasswordSafeStore> = Api::namespaced(ctx.kube.clone(), &store.namespace().unwrap_or_default());
    let (status, requeue) =
        store_status(&ctx.registry, &key, store.meta().generation, &status_conditions(&store.status)).await;
    api.patch_status(&store.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(Action::requeue(requeue))
}

/// Checks a ClusterPasswordSafeStore's sign-in and writes its status.
pub async fn reconcile_cluster_store(
    store: Arc<ClusterPasswordSafeStore>,
    ctx: Arc<StoreContext>,
) -> Result<Action, kube::Error> {
    let key = StoreKey { kind: StoreKind::ClusterPasswordSafeStore, namespace: None, name: store.name_any() };
    let api: Api<ClusterPasswordSafeStore> = Api::all(ctx.kube.clone());
    let (status, requeue) =
        store_status(&ctx.registry, &key, store.meta().generation, &status_conditions(&store.status)).await;
    api.patch_status(&store.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(Action::requeue(requeue))
}

fn status_conditions(status: &Option<crate::api::StoreStatus>) -> Vec<Condition> {
    status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default()
}

/// Signs in with the store's client: the status to write, and when to check again.
async fn store_status(
    registry: &StoreRegistry,
    key: &StoreKey,
    generation: Option<i64>,
    previous: &[Condition],
) -> (serde_json::Value, Duration) {
    let (status, reason, message, requeue) = match registry.for_store(key).await {
        Err(e) => ("False", e.reason(), e.to_string(), Duration::from_secs(60)),
        Ok(handle) => match handle.client.sign_in().await {
            Ok(user) => {
                let mut message = format!("signed in as {}", user.user_name.unwrap_or_default());
                if handle.insecure {
                    message.push_str("; WARNING: TLS certificate verification is disabled (insecureSkipVerify)");
                }
                (
                    "True",
                    if handle.insecure { "SignedInInsecure" } else { "SignedIn" },
                    message,
                    Duration::from_secs(600),
                )
            }
            Err(e) => ("False", e.reason(), format!("sign-in failed: {e}"), Duration::from_secs(60)),
        },
    };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    let condition = Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    let status = json!({ "status": { "conditions": [condition], "observedGeneration": generation, "lastCheckTime": Time(Timestamp::now()) } });
    (status, requeue)
}

/// `mpsc::UnboundedReceiver` as a `Stream` (what tokio-stream's wrapper does, without the dependency).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct UnboundedReceiverStream<T>(pub tokio::sync::mpsc::UnboundedReceiver<T>);

    impl<T> futures::Stream for UnboundedReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, version: &str, owner: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version,
                         "annotations": {OWNER_ANNOTATION: owner}},
        }))
        .unwrap()
    }

    async fn passed(
        events: Vec<watcher::Event<PartialObjectMeta<Secret>>>,
        versions: &Arc<SecretVersions>,
    ) -> (Vec<String>, Vec<ObjectRef<PasswordSafeSecret>>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out: Vec<_> = owned_secret_changes(futures::stream::iter(events.into_iter().map(Ok)), versions.clone(), tx)
            .map(|s| {
                let s = s.unwrap();
                format!("{}@{}", s.name_any(), s.resource_version().unwrap_or_default())
            })
            .collect()
            .await;
        let mut triggered = Vec::new();
        while let Ok(object) = rx.try_recv() {
            triggered.push(object);
        }
        (out, triggered)
    }

    #[tokio::test]
    async fn the_echo_of_our_own_write_starts_no_reconcile_and_anything_else_does() {
        let versions = Arc::new(SecretVersions::default());
        versions.written("ns", "a", Some("5"), 1);
        let events = vec![
            watcher::Event::Apply(secret("a", "5", "ns/pss-a")),
            watcher::Event::Apply(secret("a", "6", "ns/pss-a")),
            watcher::Event::Delete(secret("a", "7", "ns/pss-a")),
        ];
        let (passed, _) = passed(events, &versions).await;
        assert_eq!(passed, ["a@6", "a@7"], "the edit and the deletion, not our write");
        assert!(!versions.is_current("ns", "a", 1));
    }

    #[tokio::test]
    async fn secrets_missing_from_a_new_listing_trigger_their_owners() {
        let versions = Arc::new(SecretVersions::default());
        let first = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(secret("a", "1", "ns/pss-a")),
            watcher::Event::InitApply(secret("b", "2", "ns/pss-b")),
            watcher::Event::InitDone,
        ];
        let (_, triggered) = passed(first, &versions).await;
        assert!(triggered.is_empty());
        let relisted = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(secret("a", "1", "ns/pss-a")),
            watcher::Event::InitDone,
        ];
        let (_, triggered) = passed(relisted, &versions).await;
        assert_eq!(triggered, [ObjectRef::new("pss-b").within("ns")]);
    }

    #[test]
    fn a_secret_maps_to_the_resource_in_its_own_namespace_only() {
        assert_eq!(owner_of(&secret("a", "1", "ns/pss-a")), Some(ObjectRef::new("pss-a").within("ns")));
        assert_eq!(owner_of(&secret("a", "1", "other/pss-a")), None);
        assert_eq!(owner_of(&secret("a", "1", "garbage")), None);
    }

    fn pss(name: &str, uid: &str, generation: i64, synced: &str) -> PasswordSafeSecret {
        serde_json::from_value(json!({
            "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeSecret",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": generation},
            "spec": {"storeRef": {"name": "s"}, "data": [{"secretKey": "k", "alias": {"name": "a"}}]},
            "status": {"dataHmac": synced},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn only_new_resources_and_spec_changes_are_reconcile_worthy() {
        const A: &str = "0b9d5c1e-3f4a-4c2b-9e8d-7a6b5c4d3e2f";
        const B: &str = "not-a-uuid";
        let events = vec![
            watcher::Event::Init,
            watcher::Event::InitApply(pss("a", A, 1, "x")),
            watcher::Event::InitApply(pss("b", B, 1, "x")),
            watcher::Event::InitDone,
            watcher::Event::Apply(pss("a", A, 1, "status written")),
            watcher::Event::Apply(pss("a", A, 2, "status written")),
            watcher::Event::Delete(pss("b", B, 1, "x")),
            watcher::Event::Apply(pss("b", B, 1, "x")),
            // The watch lost its place and lists again: "a" is unchanged, and is not news.
            watcher::Event::Init,
            watcher::Event::InitApply(pss("a", A, 2, "y")),
            watcher::Event::InitDone,
            // "b" was not in that listing: it is new when it shows up again.
            watcher::Event::Apply(pss("b", B, 1, "x")),
        ];
        let forgotten = std::sync::Mutex::new(Vec::new());
        let forget = |pss: &PasswordSafeSecret| forgotten.lock().unwrap().push(pss.name_any());
        let cache = Arc::new(Cache::default());
        let worthy: Vec<String> =
            reconcile_worthy(futures::stream::iter(events.into_iter().map(Ok)), cache.clone(), forget)
                .map(|object| object.name)
                .collect()
                .await;
        assert_eq!(worthy, ["a", "b", "a", "b", "b"]);
        // Deleted, then missing from the new listing.
        assert_eq!(*forgotten.lock().unwrap(), ["b", "b"]);
        assert_eq!(cache.len(), 2);
        let event = watcher::Event::Apply(pss("a", A, 1, "x"));
        let refs: Vec<_> =
            reconcile_worthy(futures::stream::iter([Ok(event)]), Arc::new(Cache::default()), |_| {}).collect().await;
        assert_eq!(refs[0].namespace.as_deref(), Some("ns"));
        assert!(refs[0].extra.uid.is_none() && refs[0].extra.resource_version.is_none(), "name and namespace only");
    }

    #[tokio::test]
    async fn store_status_writes_are_not_news_but_spec_changes_and_deletions_are() {
        let store = |generation: i64, status: &str| -> PasswordSafeStore {
            serde_json::from_value(json!({
                "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
                "metadata": {"name": "s", "namespace": "ns", "uid": "u", "generation": generation},
                "spec": {"url": "https://ps.example.test/BeyondTrust/api/public/v3/",
                         "auth": {"apiKey": {"secretRef": {"name": "k", "key": "key"}, "runAs": "svc"}}},
                "status": {"lastCheckTime": status},
            }))
            .unwrap()
        };
        let events = vec![
            watcher::Event::InitApply(store(1, "2026-01-01T00:00:00Z")),
            watcher::Event::Apply(store(1, "2026-01-01T00:10:00Z")),
            watcher::Event::Apply(store(2, "2026-01-01T00:10:00Z")),
            watcher::Event::Delete(store(2, "2026-01-01T00:10:00Z")),
        ];
        let passed: Vec<Option<i64>> = spec_changes_and_deletions(futures::stream::iter(events.into_iter().map(Ok)))
            .map(|s| s.unwrap().meta().generation)
            .collect()
            .await;
        assert_eq!(passed, [Some(1), Some(2), Some(2)]);
    }
}
