//! The Secret the operator applies for a PasswordSafeSecret, and when it may take over an existing one.
//!
//! Every Secret we write carries the managed-by label, the owner's UID as a label (the controller finds its
//! Secrets by it, and it is how we recognise a Secret as ours) and an annotation naming the owner. What
//! differs by `creationPolicy`:
//! - `Owner`: a controller ownerReference, so Kubernetes deletes the Secret with its owner; `type` is set.
//! - `Orphan`: the same without the ownerReference.
//! - `Merge`: the Secret belongs to someone else. No ownerReference and no `type` (it is immutable and
//!   the existing Secret's own); server-side apply then owns only the keys and labels we send.
//!
//! Errors name keys, types and sizes, never a value.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::SecretData;
use super::keys::is_valid_key;
use crate::api::{CreationPolicy, PasswordSafeSecret, SecretTarget};
use crate::passwordsafe::SecretBytes;

/// Server-side apply field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "passwordsafe-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "passwordsafe-operator";
/// UID of the PasswordSafeSecret that writes the Secret: marks the Secret as ours and selects it in watches.
pub const OWNER_UID_LABEL: &str = "passwordsafe.dev/owner-uid";
/// On a Secret we only merge keys into (creationPolicy Merge): the UID of the PasswordSafeSecret merging. A
/// different label from [`OWNER_UID_LABEL`] on purpose: a merged Secret is never "ours" to own or delete, so
/// switching the policy from Merge to Owner is refused instead of putting an ownerReference (and garbage
/// collection) on someone else's Secret.
pub const MERGED_UID_LABEL: &str = "passwordsafe.dev/merged-by-uid";
/// `<namespace>/<name>` of the PasswordSafeSecret that writes the Secret, for people (UIDs are unreadable).
pub const OWNER_ANNOTATION: &str = "passwordsafe.dev/owner";
/// Kubernetes' limit on the total size of a Secret's values (`MaxSecretSize`).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// The Secret type used when the target names none.
pub const DEFAULT_TYPE: &str = "Opaque";

/// The PasswordSafeSecret a Secret is built for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    /// The value of [`OWNER_ANNOTATION`]: `<namespace>/<name>`.
    pub fn annotation_value(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: <PasswordSafeSecret as kube::Resource>::api_version(&()).into_owned(),
            kind: <PasswordSafeSecret as kube::Resource>::kind(&()).into_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// Why a desired Secret cannot be built. Messages name keys, types and sizes, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("Secret key {key:?} is not valid: keys are 1-253 characters of [-._a-zA-Z0-9], not \".\" or \"..\"")]
    InvalidKey { key: String },
    #[error("Secret type {secret_type:?} requires {requirement}")]
    MissingKey { secret_type: String, requirement: String },
    #[error("key {key:?} of a Secret of type {secret_type:?} is not valid JSON (line {line}, column {column})")]
    InvalidJson { secret_type: String, key: String, line: usize, column: usize },
    #[error("Secret type {secret_type:?} cannot be written by the operator: the API server manages these Secrets")]
    ManagedType { secret_type: String },
    #[error("Secret data is {size} bytes, more than Kubernetes' limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Who, according to an existing Secret's annotation, wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviousOwner {
    /// No owner annotation of ours: a Secret someone else created.
    Unknown,
    /// Another PasswordSafeSecret (`<namespace>/<name>`).
    Other(String),
    /// A PasswordSafeSecret of the same name that has since been deleted and created again (new UID), e.g.
    /// after `creationPolicy: Orphan` left the Secret behind.
    EarlierWithSameName,
}

/// An existing Secret that this PasswordSafeSecret may not overwrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakeoverError {
    pub namespace: String,
    pub name: String,
    pub previous_owner: PreviousOwner,
}

