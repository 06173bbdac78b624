//! Turning a seed into a running state, with every reference and range checked.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use jiff::Timestamp;
use rand::{RngCore, SeedableRng, rngs::StdRng};

use super::{Account, Alias, ApiKey, EventKind, Folder, OAuthClient, Secret, State, System, User, generators, secs};
use crate::clock::parse_date;
use crate::seed::{AccountSeed, FolderSeed, SecretKind, SecretSeed, Seed};

/// Largest release duration the API accepts, in minutes (one year).
pub(crate) const MAX_DURATION_MINUTES: u32 = 525_600;

impl State {
    /// Builds the state for `seed`, starting the simulated clock at `start`.
    pub fn from_seed(seed: &Seed, start: Timestamp) -> anyhow::Result<State> {
        let (fault_rng, rng) = generators(seed.fault_seed);
        let mut state = State {
            idle_timeout: super::secs(seed.session_idle_timeout_seconds),
            compat: seed.compat.clone(),
            offset: jiff::SignedDuration::ZERO,
            users: build_users(seed)?,
            api_keys: HashMap::new(),
            oauth_clients: HashMap::new(),
            systems: Vec::new(),
            accounts: Vec::new(),
            account_by_name: HashMap::new(),
            account_by_id: HashMap::new(),
            aliases: Vec::new(),
            folders: Vec::new(),
            folder_by_path: HashMap::new(),
            secrets: Vec::new(),
            secret_by_id: HashMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            requests: HashMap::new(),
            open_by_account: HashMap::new(),
            next_request_id: 1,
            isa_releases: HashMap::new(),
            next_isa_id: 1,
            events: Default::default(),
            next_event_seq: 0,
            counters: Default::default(),
            faults: Vec::new(),
            fault_rng,
            rng,
        };
        ensure!(seed.session_idle_timeout_seconds > 0, "sessionIdleTimeoutSeconds must be positive");
        state.add_api_keys(seed)?;
        state.add_oauth_clients(seed)?;
        state.add_systems(seed, start)?;
        state.add_aliases(seed)?;
        state.add_secrets_safe(seed, start)?;
        state.schedule_rotations();
        Ok(state)
    }

    fn user_by_name(&self, name: &str, what: &str) -> anyhow::Result<usize> {
        self.user_index(name).with_context(|| format!("{what} names unknown user {name:?}"))
    }

    fn add_api_keys(&mut self, seed: &Seed) -> anyhow::Result<()> {
        for key in &seed.api_keys {
            ensure!(!key.key.trim().is_empty(), "an API key is empty");
            let what = format!("API key {}...", key.key.chars().take(6).collect::<String>());
            let run_as =
                key.run_as.iter().map(|name| self.user_by_name(name, &what)).collect::<anyhow::Result<HashSet<_>>>()?;
            let entry = ApiKey { run_as, require_password: key.require_password };
            ensure!(self.api_keys.insert(key.key.clone(), entry).is_none(), "{what} is listed twice");
        }
        Ok(())
    }

    fn add_oauth_clients(&mut self, seed: &Seed) -> anyhow::Result<()> {
        for client in &seed.oauth_clients {
            let what = format!("OAuth client {:?}", client.client_id);
            ensure!(client.token_lifetime_seconds > 0, "{what}: tokenLifetimeSeconds must be positive");
            let entry = OAuthClient {
                secret: client.client_secret.clone(),
                user: self.user_by_name(&client.user, &what)?,
                lifetime: secs(client.token_lifetime_seconds),
            };
            ensure!(self.oauth_clients.insert(client.client_id.clone(), entry).is_none(), "{what} is listed twice");
        }
        Ok(())
    }

