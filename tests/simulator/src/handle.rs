//! In-process control of a running simulator: the same powers as the admin API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::faults::FaultRule;
use crate::router::Endpoint;
use crate::state::State;

/// An open release request (or an ISA release) as tests see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenRequest {
    /// The id `POST Requests` answered. ISA releases get ids of their own sequence that the API never shows.
    pub request_id: i64,
    pub system_name: String,
    pub account_name: String,
    pub user: String,
    pub expires: Timestamp,
    pub rotate_on_checkin: bool,
    pub alias_id: Option<i64>,
}

/// Current values and change status of a managed account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountState {
    pub system_id: i64,
    pub account_id: i64,
    pub password: String,
    pub dss_key: Option<String>,
    pub passphrase: Option<String>,
    pub last_change_date: Timestamp,
    pub next_change_date: Option<Timestamp>,
    pub change_state: i32,
    pub is_changing: bool,
    /// Completed credential changes since start (scheduled, on demand and after releases).
    pub rotations: u64,
}

/// An [`AccountState`] with the names it belongs to (`GET /admin/accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub system_name: String,
    pub account_name: String,
    #[serde(flatten)]
    pub state: AccountState,
}

/// Changes to a Secrets Safe secret. Fields that do not apply to the secret's type are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretUpdate {
    pub username: Option<String>,
    pub password: Option<String>,
    pub text: Option<String>,
    pub file: Option<Vec<u8>>,
    pub notes: Option<String>,
}

/// The state shared by the server tasks and every [`Handle`].
pub(crate) struct Shared {
    state: Mutex<State>,
    /// API calls being served right now, and the most ever served at once (outside the state lock: the
    /// gauge must count calls that wait on latency faults or on the lock itself).
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    pub fn new(state: State) -> Self {
        Shared { state: Mutex::new(state), in_flight: AtomicUsize::new(0), max_in_flight: AtomicUsize::new(0) }
    }

    /// Marks an API call as in flight until the returned guard drops.
    pub fn enter_call(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// Locks the state. A panic while holding the lock cannot leave it half-updated in a way that matters
    /// more than losing the simulator, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Controls a running simulator from the test or benchmark that started it. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// Decrements the in-flight gauge on drop.
pub(crate) struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handle {
    /// The most API calls ever served at the same time (a client's concurrency limit shows here).
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets the high-water mark of [`Handle::max_in_flight`].
    pub fn reset_max_in_flight(&self) {
        self.shared.max_in_flight.store(self.shared.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Calls per endpoint name (every endpoint, 0 when never called).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let state = self.shared.lock();
        Endpoint::ALL.iter().map(|e| (e.name().to_string(), state.counters[e.index()])).collect()
    }

    /// Calls of one endpoint (names as in CONTRACT.md, case-insensitive); 0 for unknown names.
    pub fn call_count(&self, endpoint: &str) -> u64 {
        Endpoint::from_name(endpoint).map_or(0, |e| self.shared.lock().counters[e.index()])
    }

    pub fn reset_calls(&self) {
        self.shared.lock().counters = Default::default();
    }

    /// Requests that are neither checked in nor expired (pending ones included), by id.
    pub fn open_requests(&self) -> Vec<OpenRequest> {
        let mut state = self.shared.lock();
        state.tick();
        let mut open: Vec<OpenRequest> = state
            .requests
            .values()
            .map(|r| open_request(&state, r.id, r.account, r.user, r.expires, r.rotate_on_checkin, r.alias))
            .collect();
        open.sort_by_key(|r| r.request_id);
        open
    }

    /// ISA releases that have not expired yet.
    pub fn isa_releases(&self) -> Vec<OpenRequest> {
        let mut state = self.shared.lock();
        state.tick();
        let mut open: Vec<OpenRequest> = state
            .isa_releases
            .values()
            .map(|r| open_request(&state, r.id, r.account, r.user, r.expires, true, None))
            .collect();
        open.sort_by_key(|r| r.request_id);
        open
    }

    pub fn active_sessions(&self) -> usize {
        self.shared.lock().active_sessions()
    }

    /// Ends every session: each session cookie answers 401 from now on.
    pub fn expire_sessions(&self) {
        self.shared.lock().expire_sessions();
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        for rule in &rules {
            if rule.endpoint.trim() != "*" && Endpoint::from_name(&rule.endpoint).is_none() {
                tracing::warn!(endpoint = %rule.endpoint, "fault rule names no known endpoint; it will never apply");
            }
        }
        self.shared.lock().faults = rules;
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The fault rules with their remaining counts.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.lock().faults.clone()
    }

    /// Starts an on-demand credential change (it takes the account's `changeDurationSeconds`).
    pub fn rotate_account(&self, system: &str, account: &str) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let now = state.tick();
        let index =
            state.find_account(system, account).with_context(|| format!("no managed account {system}/{account}"))?;
        state.start_change(index, now);
        Ok(())
    }

    /// Current values and dates of an account.
    pub fn account(&self, system: &str, account: &str) -> Option<AccountState> {
        let mut state = self.shared.lock();
        let now = state.tick();
        let index = state.find_account(system, account)?;
        Some(account_state(&state, index, now))
    }

    /// Every account with its names, ordered by account id.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        let mut state = self.shared.lock();
        let now = state.tick();
        (0..state.accounts.len())
            .map(|index| AccountInfo {
                system_name: state.systems[state.accounts[index].system].name.clone(),
                account_name: state.accounts[index].name.clone(),
                state: account_state(&state, index, now),
            })
            .collect()
    }

    /// Changes a Secrets Safe secret (by folder path and title) and bumps its `ModifiedOn`.
    pub fn update_secret(&self, folder_path: &str, title: &str, update: SecretUpdate) -> anyhow::Result<()> {
        self.shared.lock().update_secret(folder_path, title, update)
    }

    /// Approves a pending request (accounts with `requiresApproval`).
    pub fn approve_request(&self, request_id: i64) -> anyhow::Result<()> {
        self.shared.lock().approve_request(request_id)
    }

    /// Moves simulated time forward and runs everything that became due (expiry, rotations).
    pub fn advance_clock(&self, by: Duration) {
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        self.shared.lock().advance_clock(by);
    }

    /// Simulated now.
    pub fn now(&self) -> Timestamp {
        self.shared.lock().now()
    }

    /// How far simulated time is ahead of the wall clock.
    pub fn clock_offset(&self) -> Duration {
        Duration::try_from(self.shared.lock().clock_offset()).unwrap_or_default()
    }
}

fn open_request(
    state: &State,
    request_id: i64,
    account: usize,
    user: usize,
    expires: Timestamp,
    rotate_on_checkin: bool,
    alias_id: Option<i64>,
) -> OpenRequest {
    let acct = &state.accounts[account];
    OpenRequest {
        request_id,
        system_name: state.systems[acct.system].name.clone(),
        account_name: acct.name.clone(),
        user: state.users[user].name.clone(),
        expires,
        rotate_on_checkin,
        alias_id,
    }
}

fn account_state(state: &State, index: usize, now: Timestamp) -> AccountState {
    let acct = &state.accounts[index];
    let (change_state, is_changing) = acct.change_state(now);
    AccountState {
        system_id: state.systems[acct.system].id,
        account_id: acct.id,
        password: acct.password.clone(),
        dss_key: acct.dss_key.clone(),
        passphrase: acct.passphrase.clone(),
        last_change_date: acct.last_change,
        next_change_date: acct.next_change,
        change_state,
        is_changing,
        rotations: acct.rotations,
    }
}
