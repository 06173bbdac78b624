//! Fetches the values a PasswordSafeSecret asks for, through the Password Safe client.
//!
//! Items are grouped before anything is fetched: every key that reads the same managed account (password,
//! username, DSS key...) shares one request cycle with the union of credential types; every key reading
//! the same Secrets Safe secret shares one read. Groups run concurrently, bounded by the client's limit.

use std::collections::BTreeMap;

use futures::future::join_all;
use jiff::Timestamp;

use super::SecretData;
use super::keys;
use crate::api::{AccountField, DataItem, PasswordSafeSecretSpec, SecretsSafeField};
use crate::passwordsafe::{
    AccountCredential, Client, CredentialKinds, CredentialType, Error as PsError, FolderPath, RequestOptions,
    RotationInfo, SecretBytes, SecretType, SecretsSafeSecret,
};

/// One Password Safe object a PasswordSafeSecret reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    ManagedAccount { system: String, account: String },
    Alias { name: String },
    Secret { folder: String, separator: String, title: String },
    Folder { folder: String, separator: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ManagedAccount { system, account } => write!(f, "managedAccount:{system}/{account}"),
            Self::Alias { name } => write!(f, "alias:{name}"),
            Self::Secret { folder, title, .. } => write!(f, "secretsSafe:{folder}/{title}"),
            Self::Folder { folder, .. } => write!(f, "secretsSafeFolder:{folder}"),
        }
    }
}

impl Source {
    pub fn of_item(item: &DataItem) -> Option<Self> {
        if let Some(m) = &item.managed_account {
            return Some(Self::ManagedAccount { system: m.system.clone(), account: m.account.clone() });
        }
        if let Some(a) = &item.alias {
            return Some(Self::Alias { name: a.name.clone() });
        }
        item.secrets_safe.as_ref().map(|s| Self::Secret {
            folder: s.folder_path.clone(),
            separator: s.separator.clone().unwrap_or_else(|| "/".into()),
            title: s.title.clone(),
        })
    }

    /// Every source of a spec, deduplicated, in a stable order.
    pub fn all_of(spec: &PasswordSafeSecretSpec) -> Vec<Self> {
        let mut sources: Vec<Self> = spec.data.iter().filter_map(Self::of_item).collect();
        sources.extend(spec.data_from.iter().map(|d| Self::Folder {
            folder: d.secrets_safe_folder.folder_path.clone(),
            separator: d.secrets_safe_folder.separator.clone().unwrap_or_else(|| "/".into()),
        }));
        sources.sort();
        sources.dedup();
        sources
    }
}

/// What was learned about one source during a fetch: the input of change detection and scheduling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceState {
    pub source: Source,
    /// The Secret keys this source filled.
    pub keys: Vec<String>,
    pub rotation: Option<RotationInfo>,
    /// Secrets Safe: ModifiedOn of the secret (the newest one for a folder).
    pub modified_on: Option<Timestamp>,
    /// Secrets Safe folder: identity of its content (ids and ModifiedOn of every secret).
    pub folder_fingerprint: Option<String>,
    /// A release still open after the fetch (ISA, held, or a failed check-in) expires then.
    pub held_until: Option<Timestamp>,
    /// The fetch opened a request and checked it in: an account that rotates after any release rotates now.
    pub checked_in: bool,
    pub fetched_at: Timestamp,
}

/// Everything fetched for one PasswordSafeSecret.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub data: SecretData,
    pub sources: Vec<SourceState>,
}

/// A failure, naming the key and the source it came from.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("key {key:?} ({source_name}): {error}")]
    Source {
        key: String,
        source_name: String,
        #[source]
        error: PsError,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ResolveError {
    /// A fixed reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Source { error, .. } => error.reason(),
            Self::Invalid(_) => "InvalidSpec",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Source { error, .. } if error.is_retryable())
    }
}

/// Fetches every key of `spec`.
pub async fn resolve(
    client: &Client,
    spec: &PasswordSafeSecretSpec,
    options: &RequestOptions,
) -> Result<Resolved, ResolveError> {
    let plan = plan(spec);
    let fetched = join_all(plan.iter().map(|(source, keys)| fetch(client, source, keys, options))).await;
    // Sized exactly: what a sync learned is kept per resource for as long as the operator runs.
    let mut resolved = Resolved { data: SecretData::new(), sources: Vec::with_capacity(fetched.len()) };
    for result in fetched {
        let (values, state) = result?;
        for (key, value) in values {
            if resolved.data.insert(key.clone(), value).is_some() {
                return Err(ResolveError::Invalid(format!("key {key:?} is produced by more than one source")));
            }
        }
        resolved.sources.push(state);
    }
    Ok(resolved)
}

