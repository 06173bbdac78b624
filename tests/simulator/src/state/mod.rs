//! The simulated Password Safe instance: its directory, accounts, requests, sessions and Secrets Safe, plus
//! the simulated clock that drives expiry and rotation.
//!
//! Everything lives behind one mutex (see `server`). Time is applied lazily: every access first runs the
//! timed events that are due (a binary heap, so an access with nothing due costs one comparison), and a
//! background tick does the same so that time-driven changes also happen without calls.

mod auth;
mod build;
mod requests;
mod secrets;
mod views;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::clock::{plus, plus_secs, truncate_to_tick};
use crate::faults::FaultRule;
use crate::router::Endpoint;
use crate::seed::{Compat, SecretKind};

pub(crate) use auth::SESSION_COOKIE;
pub(crate) use requests::AccessType;

/// How long before `NextChangeDate` an account reports `ChangeState: 2` (queued), per the guide.
const QUEUED_WINDOW: SignedDuration = SignedDuration::from_mins(5);

/// Length of generated passwords; the brief asks for at least 24.
const GENERATED_PASSWORD_LEN: usize = 32;

/// Characters of generated passwords. No quote or backslash, so that a password pastes into a shell as is.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-.=?@^_~";

pub(crate) struct User {
    pub id: i64,
    pub name: String,
    pub password: Option<String>,
    pub email: Option<String>,
    pub display_name: String,
}

pub(crate) struct ApiKey {
    pub run_as: HashSet<usize>,
    pub require_password: bool,
}

pub(crate) struct OAuthClient {
    pub secret: String,
    pub user: usize,
    pub lifetime: SignedDuration,
}

pub(crate) struct System {
    pub id: i64,
    pub name: String,
    pub platform_id: i64,
    pub domain_name: Option<String>,
}

pub(crate) struct Account {
    pub id: i64,
    pub system: usize,
    pub name: String,
    pub password: String,
    pub dss_key: Option<String>,
    pub passphrase: Option<String>,
    pub isa_access: bool,
    pub change_after_release: bool,
    pub interval: Option<SignedDuration>,
    pub change_duration: SignedDuration,
    pub default_release: u32,
    pub max_release: u32,
    pub isa_release: u32,
    /// 0 = unlimited.
    pub max_concurrent: u32,
    pub denied: HashSet<usize>,
    pub approver_only: bool,
    pub requires_approval: bool,
    pub not_enough_approvers: bool,
    pub api_enabled: bool,
    pub last_change: Timestamp,
    pub next_change: Option<Timestamp>,
    /// Set while a change is in progress: the new password is in place at this time.
    pub changing_until: Option<Timestamp>,
    /// Bumped whenever the rotation schedule changes, so that stale timed events are ignored.
    pub generation: u64,
    pub rotations: u64,
}

impl Account {
    /// Whether `user` may see and request this account at all.
    pub fn visible_to(&self, user: usize) -> bool {
        self.api_enabled && !self.denied.contains(&user)
    }

    /// `(ChangeState, IsChanging)` at `now`: 1 while changing, 2 within five minutes of the next scheduled
    /// change, otherwise 0.
    pub fn change_state(&self, now: Timestamp) -> (i32, bool) {
        if self.changing_until.is_some() {
            return (1, true);
        }
        match self.next_change {
            Some(next) if now >= plus(next, -QUEUED_WINDOW) => (2, false),
            _ => (0, false),
        }
    }
}

pub(crate) struct Alias {
    pub id: i64,
    pub name: String,
    pub state: u8,
    pub account: usize,
}

pub(crate) struct Folder {
    pub id: uuid::Uuid,
    pub name: String,
    /// Full path with `/` separators, as in the seed.
    pub path: String,
    pub description: Option<String>,
    pub parent: Option<usize>,
}

pub(crate) struct Secret {
    pub id: uuid::Uuid,
    pub folder: usize,
    pub title: String,
    pub description: Option<String>,
    pub kind: SecretKind,
    pub username: Option<String>,
    pub password: Option<String>,
    pub text: Option<String>,
    pub file_name: Option<String>,
    pub content: bytes::Bytes,
    /// SHA-256 of `content` (hex), kept with it so listings do not hash.
    pub file_hash: String,
    pub notes: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
}

pub(crate) struct Session {
    pub user: usize,
    pub last_seen: Timestamp,
    /// OAuth sessions end with their access token.
    pub ends: Option<Timestamp>,
}

pub(crate) struct Token {
    pub user: usize,
    pub expires: Timestamp,
}

