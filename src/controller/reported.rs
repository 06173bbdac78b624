//! What each resource's status says, as far as later reconciles read it, kept in memory so that the watch
//! cache can hold the resources without their statuses.
//!
//! Only the operator writes a PasswordSafeSecret's status, and what a reconcile reads from it (the Ready
//! condition and since when it holds, the announced next sync, what was synced) is what an earlier reconcile
//! wrote. Once this process has written a resource's status, a compact note of it is kept here and the watch
//! drops the status from its cached copy: at 10 000 resources the statuses were about a quarter of that
//! cache. The status in the cache is read only for resources this process has not written yet (after a
//! start, or a leader change), and for adopting a live Secret then.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};

use super::compact::{digest, uid_key};
use crate::api::{PasswordSafeSecretStatus, SourceStatus};

/// The status of one resource, reduced to what reconciles compare against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reported {
    pub ready: Option<ConditionNote>,
    pub rotation_loop: Option<ConditionNote>,
    pub observed_generation: Option<i64>,
    pub next_sync: Option<Timestamp>,
    /// A digest of `secretName` and `sources` (see [`synced_digest`]).
    pub synced: u64,
    /// A digest of `dataHmac` (see [`hmac_digest`]): only compared, so 8 bytes instead of 64 hex digits.
    pub data_hmac: Option<u64>,
    /// The last write of this status failed without the API server refusing it (the connection broke, or a
    /// 5xx): the server may hold it, or what it held before. Nothing is taken as already said until a write
    /// succeeds.
    pub in_doubt: bool,
}

/// One condition: its status, a digest of its reason and message, and its lastTransitionTime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConditionNote {
    pub is_true: bool,
    said: u64,
    pub since: Timestamp,
}

impl ConditionNote {
    fn of(condition: &Condition) -> Self {
        Self {
            is_true: condition.status == "True",
            said: digest(&(condition.reason.as_str(), condition.message.as_str())),
            since: condition.last_transition_time.0,
        }
    }

    /// Whether the condition says exactly this.
    pub fn says(&self, is_true: bool, reason: &str, message: &str) -> bool {
        self.is_true == is_true && self.said == digest(&(reason, message))
    }
}

impl Reported {
    /// A status as read from the API server.
    pub fn of(status: &PasswordSafeSecretStatus) -> Self {
        Self::default().after(status)
    }

    /// What the status says after a merge patch of `patch` onto the one this describes: the conditions are
    /// replaced (a JSON merge patch replaces lists), fields the patch leaves out stay as they were.
    pub fn after(&self, patch: &PasswordSafeSecretStatus) -> Self {
        let condition = |type_: &str| patch.conditions.iter().find(|c| c.type_ == type_).map(ConditionNote::of);
        let replaces_synced = patch.secret_name.is_some() || !patch.sources.is_empty();
        Self {
            ready: condition(super::reconcile::READY),
            rotation_loop: condition(super::reconcile::ROTATION_LOOP),
            observed_generation: patch.observed_generation.or(self.observed_generation),
            next_sync: patch.next_sync_time.as_ref().map(|t| t.0).or(self.next_sync),
            synced: if replaces_synced {
                synced_digest(patch.secret_name.as_deref(), &patch.sources)
            } else {
                self.synced
            },
            data_hmac: patch.data_hmac.as_deref().map(hmac_digest).or(self.data_hmac),
            in_doubt: false,
        }
    }
}

/// A digest of what a status says was synced: the Secret's name, and per source its keys, its name and the
/// dates Password Safe reported (to the microsecond, as status keeps them).
pub fn synced_digest(secret_name: Option<&str>, sources: &[SourceStatus]) -> u64 {
    let micros = |t: &Option<MicroTime>| t.as_ref().map(|t| t.0.as_microsecond());
    let sources: Vec<_> = sources
        .iter()
        .map(|s| (&s.key, &s.source, micros(&s.last_change_date), micros(&s.next_change_date), micros(&s.modified_on)))
        .collect();
    digest(&(secret_name, sources))
}

/// A digest of a `dataHmac` (hex text), to compare with another's.
pub fn hmac_digest(data_hmac: &str) -> u64 {
    digest(&data_hmac)
}

/// The notes of every resource this process has written the status of, by UID.
#[derive(Default)]
pub struct ReportedStatuses {
    notes: Mutex<HashMap<u128, Reported>>,
}

impl ReportedStatuses {
    pub fn get(&self, uid: &str) -> Option<Reported> {
        self.lock().get(&uid_key(uid)).cloned()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(&uid_key(uid))
    }

