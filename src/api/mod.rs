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

/// Every CRD, as installed: generated from the types, then adjusted to what the API server understands.
pub fn crds() -> Vec<serde_json::Value> {
    [PasswordSafeSecret::crd(), PasswordSafeStore::crd(), ClusterPasswordSafeStore::crd()]
        .iter()
        .map(|crd| {
            let mut value = serde_json::to_value(crd).expect("CRDs serialize");
            kubernetes_compatible(&mut value);
            value
        })
        .collect()
}

/// Every CRD, as YAML documents separated by `---` (what `passwordsafe-operator crd` prints).
pub fn crds_yaml() -> String {
    crds().iter().map(|crd| serde_yaml::to_string(crd).expect("CRDs serialize")).collect::<Vec<_>>().join("---\n")
}

/// Two things schemars emits that Kubernetes does not understand: `null` among the values of an optional
/// enum (the field is already `nullable`, and the API server would list "null" as a supported value), and
/// unsigned integer formats (Kubernetes knows `int32` and `int64`; the ranges on the fields still apply).
fn kubernetes_compatible(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if let Some(format) = map.get("format").and_then(|f| f.as_str()) {
                match format {
                    "uint8" | "uint16" | "int8" | "int16" => drop(map.insert("format".into(), "int32".into())),
                    "uint32" => drop(map.insert("format".into(), "int64".into())),
                    "uint64" | "uint" => drop(map.remove("format")),
                    _ => {}
                }
            }
            map.values_mut().for_each(kubernetes_compatible);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(kubernetes_compatible),
        _ => {}
    }
}
