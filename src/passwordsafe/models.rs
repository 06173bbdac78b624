//! Shapes of Password Safe responses, parsed leniently where real servers differ from the guide
//! (see `shared/docs/password-safe-api-notes.md`): dates without a zone, bare numbers where the guide shows an
//! object, an array of one where it shows an object, and paged or bare Secrets Safe lists.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

/// What Password Safe says about an account's rotation: the input of rotation-aware scheduling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationInfo {
    pub last_change_date: Option<Timestamp>,
    pub next_change_date: Option<Timestamp>,
    pub is_changing: bool,
    pub change_state: ChangeState,
}

/// `ChangeState`: 0 idle, 1 changing now, 2 queued or scheduled within 5 minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChangeState {
    #[default]
    Idle,
    Changing,
    Queued,
    Unknown(i64),
}

impl ChangeState {
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Idle,
            1 => Self::Changing,
            2 => Self::Queued,
            other => Self::Unknown(other),
        }
    }

    /// A change is running or about to run: what we read now may be stale soon.
    pub fn is_in_flux(self) -> bool {
        matches!(self, Self::Changing | Self::Queued)
    }
}

/// One record of `GET ManagedAccounts`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ManagedAccount {
    #[serde(rename = "PlatformID", default)]
    pub platform_id: Option<i64>,
    pub system_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub system_name: String,
    #[serde(default)]
    pub domain_name: Option<String>,
    pub account_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub account_name: String,
    #[serde(default)]
    pub instance_name: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub default_release_duration: Option<i64>,
    #[serde(default)]
    pub maximum_release_duration: Option<i64>,
    #[serde(default, deserialize_with = "ps_date")]
    pub last_change_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "ps_date")]
    pub next_change_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub is_changing: bool,
    #[serde(default)]
    pub change_state: Option<i64>,
    #[serde(rename = "IsISAAccess", default, deserialize_with = "null_as_false")]
    pub is_isa_access: bool,
}

impl ManagedAccount {
    pub fn rotation(&self) -> RotationInfo {
        RotationInfo {
            last_change_date: self.last_change_date,
            next_change_date: self.next_change_date,
            is_changing: self.is_changing,
            change_state: ChangeState::from_code(self.change_state.unwrap_or(0)),
        }
    }
}

/// One record of `GET Aliases`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Alias {
    #[serde(alias = "AliasID")]
    pub alias_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub alias_name: String,
    /// 0 unmapped, 1 mapped, 2 highly available. Only 1 and 2 can be requested.
    #[serde(default)]
    pub alias_state: Option<i64>,
    #[serde(alias = "SystemID")]
    pub system_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub system_name: String,
    #[serde(alias = "AccountID")]
    pub account_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub account_name: String,
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default, deserialize_with = "ps_date")]
    pub last_change_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "ps_date")]
    pub next_change_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub is_changing: bool,
    #[serde(default)]
    pub change_state: Option<i64>,
}

impl Alias {
    pub fn rotation(&self) -> RotationInfo {
        RotationInfo {
            last_change_date: self.last_change_date,
            next_change_date: self.next_change_date,
            is_changing: self.is_changing,
            change_state: ChangeState::from_code(self.change_state.unwrap_or(0)),
        }
    }

    /// The guide: only aliases with state 1 (mapped) or 2 (highly available) can be requested. A server
    /// that omits the state is taken to list only requestable aliases (the list's default filter is 1,2).
    pub fn is_requestable(&self) -> bool {
        matches!(self.alias_state, None | Some(1) | Some(2))
    }
}

/// The credential part of `GET Aliases/{aliasId}/Credentials/{requestId}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AliasCredentialBody {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub private_key: Option<String>,
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// Secrets Safe secret kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretType {
    Credential,
    Text,
    File,
}

impl SecretType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credential => "credential",
            Self::Text => "text",
            Self::File => "file",
        }
    }
}