/// What each item wants from a source.
#[derive(Clone, Debug)]
enum Want {
    Account(AccountField),
    Secret(Option<SecretsSafeField>),
    Folder(Option<String>),
}

type Plan = BTreeMap<Source, Vec<(String, Want)>>;

fn plan(spec: &PasswordSafeSecretSpec) -> Plan {
    let mut plan: Plan = BTreeMap::new();
    for item in &spec.data {
        let Some(source) = Source::of_item(item) else { continue };
        let want = match (&item.managed_account, &item.alias, &item.secrets_safe) {
            (Some(m), _, _) => Want::Account(m.field),
            (None, Some(a), _) => Want::Account(a.field),
            (None, None, Some(s)) => Want::Secret(s.field),
            _ => continue,
        };
        plan.entry(source).or_default().push((item.secret_key.clone(), want));
    }
    for from in &spec.data_from {
        let folder = &from.secrets_safe_folder;
        let source = Source::Folder {
            folder: folder.folder_path.clone(),
            separator: folder.separator.clone().unwrap_or_else(|| "/".into()),
        };
        plan.entry(source).or_default().push((folder.folder_path.clone(), Want::Folder(folder.key_prefix.clone())));
    }
    plan
}

fn kinds_for(wants: &[(String, Want)]) -> Option<CredentialKinds> {
    let mut kinds = CredentialKinds::default();
    let mut any = false;
    for (_, want) in wants {
        let kind = match want {
            Want::Account(AccountField::Password) => CredentialType::Password,
            Want::Account(AccountField::Dsskey) => CredentialType::DssKey,
            Want::Account(AccountField::Passphrase) => CredentialType::Passphrase,
            _ => continue,
        };
        kinds = kinds.with(kind);
        any = true;
    }
    any.then_some(kinds)
}