/// An open (pending or approved) release request. Closed requests are forgotten: every later use of their id
/// answers 404, as for an unknown id.
pub(crate) struct Request {
    pub id: i64,
    pub user: usize,
    pub account: usize,
    pub alias: Option<i64>,
    pub access_type: AccessType,
    pub reason: Option<String>,
    pub created: Timestamp,
    pub approved: Option<Timestamp>,
    pub expires: Timestamp,
    pub rotate_on_checkin: bool,
}

/// A credential release through `POST ISARequests`; the caller never sees an id for it.
pub(crate) struct IsaRelease {
    pub id: i64,
    pub user: usize,
    pub account: usize,
    pub expires: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    RequestExpiry(i64),
    IsaExpiry(i64),
    RotationDue { account: usize, generation: u64 },
    RotationDone { account: usize, generation: u64 },
}

/// A timed event; `seq` keeps events at the same instant in scheduling order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: Timestamp,
    seq: u64,
    kind: EventKind,
}

pub(crate) struct State {
    pub idle_timeout: SignedDuration,
    pub compat: Compat,
    /// Simulated time = wall clock + offset.
    offset: SignedDuration,

    pub users: Vec<User>,
    pub api_keys: HashMap<String, ApiKey>,
    pub oauth_clients: HashMap<String, OAuthClient>,
    pub systems: Vec<System>,
    /// Sorted by id, which is the order of every listing.
    pub accounts: Vec<Account>,
    /// (lower-case system name, lower-case account name) -> account.
    pub account_by_name: HashMap<(String, String), usize>,
    pub account_by_id: HashMap<i64, usize>,
    /// Sorted by id.
    pub aliases: Vec<Alias>,
    pub folders: Vec<Folder>,
    /// Lower-case folder path -> folder.
    pub folder_by_path: HashMap<String, usize>,
    /// Sorted by folder path, then title.
    pub secrets: Vec<Secret>,
    pub secret_by_id: HashMap<uuid::Uuid, usize>,

    pub sessions: HashMap<String, Session>,
    pub tokens: HashMap<String, Token>,
    pub requests: HashMap<i64, Request>,
    /// Account -> ids of its open requests (all users), for conflicts and concurrency limits.
    pub open_by_account: HashMap<usize, Vec<i64>>,
    next_request_id: i64,
    pub isa_releases: HashMap<i64, IsaRelease>,
    next_isa_id: i64,
    events: BinaryHeap<Reverse<Event>>,
    next_event_seq: u64,

    pub counters: [u64; Endpoint::ALL.len()],
    pub faults: Vec<FaultRule>,
    pub fault_rng: StdRng,
    rng: StdRng,
}

impl State {
    /// Simulated now, at the server's 100 ns precision.
    pub fn now(&self) -> Timestamp {
        truncate_to_tick(plus(Timestamp::now(), self.offset))
    }

    /// Moves simulated time forward and runs what became due.
    pub fn advance_clock(&mut self, by: SignedDuration) {
        self.offset = self.offset.saturating_add(by);
        let now = self.now();
        self.run_due(now);
    }

    pub fn clock_offset(&self) -> SignedDuration {
        self.offset
    }

    /// Runs due timed events and returns the simulated now they were run for. Every API call starts here.
    pub fn tick(&mut self) -> Timestamp {
        let now = self.now();
        self.run_due(now);
        now
    }

    /// The background tick: timed events, plus forgetting dead sessions and tokens (which lookups would
    /// otherwise only notice one by one).
    pub fn housekeeping(&mut self) {
        let now = self.tick();
        let idle = self.idle_timeout;
        self.sessions.retain(|_, s| Self::session_alive(s, idle, now));
        self.tokens.retain(|_, t| now < t.expires);
    }

    fn session_alive(session: &Session, idle: SignedDuration, now: Timestamp) -> bool {
        now < plus(session.last_seen, idle) && session.ends.is_none_or(|end| now < end)
    }

    pub fn active_sessions(&mut self) -> usize {
        let now = self.tick();
        let idle = self.idle_timeout;
        self.sessions.values().filter(|s| Self::session_alive(s, idle, now)).count()
    }

    fn schedule(&mut self, at: Timestamp, kind: EventKind) {
        let seq = self.next_event_seq;
        self.next_event_seq += 1;
        self.events.push(Reverse(Event { at, seq, kind }));
    }

    /// Runs every event due at `now`, each at its own scheduled instant, so that dates (LastChangeDate,
    /// rotation after expiry) come out as if the server had been running all along.
    fn run_due(&mut self, now: Timestamp) {
        while let Some(Reverse(event)) = self.events.peek().copied() {
            if event.at > now {
                break;
            }
            self.events.pop();
            self.run_event(event, now);
        }
    }