impl fmt::Display for TakeoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret {}/{} exists and is not managed by this PasswordSafeSecret", self.namespace, self.name)?;
        match &self.previous_owner {
            PreviousOwner::Unknown => {}
            PreviousOwner::Other(other) => write!(f, " (it belongs to PasswordSafeSecret {other})")?,
            PreviousOwner::EarlierWithSameName => write!(
                f,
                " (it was written by an earlier PasswordSafeSecret of the same name; delete the Secret to let \
                 this one recreate it)"
            )?,
        }
        f.write_str("; creationPolicy Merge manages keys inside an existing Secret instead")
    }
}

impl std::error::Error for TakeoverError {}

/// The target Secret's name: `target.name`, else the PasswordSafeSecret's own name.
pub fn target_name(target: &SecretTarget, owner_name: &str) -> String {
    target.name.clone().unwrap_or_else(|| owner_name.to_owned())
}

/// The Secret to server-side apply (under [`FIELD_MANAGER`]) for `target` with `data`.
pub fn desired_secret(target: &SecretTarget, owner: &Owner, data: SecretData) -> Result<Secret, BuildError> {
    check_keys(&data)?;
    check_size(&data)?;
    let (secret_type, owner_references) = match target.creation_policy {
        CreationPolicy::Owner => (Some(secret_type(target)), Some(vec![owner.owner_reference()])),
        CreationPolicy::Orphan => (Some(secret_type(target)), None),
        // The existing Secret keeps its type (immutable), and with it the keys that type requires.
        CreationPolicy::Merge => (None, None),
    };
    if let Some(secret_type) = &secret_type {
        check_type(secret_type, &data)?;
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(target_name(target, &owner.name)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels(target, owner)),
            annotations: Some(annotations(target, owner)),
            owner_references,
            ..ObjectMeta::default()
        },
        data: Some(data.iter().map(|(key, value)| (key.clone(), ByteString(value.expose().to_vec()))).collect()),
        type_: secret_type,
        ..Secret::default()
    })
}

fn secret_type(target: &SecretTarget) -> String {
    // The API server defaults an empty type to Opaque as well.
    target.type_.as_deref().filter(|t| !t.is_empty()).unwrap_or(DEFAULT_TYPE).to_owned()
}

/// The target's labels with ours on top: a target label cannot disown the Secret.
fn labels(target: &SecretTarget, owner: &Owner) -> BTreeMap<String, String> {
    let mut labels = target.labels.clone();
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned());
    let uid_label = if target.creation_policy == CreationPolicy::Merge { MERGED_UID_LABEL } else { OWNER_UID_LABEL };
    labels.insert(uid_label.to_owned(), owner.uid.clone());
    labels
}

fn annotations(target: &SecretTarget, owner: &Owner) -> BTreeMap<String, String> {
    let mut annotations = target.annotations.clone();
    annotations.insert(OWNER_ANNOTATION.to_owned(), owner.annotation_value());
    annotations
}

fn check_keys(data: &SecretData) -> Result<(), BuildError> {
    match data.keys().find(|key| !is_valid_key(key)) {
        Some(key) => Err(BuildError::InvalidKey { key: key.clone() }),
        None => Ok(()),
    }
}

/// Counted as the API server counts it: the values' bytes, keys not included.
fn check_size(data: &SecretData) -> Result<(), BuildError> {
    let size: usize = data.values().map(SecretBytes::len).sum();
    if size > MAX_SECRET_SIZE {
        return Err(BuildError::TooLarge { size, limit: MAX_SECRET_SIZE });
    }
    Ok(())
}

/// The keys each built-in type requires, as the API server checks them, so the error comes from us with
/// the key's name rather than as a rejected apply.
fn check_type(secret_type: &str, data: &SecretData) -> Result<(), BuildError> {
    match secret_type {
        "kubernetes.io/service-account-token" => Err(BuildError::ManagedType { secret_type: secret_type.to_owned() }),
        "kubernetes.io/basic-auth" => require_any(secret_type, data, &["username", "password"]),
        "kubernetes.io/ssh-auth" => require_all(secret_type, data, &["ssh-privatekey"]),
        "kubernetes.io/tls" => require_all(secret_type, data, &["tls.crt", "tls.key"]),
        "kubernetes.io/dockerconfigjson" => require_json(secret_type, data, ".dockerconfigjson"),
        "kubernetes.io/dockercfg" => require_json(secret_type, data, ".dockercfg"),
        _ => Ok(()),
    }
}