async fn fetch(
    client: &Client,
    source: &Source,
    wants: &[(String, Want)],
    options: &RequestOptions,
) -> Result<(Vec<(String, SecretBytes)>, SourceState), ResolveError> {
    let first_key = wants.first().map(|(k, _)| k.clone()).unwrap_or_default();
    let fail = |error: PsError| ResolveError::Source { key: first_key.clone(), source_name: source.to_string(), error };
    let fetched_at = Timestamp::now();
    let mut state = SourceState {
        source: source.clone(),
        keys: Vec::new(),
        rotation: None,
        modified_on: None,
        folder_fingerprint: None,
        held_until: None,
        checked_in: false,
        fetched_at,
    };
    let values = match source {
        Source::ManagedAccount { system, account } => {
            let credential = match kinds_for(wants) {
                Some(kinds) => client.managed_account(system, account, kinds, options).await.map_err(fail)?,
                // Only the username: the account lookup is enough, no request is opened.
                None => {
                    let found = client.find_managed_account(system, account).await.map_err(fail)?;
                    state.rotation = Some(found.rotation());
                    return Ok((username_only(wants, &found.account_name), with_keys(state, wants)));
                }
            };
            account_values(&credential, wants, &mut state)?
        }
        Source::Alias { name } => {
            let kinds = kinds_for(wants).unwrap_or(CredentialKinds::PASSWORD);
            let credential = client.alias(name, kinds, options).await.map_err(fail)?;
            account_values(&credential, wants, &mut state)?
        }
        Source::Secret { folder, separator, title } => {
            let secret = client.secret(&FolderPath::with_separator(folder, separator), title).await.map_err(fail)?;
            state.modified_on = secret.summary.modified_on.or(secret.summary.created_on);
            wants
                .iter()
                .map(|(key, want)| {
                    let field = match want {
                        Want::Secret(field) => *field,
                        _ => None,
                    };
                    secret_value(&secret, field).map(|v| (key.clone(), v)).ok_or_else(|| {
                        ResolveError::Invalid(format!(
                            "key {key:?} ({source}): the {} secret has no {}",
                            secret.summary.kind.as_str(),
                            field.map_or("content".into(), |f| format!("{f:?}").to_lowercase())
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Source::Folder { folder, separator } => {
            let secrets = client.folder_secrets(&FolderPath::with_separator(folder, separator)).await.map_err(fail)?;
            let prefix = wants.iter().find_map(|(_, w)| match w {
                Want::Folder(prefix) => prefix.clone(),
                _ => None,
            });
            state.modified_on = secrets.iter().filter_map(|s| s.summary.modified_on.or(s.summary.created_on)).max();
            state.folder_fingerprint = Some(folder_fingerprint(secrets.iter().map(|s| &s.summary)));
            folder_values(&secrets, prefix.as_deref(), source)?
        }
    };
    state.keys = values.iter().map(|(k, _)| k.clone()).collect();
    Ok((values, state))
}

fn with_keys(mut state: SourceState, wants: &[(String, Want)]) -> SourceState {
    state.keys = wants.iter().map(|(k, _)| k.clone()).collect();
    state
}

fn username_only(wants: &[(String, Want)], account_name: &str) -> Vec<(String, SecretBytes)> {
    wants.iter().map(|(key, _)| (key.clone(), SecretBytes::new(account_name.as_bytes().to_vec()))).collect()
}

fn account_values(
    credential: &AccountCredential,
    wants: &[(String, Want)],
    state: &mut SourceState,
) -> Result<Vec<(String, SecretBytes)>, ResolveError> {
    state.rotation = Some(credential.rotation.clone());
    state.held_until = (!credential.release.checked_in).then_some(credential.release.expires_at);
    state.checked_in = credential.release.checked_in && credential.release.request_id.is_some();
    wants
        .iter()
        .map(|(key, want)| {
            let value = match want {
                Want::Account(AccountField::Username) => Some(credential.account_name.as_bytes().to_vec()),
                Want::Account(AccountField::Password) => {
                    credential.password.as_ref().map(|v| v.expose().as_bytes().to_vec())
                }
                Want::Account(AccountField::Dsskey) => {
                    credential.dss_key.as_ref().map(|v| v.expose().as_bytes().to_vec())
                }
                Want::Account(AccountField::Passphrase) => {
                    credential.passphrase.as_ref().map(|v| v.expose().as_bytes().to_vec())
                }
                _ => None,
            };
            value.map(|v| (key.clone(), SecretBytes::new(v))).ok_or_else(|| {
                ResolveError::Invalid(format!("key {key:?} ({}): Password Safe returned no value", state.source))
            })
        })
        .collect()
}

/// The default field is the secret's own content: the password of a credential, the text of a text
/// secret, the bytes of a file.
fn secret_value(secret: &SecretsSafeSecret, field: Option<SecretsSafeField>) -> Option<SecretBytes> {
    let text = |v: &Option<crate::passwordsafe::SecretString>| {
        v.as_ref().map(|s| SecretBytes::new(s.expose().as_bytes().to_vec()))
    };
    match field {
        Some(SecretsSafeField::Username) => secret.username.as_ref().map(|u| SecretBytes::new(u.as_bytes().to_vec())),
        Some(SecretsSafeField::Password) => text(&secret.password),
        Some(SecretsSafeField::Text) => text(&secret.text),
        Some(SecretsSafeField::File) => secret.file.clone(),
        Some(SecretsSafeField::Notes) => text(&secret.notes),
        None => match secret.summary.kind {
            SecretType::Credential => text(&secret.password),
            SecretType::Text => text(&secret.text),
            SecretType::File => secret.file.clone(),
        },
    }
}

/// Keys of a folder's secrets, by the documented rule (`SecretsSafeFolderSource`): the sanitised title,
/// prefixed; a credential also yields `<key>.username`.
fn folder_values(
    secrets: &[SecretsSafeSecret],
    prefix: Option<&str>,
    source: &Source,
) -> Result<Vec<(String, SecretBytes)>, ResolveError> {
    let mut values = Vec::new();
    for secret in secrets {
        let key = keys::folder_key(prefix, &secret.summary.title);
        if let Some(value) = secret_value(secret, None) {
            values.push((key.clone(), value));
        }
        if secret.summary.kind == SecretType::Credential
            && let Some(user) = secret.username.as_ref().filter(|u| !u.is_empty())
        {
            values.push((keys::username_key(&key), SecretBytes::new(user.as_bytes().to_vec())));
        }
    }
    let collisions = keys::find_collisions(values.iter().map(|(k, _)| k.as_str()));
    if !collisions.is_empty() {
        return Err(ResolveError::Invalid(format!(
            "{source}: several secret titles map to the same key(s) {collisions:?}; rename them in Password Safe"
        )));
    }
    Ok(values)
}

/// Identity of a folder's content: changes when a secret is added, removed or modified.
pub fn folder_fingerprint<'a>(summaries: impl Iterator<Item = &'a crate::passwordsafe::SecretSummary>) -> String {
    let mut parts: Vec<String> = summaries
        .map(|s| format!("{}@{}", s.id, s.modified_on.or(s.created_on).map(|t| t.to_string()).unwrap_or_default()))
        .collect();
    parts.sort();
    parts.join(",")
}
