//! The seed: everything the simulated Password Safe instance knows when it starts.
//!
//! Seeds are YAML or JSON (JSON is valid YAML) with camelCase keys; `seeds/demo.yaml` documents every field.
//! Unknown keys are rejected so that a typo in a seed fails loudly instead of silently using a default.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A complete simulator seed. Build one from a file ([`Seed::from_path`]), a string ([`Seed::from_yaml_str`]),
/// in code (every field is public and `Default` gives an empty instance) or with [`Seed::generated`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// A session with no call for this long (simulated time) answers 401 afterwards. The real server's
    /// default is 20 minutes.
    #[serde(default = "defaults::session_idle_timeout_seconds")]
    pub session_idle_timeout_seconds: u64,
    /// Seed of the random generator that decides probabilistic faults, so that a fault sequence is
    /// reproducible from run to run.
    #[serde(default)]
    pub fault_seed: u64,
    /// Response shapes seen from some real servers or clients, off by default.
    #[serde(default)]
    pub compat: Compat,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeySeed>,
    #[serde(default)]
    pub oauth_clients: Vec<OAuthClientSeed>,
    #[serde(default)]
    pub systems: Vec<SystemSeed>,
    #[serde(default)]
    pub aliases: Vec<AliasSeed>,
    #[serde(default)]
    pub secrets_safe: SecretsSafeSeed,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            session_idle_timeout_seconds: defaults::session_idle_timeout_seconds(),
            fault_seed: 0,
            compat: Compat::default(),
            users: Vec::new(),
            api_keys: Vec::new(),
            oauth_clients: Vec::new(),
            systems: Vec::new(),
            aliases: Vec::new(),
            secrets_safe: SecretsSafeSeed::default(),
        }
    }
}

/// Alternative response shapes (see CONTRACT.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compat {
    /// `POST Requests` answers `{"RequestID": 124}` (the guide's shape) instead of the bare `124`.
    #[serde(default)]
    pub request_id_as_object: bool,
    /// `GET ManagedAccounts?systemName=&accountName=` answers an array of one instead of one object.
    #[serde(default)]
    pub single_account_as_array: bool,
    /// `GET Secrets-Safe/Secrets` answers `{"TotalCount", "Data"}` on every version, not only on v3.2.
    #[serde(default)]
    pub paged_secrets: bool,
}

/// A BeyondInsight user that API keys and OAuth clients act as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSeed {
    pub name: String,
    /// Assigned in seed order from 1 when omitted.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Checked against `pwd=[...]` when the API key has `requirePassword`.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
    /// Display name (`Name` in the sign-in answer); defaults to `name`.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// An API registration key (`PS-Auth key=...; runas=...;`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySeed {
    pub key: String,
    /// User names allowed as `runas` with this key.
    pub run_as: Vec<String>,
    /// The registration demands the user's password as `pwd=[...]`.
    #[serde(default)]
    pub require_password: bool,
}

/// An OAuth client (client-credentials grant) bound to an application user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthClientSeed {
    pub client_id: String,
    pub client_secret: String,
    /// The user the client's sessions act as.
    pub user: String,
    #[serde(default = "defaults::token_lifetime_seconds")]
    pub token_lifetime_seconds: u64,
}

/// A managed system and its managed accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemSeed {
    pub name: String,
    /// Assigned from 1 when omitted (skipping ids used elsewhere in the seed).
    #[serde(default)]
    pub id: Option<i64>,
    /// `PlatformID` in listings (4 is Linux/SSH, 1 Windows, ...). Informational only.
    #[serde(default = "defaults::platform_id")]
    pub platform_id: i64,
    /// `DomainName` of every account of this system (null when omitted).
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default)]
    pub accounts: Vec<AccountSeed>,
}

