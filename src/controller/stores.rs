//! One Password Safe client per store, shared by every PasswordSafeSecret that uses it.
//!
//! A store's client is keyed by the store's UID and generation; it is rebuilt when the store's spec changes
//! or when one of its credential Secrets changes (the Secret watch calls [`StoreRegistry::invalidate_secret`]).
//! A replaced client is signed out. Namespace rules are enforced here: a namespaced store reads Secrets only
//! from its own namespace, and a cluster store serves only the namespaces it allows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;

use super::changes::ChangeTracker;
use crate::api::{
    ClusterPasswordSafeStore, PasswordSafeSecret, PasswordSafeStore, RequestSettings, SecretKeyRef, SecretRef,
    StoreAuth, StoreKind, StoreRef, StoreSettings,
};
use crate::passwordsafe::{
    Auth, CallObserver, Client, ClientConfig, ClientIdentity, RequestOptions, SecretString, TlsConfig,
};

/// Identifies a store: kind, namespace (namespaced stores only) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreKey {
    pub kind: StoreKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl StoreKey {
    pub fn for_ref(store_ref: &StoreRef, namespace: &str) -> Self {
        match store_ref.kind {
            StoreKind::PasswordSafeStore => {
                Self { kind: store_ref.kind, namespace: Some(namespace.to_owned()), name: store_ref.name.clone() }
            }
            StoreKind::ClusterPasswordSafeStore => {
                Self { kind: store_ref.kind, namespace: None, name: store_ref.name.clone() }
            }
        }
    }
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{:?} {ns}/{}", self.kind, self.name),
            None => write!(f, "{:?} {}", self.kind, self.name),
        }
    }
}

/// Why a store cannot be used.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(StoreKey),
    #[error("{store} does not allow namespace {namespace} (see its spec.namespaces)")]
    NotAllowed { store: StoreKey, namespace: String },
    #[error("{store}: {message}")]
    Credentials { store: StoreKey, message: String },
    #[error("{store}: {message}")]
    Invalid { store: StoreKey, message: String },
    #[error("{store}: reading Kubernetes objects failed: {message}")]
    Kube { store: StoreKey, message: String },
}

impl StoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "StoreNotFound",
            Self::NotAllowed { .. } => "StoreNotAllowed",
            Self::Credentials { .. } => "StoreCredentialsMissing",
            Self::Invalid { .. } => "StoreInvalid",
            Self::Kube { .. } => "KubernetesError",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Kube { .. })
    }
}

/// What a reconcile borrows from a store.
pub struct StoreHandle {
    /// Shared with the memory of every resource synced through this store.
    pub key: Arc<StoreKey>,
    pub client: Client,
    pub request_defaults: RequestSettings,
    pub changes: Arc<ChangeTracker>,
    pub insecure: bool,
    uid: String,
    generation: Option<i64>,
    secrets: Vec<(String, String)>,
}

impl StoreHandle {
    /// Request options for one PasswordSafeSecret: its overrides on top of the store's defaults.
    pub fn request_options(&self, overrides: Option<&RequestSettings>) -> RequestOptions {
        layer_request_settings(&self.request_defaults, overrides)
    }
}

/// The client's defaults, then the store's `requestDefaults`, then the secret's `request`: the later wins
/// field by field.
pub fn layer_request_settings(store: &RequestSettings, secret: Option<&RequestSettings>) -> RequestOptions {
    let mut options = RequestOptions::default();
    for settings in [Some(store), secret].into_iter().flatten() {
        if let Some(d) = settings.duration_minutes {
            options.duration_minutes = d;
        }
        if let Some(r) = &settings.reason {
            options.reason = r.clone();
        }
        if settings.rotate_on_checkin.is_some() {
            options.rotate_on_checkin = settings.rotate_on_checkin;
        }
    }
    options
}

pub struct StoreRegistry {
    kube: kube::Client,
    stores: Store<PasswordSafeStore>,
    cluster_stores: Store<ClusterPasswordSafeStore>,
    observer: Arc<dyn CallObserver>,
    default_poll_interval: Duration,
    trigger: Option<mpsc::UnboundedSender<ObjectRef<PasswordSafeSecret>>>,
    entries: Mutex<HashMap<StoreKey, Arc<StoreHandle>>>,
    /// Held while a client is built, so concurrent first reconciles of a store build (and sign in) once.
    building: tokio::sync::Mutex<()>,
    /// Set once both store caches have their first listing.
    caches_listed: tokio::sync::OnceCell<()>,
}