    fn add_systems(&mut self, seed: &Seed, start: Timestamp) -> anyhow::Result<()> {
        let mut system_ids = IdAllocator::new(seed.systems.iter().map(|s| s.id), "system")?;
        let mut account_ids =
            IdAllocator::new(seed.systems.iter().flat_map(|s| s.accounts.iter().map(|a| a.id)), "managed account")?;
        let mut system_names = HashSet::new();
        for system_seed in &seed.systems {
            ensure!(!system_seed.name.trim().is_empty(), "a system has an empty name");
            ensure!(
                system_names.insert(system_seed.name.to_lowercase()),
                "system {:?} is listed twice",
                system_seed.name
            );
            let system = self.systems.len();
            self.systems.push(System {
                id: system_ids.take(system_seed.id),
                name: system_seed.name.clone(),
                platform_id: system_seed.platform_id,
                domain_name: system_seed.domain_name.clone(),
            });
            for account_seed in &system_seed.accounts {
                let what = format!("account {}/{}", system_seed.name, account_seed.name);
                let account = self
                    .build_account(system, account_ids.take(account_seed.id), account_seed, start)
                    .with_context(|| what.clone())?;
                self.accounts.push(account);
            }
        }
        self.accounts.sort_by_key(|a| a.id);
        for (index, account) in self.accounts.iter().enumerate() {
            let key = (self.systems[account.system].name.to_lowercase(), account.name.to_lowercase());
            ensure!(
                self.account_by_name.insert(key, index).is_none(),
                "account {}/{} is listed twice",
                self.systems[account.system].name,
                account.name
            );
            self.account_by_id.insert(account.id, index);
        }
        Ok(())
    }

    fn build_account(&self, system: usize, id: i64, seed: &AccountSeed, start: Timestamp) -> anyhow::Result<Account> {
        ensure!(!seed.name.trim().is_empty(), "empty account name");
        for (field, minutes) in [
            ("defaultReleaseDuration", seed.default_release_duration),
            ("maximumReleaseDuration", seed.maximum_release_duration),
            ("isaReleaseDuration", seed.isa_release_duration),
        ] {
            ensure!(
                (1..=MAX_DURATION_MINUTES).contains(&minutes),
                "{field} must be 1..={MAX_DURATION_MINUTES} minutes, not {minutes}"
            );
        }
        ensure!(seed.rotation_interval_seconds != Some(0), "rotationIntervalSeconds must be positive");
        let denied = seed
            .denied_users
            .iter()
            .map(|name| self.user_by_name(name, "deniedUsers"))
            .collect::<anyhow::Result<HashSet<_>>>()?;
        let last_change = match &seed.last_change_date {
            Some(text) => parse_date(text).context("lastChangeDate")?,
            None => start,
        };
        let interval = seed.rotation_interval_seconds.map(secs);
        Ok(Account {
            id,
            system,
            name: seed.name.clone(),
            password: seed.password.clone(),
            dss_key: seed.dss_key.clone(),
            passphrase: seed.passphrase.clone(),
            isa_access: seed.isa_access,
            change_after_release: seed.change_password_after_any_release,
            interval,
            change_duration: secs(seed.change_duration_seconds),
            default_release: seed.default_release_duration,
            max_release: seed.maximum_release_duration,
            isa_release: seed.isa_release_duration,
            max_concurrent: seed.max_concurrent_requests,
            denied,
            approver_only: seed.approver_only,
            requires_approval: seed.requires_approval,
            not_enough_approvers: seed.not_enough_approvers,
            api_enabled: seed.api_enabled,
            last_change,
            next_change: interval.map(|i| crate::clock::plus(last_change, i)),
            changing_until: None,
            generation: 0,
            rotations: 0,
        })
    }

