//! `PasswordSafeStore` (namespaced) and `ClusterPasswordSafeStore`: where Password Safe is and how to sign in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A key of a Kubernetes Secret. For a namespaced store the Secret is always in the store's namespace;
/// for a cluster store `namespace` is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Namespace of the Secret: required for a ClusterPasswordSafeStore, must be empty or the store's own
    /// namespace for a PasswordSafeStore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A whole Secret (a `kubernetes.io/tls` Secret for a client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Required for a ClusterPasswordSafeStore (see `SecretKeyRef.namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// API key sign-in: `Authorization: PS-Auth key=...; runas=...; pwd=[...];`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// The API key registered in BeyondInsight.
    pub secret_ref: SecretKeyRef,
    /// The BeyondInsight user the API key acts as.
    #[schemars(length(min = 1, max = 256))]
    pub run_as: String,
    /// The RunAs user's password, when the API registration requires "User Password".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// OAuth client credentials sign-in (an API Access Policy registration with an application user).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAuth {
    pub client_id_secret_ref: SecretKeyRef,
    pub client_secret_secret_ref: SecretKeyRef,
    /// Optional user to impersonate (sent as the `RunAs` header); must share a group with the application user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
}

/// How the store signs in: exactly one of `apiKey` and `oauth`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.apiKey) != has(self.oauth)").message("set exactly one of apiKey and oauth"))]
pub struct StoreAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthAuth>,
}

/// TLS to Password Safe. Certificates are verified against the system roots plus `caBundle`/`caSecretRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreTls {
    /// PEM certificates of extra trusted CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// A Secret key holding PEM certificates of extra trusted CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) presented as the client certificate (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<SecretRef>,
    /// Accept any server certificate. Insecure: anyone on the network path can read credentials. The operator
    /// logs a warning and sets a warning condition on the store while this is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// Parameters of the release requests opened in Password Safe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSettings {
    /// `DurationMinutes` of requests (default 10). Capped by each account's MaximumReleaseDuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 525600))]
    pub duration_minutes: Option<u32>,
    /// `Reason` recorded in Password Safe's audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub reason: Option<String>,
    /// `RotateOnCheckin`. Set `false` for accounts with "change password after any release" so our check-in
    /// does not rotate the password we just synced (needs the access policy's API rotation override).
    /// Unset: the access policy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_on_checkin: Option<bool>,
}

/// Connection and sign-in settings shared by both store kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreSettings {
    /// API base URL, e.g. `https://ps.example.com/BeyondTrust/api/public/v3`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    pub auth: StoreAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<StoreTls>,
    /// Defaults for every PasswordSafeSecret using this store; each secret may override them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_defaults: Option<RequestSettings>,
    /// Password Safe calls in flight at once through this store (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_concurrency: Option<u32>,
    /// How often the store re-reads the managed-account listing to detect rotations (default 60s). One
    /// listing serves every PasswordSafeSecret of the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub change_detection_interval: Option<String>,
}

/// A namespaced Password Safe connection, usable by PasswordSafeSecrets of its own namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "passwordsafe.dev",
    version = "v1alpha1",
    kind = "PasswordSafeStore",
    namespaced,
    status = "StoreStatus",
    shortname = "psstore",
    category = "passwordsafe",
    doc = "A connection to BeyondTrust Password Safe, usable by PasswordSafeSecrets in the same namespace.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSafeStoreSpec {
    #[serde(flatten)]
    pub settings: StoreSettings,
}

/// Which namespaces may use a cluster store. An empty value allows none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceConditions {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,
    /// Namespaces allowed by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// CEL: a cluster store has no namespace of its own, so each Secret reference must name one.
pub const CLUSTER_REFS_NAMESPACED: &str = "(!has(self.auth.apiKey) || (has(self.auth.apiKey.secretRef.namespace) && (!has(self.auth.apiKey.passwordSecretRef) || has(self.auth.apiKey.passwordSecretRef.namespace)))) && (!has(self.auth.oauth) || (has(self.auth.oauth.clientIdSecretRef.namespace) && has(self.auth.oauth.clientSecretSecretRef.namespace))) && (!has(self.tls) || ((!has(self.tls.caSecretRef) || has(self.tls.caSecretRef.namespace)) && (!has(self.tls.clientCertificateSecretRef) || has(self.tls.clientCertificateSecretRef.namespace))))";

/// A cluster-wide Password Safe connection, usable from the namespaces it lists.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "passwordsafe.dev",
    version = "v1alpha1",
    kind = "ClusterPasswordSafeStore",
    status = "StoreStatus",
    shortname = "cpsstore",
    category = "passwordsafe",
    doc = "A connection to BeyondTrust Password Safe, usable by PasswordSafeSecrets in the namespaces it allows.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(CLUSTER_REFS_NAMESPACED).message("every Secret reference of a ClusterPasswordSafeStore needs a namespace"))]
pub struct ClusterPasswordSafeStoreSpec {
    #[serde(flatten)]
    pub settings: StoreSettings,
    /// Namespaces whose PasswordSafeSecrets may use this store (by name and/or label). Others are refused.
    pub namespaces: NamespaceConditions,
}

/// Observed state of a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// `Ready`: whether sign-in with the current settings works.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When sign-in was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
}
