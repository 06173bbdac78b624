//! Prometheus metrics (`/metrics`). Labels come from small fixed sets only (results, endpoints, HTTP
//! status codes, error reasons): never an object's name or namespace, so cardinality stays bounded however
//! many PasswordSafeSecrets a cluster has. Every metric is documented in README.md ("Metrics").

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::passwordsafe::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    endpoint: &'static str,
    /// The HTTP status, or `none` when no answer came (connection failure, timeout).
    status: String,
}

/// Every metric of the operator process, registered once.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Histogram,
    sync_errors: Family<ReasonLabel, Counter>,
    api_calls: Family<CallLabels, Counter>,
    api_latency: Family<EndpointLabel, Histogram>,
    sign_ins: Counter,
    open_requests: Gauge,
    /// (client, request ID) → when the request expires on the server. A request held on purpose until it
    /// expires (hold-until-expiry) stays counted until then.
    open: Mutex<HashMap<(u64, i64), Instant>>,
    managed_secrets: Gauge,
    rotations: Counter,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("passwordsafe_operator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "PasswordSafeSecret reconciles, by result (success, error)",
            reconciles.clone(),
        );
        // 5 ms .. ~82 s: a sync is a handful of API calls, slower ones wait on retries or approvals.
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of PasswordSafeSecret reconciles",
            reconcile_duration.clone(),
        );
        let sync_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sync_errors",
            "Failed syncs, by reason (the condition reason: NotApproved, PermissionDenied, Unavailable, ...)",
            sync_errors.clone(),
        );
        let api_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "passwordsafe_api_calls",
            "Password Safe API calls, by endpoint and HTTP status",
            api_calls.clone(),
        );
        let api_latency =
            Family::<EndpointLabel, Histogram>::new_with_constructor(api_latency_histogram as fn() -> Histogram);
        registry.register(
            "passwordsafe_api_call_duration_seconds",
            "Latency of Password Safe API calls (each attempt), by endpoint",
            api_latency.clone(),
        );
        let sign_ins = Counter::default();
        registry.register(
            "passwordsafe_sign_ins",
            "Sign-ins to Password Safe (POST Auth/SignAppIn that succeeded)",
            sign_ins.clone(),
        );
        let open_requests = Gauge::default();
        registry.register(
            "passwordsafe_open_requests",
            "Password Safe requests this operator opened and has not checked in yet (held ones until they expire)",
            open_requests.clone(),
        );
        let managed_secrets = Gauge::default();
        registry.register(
            "managed_secrets",
            "Kubernetes Secrets currently kept in sync by this replica",
            managed_secrets.clone(),
        );
        let rotations = Counter::default();
        registry.register(
            "rotations_observed",
            "Credential changes in Password Safe that a sync picked up (rotations, edits of secrets)",
            rotations.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the Lease, or runs without leader election)",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            sync_errors,
            api_calls,
            api_latency,
            sign_ins,
            open_requests,
            open: Mutex::default(),
            managed_secrets,
            rotations,
            leader,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        self.refresh_open_requests();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// One reconcile finished; `error_reason` is the failure's reason, if it failed.
    pub fn reconciled(&self, elapsed: Duration, error_reason: Option<&'static str>) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        let result = if error_reason.is_some() { "error" } else { "success" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        if let Some(reason) = error_reason {
            self.sync_errors.get_or_create(&ReasonLabel { reason }).inc();
        }
    }

    pub fn rotations_observed(&self, count: usize) {
        self.rotations.inc_by(count as u64);
    }

    pub fn set_managed_secrets(&self, count: usize) {
        self.managed_secrets.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    fn refresh_open_requests(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        open.retain(|_, expires| *expires > now);
        self.open_requests.set(i64::try_from(open.len()).unwrap_or(i64::MAX));
    }

    #[cfg(test)]
    fn counter_values(&self) -> (u64, i64) {
        (self.sign_ins.get(), self.open_requests.get())
    }
}

