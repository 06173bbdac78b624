//! The retrieval flows for managed accounts and aliases: request, read, check in.
//!
//! - Managed account: `GET ManagedAccounts?systemName&accountName`; an ISA account is read with one
//!   `POST ISARequests` per credential type; any other with `POST Requests` (View, ConflictOption=reuse) →
//!   `GET Credentials/{id}` per type → `PUT Requests/{id}/Checkin`.
//! - Alias: `GET Aliases?name` → `POST Aliases/{id}/Requests` → `GET Aliases/{id}/Credentials/{requestId}` →
//!   check-in.
//!
//! Once a request exists it is checked in on every path, failures included, unless the caller asked to hold
//! it until expiry. Concurrent retrievals of the same thing are coalesced into one cycle (see
//! `single_flight.rs`), and retrievals of the same account with different credential types share the
//! account's check-in lease (see `requests.rs`).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::client::Client;
use super::config::RequestOptions;
use super::credentials::CredentialType;
use super::error::{Error, ErrorKind, Result};
use super::models::{ManagedAccount, RotationInfo};
use super::requests::{AccountKey, RequestTarget};
use super::secret::SecretString;

/// Which credential types to read. At least one must be set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CredentialKinds {
    pub password: bool,
    pub dss_key: bool,
    pub passphrase: bool,
}

impl CredentialKinds {
    pub const PASSWORD: Self = Self { password: true, dss_key: false, passphrase: false };

    pub fn with(mut self, kind: CredentialType) -> Self {
        match kind {
            CredentialType::Password => self.password = true,
            CredentialType::DssKey => self.dss_key = true,
            CredentialType::Passphrase => self.passphrase = true,
        }
        self
    }

    fn types(self) -> impl Iterator<Item = CredentialType> {
        [
            (self.password, CredentialType::Password),
            (self.dss_key, CredentialType::DssKey),
            (self.passphrase, CredentialType::Passphrase),
        ]
        .into_iter()
        .filter_map(|(wanted, kind)| wanted.then_some(kind))
    }

    fn is_empty(self) -> bool {
        !(self.password || self.dss_key || self.passphrase)
    }
}

/// Where a credential came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    ManagedAccount,
    Alias { alias_id: i64, alias_name: String },
}

/// How the release behind a credential ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The request ID; `None` for ISA releases, whose ID the API does not return.
    pub request_id: Option<i64>,
    /// When the release expires on the server.
    pub expires_at: Timestamp,
    /// False when the release is still open: ISA releases and held requests always, a request whose
    /// check-in failed until it expires. The credential we read stays valid until then at least, and
    /// may rotate right after (ChangePasswordAfterAnyReleaseFlag).
    pub checked_in: bool,
}

/// A managed account's credentials and what Password Safe says about their rotation.
#[derive(Clone, Debug)]
pub struct AccountCredential {
    pub source: CredentialSource,
    pub system_id: i64,
    pub system_name: String,
    pub account_id: i64,
    pub account_name: String,
    pub domain_name: Option<String>,
    pub password: Option<SecretString>,
    pub dss_key: Option<SecretString>,
    pub passphrase: Option<SecretString>,
    pub rotation: RotationInfo,
    pub isa: bool,
    pub release: Release,
    pub retrieved_at: Timestamp,
}

impl AccountCredential {
    pub fn value(&self, kind: CredentialType) -> Option<&SecretString> {
        match kind {
            CredentialType::Password => self.password.as_ref(),
            CredentialType::DssKey => self.dss_key.as_ref(),
            CredentialType::Passphrase => self.passphrase.as_ref(),
        }
    }
}

/// What a coalesced retrieval is keyed by: two calls with equal keys share one cycle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RetrievalKey {
    Managed { system: String, account: String, kinds: CredentialKinds, options: RequestOptions },
    Alias { name: String, kinds: CredentialKinds, options: RequestOptions },
}

impl Client {
    /// The credentials of managed account `account` on `system`. Concurrent calls for the same account,
    /// types and options share one request cycle.
    pub async fn managed_account(
        &self,
        system: &str,
        account: &str,
        kinds: CredentialKinds,
        options: &RequestOptions,
    ) -> Result<Arc<AccountCredential>> {
        validate(kinds, options)?;
        let key = RetrievalKey::Managed {
            system: system.to_lowercase(),
            account: account.to_lowercase(),
            kinds,
            options: options.clone(),
        };
        let (client, system, account, options) = (self.clone(), system.to_owned(), account.to_owned(), options.clone());
        self.inner
            .retrievals
            .run(
                key,
                async move { client.managed_account_cycle(&system, &account, kinds, &options).await.map(Arc::new) },
            )
            .await
    }

    /// The credentials of the account that alias `name` maps to now.
    pub async fn alias(
        &self,
        name: &str,
        kinds: CredentialKinds,
        options: &RequestOptions,
    ) -> Result<Arc<AccountCredential>> {
        validate(kinds, options)?;
        let key = RetrievalKey::Alias { name: name.to_lowercase(), kinds, options: options.clone() };
        let (client, name, options) = (self.clone(), name.to_owned(), options.clone());
        self.inner
            .retrievals
            .run(key, async move { client.alias_cycle(&name, kinds, &options).await.map(Arc::new) })
            .await
    }

