//! `PasswordSafeSecret`: which Password Safe credentials go into which Kubernetes Secret, and how.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::store::RequestSettings;

/// Which store kind `storeRef` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StoreKind {
    #[default]
    PasswordSafeStore,
    ClusterPasswordSafeStore,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    /// `PasswordSafeStore` (same namespace, the default) or `ClusterPasswordSafeStore`.
    #[serde(default)]
    pub kind: StoreKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What to take from a managed account (or the account behind an alias).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AccountField {
    /// The password (`GET Credentials?type=password`).
    #[default]
    Password,
    /// The account name.
    Username,
    /// The DSS (SSH) private key, as stored (encrypted keys stay encrypted).
    Dsskey,
    /// The DSS key's passphrase (encrypted keys only).
    Passphrase,
}

/// A managed account, by managed system name and account name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedAccountSource {
    /// Managed system name (for a domain account, the domain's managed system).
    #[schemars(length(min = 1, max = 256))]
    pub system: String,
    /// Account name; domain accounts as `DOMAIN\name` or UPN.
    #[schemars(length(min = 1, max = 256))]
    pub account: String,
    #[serde(default)]
    pub field: AccountField,
}

/// A managed account alias, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AliasSource {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default)]
    pub field: AccountField,
}

/// What to take from a Secrets Safe secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretsSafeField {
    Username,
    Password,
    Text,
    File,
    Notes,
}

/// A Secrets Safe secret, by folder path and title.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSafeSource {
    /// Folder path, e.g. `prod/db` (up to 7 levels).
    #[schemars(length(min = 1, max = 1800))]
    pub folder_path: String,
    /// Secret title.
    #[schemars(length(min = 1, max = 256))]
    pub title: String,
    /// Default: the secret's own content (password of a credential, text of a text secret, bytes of a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<SecretsSafeField>,
    /// Separator used in `folderPath` (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub separator: Option<String>,
}

/// One key of the target Secret and where its value comes from: exactly one source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.managedAccount) ? 1 : 0) + (has(self.alias) ? 1 : 0) + (has(self.secretsSafe) ? 1 : 0) == 1").message("set exactly one of managedAccount, alias and secretsSafe"))]
pub struct DataItem {
    /// Key in the target Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    #[x_kube(validation = Rule::new("self != '.' && self != '..'").message("a Secret key cannot be . or .."))]
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_account: Option<ManagedAccountSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_safe: Option<SecretsSafeSource>,
}

/// Every secret of one Secrets Safe folder (not its sub-folders). Keys are derived from titles: every
/// character outside `[-._a-zA-Z0-9]` becomes `_` (an empty title becomes `_`; `.` and `..` get a `_` in
/// front), then `keyPrefix` is prepended and the key is cut to 244 bytes. A credential secret yields `<key>`
/// (password) and `<key>.username`; a text secret `<key>`; a file secret `<key>` (exact bytes). Two titles
/// that give the same key are an error naming both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSafeFolderSource {
    #[schemars(length(min = 1, max = 1800))]
    pub folder_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub separator: Option<String>,
    /// Prepended to every derived key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), regex(pattern = r"^[-._a-zA-Z0-9]*$"))]
    pub key_prefix: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFromItem {
    pub secrets_safe_folder: SecretsSafeFolderSource,
}

/// Who owns the target Secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CreationPolicy {
    /// The operator creates and fully owns the Secret; it carries an ownerReference to this resource.
    #[default]
    Owner,
    /// The Secret exists already (created by someone else); the operator manages only its own keys in it.
    Merge,
    /// Like Owner, but without an ownerReference: Kubernetes' garbage collector leaves the Secret alone.
    Orphan,
}

/// What happens to the target Secret when this resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Secret (for `Merge`: remove only the operator's keys).
    #[default]
    Delete,
    /// Leave the Secret (and its data) in place.
    Retain,
}

/// Renders keys of the target Secret from the fetched values (minijinja templates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Key → template. Templates see every fetched value as `data["<secretKey>"]` (and as a plain variable
    /// when the key is an identifier), e.g. `postgres://{{ username }}:{{ password }}@db/app`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Also keep the fetched keys in the Secret (default: only the rendered keys).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_source_keys: bool,
}

/// The Secret the operator writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTarget {
    /// Secret name (default: this resource's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: Option<String>,
    /// Secret type, e.g. `Opaque` (default), `kubernetes.io/basic-auth`, `kubernetes.io/ssh-auth`,
    /// `kubernetes.io/tls`, `kubernetes.io/dockerconfigjson`. The keys such a type requires must be present.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A workload in the same namespace restarted (pod-template annotation) when the synced data changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRestartTarget {
    pub kind: WorkloadKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Desired state: Password Safe credentials to sync into one Kubernetes Secret.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "passwordsafe.dev",
    version = "v1alpha1",
    kind = "PasswordSafeSecret",
    namespaced,
    status = "Box<PasswordSafeSecretStatus>",
    shortname = "pss",
    category = "passwordsafe",
    doc = "Keeps a Kubernetes Secret in sync with credentials held in BeyondTrust Password Safe.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Store", type_ = "string", json_path = ".spec.storeRef.name"),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    // A string, not a date: kubectl renders future dates as "<invalid>".
    printcolumn(name = "Next Sync", type_ = "string", json_path = ".status.nextSyncTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Secret", type_ = "string", priority = 1, json_path = ".status.secretName")
)]
#[x_kube(validation = Rule::new("size(self.data) + size(self.dataFrom) > 0").message("set at least one of data and dataFrom"))]
#[serde(rename_all = "camelCase")]
pub struct PasswordSafeSecretSpec {
    pub store_ref: StoreRef,
    /// Keys of the target Secret, each from one source.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["secretKey"]))]
    pub data: Vec<DataItem>,
    /// Whole Secrets Safe folders.
    #[serde(default)]
    pub data_from: Vec<DataFromItem>,
    #[serde(default)]
    pub target: SecretTarget,
    /// Longest time between two checks of the sources (default 1h). Rotations Password Safe announces
    /// (NextChangeDate) are followed sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub refresh_interval: Option<String>,
    /// Overrides of the store's request defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["kind", "name"]))]
    pub rollout_restart_targets: Vec<RolloutRestartTarget>,
}

/// Where one key's value came from, and what Password Safe said about its rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The Secret keys this source filled, comma-separated.
    pub key: String,
    /// `managedAccount:<system>/<account>`, `alias:<name>`, `secretsSafe:<folder>/<title>` or
    /// `secretsSafeFolder:<folder>`.
    pub source: String,
    /// Password Safe's LastChangeDate of the account when it was last read (managed accounts and aliases).
    /// Microsecond precision, so a rotation is told apart even within the same second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_date: Option<MicroTime>,
    /// Password Safe's NextChangeDate: a rotation it has scheduled; the operator looks again shortly after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change_date: Option<MicroTime>,
    /// Secrets Safe ModifiedOn (for a folder, its newest secret's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<MicroTime>,
}

/// Observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSafeSecretStatus {
    /// `Ready` (the Secret holds the current data) and `RotationLoop` (a warning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the Secret written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Last time the Secret was confirmed up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the operator will look again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceStatus>,
    /// HMAC-SHA256 (keyed by an operator-held key) of the synced data: tells a changed or tampered Secret
    /// without revealing anything about the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hmac: Option<String>,
}
