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
use super::error::{ApiCode, Error, ErrorKind, Result};
use super::models::{RequestIdBody, RequestRecord};
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
        accounts.remove(&account).map(|l| l.requests.into_iter().collect()).unwrap_or_default()
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
    ///
    /// `reuse` joins only an *approved* request. When ours is still pending approval, or the server does not
    /// reuse, the answer is 409; we then look at our own requests (`GET Requests`) so the caller learns the
    /// real state: an approved View request of ours for the account is joined, a pending one is reported as
    /// "not yet approved" (4034) with its ID, anything else stays a conflict.
    pub(crate) async fn create_request(
        &self,
        target: &RequestTarget,
        account: AccountKey,
        duration_minutes: u32,
        options: &RequestOptions,
    ) -> Result<i64> {
        match self.post_request(target, duration_minutes, options).await {
            Err(e) if e.status() == Some(409) => self.explain_conflict(account, e).await,
            other => other,
        }
    }

    async fn explain_conflict(&self, (system_id, account_id): AccountKey, conflict: Error) -> Result<i64> {
        let Ok(response) = self.send(Call::new("GET Requests", Method::GET, "Requests").query("status", "all")).await
        else {
            return Err(conflict);
        };
        let Ok(requests) = response.json::<Vec<RequestRecord>>() else { return Err(conflict) };
        let ours: Vec<&RequestRecord> = requests
            .iter()
            .filter(|r| r.system_id == Some(system_id) && r.account_id == Some(account_id) && r.is_view())
            .collect();
        if let Some(approved) = ours.iter().find(|r| r.is_approved()) {
            tracing::debug!(request_id = approved.request_id, "joining our approved request after a 409");
            return Ok(approved.request_id);
        }
        if let Some(pending) = ours.first() {
            return Err(Error::new(
                conflict.operation,
                ErrorKind::Api {
                    status: 403,
                    code: Some(ApiCode::NotApproved),
                    message: format!("request {} is waiting for approval", pending.request_id),
                },
            ));
        }
        Err(conflict)
    }

    async fn post_request(
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
        let result = match self.send(call).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => {
                tracing::debug!(request_id, "request already released or expired");
                Ok(())
            }
            Err(e) => Err(e),
        };
        if result.is_ok() {
            self.inner.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&request_id);
            self.inner.transport.observer.on_request_closed(self.inner.id, request_id);
        }
        result
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
        if let Some(held) = request.filter(|_| options.hold_until_expiry) {
            // Held on purpose until it expires: not ours to check in at close.
            self.inner.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&held);
        }
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