    /// Records `note` (before the status is written: the watch may deliver the write before the response);
    /// returns the note it replaces, for [`ReportedStatuses::restore`] when the write fails.
    pub fn set(&self, uid: &str, note: Reported) -> Option<Reported> {
        self.lock().insert(uid_key(uid), note)
    }

    /// Puts back what [`ReportedStatuses::set`] replaced: the write was refused.
    pub fn restore(&self, uid: &str, previous: Option<Reported>) {
        let mut notes = self.lock();
        match previous {
            Some(note) => notes.insert(uid_key(uid), note),
            None => notes.remove(&uid_key(uid)),
        };
    }

    /// The write recorded by [`ReportedStatuses::set`] failed in a way that leaves unknown whether the server
    /// applied it. The note stays (its transition times are as good a guess as the previous ones, and the watch
    /// keeps dropping the status from its cached copy) but is marked in doubt.
    pub fn doubt(&self, uid: &str) {
        if let Some(note) = self.lock().get_mut(&uid_key(uid)) {
            note.in_doubt = true;
        }
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(&uid_key(uid));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Reported>> {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, message: &str, since: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(since).unwrap()),
        }
    }

    fn source(changed: i64) -> SourceStatus {
        SourceStatus {
            key: "password".into(),
            source: "managedAccount:db/app".into(),
            last_change_date: Some(MicroTime(Timestamp::from_microsecond(changed).unwrap())),
            ..Default::default()
        }
    }

    fn success() -> PasswordSafeSecretStatus {
        PasswordSafeSecretStatus {
            conditions: vec![condition("Ready", "True", "Synced", "Secret app holds the current data", 100)],
            observed_generation: Some(1),
            secret_name: Some("app".into()),
            next_sync_time: Some(Time(Timestamp::from_second(4000).unwrap())),
            sources: vec![source(1_000_001)],
            data_hmac: Some("hmac".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_patch_replaces_the_conditions_and_keeps_what_was_synced() {
        let synced = Reported::of(&success());
        assert!(synced.ready.unwrap().says(true, "Synced", "Secret app holds the current data"));
        assert!(!synced.ready.unwrap().says(true, "Synced", "another message"));
        let failure = PasswordSafeSecretStatus {
            conditions: vec![condition("Ready", "False", "Unauthenticated", "sign-in failed", 200)],
            observed_generation: Some(2),
            next_sync_time: Some(Time(Timestamp::from_second(300).unwrap())),
            ..Default::default()
        };
        let failed = synced.after(&failure);
        let ready = failed.ready.unwrap();
        assert!(ready.says(false, "Unauthenticated", "sign-in failed"));
        assert_eq!(ready.since, Timestamp::from_second(200).unwrap());
        assert_eq!(failed.observed_generation, Some(2));
        assert_eq!(failed.next_sync, Some(Timestamp::from_second(300).unwrap()));
        assert_eq!((failed.synced, failed.data_hmac), (synced.synced, Some(hmac_digest("hmac"))));
        assert_eq!(failed.rotation_loop, None);
    }

    #[test]
    fn what_was_synced_is_told_apart_to_the_microsecond() {
        let one = synced_digest(Some("app"), &[source(1_000_001)]);
        assert_eq!(one, synced_digest(Some("app"), &[source(1_000_001)]));
        assert_ne!(one, synced_digest(Some("app"), &[source(1_000_002)]));
        assert_ne!(one, synced_digest(Some("other"), &[source(1_000_001)]));
    }

    #[test]
    fn a_failed_write_puts_the_previous_note_back() {
        let notes = ReportedStatuses::default();
        let uid = "0b9d5c1e-3f4a-4c2b-9e8d-7a6b5c4d3e2f";
        let before = notes.set(uid, Reported::of(&success()));
        assert!(before.is_none() && notes.contains(uid));
        notes.restore(uid, before);
        assert!(notes.get(uid).is_none());
        notes.set(uid, Reported::of(&success()));
        notes.forget(uid);
        assert!(!notes.contains(uid));
    }

    #[test]
    fn a_write_that_may_have_been_applied_leaves_the_note_in_doubt_until_the_next_write() {
        let notes = ReportedStatuses::default();
        let uid = "0b9d5c1e-3f4a-4c2b-9e8d-7a6b5c4d3e2f";
        notes.set(uid, Reported::of(&success()));
        notes.doubt(uid);
        let doubted = notes.get(uid).unwrap();
        assert!(doubted.in_doubt && doubted.ready.unwrap().is_true);
        let rewritten = doubted.after(&success());
        assert!(!rewritten.in_doubt, "a successful write says what the server holds again");
        notes.forget(uid);
        notes.doubt(uid);
        assert!(notes.get(uid).is_none(), "no note is made up");
    }
}