/// A managed account: its credentials, schedule and the policy around requesting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSeed {
    pub name: String,
    /// Unique across all systems; assigned from 1 when omitted.
    #[serde(default)]
    pub id: Option<i64>,
    pub password: String,
    /// Private key returned for `type=dsskey`.
    #[serde(default)]
    pub dss_key: Option<String>,
    /// Key passphrase returned for `type=passphrase`.
    #[serde(default)]
    pub passphrase: Option<String>,
    /// ISA account: credentials through `POST ISARequests` only (`POST Requests` answers 403 4031).
    #[serde(default)]
    pub isa_access: bool,
    /// Rotate once a release ends (check-in or expiry) when the request's `RotateOnCheckin` allows it.
    #[serde(default)]
    pub change_password_after_any_release: bool,
    /// Scheduled rotation: `NextChangeDate = LastChangeDate + interval`. No schedule (null
    /// `NextChangeDate`) when omitted.
    #[serde(default)]
    pub rotation_interval_seconds: Option<u64>,
    /// How long a change lasts (`IsChanging: true`, `ChangeState: 1`) before the new password is in place.
    #[serde(default)]
    pub change_duration_seconds: u64,
    /// `LastChangeDate` at start (RFC 3339, or zone-less and taken as UTC). Defaults to the start time.
    #[serde(default)]
    pub last_change_date: Option<String>,
    /// Minutes; informational (`DefaultReleaseDuration` in listings).
    #[serde(default = "defaults::default_release_duration")]
    pub default_release_duration: u32,
    /// Minutes; `POST Requests` with a longer `DurationMinutes` answers 400.
    #[serde(default = "defaults::maximum_release_duration")]
    pub maximum_release_duration: u32,
    /// Minutes; duration of an ISA release when the call gives none.
    #[serde(default = "defaults::isa_release_duration")]
    pub isa_release_duration: u32,
    /// Open (pending or approved) requests allowed at once on this account, across users; one more
    /// answers 409. 0 means unlimited. Defaults to 1, the product's default.
    #[serde(default = "defaults::max_concurrent_requests")]
    pub max_concurrent_requests: u32,
    /// Users without permission on this account: hidden from listings, requests answer 403 4031.
    #[serde(default)]
    pub denied_users: Vec<String>,
    /// Requests answer 403 4033 (only approvers may access the account).
    #[serde(default)]
    pub approver_only: bool,
    /// Requests are created pending; credentials answer 403 4034 until approved (admin API or
    /// `Handle::approve_request`).
    #[serde(default)]
    pub requires_approval: bool,
    /// Approval is required but no approver is configured: requests answer 403 4035.
    #[serde(default)]
    pub not_enough_approvers: bool,
    /// "Enable for API Access". When false the account is not listed and requests answer 403 4031.
    #[serde(default = "defaults::yes")]
    pub api_enabled: bool,
}

impl AccountSeed {
    /// An account with every optional field at its default.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        AccountSeed {
            name: name.into(),
            id: None,
            password: password.into(),
            dss_key: None,
            passphrase: None,
            isa_access: false,
            change_password_after_any_release: false,
            rotation_interval_seconds: None,
            change_duration_seconds: 0,
            last_change_date: None,
            default_release_duration: defaults::default_release_duration(),
            maximum_release_duration: defaults::maximum_release_duration(),
            isa_release_duration: defaults::isa_release_duration(),
            max_concurrent_requests: defaults::max_concurrent_requests(),
            denied_users: Vec::new(),
            approver_only: false,
            requires_approval: false,
            not_enough_approvers: false,
            api_enabled: true,
        }
    }
}

/// A managed account alias pointing at one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AliasSeed {
    pub name: String,
    #[serde(default)]
    pub id: Option<i64>,
    pub system: String,
    pub account: String,
    /// 0 unmapped, 1 mapped, 2 highly available. Only 1 and 2 can be requested.
    #[serde(default = "defaults::alias_state")]
    pub state: u8,
}

/// Secrets Safe content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretsSafeSeed {
    #[serde(default)]
    pub folders: Vec<FolderSeed>,
}

/// A Secrets Safe folder; parents of nested paths are created implicitly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FolderSeed {
    /// Full path with `/` between levels, e.g. `prod/db`.
    pub path: String,
    /// GUID; derived deterministically from the seed when omitted.
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
}

/// The three Secrets Safe secret types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    #[default]
    Credential,
    Text,
    File,
}

/// A Secrets Safe secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSeed {
    pub title: String,
    #[serde(default, rename = "type")]
    pub kind: SecretKind,
    /// GUID; derived deterministically from the seed when omitted.
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    /// File content as UTF-8 text.
    #[serde(default)]
    pub content: Option<String>,
    /// File content as standard base64 (for binary files).
    #[serde(default)]
    pub content_base64: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl SecretSeed {
    fn empty(title: String, kind: SecretKind) -> Self {
        SecretSeed {
            title,
            kind,
            id: None,
            username: None,
            password: None,
            text: None,
            file_name: None,
            content: None,
            content_base64: None,
            notes: None,
            description: None,
        }
    }

    /// A credential secret.
    pub fn credential(title: impl Into<String>, username: impl Into<String>, password: impl Into<String>) -> Self {
        SecretSeed {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::empty(title.into(), SecretKind::Credential)
        }
    }

    /// A text secret.
    pub fn text(title: impl Into<String>, text: impl Into<String>) -> Self {
        SecretSeed { text: Some(text.into()), ..Self::empty(title.into(), SecretKind::Text) }
    }

    /// A file secret with UTF-8 content.
    pub fn file(title: impl Into<String>, file_name: impl Into<String>, content: impl Into<String>) -> Self {
        SecretSeed {
            file_name: Some(file_name.into()),
            content: Some(content.into()),
            ..Self::empty(title.into(), SecretKind::File)
        }
    }
}