fn require_all(secret_type: &str, data: &SecretData, keys: &[&str]) -> Result<(), BuildError> {
    match keys.iter().find(|key| !data.contains_key(**key)) {
        Some(key) => Err(missing(secret_type, format!("key {key:?}"))),
        None => Ok(()),
    }
}

fn require_any(secret_type: &str, data: &SecretData, keys: &[&str]) -> Result<(), BuildError> {
    if keys.iter().any(|key| data.contains_key(*key)) {
        return Ok(());
    }
    let names: Vec<String> = keys.iter().map(|key| format!("{key:?}")).collect();
    Err(missing(secret_type, format!("key {}", names.join(" or "))))
}

/// The key must be present and hold JSON. Only the error's position is reported: serde_json's message can
/// quote part of the input.
fn require_json(secret_type: &str, data: &SecretData, key: &str) -> Result<(), BuildError> {
    require_all(secret_type, data, &[key])?;
    let Some(value) = data.get(key) else { return Ok(()) };
    match serde_json::from_slice::<serde::de::IgnoredAny>(value.expose()) {
        Ok(_) => Ok(()),
        Err(err) => Err(BuildError::InvalidJson {
            secret_type: secret_type.to_owned(),
            key: key.to_owned(),
            line: err.line(),
            column: err.column(),
        }),
    }
}

fn missing(secret_type: &str, requirement: String) -> BuildError {
    BuildError::MissingKey { secret_type: secret_type.to_owned(), requirement }
}

/// Whether `existing` was written for the PasswordSafeSecret with this UID.
pub fn is_ours(existing: &Secret, owner_uid: &str) -> bool {
    !owner_uid.is_empty() && label(existing, OWNER_UID_LABEL) == Some(owner_uid)
}

/// Whether this PasswordSafeSecret may apply to `existing`: yes when the Secret is ours; under `Merge` also
/// when nobody else's PasswordSafeSecret manages it (managing keys in someone else's Secret is what Merge
/// is for, but two resources merging into one Secret under one field manager would remove each other's
/// keys); otherwise we would overwrite a Secret someone else relies on.
pub fn check_takeover(existing: &Secret, owner: &Owner, policy: CreationPolicy) -> Result<(), TakeoverError> {
    let claimed_by_other = [OWNER_UID_LABEL, MERGED_UID_LABEL]
        .iter()
        .any(|l| label(existing, l).is_some_and(|uid| !uid.is_empty() && uid != owner.uid));
    let allowed = match policy {
        CreationPolicy::Merge => !claimed_by_other,
        CreationPolicy::Owner | CreationPolicy::Orphan => is_ours(existing, &owner.uid),
    };
    if allowed {
        return Ok(());
    }
    Err(TakeoverError {
        namespace: existing.metadata.namespace.clone().unwrap_or_else(|| owner.namespace.clone()),
        name: existing.metadata.name.clone().unwrap_or_default(),
        previous_owner: previous_owner(existing, owner),
    })
}

fn previous_owner(existing: &Secret, owner: &Owner) -> PreviousOwner {
    let annotation = existing.metadata.annotations.as_ref().and_then(|a| a.get(OWNER_ANNOTATION));
    match annotation {
        None => PreviousOwner::Unknown,
        Some(claimed) if *claimed == owner.annotation_value() => PreviousOwner::EarlierWithSameName,
        Some(claimed) => PreviousOwner::Other(claimed.clone()),
    }
}

fn label<'a>(secret: &'a Secret, name: &str) -> Option<&'a str> {
    secret.metadata.labels.as_ref().and_then(|labels| labels.get(name)).map(String::as_str)
}