impl StoreRegistry {
    pub fn new(
        kube: kube::Client,
        stores: Store<PasswordSafeStore>,
        cluster_stores: Store<ClusterPasswordSafeStore>,
        observer: Arc<dyn CallObserver>,
        default_poll_interval: Duration,
        trigger: Option<mpsc::UnboundedSender<ObjectRef<PasswordSafeSecret>>>,
    ) -> Self {
        Self {
            kube,
            stores,
            cluster_stores,
            observer,
            default_poll_interval,
            trigger,
            entries: Mutex::default(),
            building: tokio::sync::Mutex::new(()),
            caches_listed: tokio::sync::OnceCell::new(),
        }
    }

    /// The store a PasswordSafeSecret in `namespace` names, after checking it may use it.
    pub async fn for_secret(&self, store_ref: &StoreRef, namespace: &str) -> Result<Arc<StoreHandle>, StoreError> {
        let key = StoreKey::for_ref(store_ref, namespace);
        self.caches_ready().await;
        match key.kind {
            StoreKind::PasswordSafeStore => {
                let store = self.namespaced(&key)?;
                self.handle(&key, &store.spec.settings, store.uid(), store.meta().generation).await
            }
            StoreKind::ClusterPasswordSafeStore => {
                let store = self.cluster(&key)?;
                self.authorize(&key, &store, namespace).await?;
                self.handle(&key, &store.spec.settings, store.uid(), store.meta().generation).await
            }
        }
    }

    /// The client of a store object itself (the store controller checks sign-in with it).
    pub async fn for_store(&self, key: &StoreKey) -> Result<Arc<StoreHandle>, StoreError> {
        self.caches_ready().await;
        match key.kind {
            StoreKind::PasswordSafeStore => {
                let store = self.namespaced(key)?;
                self.handle(key, &store.spec.settings, store.uid(), store.meta().generation).await
            }
            StoreKind::ClusterPasswordSafeStore => {
                let store = self.cluster(key)?;
                self.handle(key, &store.spec.settings, store.uid(), store.meta().generation).await
            }
        }
    }