/// The demo seed (`seeds/demo.yaml`), compiled into the binary as its default.
pub const DEMO_SEED_YAML: &str = include_str!("../seeds/demo.yaml");

impl Seed {
    /// Reads and validates a YAML or JSON seed file.
    pub fn from_path(path: impl AsRef<Path>) -> anyhow::Result<Seed> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading seed {}", path.display()))?;
        Self::from_yaml_str(&text).with_context(|| format!("in seed {}", path.display()))
    }

    /// Parses and validates a YAML (or JSON) seed.
    pub fn from_yaml_str(text: &str) -> anyhow::Result<Seed> {
        let seed: Seed = serde_yaml::from_str(text).context("parsing seed")?;
        seed.validate()?;
        Ok(seed)
    }

    /// The built-in demo seed.
    pub fn demo() -> Seed {
        // The demo seed is compiled in and covered by a unit test; it cannot fail at run time.
        Self::from_yaml_str(DEMO_SEED_YAML).expect("the built-in demo seed is valid")
    }

    /// Checks references (users, systems, accounts), uniqueness and ranges; the same checks `start` runs.
    pub fn validate(&self) -> anyhow::Result<()> {
        crate::state::State::from_seed(self, jiff::Timestamp::now()).map(drop)
    }

    /// A large seed for benchmarks; see [`GeneratedSeed`].
    pub fn generated(accounts: usize) -> Seed {
        GeneratedSeed { accounts, ..GeneratedSeed::default() }.build()
    }
}

/// Recipe for a large, regular seed (benchmarks, load tests).
///
/// Produces one user `bench` (API key `bench-key`, OAuth client `bench-client`/`bench-secret`), systems
/// `sys-0000`, `sys-0001`, ... holding `accounts_per_system` accounts each, accounts named `acct-00000`,
/// `acct-00001`, ... (account id = index + 1, system id = system index + 1), every `isa_every`-th account an
/// ISA account, and `secrets` Secrets Safe secrets `secret-00000`, ... in folders `bench/f000`, ... cycling
/// credential, text and file types.
#[derive(Debug, Clone)]
pub struct GeneratedSeed {
    pub accounts: usize,
    /// At least 1.
    pub accounts_per_system: usize,
    /// Every n-th account (index % n == n - 1) is an ISA account; 0 for none.
    pub isa_every: usize,
    pub secrets: usize,
    /// At least 1.
    pub secrets_per_folder: usize,
    pub rotation_interval_seconds: Option<u64>,
    pub change_duration_seconds: u64,
    pub change_password_after_any_release: bool,
    /// 0 (unlimited) by default so that concurrent benchmark clients never collide on 409.
    pub max_concurrent_requests: u32,
}

impl Default for GeneratedSeed {
    fn default() -> Self {
        GeneratedSeed {
            accounts: 1000,
            accounts_per_system: 100,
            isa_every: 10,
            secrets: 100,
            secrets_per_folder: 100,
            rotation_interval_seconds: None,
            change_duration_seconds: 0,
            change_password_after_any_release: false,
            max_concurrent_requests: 0,
        }
    }
}

impl GeneratedSeed {
    /// Builds the seed described by this recipe.
    pub fn build(&self) -> Seed {
        Seed {
            users: vec![UserSeed {
                name: "bench".into(),
                user_id: Some(1),
                password: None,
                email_address: Some("bench@example.test".into()),
                display_name: Some("Benchmark".into()),
            }],
            api_keys: vec![ApiKeySeed {
                key: "bench-key".into(),
                run_as: vec!["bench".into()],
                require_password: false,
            }],
            oauth_clients: vec![OAuthClientSeed {
                client_id: "bench-client".into(),
                client_secret: "bench-secret".into(),
                user: "bench".into(),
                token_lifetime_seconds: defaults::token_lifetime_seconds(),
            }],
            systems: self.systems(),
            secrets_safe: SecretsSafeSeed { folders: self.folders() },
            ..Seed::default()
        }
    }