/// What to server-side apply (under [`FIELD_MANAGER`]) when a `Merge` owner goes away: name and namespace
/// only. Applying an object without data, labels and annotations under the same field manager removes
/// exactly the fields we owned and leaves the rest of the Secret alone.
pub fn merge_cleanup_secret(target: &SecretTarget, owner: &Owner) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(target_name(target, &owner.name)),
            namespace: Some(owner.namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// The data of a live Secret (empty when it has none), to compare with what we would write.
pub fn live_data(secret: &Secret) -> SecretData {
    secret.data.iter().flatten().map(|(key, value)| (key.clone(), SecretBytes::new(value.0.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Hunter2-T0p-S3cret!";

    fn owner() -> Owner {
        Owner { name: "app-db".into(), namespace: "team-a".into(), uid: "0c6a4f3e-uid".into() }
    }

    fn target(policy: CreationPolicy) -> SecretTarget {
        SecretTarget { creation_policy: policy, ..SecretTarget::default() }
    }

    fn typed(policy: CreationPolicy, secret_type: &str) -> SecretTarget {
        SecretTarget { type_: Some(secret_type.into()), ..target(policy) }
    }

    fn data(entries: &[(&str, &str)]) -> SecretData {
        entries.iter().map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec()))).collect()
    }

    fn existing(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Secret {
        let map = |entries: &[(&str, &str)]| {
            entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>()
        };
        Secret {
            metadata: ObjectMeta {
                name: Some("app-db".into()),
                namespace: Some("team-a".into()),
                labels: Some(map(labels)),
                annotations: Some(map(annotations)),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    fn assert_no_secret(shown: &str) {
        assert!(!shown.contains(SECRET) && !shown.contains("Hunter2"), "value leaked: {shown}");
    }

    #[test]
    fn target_name_defaults_to_the_owner_name() {
        assert_eq!(target_name(&SecretTarget::default(), "pss"), "pss");
        let named = SecretTarget { name: Some("db-creds".into()), ..SecretTarget::default() };
        assert_eq!(target_name(&named, "pss"), "db-creds");
    }

    #[test]
    fn owner_policy_sets_name_namespace_type_data_and_controller_reference() {
        let secret = desired_secret(&target(CreationPolicy::Owner), &owner(), data(&[("password", "pw")])).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("app-db"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.data.unwrap()["password"], ByteString(b"pw".to_vec()));
        let refs = secret.metadata.owner_references.unwrap();
        assert_eq!(
            refs,
            vec![OwnerReference {
                api_version: "passwordsafe.dev/v1alpha1".into(),
                kind: "PasswordSafeSecret".into(),
                name: "app-db".into(),
                uid: "0c6a4f3e-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        );
    }

    #[test]
    fn target_name_is_used_for_the_secret() {
        let t = SecretTarget { name: Some("other-name".into()), ..target(CreationPolicy::Owner) };
        let secret = desired_secret(&t, &owner(), SecretData::new()).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("other-name"));
        assert_eq!(secret.metadata.owner_references.unwrap()[0].name, "app-db");
    }

    #[test]
    fn target_type_is_used() {
        let t = typed(CreationPolicy::Owner, "example.com/custom");
        let secret = desired_secret(&t, &owner(), SecretData::new()).unwrap();
        assert_eq!(secret.type_.as_deref(), Some("example.com/custom"));
    }

    #[test]
    fn empty_target_type_means_opaque() {
        let secret = desired_secret(&typed(CreationPolicy::Owner, ""), &owner(), SecretData::new()).unwrap();
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn orphan_policy_has_type_but_no_owner_reference() {
        let t = typed(CreationPolicy::Orphan, "kubernetes.io/basic-auth");
        let secret = desired_secret(&t, &owner(), data(&[("password", "pw")])).unwrap();
        assert_eq!(secret.metadata.owner_references, None);
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.metadata.labels.unwrap()[OWNER_UID_LABEL], "0c6a4f3e-uid");
    }

    #[test]
    fn merge_policy_has_neither_type_nor_owner_reference() {
        let secret = desired_secret(&target(CreationPolicy::Merge), &owner(), data(&[("password", "pw")])).unwrap();
        assert_eq!(secret.metadata.owner_references, None);
        assert_eq!(secret.type_, None);
        assert_eq!(secret.data.unwrap().len(), 1);
    }

    #[test]
    fn merge_policy_skips_type_key_checks() {
        // The existing Secret's type applies, and its other keys may satisfy it.
        let t = typed(CreationPolicy::Merge, "kubernetes.io/tls");
        let secret = desired_secret(&t, &owner(), data(&[("tls.crt", "CERT")])).unwrap();
        assert_eq!(secret.type_, None);
    }

    #[test]
    fn merge_policy_labels_are_ours_plus_the_targets() {
        let t = SecretTarget {
            labels: BTreeMap::from([("team".into(), "a".into())]),
            annotations: BTreeMap::from([("note".into(), "x".into())]),
            ..target(CreationPolicy::Merge)
        };
        let secret = desired_secret(&t, &owner(), SecretData::new()).unwrap();
        assert_eq!(
            secret.metadata.labels.unwrap(),
            BTreeMap::from([
                (MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into()),
                (MERGED_UID_LABEL.into(), "0c6a4f3e-uid".into()),
                ("team".into(), "a".into()),
            ])
        );
        assert_eq!(
            secret.metadata.annotations.unwrap(),
            BTreeMap::from([(OWNER_ANNOTATION.into(), "team-a/app-db".into()), ("note".into(), "x".into())])
        );
    }

    #[test]
    fn target_labels_and_annotations_are_merged_with_ours() {
        let t = SecretTarget {
            labels: BTreeMap::from([("app".into(), "db".into())]),
            annotations: BTreeMap::from([("reloader.stakater.com/match".into(), "true".into())]),
            ..target(CreationPolicy::Owner)
        };
        let secret = desired_secret(&t, &owner(), SecretData::new()).unwrap();
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels["app"], "db");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(labels[OWNER_UID_LABEL], "0c6a4f3e-uid");
        assert_eq!(labels.len(), 3);
        let annotations = secret.metadata.annotations.unwrap();
        assert_eq!(annotations["reloader.stakater.com/match"], "true");
        assert_eq!(annotations[OWNER_ANNOTATION], "team-a/app-db");
    }

    #[test]
    fn operator_labels_and_annotation_override_the_targets() {
        let t = SecretTarget {
            labels: BTreeMap::from([
                (MANAGED_BY_LABEL.into(), "helm".into()),
                (OWNER_UID_LABEL.into(), "someone-else".into()),
            ]),
            annotations: BTreeMap::from([(OWNER_ANNOTATION.into(), "x/y".into())]),
            ..target(CreationPolicy::Owner)
        };
        let secret = desired_secret(&t, &owner(), SecretData::new()).unwrap();
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(labels[OWNER_UID_LABEL], "0c6a4f3e-uid");
        assert_eq!(secret.metadata.annotations.unwrap()[OWNER_ANNOTATION], "team-a/app-db");
    }

    #[test]
    fn binary_data_is_copied_exactly() {
        let mut d = SecretData::new();
        d.insert("file".into(), SecretBytes::new(vec![0, 0xff, 0x10]));
        let secret = desired_secret(&target(CreationPolicy::Owner), &owner(), d).unwrap();
        assert_eq!(secret.data.unwrap()["file"].0, vec![0, 0xff, 0x10]);
    }

    #[test]
    fn empty_data_gives_an_empty_data_map() {
        let secret = desired_secret(&target(CreationPolicy::Owner), &owner(), SecretData::new()).unwrap();
        assert_eq!(secret.data, Some(BTreeMap::new()));
    }

    #[test]
    fn invalid_key_is_rejected_naming_the_key_not_the_value() {
        for key in ["has space", "..", "a/b", ""] {
            let err = desired_secret(&target(CreationPolicy::Owner), &owner(), data(&[(key, SECRET)])).unwrap_err();
            assert_eq!(err, BuildError::InvalidKey { key: key.into() });
            assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
            assert_no_secret(&format!("{err} {err:?}"));
        }
    }

    #[test]
    fn invalid_keys_are_rejected_under_every_policy() {
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan, CreationPolicy::Merge] {
            assert!(desired_secret(&target(policy), &owner(), data(&[("a b", "v")])).is_err());
        }
    }

    #[test]
    fn data_over_one_mebibyte_is_rejected_with_its_size() {
        let mut d = SecretData::new();
        d.insert("a".into(), SecretBytes::new(vec![b'x'; MAX_SECRET_SIZE]));
        d.insert("b".into(), SecretBytes::new(vec![b'y'; 1]));
        let err = desired_secret(&target(CreationPolicy::Merge), &owner(), d).unwrap_err();
        assert_eq!(err, BuildError::TooLarge { size: MAX_SECRET_SIZE + 1, limit: MAX_SECRET_SIZE });
        assert!(err.to_string().contains("1048577 bytes"), "{err}");
    }

    #[test]
    fn data_of_exactly_one_mebibyte_is_accepted() {
        let mut d = SecretData::new();
        d.insert("a".into(), SecretBytes::new(vec![b'x'; MAX_SECRET_SIZE]));
        assert!(desired_secret(&target(CreationPolicy::Owner), &owner(), d).is_ok());
    }

    #[test]
    fn opaque_and_custom_types_need_no_keys() {
        for secret_type in ["Opaque", "example.com/x", "bootstrap.kubernetes.io/token"] {
            let t = typed(CreationPolicy::Owner, secret_type);
            assert!(desired_secret(&t, &owner(), SecretData::new()).is_ok(), "{secret_type}");
        }
    }

    #[test]
    fn basic_auth_needs_username_or_password() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/basic-auth");
        assert!(desired_secret(&t, &owner(), data(&[("username", "u")])).is_ok());
        assert!(desired_secret(&t, &owner(), data(&[("password", "p")])).is_ok());
        let err = desired_secret(&t, &owner(), data(&[("pass", SECRET)])).unwrap_err();
        assert_eq!(err.to_string(), r#"Secret type "kubernetes.io/basic-auth" requires key "username" or "password""#);
    }

    #[test]
    fn ssh_auth_needs_ssh_privatekey() {
        let t = typed(CreationPolicy::Orphan, "kubernetes.io/ssh-auth");
        assert!(desired_secret(&t, &owner(), data(&[("ssh-privatekey", "KEY")])).is_ok());
        let err = desired_secret(&t, &owner(), data(&[("id_rsa", SECRET)])).unwrap_err();
        assert_eq!(err.to_string(), r#"Secret type "kubernetes.io/ssh-auth" requires key "ssh-privatekey""#);
    }

    #[test]
    fn tls_needs_certificate_and_key() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/tls");
        assert!(desired_secret(&t, &owner(), data(&[("tls.crt", "C"), ("tls.key", "K")])).is_ok());
        let err = desired_secret(&t, &owner(), data(&[("tls.crt", "C")])).unwrap_err();
        assert!(err.to_string().ends_with(r#"requires key "tls.key""#), "{err}");
        let err = desired_secret(&t, &owner(), data(&[("tls.key", SECRET)])).unwrap_err();
        assert!(err.to_string().ends_with(r#"requires key "tls.crt""#), "{err}");
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn dockerconfigjson_needs_its_key_holding_json() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/dockerconfigjson");
        let ok = data(&[(".dockerconfigjson", r#"{"auths":{"r.example.com":{"auth":"dTpw"}}}"#)]);
        assert!(desired_secret(&t, &owner(), ok).is_ok());
        let err = desired_secret(&t, &owner(), data(&[("config.json", "{}")])).unwrap_err();
        assert!(err.to_string().ends_with(r#"requires key ".dockerconfigjson""#), "{err}");
    }

    #[test]
    fn invalid_dockerconfigjson_is_reported_without_its_content() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/dockerconfigjson");
        let bad = format!(r#"{{"auths": {{"r": {{"password": "{SECRET}" oops"#);
        let err = desired_secret(&t, &owner(), data(&[(".dockerconfigjson", &bad)])).unwrap_err();
        assert!(matches!(err, BuildError::InvalidJson { ref key, .. } if key == ".dockerconfigjson"), "{err:?}");
        assert!(err.to_string().contains("is not valid JSON"), "{err}");
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn dockercfg_needs_its_key_holding_json() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/dockercfg");
        assert!(desired_secret(&t, &owner(), data(&[(".dockercfg", "{}")])).is_ok());
        assert!(desired_secret(&t, &owner(), data(&[(".dockerconfigjson", "{}")])).is_err());
        let err = desired_secret(&t, &owner(), data(&[(".dockercfg", SECRET)])).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn service_account_token_type_is_refused() {
        let t = typed(CreationPolicy::Owner, "kubernetes.io/service-account-token");
        let err = desired_secret(&t, &owner(), data(&[("token", SECRET)])).unwrap_err();
        assert!(matches!(err, BuildError::ManagedType { .. }));
        assert!(err.to_string().contains("kubernetes.io/service-account-token"), "{err}");
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn metadata_of_the_built_secret_carries_no_value() {
        // k8s-openapi's Debug shows `data`; nothing outside it may carry a value.
        let secret = desired_secret(&target(CreationPolicy::Owner), &owner(), data(&[("p", SECRET)])).unwrap();
        let shown = format!("{:?}", secret.metadata);
        assert_no_secret(&shown);
    }

    #[test]
    fn a_secret_with_our_uid_label_is_ours() {
        let secret = existing(&[(OWNER_UID_LABEL, "0c6a4f3e-uid")], &[]);
        assert!(is_ours(&secret, "0c6a4f3e-uid"));
        assert!(!is_ours(&secret, "other-uid"));
        assert!(!is_ours(&existing(&[], &[]), "0c6a4f3e-uid"));
        assert!(!is_ours(&Secret::default(), "0c6a4f3e-uid"));
    }

    #[test]
    fn an_empty_uid_never_owns_a_secret() {
        assert!(!is_ours(&existing(&[(OWNER_UID_LABEL, "")], &[]), ""));
    }

    #[test]
    fn our_own_secret_may_be_updated_under_every_policy() {
        let secret = existing(&[(OWNER_UID_LABEL, "0c6a4f3e-uid")], &[]);
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan, CreationPolicy::Merge] {
            assert_eq!(check_takeover(&secret, &owner(), policy), Ok(()));
        }
    }

    #[test]
    fn merge_may_manage_keys_in_any_existing_secret() {
        let foreign = existing(&[("app", "x")], &[]);
        assert_eq!(check_takeover(&foreign, &owner(), CreationPolicy::Merge), Ok(()));
        let merged_by_us = existing(&[(MERGED_UID_LABEL, "0c6a4f3e-uid")], &[]);
        assert_eq!(check_takeover(&merged_by_us, &owner(), CreationPolicy::Merge), Ok(()));
    }

    #[test]
    fn merge_refuses_a_secret_another_password_safe_secret_manages() {
        for label_name in [OWNER_UID_LABEL, MERGED_UID_LABEL] {
            let claimed = existing(&[(label_name, "other")], &[(OWNER_ANNOTATION, "team-a/other")]);
            let err = check_takeover(&claimed, &owner(), CreationPolicy::Merge).unwrap_err();
            assert_eq!(err.previous_owner, PreviousOwner::Other("team-a/other".into()));
        }
    }

    #[test]
    fn a_merged_secret_is_never_owned_so_switching_merge_to_owner_is_refused() {
        let merged = desired_secret(&target(CreationPolicy::Merge), &owner(), data(&[("password", "pw")])).unwrap();
        let labels = merged.metadata.labels.clone().unwrap();
        assert_eq!(labels[MERGED_UID_LABEL], "0c6a4f3e-uid");
        assert!(!labels.contains_key(OWNER_UID_LABEL));
        assert!(!is_ours(&merged, "0c6a4f3e-uid"));
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan] {
            assert!(check_takeover(&merged, &owner(), policy).is_err());
        }
    }

    #[test]
    fn owner_and_orphan_refuse_a_foreign_secret_and_point_to_merge() {
        let foreign = existing(&[("app", "x")], &[]);
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan] {
            let err = check_takeover(&foreign, &owner(), policy).unwrap_err();
            assert_eq!(err.previous_owner, PreviousOwner::Unknown);
            assert_eq!(
                err.to_string(),
                "Secret team-a/app-db exists and is not managed by this PasswordSafeSecret; creationPolicy Merge \
                 manages keys inside an existing Secret instead"
            );
        }
    }

    #[test]
    fn a_secret_of_another_password_safe_secret_is_refused_naming_it() {
        let other = existing(&[(OWNER_UID_LABEL, "other-uid")], &[(OWNER_ANNOTATION, "team-a/billing")]);
        let err = check_takeover(&other, &owner(), CreationPolicy::Owner).unwrap_err();
        assert_eq!(err.previous_owner, PreviousOwner::Other("team-a/billing".into()));
        assert!(err.to_string().contains("it belongs to PasswordSafeSecret team-a/billing"), "{err}");
        assert!(err.to_string().contains("creationPolicy Merge"), "{err}");
    }

    #[test]
    fn a_secret_left_by_an_earlier_owner_of_the_same_name_is_refused_with_a_hint() {
        let left = existing(&[(OWNER_UID_LABEL, "old-uid")], &[(OWNER_ANNOTATION, "team-a/app-db")]);
        let err = check_takeover(&left, &owner(), CreationPolicy::Owner).unwrap_err();
        assert_eq!(err.previous_owner, PreviousOwner::EarlierWithSameName);
        assert!(err.to_string().contains("earlier PasswordSafeSecret of the same name"), "{err}");
    }

    #[test]
    fn takeover_error_never_shows_the_existing_data() {
        let mut foreign = existing(&[], &[]);
        foreign.data = Some(BTreeMap::from([("password".into(), ByteString(SECRET.as_bytes().to_vec()))]));
        let err = check_takeover(&foreign, &owner(), CreationPolicy::Owner).unwrap_err();
        assert_no_secret(&format!("{err} {err:?}"));
    }

    #[test]
    fn merge_cleanup_secret_has_only_name_and_namespace() {
        let t = SecretTarget {
            name: Some("shared".into()),
            labels: BTreeMap::from([("a".into(), "b".into())]),
            type_: Some("kubernetes.io/tls".into()),
            ..target(CreationPolicy::Merge)
        };
        let secret = merge_cleanup_secret(&t, &owner());
        let expected = Secret {
            metadata: ObjectMeta {
                name: Some("shared".into()),
                namespace: Some("team-a".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert_eq!(secret, expected);
    }

    #[test]
    fn merge_cleanup_secret_serialises_without_data_labels_or_annotations() {
        let json = serde_json::to_value(merge_cleanup_secret(&target(CreationPolicy::Merge), &owner())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "app-db", "namespace": "team-a"},
            })
        );
    }

    #[test]
    fn live_data_copies_the_bytes() {
        let mut secret = existing(&[], &[]);
        secret.data =
            Some(BTreeMap::from([("a".into(), ByteString(b"1".to_vec())), ("bin".into(), ByteString(vec![0xff]))]));
        let live = live_data(&secret);
        assert_eq!(live.len(), 2);
        assert_eq!(live["a"].expose(), b"1");
        assert_eq!(live["bin"].expose(), &[0xff]);
    }

    #[test]
    fn live_data_of_a_secret_without_data_is_empty() {
        assert!(live_data(&Secret::default()).is_empty());
    }

    #[test]
    fn desired_data_round_trips_through_live_data() {
        let d = data(&[("a", "1"), ("b", "2")]);
        let secret = desired_secret(&target(CreationPolicy::Owner), &owner(), d.clone()).unwrap();
        assert_eq!(live_data(&secret), d);
    }
}