/// One record of `GET Secrets-Safe/Secrets` (metadata, plus the credential fields for credential secrets).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SecretRecord {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub folder_path: Option<String>,
    #[serde(default)]
    pub folder: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub secret_type: Option<String>,
    #[serde(default, deserialize_with = "ps_date")]
    pub created_on: Option<Timestamp>,
    #[serde(default, deserialize_with = "ps_date")]
    pub modified_on: Option<Timestamp>,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Username and password and notes may be sensitive: only identifying metadata is printed.
        f.debug_struct("SecretRecord")
            .field("id", &self.id)
            .field("title", &self.title)
            .field("folder_path", &self.folder_path)
            .field("secret_type", &self.secret_type)
            .finish_non_exhaustive()
    }
}

impl SecretRecord {
    /// `SecretType` when the server says it; otherwise inferred from which fields are present (older servers).
    pub fn kind(&self) -> SecretType {
        match self.secret_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("credential") | Some("password") => SecretType::Credential,
            Some("text") => SecretType::Text,
            Some("file") => SecretType::File,
            _ if self.file_name.as_deref().is_some_and(|f| !f.is_empty()) => SecretType::File,
            _ if self.password.is_some() || self.username.is_some() => SecretType::Credential,
            _ => SecretType::Text,
        }
    }
}

/// The `/text` answer: documented as an array of one record with `Text`; some servers answer the object.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SecretTextRecord {
    #[serde(default)]
    pub text: Option<String>,
}

/// A JSON value that may be one `T` or an array of `T` (the guide and real servers disagree in places).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::Many(v) => v,
            Self::One(t) => vec![t],
        }
    }
}

/// `GET Secrets-Safe/Secrets`: a bare array (API 3.0/3.1) or a page `{TotalCount, Data}` (3.2).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum SecretList {
    Page {
        #[serde(rename = "TotalCount", default)]
        total_count: Option<u64>,
        #[serde(rename = "Data")]
        data: Vec<SecretRecord>,
    },
    Bare(Vec<SecretRecord>),
}

impl SecretList {
    pub fn into_parts(self) -> (Vec<SecretRecord>, Option<u64>) {
        match self {
            Self::Page { total_count, data } => (data, total_count),
            Self::Bare(data) => (data, None),
        }
    }
}

/// The answer of `POST Requests`: `{"RequestID": 124}` per the guide, a bare `124` per real servers.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RequestIdBody {
    Number(i64),
    Text(String),
    Object {
        #[serde(rename = "RequestID", alias = "RequestId", alias = "requestId")]
        request_id: i64,
    },
}

impl RequestIdBody {
    pub fn id(&self) -> Option<i64> {
        match self {
            Self::Number(n) | Self::Object { request_id: n } => Some(*n),
            Self::Text(s) => s.trim().parse().ok(),
        }
        .filter(|id| *id > 0)
    }
}

/// One record of `GET Requests` (the current user's requests).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RequestRecord {
    #[serde(rename = "RequestID", alias = "RequestId")]
    pub request_id: i64,
    #[serde(rename = "SystemID", alias = "SystemId", default)]
    pub system_id: Option<i64>,
    #[serde(rename = "AccountID", alias = "AccountId", default)]
    pub account_id: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub access_type: Option<String>,
}

impl RequestRecord {
    /// Approved (the guide's "active" queue). Servers spell it `Active`/`active`/`Approved`.
    pub fn is_approved(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("active") || s.eq_ignore_ascii_case("approved"))
    }

    pub fn is_view(&self) -> bool {
        self.access_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("view"))
    }
}

/// The SignAppIn answer (the signed-in user).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SignedInUser {
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
}

/// The OAuth token answer.
#[derive(Deserialize)]
pub(crate) struct TokenBody {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// Parses a Password Safe date. Real servers send ISO 8601 without a zone and with 0-7 fractional digits
/// (`2024-12-10T08:57:45.9`), meaning UTC; a zone or `Z` is honoured when present. An empty string is "no date".
pub fn parse_ps_date(raw: &str) -> Result<Option<Timestamp>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Ok(Some(ts));
    }
    let civil: jiff::civil::DateTime = raw.parse().map_err(|_| format!("invalid date {raw:?}"))?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).map(|z| Some(z.timestamp())).map_err(|_| format!("invalid date {raw:?}"))
}