    async fn managed_account_cycle(
        &self,
        system: &str,
        account: &str,
        kinds: CredentialKinds,
        options: &RequestOptions,
    ) -> Result<AccountCredential> {
        let found = self.find_managed_account(system, account).await?;
        let duration = clamp_duration(options.duration_minutes, found.maximum_release_duration);
        let mut credential = AccountCredential {
            source: CredentialSource::ManagedAccount,
            system_id: found.system_id,
            system_name: found.system_name.clone(),
            account_id: found.account_id,
            account_name: found.account_name.clone(),
            domain_name: found.domain_name.clone(),
            password: None,
            dss_key: None,
            passphrase: None,
            rotation: found.rotation(),
            isa: found.is_isa_access,
            release: Release { request_id: None, expires_at: expiry(duration), checked_in: false },
            retrieved_at: Timestamp::now(),
        };
        if found.is_isa_access {
            for kind in kinds.types() {
                let value =
                    self.isa_request(found.system_id, found.account_id, duration, &options.reason, kind).await?;
                set_value(&mut credential, kind, value);
            }
            return Ok(credential);
        }
        let target = RequestTarget::Account { system_id: found.system_id, account_id: found.account_id };
        let reader = |request_id, kind| self.read_credential(request_id, kind);
        self.request_cycle(account_key(&found), &target, duration, kinds, options, &mut credential, reader).await?;
        Ok(credential)
    }

    async fn alias_cycle(
        &self,
        name: &str,
        kinds: CredentialKinds,
        options: &RequestOptions,
    ) -> Result<AccountCredential> {
        let alias = self.find_alias(name).await?;
        let duration = clamp_duration(options.duration_minutes, None);
        let mut credential = AccountCredential {
            source: CredentialSource::Alias { alias_id: alias.alias_id, alias_name: alias.alias_name.clone() },
            system_id: alias.system_id,
            system_name: alias.system_name.clone(),
            account_id: alias.account_id,
            account_name: alias.account_name.clone(),
            domain_name: alias.domain_name.clone(),
            password: None,
            dss_key: None,
            passphrase: None,
            rotation: alias.rotation(),
            isa: false,
            release: Release { request_id: None, expires_at: expiry(duration), checked_in: false },
            retrieved_at: Timestamp::now(),
        };
        let target = RequestTarget::Alias { alias_id: alias.alias_id };
        let alias_id = alias.alias_id;
        let reader = |request_id, kind| self.read_alias_credential(alias_id, request_id, kind);
        self.request_cycle(
            (alias.system_id, alias.account_id),
            &target,
            duration,
            kinds,
            options,
            &mut credential,
            reader,
        )
        .await?;
        Ok(credential)
    }

    /// Opens a request under the account's lease, reads every wanted type, and releases the lease (checking
    /// in) whatever happened in between.
    #[allow(clippy::too_many_arguments)]
    async fn request_cycle<R, F>(
        &self,
        account: AccountKey,
        target: &RequestTarget,
        duration: u32,
        kinds: CredentialKinds,
        options: &RequestOptions,
        credential: &mut AccountCredential,
        read: R,
    ) -> Result<()>
    where
        R: Fn(i64, CredentialType) -> F,
        F: Future<Output = Result<SecretString>>,
    {
        let _cycle = self.inner.cycles.read().await;
        if self.inner.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::new(
                "request",
                ErrorKind::Aborted("client closing: its store changed or the operator is stopping".into()),
            ));
        }
        self.inner.leases.acquire(account);
        let opened = self.create_request(target, account, duration, options).await;
        let mut outcome = opened.as_ref().map(|_| ()).map_err(Error::clone);
        if let Ok(request_id) = opened {
            let expires_in = std::time::Duration::from_secs(u64::from(duration) * 60);
            self.inner.transport.observer.on_request_opened(self.inner.id, request_id, expires_in);
            self.inner.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(request_id);
            credential.release.request_id = Some(request_id);
            for kind in kinds.types() {
                match read(request_id, kind).await {
                    Ok(value) => set_value(credential, kind, value),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
        }
        let checked_in = self.release_account(account, credential.release.request_id, options).await;
        credential.release.checked_in = checked_in && !options.hold_until_expiry;
        outcome
    }
}

fn validate(kinds: CredentialKinds, options: &RequestOptions) -> Result<()> {
    if kinds.is_empty() {
        return Err(Error::config("no credential type requested"));
    }
    options.validate()
}

fn account_key(account: &ManagedAccount) -> AccountKey {
    (account.system_id, account.account_id)
}

fn set_value(credential: &mut AccountCredential, kind: CredentialType, value: SecretString) {
    match kind {
        CredentialType::Password => credential.password = Some(value),
        CredentialType::DssKey => credential.dss_key = Some(value),
        CredentialType::Passphrase => credential.passphrase = Some(value),
    }
}

/// The account's MaximumReleaseDuration caps what we ask for (the server would refuse more).
fn clamp_duration(wanted: u32, maximum: Option<i64>) -> u32 {
    match maximum.and_then(|m| u32::try_from(m).ok()).filter(|m| *m > 0) {
        Some(max) => wanted.min(max),
        None => wanted,
    }
}

fn expiry(duration_minutes: u32) -> Timestamp {
    Timestamp::now() + SignedDuration::from_mins(i64::from(duration_minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_list_their_types_in_a_stable_order() {
        let kinds = CredentialKinds::default().with(CredentialType::Passphrase).with(CredentialType::Password);
        assert_eq!(kinds.types().collect::<Vec<_>>(), vec![CredentialType::Password, CredentialType::Passphrase]);
        assert!(CredentialKinds::default().is_empty());
    }

    #[test]
    fn durations_are_capped_by_the_account_maximum() {
        assert_eq!(clamp_duration(10, Some(5)), 5);
        assert_eq!(clamp_duration(10, Some(0)), 10);
        assert_eq!(clamp_duration(10, None), 10);
    }
}