    fn add_aliases(&mut self, seed: &Seed) -> anyhow::Result<()> {
        let mut ids = IdAllocator::new(seed.aliases.iter().map(|a| a.id), "alias")?;
        let mut names = HashSet::new();
        for alias in &seed.aliases {
            ensure!(names.insert(alias.name.to_lowercase()), "alias {:?} is listed twice", alias.name);
            ensure!(alias.state <= 2, "alias {:?}: state must be 0, 1 or 2", alias.name);
            let account = self.find_account(&alias.system, &alias.account).with_context(|| {
                format!("alias {:?} names unknown account {}/{}", alias.name, alias.system, alias.account)
            })?;
            self.aliases.push(Alias { id: ids.take(alias.id), name: alias.name.clone(), state: alias.state, account });
        }
        self.aliases.sort_by_key(|a| a.id);
        Ok(())
    }

    fn add_secrets_safe(&mut self, seed: &Seed, start: Timestamp) -> anyhow::Result<()> {
        let mut defined = HashSet::new();
        for folder_seed in &seed.secrets_safe.folders {
            let path = normalize_folder_path(&folder_seed.path)?;
            ensure!(defined.insert(path.to_lowercase()), "folder {path:?} is listed twice");
            let folder = self.ensure_folder(&path, folder_seed)?;
            let mut titles = HashSet::new();
            for secret_seed in &folder_seed.secrets {
                ensure!(
                    titles.insert(secret_seed.title.to_lowercase()),
                    "folder {path:?}: title {:?} already exists",
                    secret_seed.title
                );
                let secret = build_secret(folder, &path, secret_seed, start)
                    .with_context(|| format!("secret {path}/{}", secret_seed.title))?;
                self.secrets.push(secret);
            }
        }
        let folders = &self.folders;
        self.secrets.sort_by(|a, b| {
            (folders[a.folder].path.to_lowercase(), a.title.to_lowercase())
                .cmp(&(folders[b.folder].path.to_lowercase(), b.title.to_lowercase()))
        });
        for (index, secret) in self.secrets.iter().enumerate() {
            ensure!(self.secret_by_id.insert(secret.id, index).is_none(), "secret id {} is used twice", secret.id);
        }
        let mut folder_ids = HashSet::new();
        for folder in &self.folders {
            ensure!(folder_ids.insert(folder.id), "folder id {} is used twice", folder.id);
        }
        Ok(())
    }

    /// Returns the folder for `path`, creating it and any missing parents. A parent created implicitly gets
    /// its seed settings if the seed lists it later.
    fn ensure_folder(&mut self, path: &str, seed: &FolderSeed) -> anyhow::Result<usize> {
        let mut parent = None;
        let mut current = String::new();
        let levels: Vec<&str> = path.split('/').collect();
        for (depth, level) in levels.iter().enumerate() {
            if !current.is_empty() {
                current.push('/');
            }
            current.push_str(level);
            let is_target = depth + 1 == levels.len();
            let index = match self.folder_by_path.get(&current.to_lowercase()) {
                Some(index) => *index,
                None => {
                    self.folders.push(Folder {
                        id: derived_uuid(&format!("folder:{}", current.to_lowercase())),
                        name: level.to_string(),
                        path: current.clone(),
                        description: None,
                        parent,
                    });
                    self.folder_by_path.insert(current.to_lowercase(), self.folders.len() - 1);
                    self.folders.len() - 1
                }
            };
            if is_target {
                let folder = &mut self.folders[index];
                if let Some(id) = seed.id {
                    folder.id = id;
                }
                folder.description = seed.description.clone();
            }
            parent = Some(index);
        }
        parent.context("empty folder path")
    }

    /// Puts the seed's rotation schedules on the event queue.
    fn schedule_rotations(&mut self) {
        for index in 0..self.accounts.len() {
            if let Some(next) = self.accounts[index].next_change {
                let generation = self.accounts[index].generation;
                self.schedule(next, EventKind::RotationDue { account: index, generation });
            }
        }
    }
}

