//! JSON shapes of the API's answers, with the guide's member names and order.

use serde::Serialize;

use crate::clock::WireDate;

/// `POST Auth/SignAppIn`.
#[derive(Serialize)]
pub(crate) struct SignedInUser<'a> {
    #[serde(rename = "UserId")]
    pub user_id: i64,
    #[serde(rename = "SID")]
    pub sid: Option<&'a str>,
    #[serde(rename = "EmailAddress")]
    pub email_address: Option<&'a str>,
    #[serde(rename = "UserName")]
    pub user_name: &'a str,
    #[serde(rename = "Name")]
    pub name: &'a str,
}

/// `GET ManagedAccounts`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManagedAccount<'a> {
    #[serde(rename = "PlatformID")]
    pub platform_id: i64,
    pub system_id: i64,
    pub system_name: &'a str,
    pub domain_name: Option<&'a str>,
    pub account_id: i64,
    pub account_name: &'a str,
    pub instance_name: &'a str,
    pub user_principal_name: Option<&'a str>,
    #[serde(rename = "ApplicationID")]
    pub application_id: Option<i64>,
    pub application_display_name: Option<&'a str>,
    pub default_release_duration: u32,
    pub maximum_release_duration: u32,
    pub last_change_date: WireDate,
    pub next_change_date: Option<WireDate>,
    pub is_changing: bool,
    pub change_state: i32,
    #[serde(rename = "IsISAAccess")]
    pub is_isa_access: bool,
    #[serde(rename = "PreferredNodeID")]
    pub preferred_node_id: &'a str,
}

/// `POST Requests` with `compat.requestIdAsObject`.
#[derive(Serialize)]
pub(crate) struct RequestId {
    #[serde(rename = "RequestID")]
    pub request_id: i64,
}

/// `GET Requests`.
#[derive(Serialize)]
pub(crate) struct RequestRecord<'a> {
    #[serde(rename = "RequestID")]
    pub request_id: i64,
    #[serde(rename = "SystemID")]
    pub system_id: i64,
    #[serde(rename = "SystemName")]
    pub system_name: &'a str,
    #[serde(rename = "AccountID")]
    pub account_id: i64,
    #[serde(rename = "AccountName")]
    pub account_name: &'a str,
    #[serde(rename = "DomainName")]
    pub domain_name: Option<&'a str>,
    #[serde(rename = "AliasID")]
    pub alias_id: Option<i64>,
    #[serde(rename = "ApplicationID")]
    pub application_id: Option<i64>,
    #[serde(rename = "RequestReleaseDate")]
    pub request_release_date: WireDate,
    #[serde(rename = "ApprovedDate")]
    pub approved_date: Option<WireDate>,
    #[serde(rename = "ExpiresDate")]
    pub expires_date: WireDate,
    #[serde(rename = "Status")]
    pub status: &'static str,
    #[serde(rename = "AccessType")]
    pub access_type: &'static str,
    #[serde(rename = "Reason")]
    pub reason: Option<&'a str>,
}

/// `GET Aliases`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Alias<'a> {
    pub alias_id: i64,
    pub alias_name: &'a str,
    pub alias_state: u8,
    pub system_id: i64,
    pub system_name: &'a str,
    pub account_id: i64,
    pub account_name: &'a str,
    pub domain_name: Option<&'a str>,
    pub instance_name: &'a str,
    pub default_release_duration: u32,
    pub maximum_release_duration: u32,
    pub last_change_date: WireDate,
    pub next_change_date: Option<WireDate>,
    pub is_changing: bool,
    pub change_state: i32,
    pub mapped_accounts: Vec<MappedAccount>,
}

#[derive(Serialize)]
pub(crate) struct MappedAccount {
    #[serde(rename = "AliasID")]
    pub alias_id: i64,
    #[serde(rename = "ManagedSystemID")]
    pub managed_system_id: i64,
    #[serde(rename = "ManagedAccountID")]
    pub managed_account_id: i64,
    #[serde(rename = "Status")]
    pub status: &'static str,
}

/// `GET Aliases/{aliasId}/Credentials/{requestId}`.
#[derive(Serialize)]
pub(crate) struct AliasCredentials<'a> {
    #[serde(rename = "AliasID")]
    pub alias_id: i64,
    #[serde(rename = "AliasName")]
    pub alias_name: &'a str,
    #[serde(rename = "SystemID")]
    pub system_id: i64,
    #[serde(rename = "SystemName")]
    pub system_name: &'a str,
    #[serde(rename = "AccountID")]
    pub account_id: i64,
    #[serde(rename = "AccountName")]
    pub account_name: &'a str,
    #[serde(rename = "DomainName")]
    pub domain_name: Option<&'a str>,
    #[serde(rename = "Password")]
    pub password: Option<&'a str>,
    #[serde(rename = "PrivateKey")]
    pub private_key: Option<&'a str>,
    #[serde(rename = "Passphrase")]
    pub passphrase: Option<&'a str>,
}

/// A Secrets Safe secret. The views differ in which of the optional members they carry: `None` leaves the
/// member out, `Some(None)` writes `null`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Secret<'a> {
    pub id: uuid::Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Option<&'a str>>,
    pub owner_id: i64,
    pub folder_id: uuid::Uuid,
    pub created_on: WireDate,
    pub created_by: &'a str,
    pub modified_on: WireDate,
    pub modified_by: &'a str,
    pub owner: &'a str,
    pub folder: &'a str,
    pub folder_path: &'a str,
    pub owners: [SecretOwner<'a>; 1],
    pub owner_type: &'static str,
    pub notes: Option<&'a str>,
    pub urls: [(); 0],
    pub secret_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<Option<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SecretOwner<'a> {
    pub owner_id: i64,
    pub owner: &'a str,
    pub email: Option<&'a str>,
}

/// `GET Secrets-Safe/Secrets` on v3.2 (or with `compat.pagedSecrets`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Page<T> {
    pub total_count: usize,
    pub data: Vec<T>,
}

/// `GET Secrets-Safe/Folders`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Folder<'a> {
    pub id: uuid::Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub parent_id: Option<uuid::Uuid>,
    pub user_group_id: Option<i64>,
}