    /// Forgets the clients of stores whose credentials live in this Secret: the next use rebuilds them.
    /// Returns the stores affected.
    pub fn invalidate_secret(&self, namespace: &str, name: &str) -> Vec<StoreKey> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let stale: Vec<StoreKey> = entries
            .iter()
            .filter(|(_, h)| h.secrets.iter().any(|(ns, n)| ns == namespace && n == name))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            if let Some(old) = entries.remove(key) {
                retire(old);
            }
        }
        stale
    }

    /// The client already built for a store, if any (never builds one).
    pub fn existing(&self, key: &StoreKey) -> Option<Arc<StoreHandle>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Forgets a deleted store's client and signs its session out.
    pub fn forget(&self, key: &StoreKey) {
        if let Some(old) = self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key) {
            tracing::info!(store = %key, "store deleted; signing its session out");
            retire(old);
        }
    }

    /// Whether the store still exists (per the watch cache).
    pub fn exists(&self, key: &StoreKey) -> bool {
        match key.kind {
            StoreKind::PasswordSafeStore => self.namespaced(key).is_ok(),
            StoreKind::ClusterPasswordSafeStore => self.cluster(key).is_ok(),
        }
    }

    /// Every store whose credentials come from this Secret, by the stores' specs (used to find dependents).
    pub fn stores_using_secret(&self, namespace: &str, name: &str) -> Vec<StoreKey> {
        let mut keys = Vec::new();
        for store in self.stores.state() {
            let ns = store.namespace().unwrap_or_default();
            if secret_refs(&store.spec.settings, Some(&ns)).iter().any(|(sns, sname)| sns == namespace && sname == name)
            {
                keys.push(StoreKey { kind: StoreKind::PasswordSafeStore, namespace: Some(ns), name: store.name_any() });
            }
        }
        for store in self.cluster_stores.state() {
            if secret_refs(&store.spec.settings, None).iter().any(|(sns, sname)| sns == namespace && sname == name) {
                keys.push(StoreKey {
                    kind: StoreKind::ClusterPasswordSafeStore,
                    namespace: None,
                    name: store.name_any(),
                });
            }
        }
        keys
    }

    /// Signs every store's session out (shutdown).
    /// Closes every store's client at once (shutdown): syncs still running get up to `wait` to check their
    /// requests in; then each session is signed out. Returns how many sessions were signed out.
    pub async fn sign_out_all(&self, wait: Duration) -> usize {
        let handles: Vec<Arc<StoreHandle>> =
            self.entries.lock().unwrap_or_else(PoisonError::into_inner).drain().map(|(_, h)| h).collect();
        let closed = handles.iter().map(|handle| {
            handle.changes.stop();
            handle.client.close(wait)
        });
        futures::future::join_all(closed).await.into_iter().filter(|signed_out| *signed_out).count()
    }

    /// Store lookups are answered from watch caches; before their first listing completes an absent store
    /// would look deleted, so wait for it (instant afterwards).
    ///
    /// Waits for the first listing of both store caches. Only one task at a time waits on the caches
    /// themselves: kube-runtime's `Store::wait_until_ready` keeps one waker, so of two concurrent waiters
    /// (a PasswordSafeSecret reconcile and a store reconcile at start-up) one was never woken and its object
    /// never synced. The `OnceCell` queues the others and wakes them all.
    async fn caches_ready(&self) {
        self.caches_listed
            .get_or_init(|| async {
                let _ = self.stores.wait_until_ready().await;
                let _ = self.cluster_stores.wait_until_ready().await;
            })
            .await;
    }

    fn namespaced(&self, key: &StoreKey) -> Result<Arc<PasswordSafeStore>, StoreError> {
        let object_ref = ObjectRef::new(&key.name).within(key.namespace.as_deref().unwrap_or_default());
        self.stores.get(&object_ref).ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    fn cluster(&self, key: &StoreKey) -> Result<Arc<ClusterPasswordSafeStore>, StoreError> {
        self.cluster_stores.get(&ObjectRef::new(&key.name)).ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    async fn authorize(
        &self,
        key: &StoreKey,
        store: &ClusterPasswordSafeStore,
        namespace: &str,
    ) -> Result<(), StoreError> {
        let allowed = &store.spec.namespaces;
        if allowed.names.iter().any(|n| n == namespace) {
            return Ok(());
        }
        if let Some(selector) = &allowed.selector {
            let ns = Api::<Namespace>::all(self.kube.clone())
                .get_opt(namespace)
                .await
                .map_err(|e| StoreError::Kube { store: key.clone(), message: e.to_string() })?;
            let labels = ns.map(|n| n.labels().clone()).unwrap_or_default();
            if selector_matches(selector, &labels) {
                return Ok(());
            }
        }
        Err(StoreError::NotAllowed { store: key.clone(), namespace: namespace.to_owned() })
    }

    async fn handle(
        &self,
        key: &StoreKey,
        settings: &StoreSettings,
        uid: Option<String>,
        generation: Option<i64>,
    ) -> Result<Arc<StoreHandle>, StoreError> {
        let uid = uid.unwrap_or_default();
        let current = |entries: &HashMap<StoreKey, Arc<StoreHandle>>| {
            entries.get(key).filter(|h| h.uid == uid && h.generation == generation).cloned()
        };
        if let Some(existing) = current(&self.entries.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(existing);
        }
        let _building = self.building.lock().await;
        if let Some(built_meanwhile) = current(&self.entries.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(built_meanwhile);
        }
        let handle = Arc::new(self.build(key, settings, uid, generation).await?);
        let replaced = self.entries.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), handle.clone());
        if let Some(old) = replaced {
            retire(old);
        }
        Ok(handle)
    }

    async fn build(
        &self,
        key: &StoreKey,
        settings: &StoreSettings,
        uid: String,
        generation: Option<i64>,
    ) -> Result<StoreHandle, StoreError> {
        let config = client_config(&self.kube, key, settings).await?;
        let invalid = |message: String| StoreError::Invalid { store: key.clone(), message };
        let client = Client::with_observer(config, self.observer.clone()).map_err(|e| invalid(e.to_string()))?;
        let poll = settings
            .change_detection_interval
            .as_deref()
            .map(|t| crate::sync::duration::parse_at_least(t, Duration::from_secs(5)))
            .transpose()
            .map_err(|e| invalid(format!("changeDetectionInterval: {e}")))?
            .unwrap_or(self.default_poll_interval);
        tracing::info!(store = %key, "built Password Safe client for store");
        let own_ns = key.namespace.as_deref();
        Ok(StoreHandle {
            key: Arc::new(key.clone()),
            changes: ChangeTracker::new(client.clone(), poll, self.trigger.clone()),
            client,
            request_defaults: settings.request_defaults.clone().unwrap_or_default(),
            insecure: settings.tls.as_ref().is_some_and(|t| t.insecure_skip_verify),
            uid,
            generation,
            secrets: secret_refs(settings, own_ns),
        })
    }
}