fn api_latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl CallObserver for Metrics {
    fn on_call(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.api_calls.get_or_create(&CallLabels { endpoint, status }).inc();
        self.api_latency.get_or_create(&EndpointLabel { endpoint }).observe(elapsed.as_secs_f64());
    }

    fn on_sign_in(&self) {
        self.sign_ins.inc();
    }

    fn on_request_opened(&self, client: u64, request_id: i64, expires_in: Duration) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((client, request_id), Instant::now() + expires_in);
        self.refresh_open_requests();
    }

    fn on_request_closed(&self, client: u64, request_id: i64) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&(client, request_id));
        self.refresh_open_requests();
    }
}

/// Readiness for `/readyz`: the watch caches have their first listing (or this replica stands by for the
/// Lease, where there is nothing to be ready for).
#[derive(Debug)]
pub struct Health {
    /// Watches whose first listing is still outstanding; ready at 0. -1 until the controllers start.
    pending_listings: AtomicI64,
    standing_by: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self { pending_listings: AtomicI64::new(-1), standing_by: AtomicBool::new(false) }
    }
}

impl Health {
    /// The controllers start `count` watches.
    pub fn expect_listings(&self, count: i64) {
        self.pending_listings.store(count, SeqCst);
    }

    /// One watch finished its first listing (later relists after a dropped watch do not count again).
    pub fn listed(&self) {
        let _ = self.pending_listings.fetch_update(SeqCst, SeqCst, |n| (n > 0).then_some(n - 1));
    }

    pub fn set_standing_by(&self, standing_by: bool) {
        self.standing_by.store(standing_by, SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.standing_by.load(SeqCst) || self.pending_listings.load(SeqCst) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_endpoint_and_status_without_object_labels() {
        let m = Metrics::new();
        m.on_call("POST Requests", Some(201), Duration::from_millis(12));
        m.on_call("POST Requests", Some(201), Duration::from_millis(8));
        m.on_call("GET Credentials", None, Duration::from_secs(30));
        m.on_sign_in();
        m.reconciled(Duration::from_millis(40), None);
        m.reconciled(Duration::from_millis(40), Some("NotApproved"));
        let text = m.encode();
        assert!(
            text.contains(
                r#"passwordsafe_operator_passwordsafe_api_calls_total{endpoint="POST Requests",status="201"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"passwordsafe_operator_passwordsafe_api_calls_total{endpoint="GET Credentials",status="none"} 1"#
        ));
        assert!(text.contains("passwordsafe_operator_passwordsafe_sign_ins_total 1"));
        assert!(text.contains(r#"passwordsafe_operator_reconciles_total{result="error"} 1"#));
        assert!(text.contains(r#"passwordsafe_operator_sync_errors_total{reason="NotApproved"} 1"#));
        assert!(text.contains("passwordsafe_operator_reconcile_duration_seconds_count 2"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn open_requests_count_until_checked_in_or_expired() {
        let m = Metrics::new();
        m.on_request_opened(1, 10, Duration::from_secs(600));
        m.on_request_opened(1, 10, Duration::from_secs(600)); // joined with ConflictOption=reuse: same request
        m.on_request_opened(2, 10, Duration::from_secs(600)); // same ID from another store's server
        m.on_request_opened(1, 11, Duration::ZERO); // held until expiry, already expired
        assert_eq!(m.counter_values().1, 2);
        m.on_request_closed(1, 10);
        assert_eq!(m.counter_values(), (0, 1));
    }

    #[test]
    fn ready_after_every_first_listing_or_while_standing_by() {
        let h = Health::default();
        assert!(!h.is_ready());
        h.set_standing_by(true);
        assert!(h.is_ready());
        h.set_standing_by(false);
        h.expect_listings(2);
        h.listed();
        assert!(!h.is_ready());
        h.listed();
        h.listed();
        assert!(h.is_ready());
    }
}
