//! The custom resources (group `passwordsafe.dev`, version `v1alpha1`) and the names the operator stamps on
//! what it manages. Types only: no behaviour beyond what the API server needs to validate them.

// kube's `printcolumn(...)` is repeated once per column by design; clippy reads the repeated `type_ = ...`
// keys as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod secret;
mod store;

pub use secret::*;
pub use store::*;

use kube::CustomResourceExt;

/// API group of every CRD.
pub const GROUP: &str = "passwordsafe.dev";

/// Every CRD, as YAML documents separated by `---` (what `passwordsafe-operator crd` prints).
pub fn crds_yaml() -> String {
    [PasswordSafeSecret::crd(), PasswordSafeStore::crd(), ClusterPasswordSafeStore::crd()]
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("CRDs serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}
