//! Release requests: `POST Requests`, `POST Aliases/{id}/Requests`, `POST ISARequests`, and check-in.
//!
//! Check-in coordination: with `ConflictOption=reuse`, two retrievals of the same account that overlap in
//! time get the same request ID from the server. If the first checked it in as soon as it was done, the
//! second's `GET Credentials` would fail with 404. So each account has a lease: every retrieval takes it
//! before opening a request and gives it back when done, and only the last one out checks in every request
//! opened under the lease.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use reqwest::Method;
use serde_json::json;

use super::client::Client;
use super::config::RequestOptions;
use super::error::{Error, Result};
use super::models::RequestIdBody;
use super::transport::Call;

/// (SystemId, AccountId).
pub(crate) type AccountKey = (i64, i64);

#[derive(Default)]
pub(crate) struct Leases {
    accounts: Mutex<HashMap<AccountKey, Lease>>,
}

#[derive(Default)]
struct Lease {
    holders: usize,
    requests: BTreeSet<i64>,
}

impl Leases {
    pub fn acquire(&self, account: AccountKey) {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner).entry(account).or_default().holders += 1;
    }

    /// Gives the lease back, recording the request this holder opened. Returns the requests to check in now:
    /// all of them when this was the last holder, none otherwise.
    pub fn release(&self, account: AccountKey, request: Option<i64>) -> Vec<i64> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lease) = accounts.get_mut(&account) else { return request.into_iter().collect() };
        lease.requests.extend(request);
        lease.holders = lease.holders.saturating_sub(1);
        if lease.holders > 0 {
            return Vec::new();
        }
        let done = accounts.remove(&account).map(|l| l.requests.into_iter().collect()).unwrap_or_default();
        done
    }
}

/// What a request is for: a managed account directly, or through an alias.
pub(crate) enum RequestTarget {
    Account { system_id: i64, account_id: i64 },
    Alias { alias_id: i64 },
}

impl Client {
    /// Opens (or, with `ConflictOption=reuse`, joins) a View request and returns its ID. Safe to repeat: a
    /// retried call returns the request the first attempt created.
    pub(crate) async fn create_request(
        &self,
        target: &RequestTarget,
        duration_minutes: u32,
        options: &RequestOptions,
    ) -> Result<i64> {
        let mut body = json!({
            "AccessType": "View",
            "DurationMinutes": duration_minutes,
            "Reason": options.reason,
            "ConflictOption": "reuse",
        });
        let (endpoint, path) = match target {
            RequestTarget::Account { system_id, account_id } => {
                body["SystemID"] = json!(system_id);
                body["AccountID"] = json!(account_id);
                ("POST Requests", "Requests".to_owned())
            }
            RequestTarget::Alias { alias_id } => ("POST Aliases/Requests", format!("Aliases/{alias_id}/Requests")),
        };
        // Only sent when asked: the server refuses the override unless the access policy allows it.
        if let Some(rotate) = options.rotate_on_checkin {
            body["RotateOnCheckin"] = json!(rotate);
        }
        let response = self.send(Call::new(endpoint, Method::POST, path).json(body)).await?;
        response.json::<RequestIdBody>()?.id().ok_or_else(|| Error::invalid(endpoint, "no request ID in the answer"))
    }

    /// `PUT Requests/{id}/Checkin`. A request that is already gone (checked in elsewhere or expired) counts as
    /// checked in.
    pub(crate) async fn check_in(&self, request_id: i64, reason: &str) -> Result<()> {
        let call = Call::new("PUT Requests/Checkin", Method::PUT, format!("Requests/{request_id}/Checkin"))
            .json(json!({ "Reason": reason }));
        match self.send(call).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => {
                tracing::debug!(request_id, "request already released or expired");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the account's lease back and checks in what the lease says is due. Returns false when a due
    /// check-in failed: the request then stays open until it expires.
    pub(crate) async fn release_account(
        &self,
        account: AccountKey,
        request: Option<i64>,
        options: &RequestOptions,
    ) -> bool {
        let due = self.inner.leases.release(account, request.filter(|_| !options.hold_until_expiry));
        let mut all_ok = true;
        for request_id in due {
            if let Err(e) = self.check_in(request_id, &options.reason).await {
                tracing::warn!(request_id, error = %e, "check-in failed; the request stays open until it expires");
                all_ok = false;
            }
        }
        all_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_holder_checks_in_and_it_checks_in_everything() {
        let leases = Leases::default();
        let account = (1, 2);
        leases.acquire(account);
        leases.acquire(account);
        assert!(leases.release(account, Some(7)).is_empty(), "another holder still reads the credential");
        assert_eq!(leases.release(account, Some(8)), vec![7, 8]);
        assert!(leases.release(account, None).is_empty());
    }

    #[test]
    fn a_release_without_a_lease_checks_in_its_own_request() {
        assert_eq!(Leases::default().release((1, 1), Some(3)), vec![3]);
    }
}