    fn run_event(&mut self, event: Event, now: Timestamp) {
        match event.kind {
            EventKind::RequestExpiry(id) => {
                if self.requests.get(&id).is_some_and(|r| r.expires <= event.at) {
                    self.close_request(id, event.at, true);
                }
            }
            EventKind::IsaExpiry(id) => {
                if let Some(release) = self.isa_releases.remove(&id)
                    && self.accounts[release.account].change_after_release
                {
                    self.start_change(release.account, event.at);
                }
            }
            EventKind::RotationDue { account, generation } => {
                if self.accounts[account].generation == generation {
                    self.scheduled_change_due(account, event.at, now);
                }
            }
            EventKind::RotationDone { account, generation } => {
                if self.accounts[account].generation == generation {
                    self.complete_change(account, event.at);
                }
            }
        }
    }

    /// A schedule missed by more than a whole cycle (the clock was advanced far, or the seed's
    /// `lastChangeDate` is long ago) changes once, now, like a server catching up after downtime; otherwise
    /// the change starts exactly at its scheduled time.
    fn scheduled_change_due(&mut self, account: usize, due: Timestamp, now: Timestamp) {
        let acct = &self.accounts[account];
        let cycle = acct.change_duration.saturating_add(acct.interval.unwrap_or_default());
        let start = if now.duration_since(due) >= cycle { now } else { due };
        self.start_change(account, start);
    }

    /// Starts a credential change at `at` (on demand, on schedule or after a release). A change already in
    /// progress absorbs the new one: it produces a fresh password anyway.
    pub fn start_change(&mut self, account: usize, at: Timestamp) {
        let acct = &mut self.accounts[account];
        if acct.changing_until.is_some() {
            return;
        }
        acct.generation += 1;
        if acct.change_duration.is_zero() {
            self.complete_change(account, at);
            return;
        }
        let done = plus(at, acct.change_duration);
        acct.changing_until = Some(done);
        let generation = acct.generation;
        self.schedule(done, EventKind::RotationDone { account, generation });
    }

    fn complete_change(&mut self, account: usize, at: Timestamp) {
        let password = self.generate_password();
        let acct = &mut self.accounts[account];
        acct.password = password;
        acct.rotations += 1;
        acct.last_change = at;
        acct.changing_until = None;
        acct.generation += 1;
        acct.next_change = acct.interval.map(|interval| plus(at, interval));
        if let Some(next) = acct.next_change {
            let generation = acct.generation;
            self.schedule(next, EventKind::RotationDue { account, generation });
        }
    }

    /// A fresh random password, different from every earlier one with overwhelming probability.
    fn generate_password(&mut self) -> String {
        (0..GENERATED_PASSWORD_LEN)
            .map(|_| PASSWORD_ALPHABET[self.rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
            .collect()
    }

    /// A random identifier of `len` characters from `alphabet` (session cookies, access tokens).
    fn random_id(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len).map(|_| alphabet[self.rng.random_range(0..alphabet.len())] as char).collect()
    }

    /// Ends an open request. `release_ended` is false when the request is replaced by a renewal for the same
    /// user, in which case the account stays released and is not rotated.
    fn close_request(&mut self, id: i64, at: Timestamp, release_ended: bool) {
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        if let Some(open) = self.open_by_account.get_mut(&request.account) {
            open.retain(|other| *other != id);
            if open.is_empty() {
                self.open_by_account.remove(&request.account);
            }
        }
        let rotates = release_ended
            && request.approved.is_some()
            && request.rotate_on_checkin
            && self.accounts[request.account].change_after_release;
        if rotates {
            self.start_change(request.account, at);
        }
    }

    pub fn find_account(&self, system: &str, account: &str) -> Option<usize> {
        self.account_by_name.get(&(system.to_lowercase(), account.to_lowercase())).copied()
    }

    pub fn user_index(&self, name: &str) -> Option<usize> {
        self.users.iter().position(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// Counts a call of `endpoint`.
    pub fn count(&mut self, endpoint: Endpoint) {
        self.counters[endpoint.index()] += 1;
    }
}

/// Names (users, systems, accounts, aliases, titles) compare case-insensitively, like on the server's
/// database collation.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// Random generators: faults are reproducible from the seed, generated values are not guessable.
fn generators(fault_seed: u64) -> (StdRng, StdRng) {
    (StdRng::seed_from_u64(fault_seed), StdRng::from_os_rng())
}

/// Seconds as a duration, saturating for absurd seed values.
fn secs(value: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(value).unwrap_or(i64::MAX))
}

/// `plus_secs` for minute counts (request durations).
fn plus_mins(ts: Timestamp, minutes: u32) -> Timestamp {
    plus_secs(ts, i64::from(minutes) * 60)
}
