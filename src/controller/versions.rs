//! Which target Secrets hold what the operator last wrote, by resourceVersion.
//!
//! Every apply comes back through the Secret watch. Without this, each write would start a second reconcile
//! that reads the Secret back only to find it as written: on a cold sync of 10 000 resources that is 10 000
//! reconciles and GETs for nothing. With it, the watch tells our own writes from anybody else's, and a
//! reconcile with nothing new to write skips the GET as long as the watch has confirmed the version we wrote.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;

use super::compact;

/// One entry per Secret the watch delivers or the operator writes, for as long as the operator runs: kept to
/// a key and four numbers. resourceVersions are only compared for equality, so a 64-bit digest of each stands
/// in for the text.
#[derive(Default)]
pub struct SecretVersions {
    secrets: Mutex<HashMap<Box<str>, Versions>>,
    /// Counts the watch's listings; entries remember the last one that delivered them.
    listing: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Versions {
    /// The PasswordSafeSecret that wrote it (the name in its owner annotation; same namespace).
    owner: Option<Box<str>>,
    /// The resourceVersion the watch last delivered, and in which listing.
    seen: Option<u64>,
    listed: u64,
    /// The resourceVersion our last apply (or our last check of the live Secret) produced, and a digest of the
    /// Secret we wanted then.
    written: Option<(u64, u64)>,
}

impl SecretVersions {
    /// The watch delivered the Secret at `version`. Whether that is news to a reconcile: anything but the echo
    /// of our own last write is (somebody edited it, or the watch saw it before our apply returned).
    pub fn seen(&self, namespace: &str, name: &str, version: Option<&str>, owner: Option<String>) -> bool {
        let listing = self.listing.load(Ordering::Relaxed);
        let version = version.map(version_digest);
        let mut secrets = self.lock();
        let entry = secrets.entry(key(namespace, name)).or_default();
        entry.seen = version;
        entry.listed = listing;
        entry.owner = owner.map(String::into_boxed_str);
        entry.written.is_none_or(|(written, _)| Some(written) != version)
    }

    /// The watch starts listing every Secret again (it lost its place, or started).
    pub fn begin_listing(&self) {
        self.listing.fetch_add(1, Ordering::Relaxed);
    }

    /// The listing is complete. Secrets it did not deliver were deleted while the watch was away (no event
    /// says so): they are forgotten, and their owners (namespace, name) returned, to reconcile.
    pub fn end_listing(&self) -> Vec<(String, String)> {
        let listing = self.listing.load(Ordering::Relaxed);
        let mut gone = Vec::new();
        self.lock().retain(|key, v| {
            let keep = v.listed == listing;
            if !keep && let (Some(owner), Some((namespace, _))) = (&v.owner, key.split_once('/')) {
                gone.push((namespace.to_owned(), owner.to_string()));
            }
            keep
        });
        gone
    }

    /// The Secret is gone (deleted, or no longer selected by the watch): nothing about it is known.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&key(namespace, name));
    }

    /// A reconcile applied `desired` (or found the live Secret matching it) at `version`.
    pub fn written(&self, namespace: &str, name: &str, version: Option<&str>, desired: u64) {
        let mut secrets = self.lock();
        let entry = secrets.entry(key(namespace, name)).or_default();
        entry.written = version.map(|v| (version_digest(v), desired));
    }

    /// Whether the live Secret is known to be exactly `desired` as we wrote it: our last write was of the same
    /// Secret, and the latest version the watch delivered is that write's. Anything less means reading it.
    pub fn is_current(&self, namespace: &str, name: &str, desired: u64) -> bool {
        let secrets = self.lock();
        secrets.get(&key(namespace, name)).is_some_and(|v| match (v.written, v.seen) {
            (Some((written, digest)), Some(seen)) => written == seen && digest == desired,
            _ => false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Versions>> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `namespace/name` (a namespace cannot contain `/`).
fn key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

fn version_digest(version: &str) -> u64 {
    compact::digest(&version)
}

/// A digest of a Secret as the operator would apply it (in memory only; never written anywhere).
pub fn digest(secret: &Secret) -> u64 {
    compact::digest(&serde_json::to_vec(secret).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_of_our_own_write_is_not_news_and_confirms_the_write() {
        let v = SecretVersions::default();
        v.written("ns", "app", Some("5"), 42);
        assert!(!v.is_current("ns", "app", 42), "not current until the watch confirms it");
        assert!(!v.seen("ns", "app", Some("5"), None), "our own write");
        assert!(v.is_current("ns", "app", 42));
        assert!(!v.is_current("ns", "app", 43), "a different Secret is wanted now");
    }

    #[test]
    fn an_edit_by_someone_else_is_news_and_makes_the_secret_unknown() {
        let v = SecretVersions::default();
        v.written("ns", "app", Some("5"), 42);
        assert!(!v.seen("ns", "app", Some("5"), None));
        assert!(v.seen("ns", "app", Some("6"), None));
        assert!(!v.is_current("ns", "app", 42));
    }

    #[test]
    fn an_edit_seen_before_our_apply_returned_is_not_lost() {
        // Our apply produced 5 and someone edited it to 6; the watch delivered 6 before we recorded 5.
        let v = SecretVersions::default();
        assert!(v.seen("ns", "app", Some("5"), None));
        assert!(v.seen("ns", "app", Some("6"), None));
        v.written("ns", "app", Some("5"), 42);
        assert!(!v.is_current("ns", "app", 42), "the live Secret is at 6: it must be read");
    }

    #[test]
    fn a_deleted_secret_is_never_current_and_its_recreation_is_news() {
        let v = SecretVersions::default();
        v.written("ns", "app", Some("5"), 42);
        v.seen("ns", "app", Some("5"), None);
        v.forget("ns", "app");
        assert!(!v.is_current("ns", "app", 42));
        assert!(v.seen("ns", "app", Some("9"), None));
    }

    #[test]
    fn a_listing_forgets_secrets_it_did_not_deliver_and_names_their_owners() {
        let v = SecretVersions::default();
        v.begin_listing();
        v.seen("ns", "a", Some("1"), Some("pss-a".into()));
        v.seen("ns", "b", Some("2"), Some("pss-b".into()));
        v.written("ns", "b", Some("2"), 7);
        assert!(v.end_listing().is_empty());
        // The watch lost its place; b was deleted meanwhile.
        v.begin_listing();
        v.seen("ns", "a", Some("1"), Some("pss-a".into()));
        assert_eq!(v.end_listing(), vec![("ns".to_owned(), "pss-b".to_owned())]);
        assert!(!v.is_current("ns", "b", 7));
    }

    #[test]
    fn the_digest_tells_secrets_apart_and_is_stable() {
        let a: Secret =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}, "data": {"k": "YQ=="}})).unwrap();
        let b: Secret =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}, "data": {"k": "Yg=="}})).unwrap();
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
    }
}