/// The client settings a store describes, with its credentials read from their Secrets (also what
/// `passwordsafe-operator check --store` signs in with).
pub async fn client_config(
    kube: &kube::Client,
    key: &StoreKey,
    settings: &StoreSettings,
) -> Result<ClientConfig, StoreError> {
    let invalid = |message: String| StoreError::Invalid { store: key.clone(), message };
    let own_ns = key.namespace.as_deref();
    let auth = match &settings.auth {
        StoreAuth { api_key: Some(a), oauth: None } => Auth::ApiKey {
            key: SecretString::new(secret_value(kube, key, &a.secret_ref, own_ns).await?),
            run_as: a.run_as.clone(),
            password: match &a.password_secret_ref {
                Some(r) => Some(SecretString::new(secret_value(kube, key, r, own_ns).await?)),
                None => None,
            },
        },
        StoreAuth { api_key: None, oauth: Some(o) } => Auth::OAuth {
            client_id: secret_value(kube, key, &o.client_id_secret_ref, own_ns).await?.trim().to_owned(),
            client_secret: SecretString::new(secret_value(kube, key, &o.client_secret_secret_ref, own_ns).await?),
            run_as: o.run_as.clone(),
        },
        _ => return Err(invalid("set exactly one of auth.apiKey and auth.oauth".into())),
    };
    let mut config = ClientConfig::new(&settings.url, auth).map_err(|e| invalid(e.to_string()))?;
    let tls = settings.tls.clone().unwrap_or_default();
    let mut ca = tls.ca_bundle.clone();
    if let Some(r) = &tls.ca_secret_ref {
        let pem = secret_value(kube, key, r, own_ns).await?;
        ca = Some(ca.map_or(pem.clone(), |inline| format!("{inline}\n{pem}")));
    }
    let identity = match &tls.client_certificate_secret_ref {
        Some(r) => Some(client_identity(kube, key, r, own_ns).await?),
        None => None,
    };
    config.tls =
        TlsConfig { system_roots: true, ca_bundle_pem: ca, identity, insecure_skip_verify: tls.insecure_skip_verify };
    if let Some(n) = settings.max_concurrency {
        config.max_concurrency = n as usize;
    }
    Ok(config)
}

async fn secret_value(
    kube: &kube::Client,
    store: &StoreKey,
    r: &SecretKeyRef,
    own_ns: Option<&str>,
) -> Result<String, StoreError> {
    let namespace = ref_namespace(store, r.namespace.as_deref(), own_ns)?;
    let secret = read_secret(kube, store, &namespace, &r.name).await?;
    secret_text(store, &secret, &namespace, &r.name, &r.key)
}

async fn client_identity(
    kube: &kube::Client,
    store: &StoreKey,
    r: &SecretRef,
    own_ns: Option<&str>,
) -> Result<ClientIdentity, StoreError> {
    let namespace = ref_namespace(store, r.namespace.as_deref(), own_ns)?;
    let secret = read_secret(kube, store, &namespace, &r.name).await?;
    Ok(ClientIdentity {
        cert_pem: secret_text(store, &secret, &namespace, &r.name, "tls.crt")?,
        key_pem: SecretString::new(secret_text(store, &secret, &namespace, &r.name, "tls.key")?),
    })
}

async fn read_secret(kube: &kube::Client, store: &StoreKey, namespace: &str, name: &str) -> Result<Secret, StoreError> {
    Api::<Secret>::namespaced(kube.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| StoreError::Kube { store: store.clone(), message: e.to_string() })?
        .ok_or_else(|| StoreError::Credentials {
            store: store.clone(),
            message: format!("Secret {namespace}/{name} not found"),
        })
}

/// One key of a Secret as text; a missing key or non-UTF-8 bytes are named (never shown).
fn secret_text(
    store: &StoreKey,
    secret: &Secret,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, StoreError> {
    let missing = |what: &str| StoreError::Credentials {
        store: store.clone(),
        message: format!("Secret {namespace}/{name} key {key:?} {what}"),
    };
    let bytes = secret.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| missing("is missing"))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| missing("is not UTF-8 text"))
}

/// How long a replaced client waits for the syncs still using it: longer than any one sync's calls take.
const RETIRE_WAIT: Duration = Duration::from_secs(300);

/// A replaced client: stop its change tracker and close it in the background.
fn retire(old: Arc<StoreHandle>) {
    old.changes.stop();
    // Syncs still using the old client finish (and check in) before it signs out.
    tokio::spawn(async move {
        old.client.close(RETIRE_WAIT).await;
    });
}

