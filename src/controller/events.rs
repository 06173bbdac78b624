//! Kubernetes Events (events.k8s.io/v1) about PasswordSafeSecrets.
//!
//! kube-runtime's `Recorder` keeps a full copy of every event it published in the last six minutes, and
//! scans that copy on each publish: after a cold sync of 10 000 resources that is 10 000 events held in
//! memory for nothing. This publisher keeps what a repeat needs (the event's name, its count, a digest of
//! what it said) and prunes old entries in batches. As with the Recorder, a repeat of the same event within
//! six minutes becomes a series (count and lastObservedTime patched) instead of a new object; unlike it, the
//! note is part of what makes two events "the same", so a new message is never hidden behind an old one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::EventType;

use super::compact::digest;

/// How long a published event can still grow a series (kube-runtime and client-go use 6 minutes).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// Entries kept before old ones are pruned (pruning is a scan, so not on every publish).
const PRUNE_ABOVE: usize = 1024;

/// One event to publish about an object.
pub struct Event<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    /// What the operator was doing (the failing Password Safe operation, `Sync`, `Delete`, ...).
    pub action: &'a str,
    pub note: String,
}

pub struct EventPublisher {
    kube: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<RecentEvents>,
}

/// The events published within the series window, by key.
#[derive(Default)]
struct RecentEvents {
    events: HashMap<u64, Recent>,
    /// Size at which old entries are pruned next: doubles with what survives a pruning, so that pruning costs
    /// O(1) per publish however many events are recent.
    prune_at: usize,
}

/// What a repeat of a recent event needs.
struct Recent {
    name: String,
    count: i32,
    last: Timestamp,
}

impl RecentEvents {
    /// The name and next count of the same event if one was published within the series window.
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<(String, i32)> {
        let entry = self.events.get_mut(&key).filter(|r| r.last + SERIES_WINDOW > now)?;
        entry.count += 1;
        entry.last = now;
        Some((entry.name.clone(), entry.count))
    }

    fn remember(&mut self, key: u64, entry: Recent) {
        if self.events.len() >= self.prune_at.max(PRUNE_ABOVE) {
            let cutoff = entry.last - SERIES_WINDOW;
            self.events.retain(|_, r| r.last > cutoff);
            self.prune_at = self.events.len() * 2;
        }
        self.events.insert(key, entry);
    }
}

impl EventPublisher {
    /// `controller` is the events' `reportingController`; the instance is the pod (POD_NAME) where known.
    pub fn new(kube: kube::Client, controller: &str) -> Self {
        let instance = std::env::var("POD_NAME").unwrap_or_else(|_| controller.to_owned());
        Self { kube, controller: controller.to_owned(), instance, recent: Mutex::default() }
    }

    /// Publishes `event` about `regarding`: a new Event, or the next count of the same one published recently.
    pub async fn publish(&self, event: &Event<'_>, regarding: &ObjectReference) -> kube::Result<()> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api: Api<K8sEvent> = Api::namespaced(self.kube.clone(), &namespace);
        let key = key_of(event, regarding);
        let now = Timestamp::now();
        let repeat = self.recent().repeat(key, now);
        if let Some((name, count)) = repeat {
            let series = EventSeries { count, last_observed_time: MicroTime(now) };
            let patch = serde_json::json!({ "series": series });
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // Expired (events live an hour) or deleted: start again with a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let created = api.create(&PostParams::default(), &self.new_event(event, regarding, now)).await?;
        let name = created.metadata.name.unwrap_or_default();
        self.recent().remember(key, Recent { name, count: 1, last: now });
        Ok(())
    }

    fn new_event(&self, event: &Event<'_>, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let prefix = regarding.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{prefix}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_name(event.type_).to_owned()),
            reason: Some(event.reason.to_owned()),
            action: Some(event.action.to_owned()),
            note: Some(event.note.clone()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEvents> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// Same object (by UID), same type, reason, action and note: the same event.
fn key_of(event: &Event<'_>, regarding: &ObjectReference) -> u64 {
    let object = (&regarding.uid, &regarding.namespace, &regarding.name);
    digest(&(object, (type_name(event.type_), event.reason, event.action, &event.note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            uid: Some(uid.into()),
            name: Some("app".into()),
            namespace: Some("demo".into()),
            ..ObjectReference::default()
        }
    }

    fn event(note: &str) -> Event<'static> {
        Event { type_: EventType::Warning, reason: "NotFound", action: "GetCredentials", note: note.into() }
    }

    #[test]
    fn a_repeat_within_six_minutes_continues_the_series_and_a_later_one_starts_anew() {
        let mut recent = RecentEvents::default();
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(recent.repeat(1, t0), None);
        recent.remember(1, Recent { name: "app.1".into(), count: 1, last: t0 });
        assert_eq!(recent.repeat(1, t0 + SignedDuration::from_mins(5)), Some(("app.1".into(), 2)));
        // The window runs from the last occurrence.
        assert_eq!(recent.repeat(1, t0 + SignedDuration::from_mins(10)), Some(("app.1".into(), 3)));
        assert_eq!(recent.repeat(1, t0 + SignedDuration::from_mins(17)), None);
    }

    #[test]
    fn old_entries_are_pruned_and_recent_ones_kept() {
        let mut recent = RecentEvents::default();
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        for key in 0..PRUNE_ABOVE as u64 {
            recent.remember(key, Recent { name: format!("old.{key}"), count: 1, last: t0 });
        }
        let later = t0 + SignedDuration::from_mins(7);
        recent.remember(u64::MAX, Recent { name: "new".into(), count: 1, last: later });
        assert_eq!(recent.events.len(), 1, "everything older than the window went");
        // Many recent events: pruning keeps them all, and does not rescan on every insert.
        for key in 0..3 * PRUNE_ABOVE as u64 {
            recent.remember(key, Recent { name: format!("new.{key}"), count: 1, last: later });
        }
        assert_eq!(recent.events.len(), 3 * PRUNE_ABOVE + 1);
        assert!(recent.prune_at > PRUNE_ABOVE);
    }

    #[test]
    fn the_same_event_about_the_same_object_has_the_same_key_and_anything_else_does_not() {
        let key = key_of(&event("account missing"), &reference("u1"));
        assert_eq!(key, key_of(&event("account missing"), &reference("u1")));
        assert_ne!(key, key_of(&event("account missing again"), &reference("u1")), "the note counts");
        assert_ne!(key, key_of(&event("account missing"), &reference("u2")), "another object");
        let normal = Event { type_: EventType::Normal, ..event("account missing") };
        assert_ne!(key, key_of(&normal, &reference("u1")));
    }
}