    fn systems(&self) -> Vec<SystemSeed> {
        let per_system = self.accounts_per_system.max(1);
        let mut systems: Vec<SystemSeed> = Vec::new();
        for index in 0..self.accounts {
            let system_index = index / per_system;
            if systems.len() <= system_index {
                systems.push(SystemSeed {
                    name: format!("sys-{system_index:04}"),
                    id: Some(system_index as i64 + 1),
                    platform_id: defaults::platform_id(),
                    domain_name: None,
                    accounts: Vec::with_capacity(per_system),
                });
            }
            let mut account = AccountSeed::new(format!("acct-{index:05}"), format!("initial-password-{index:05}"));
            account.id = Some(index as i64 + 1);
            account.isa_access = self.isa_every > 0 && index % self.isa_every == self.isa_every - 1;
            account.rotation_interval_seconds = self.rotation_interval_seconds;
            account.change_duration_seconds = self.change_duration_seconds;
            account.change_password_after_any_release = self.change_password_after_any_release;
            account.max_concurrent_requests = self.max_concurrent_requests;
            systems[system_index].accounts.push(account);
        }
        systems
    }

    fn folders(&self) -> Vec<FolderSeed> {
        let per_folder = self.secrets_per_folder.max(1);
        let mut folders: Vec<FolderSeed> = Vec::new();
        for index in 0..self.secrets {
            let folder_index = index / per_folder;
            if folders.len() <= folder_index {
                folders.push(FolderSeed {
                    path: format!("bench/f{folder_index:03}"),
                    id: None,
                    description: None,
                    secrets: Vec::with_capacity(per_folder),
                });
            }
            let title = format!("secret-{index:05}");
            let secret = match index % 3 {
                0 => SecretSeed::credential(title, format!("user-{index:05}"), format!("secret-password-{index:05}")),
                1 => SecretSeed::text(title, format!("text value {index:05}")),
                _ => SecretSeed::file(title, format!("file-{index:05}.txt"), format!("file content {index:05}\n")),
            };
            folders[folder_index].secrets.push(secret);
        }
        folders
    }
}

/// Default values of seed fields (serde needs functions).
pub(crate) mod defaults {
    pub fn session_idle_timeout_seconds() -> u64 {
        1200
    }
    pub fn token_lifetime_seconds() -> u64 {
        600
    }
    pub fn platform_id() -> i64 {
        4
    }
    pub fn default_release_duration() -> u32 {
        120
    }
    pub fn maximum_release_duration() -> u32 {
        525_600
    }
    pub fn isa_release_duration() -> u32 {
        120
    }
    pub fn max_concurrent_requests() -> u32 {
        1
    }
    pub fn alias_state() -> u8 {
        1
    }
    pub fn yes() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_parses_and_validates() {
        let seed = Seed::from_yaml_str(DEMO_SEED_YAML).expect("demo seed");
        assert!(!seed.systems.is_empty());
        assert!(!seed.secrets_safe.folders.is_empty());
    }

    #[test]
    fn minimal_seed_parses_and_validates() {
        Seed::from_yaml_str(include_str!("../seeds/minimal.yaml")).expect("minimal seed");
    }

    #[test]
    fn json_seeds_are_accepted() {
        let seed = Seed::from_yaml_str(
            r#"{"users":[{"name":"u"}],"apiKeys":[{"key":"k","runAs":["u"]}],
                "systems":[{"name":"s","accounts":[{"name":"a","password":"p"}]}]}"#,
        )
        .unwrap();
        assert_eq!(seed.systems[0].accounts[0].max_concurrent_requests, 1);
        assert!(seed.systems[0].accounts[0].api_enabled);
    }

    #[test]
    fn unknown_fields_and_dangling_references_are_rejected() {
        assert!(Seed::from_yaml_str("users: [{name: u, pasword: x}]").is_err());
        assert!(Seed::from_yaml_str("apiKeys: [{key: k, runAs: [nobody]}]").is_err());
        assert!(Seed::from_yaml_str("aliases: [{name: a, system: s, account: x}]").is_err());
    }

    #[test]
    fn generated_seed_has_requested_shape() {
        let seed =
            GeneratedSeed { accounts: 250, secrets: 7, secrets_per_folder: 3, ..GeneratedSeed::default() }.build();
        seed.validate().unwrap();
        assert_eq!(seed.systems.len(), 3);
        let accounts: Vec<_> = seed.systems.iter().flat_map(|s| &s.accounts).collect();
        assert_eq!(accounts.len(), 250);
        assert_eq!(accounts.iter().filter(|a| a.isa_access).count(), 25);
        assert_eq!(seed.secrets_safe.folders.len(), 3);
    }
}