fn ps_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_ps_date(&s).map_err(serde::de::Error::custom),
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// Secret IDs are GUIDs; accept a number too rather than fail on an odd server.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(i64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_with_and_without_zone_and_fraction() {
        let cases = [
            ("2024-12-10T08:57:45.9", "2024-12-10T08:57:45.9Z"),
            ("2024-12-10T08:57:45", "2024-12-10T08:57:45Z"),
            ("2024-12-10T08:57:45.1234567", "2024-12-10T08:57:45.1234567Z"),
            ("2024-12-10T08:57:45Z", "2024-12-10T08:57:45Z"),
            ("2024-12-10T10:57:45+02:00", "2024-12-10T08:57:45Z"),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_ps_date(raw).unwrap(), Some(want.parse().unwrap()), "{raw}");
        }
        assert_eq!(parse_ps_date("").unwrap(), None);
        assert!(parse_ps_date("yesterday").is_err());
        assert!(parse_ps_date("2024-13-45T99:00:00").is_err());
    }

    #[test]
    fn a_real_world_managed_account_record_parses() {
        let body = r#"{"PlatformID": 4, "SystemId": 5, "SystemName": "db01", "InstanceName": "", "DomainName": null,
          "AccountId": 7, "AccountName": "app_user", "UserPrincipalName": null, "ApplicationID": null,
          "ApplicationDisplayName": null, "MaximumReleaseDuration": 525600, "DefaultReleaseDuration": 120,
          "LastChangeDate": "2024-12-10T08:57:45.9", "NextChangeDate": null, "ChangeState": 0, "IsChanging": false,
          "IsISAAccess": true, "PreferredNodeID": "e0148f55-1"}"#;
        let a: ManagedAccount = serde_json::from_str(body).unwrap();
        assert_eq!((a.system_id, a.account_id, a.is_isa_access), (5, 7, true));
        assert_eq!(a.rotation().change_state, ChangeState::Idle);
        assert!(a.rotation().last_change_date.is_some());
        let many: OneOrMany<ManagedAccount> = serde_json::from_str(&format!("[{body}]")).unwrap();
        assert_eq!(many.into_vec().len(), 1);
    }

    #[test]
    fn request_ids_parse_bare_quoted_and_as_object() {
        for body in ["124", "\"124\"", r#"{"RequestID":124}"#, r#"{"RequestId":124}"#] {
            let parsed: RequestIdBody = serde_json::from_str(body).unwrap();
            assert_eq!(parsed.id(), Some(124), "{body}");
        }
        let zero: RequestIdBody = serde_json::from_str("0").unwrap();
        assert_eq!(zero.id(), None);
    }

    #[test]
    fn secret_lists_parse_bare_and_paged() {
        let rec =
            r#"{"Id":"6f1c","Title":"t","FolderPath":"a/b","SecretType":"TEXT","ModifiedOn":"2024-01-01T00:00:00"}"#;
        let bare: SecretList = serde_json::from_str(&format!("[{rec}]")).unwrap();
        assert_eq!(bare.into_parts().0.len(), 1);
        let paged: SecretList = serde_json::from_str(&format!(r#"{{"TotalCount":1,"Data":[{rec}]}}"#)).unwrap();
        let (data, total) = paged.into_parts();
        assert_eq!((data.len(), total), (1, Some(1)));
        assert_eq!(data[0].kind(), SecretType::Text);
    }

    #[test]
    fn secret_record_debug_hides_credential_fields() {
        let rec: SecretRecord = serde_json::from_str(
            r#"{"Id":"1","Title":"t","Username":"u-secret","Password":"p-secret","Notes":"n-secret"}"#,
        )
        .unwrap();
        let shown = format!("{rec:?}");
        assert!(!shown.contains("-secret"), "{shown}");
        assert_eq!(rec.kind(), SecretType::Credential);
    }
}