fn build_users(seed: &Seed) -> anyhow::Result<Vec<User>> {
    let mut ids = IdAllocator::new(seed.users.iter().map(|u| u.user_id), "user")?;
    let mut names = HashSet::new();
    let mut users = Vec::with_capacity(seed.users.len());
    for user in &seed.users {
        ensure!(!user.name.trim().is_empty(), "a user has an empty name");
        ensure!(names.insert(user.name.to_lowercase()), "user {:?} is listed twice", user.name);
        users.push(User {
            id: ids.take(user.user_id),
            name: user.name.clone(),
            password: user.password.clone(),
            email: user.email_address.clone(),
            display_name: user.display_name.clone().unwrap_or_else(|| user.name.clone()),
        });
    }
    Ok(users)
}

fn build_secret(folder: usize, path: &str, seed: &SecretSeed, start: Timestamp) -> anyhow::Result<Secret> {
    ensure!(!seed.title.trim().is_empty(), "empty title");
    ensure!(seed.title.chars().count() <= 256, "titles are at most 256 characters");
    let content = match seed.kind {
        SecretKind::File => file_content(seed)?,
        _ => {
            ensure!(seed.content.is_none() && seed.content_base64.is_none(), "content is only for file secrets");
            bytes::Bytes::new()
        }
    };
    let (username, password, text) = match seed.kind {
        SecretKind::Credential => (seed.username.clone(), Some(seed.password.clone().unwrap_or_default()), None),
        SecretKind::Text => (None, None, Some(seed.text.clone().unwrap_or_default())),
        SecretKind::File => (None, None, None),
    };
    let id_source = format!("secret:{}\n{}", path.to_lowercase(), seed.title.to_lowercase());
    Ok(Secret {
        id: seed.id.unwrap_or_else(|| derived_uuid(&id_source)),
        folder,
        title: seed.title.clone(),
        description: seed.description.clone(),
        kind: seed.kind,
        username,
        password,
        text,
        file_name: seed.file_name.clone(),
        file_hash: super::secrets::file_hash(&content),
        content,
        notes: seed.notes.clone(),
        created: start,
        modified: start,
    })
}

fn file_content(seed: &SecretSeed) -> anyhow::Result<bytes::Bytes> {
    ensure!(seed.file_name.as_deref().is_some_and(|n| !n.trim().is_empty()), "file secrets need a fileName");
    match (&seed.content, &seed.content_base64) {
        (Some(text), None) => Ok(bytes::Bytes::from(text.clone().into_bytes())),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map(bytes::Bytes::from)
            .context("contentBase64 is not valid base64"),
        (None, None) => bail!("file secrets need content or contentBase64"),
        (Some(_), Some(_)) => bail!("give content or contentBase64, not both"),
    }
}

/// `" prod / db/ "` -> `"prod/db"`; empty levels are an error.
pub(crate) fn normalize_folder_path(path: &str) -> anyhow::Result<String> {
    let levels: Vec<&str> = path.split('/').map(str::trim).collect();
    ensure!(levels.iter().all(|level| !level.is_empty()), "folder path {path:?} has an empty level");
    Ok(levels.join("/"))
}

/// A GUID derived from a name, so that seeds without explicit ids get the same ids on every start.
fn derived_uuid(name: &str) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    StdRng::seed_from_u64(fnv1a(name.as_bytes())).fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

/// Hands out explicit ids after checking them for duplicates, and fresh ids (from 1, skipping explicit ones)
/// for entries without one.
struct IdAllocator {
    used: HashSet<i64>,
    next: i64,
}

impl IdAllocator {
    fn new(explicit: impl Iterator<Item = Option<i64>>, what: &str) -> anyhow::Result<Self> {
        let mut used = HashSet::new();
        for id in explicit.flatten() {
            ensure!(id > 0, "{what} id {id} must be positive");
            ensure!(used.insert(id), "{what} id {id} is used twice");
        }
        Ok(IdAllocator { used, next: 1 })
    }

    fn take(&mut self, explicit: Option<i64>) -> i64 {
        if let Some(id) = explicit {
            return id;
        }
        while self.used.contains(&self.next) {
            self.next += 1;
        }
        self.used.insert(self.next);
        self.next
    }
}