/// The namespace of a Secret reference: a namespaced store reads only its own namespace; a cluster store
/// must say which.
fn ref_namespace(store: &StoreKey, given: Option<&str>, own_ns: Option<&str>) -> Result<String, StoreError> {
    match (own_ns, given) {
        (Some(own), None) => Ok(own.to_owned()),
        (Some(own), Some(ns)) if ns == own => Ok(own.to_owned()),
        (Some(own), Some(ns)) => Err(StoreError::Invalid {
            store: store.clone(),
            message: format!("a PasswordSafeStore may read Secrets only from its own namespace {own}, not {ns}"),
        }),
        (None, Some(ns)) => Ok(ns.to_owned()),
        (None, None) => Err(StoreError::Invalid {
            store: store.clone(),
            message: "Secret references of a ClusterPasswordSafeStore need a namespace".into(),
        }),
    }
}

/// Every (namespace, name) of Secret a store reads.
fn secret_refs(settings: &StoreSettings, own_ns: Option<&str>) -> Vec<(String, String)> {
    let mut refs: Vec<(Option<String>, String)> = Vec::new();
    if let Some(a) = &settings.auth.api_key {
        refs.push((a.secret_ref.namespace.clone(), a.secret_ref.name.clone()));
        if let Some(p) = &a.password_secret_ref {
            refs.push((p.namespace.clone(), p.name.clone()));
        }
    }
    if let Some(o) = &settings.auth.oauth {
        refs.push((o.client_id_secret_ref.namespace.clone(), o.client_id_secret_ref.name.clone()));
        refs.push((o.client_secret_secret_ref.namespace.clone(), o.client_secret_secret_ref.name.clone()));
    }
    if let Some(tls) = &settings.tls {
        if let Some(r) = &tls.ca_secret_ref {
            refs.push((r.namespace.clone(), r.name.clone()));
        }
        if let Some(r) = &tls.client_certificate_secret_ref {
            refs.push((r.namespace.clone(), r.name.clone()));
        }
    }
    refs.into_iter().filter_map(|(ns, name)| ns.or_else(|| own_ns.map(str::to_owned)).map(|ns| (ns, name))).collect()
}

/// `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist) of a LabelSelector.
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_match = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels: BTreeMap<String, String> = [("team".to_owned(), "db".to_owned())].into();
        let by_label = LabelSelector { match_labels: Some(labels.clone()), match_expressions: None };
        assert!(selector_matches(&by_label, &labels));
        assert!(!selector_matches(&by_label, &BTreeMap::new()));
        let req = |op: &str, values: Option<Vec<String>>| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement { key: "team".into(), operator: op.into(), values }]),
        };
        assert!(selector_matches(&req("In", Some(vec!["db".into(), "web".into()])), &labels));
        assert!(!selector_matches(&req("NotIn", Some(vec!["db".into()])), &labels));
        assert!(selector_matches(&req("Exists", None), &labels));
        assert!(!selector_matches(&req("DoesNotExist", None), &labels));
        assert!(!selector_matches(&req("Bogus", None), &labels));
    }

    #[test]
    fn a_namespaced_store_reads_only_its_own_namespace() {
        let key = StoreKey { kind: StoreKind::PasswordSafeStore, namespace: Some("a".into()), name: "s".into() };
        assert_eq!(ref_namespace(&key, None, Some("a")).unwrap(), "a");
        assert_eq!(ref_namespace(&key, Some("a"), Some("a")).unwrap(), "a");
        let err = ref_namespace(&key, Some("b"), Some("a")).unwrap_err();
        assert_eq!(err.reason(), "StoreInvalid");
        let cluster = StoreKey { kind: StoreKind::ClusterPasswordSafeStore, namespace: None, name: "s".into() };
        assert!(ref_namespace(&cluster, None, None).is_err());
        assert_eq!(ref_namespace(&cluster, Some("ops"), None).unwrap(), "ops");
    }

    #[test]
    fn request_options_layer_secret_overrides_on_store_defaults() {
        let store =
            RequestSettings { duration_minutes: Some(30), reason: Some("store".into()), rotate_on_checkin: Some(true) };
        let secret =
            RequestSettings { duration_minutes: None, reason: Some("secret".into()), rotate_on_checkin: Some(false) };
        let merged = layer_request_settings(&store, Some(&secret));
        assert_eq!(
            (merged.duration_minutes, merged.reason.as_str(), merged.rotate_on_checkin),
            (30, "secret", Some(false))
        );
        assert_eq!(layer_request_settings(&RequestSettings::default(), None), RequestOptions::default());
    }
}
