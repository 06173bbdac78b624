//! Leader election on a `coordination.k8s.io/v1` Lease, with the semantics of client-go's `leaderelection`:
//! the holder writes `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime` and
//! `leaseTransitions`; a candidate takes the lease over once `renewTime + leaseDurationSeconds` has passed or
//! `holderIdentity` is empty (released). Every write is a `replace` carrying the `resourceVersion` that was
//! read, so two candidates racing for the same lease cannot both win: the loser gets 409 and re-reads.
//!
//! Safety relies on `renew_deadline < lease_duration`: a holder that could not renew for `renew_deadline`
//! declares itself lost ([`Leadership::lost`]) before any other candidate may consider the lease expired.
//! Expiry compares the holder's `renewTime` with the local clock, so node clocks must be roughly in sync (the
//! margin is `lease_duration - renew_deadline`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use rand::Rng;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where the lease lives, who we are, and the timings (client-go's defaults: 15 s / 10 s / 2 s).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per candidate (typically the pod name); written to `holderIdentity`.
    pub identity: String,
    /// How long others wait after the last renewal before taking over.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leadership. Must be below `lease_duration`.
    pub renew_deadline: Duration,
    /// Interval between acquire attempts and between renewals.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A config with client-go's default timings.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.identity.is_empty() {
            bail!("leader election: identity must not be empty");
        }
        if self.name.is_empty() || self.namespace.is_empty() {
            bail!("leader election: lease name and namespace must not be empty");
        }
        if self.retry_period.is_zero() {
            bail!("leader election: retry period must be positive");
        }
        if self.renew_deadline >= self.lease_duration {
            bail!("leader election: renew deadline must be shorter than the lease duration");
        }
        if self.retry_period >= self.renew_deadline {
            bail!("leader election: retry period must be shorter than the renew deadline");
        }
        Ok(())
    }

    /// `leaseDurationSeconds`: whole seconds, rounded up, at least 1.
    fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// Campaigns for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: Arc<LeaseConfig>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self { api, config: Arc::new(config) }
    }

    /// Tries until it holds the lease (create if missing; take over when the current holder's renewTime +
    /// leaseDuration has passed, or when holderIdentity is empty i.e. released), then returns a `Leadership`
    /// whose background task keeps renewing. Cancel by dropping the future (a lease written just before is
    /// simply left to expire).
    pub async fn acquire(&self) -> anyhow::Result<Leadership> {
        self.config.validate()?;
        let config = &self.config;
        tracing::debug!(identity = %config.identity, lease = %config.name, namespace = %config.namespace, "campaigning for leadership");
        loop {
            let started = Instant::now();
            match tokio::time::timeout(config.renew_deadline, try_acquire_or_renew(&self.api, config, false)).await {
                Ok(Ok(Attempt::Held)) => {
                    tracing::info!(identity = %config.identity, lease = %config.name, namespace = %config.namespace, "acquired leadership");
                    return Ok(Leadership::start(self.api.clone(), Arc::clone(config), started));
                }
                Ok(Ok(Attempt::HeldByOther(holder))) => {
                    tracing::debug!(identity = %config.identity, holder = %holder, "lease held by another candidate");
                }
                Ok(Ok(Attempt::Conflict)) => {
                    tracing::debug!(identity = %config.identity, "lost a race for the lease; retrying");
                }
                Ok(Ok(Attempt::Missing)) => unreachable!("acquire creates a missing lease"),
                Ok(Err(error)) => {
                    tracing::warn!(identity = %config.identity, error = %error, "leader election: could not read or write the lease");
                }
                Err(_) => {
                    tracing::warn!(identity = %config.identity, "leader election: lease request timed out");
                }
            }
            tokio::time::sleep(jittered(config.retry_period)).await;
        }
    }
}

/// Held leadership. Renewal runs in the background until leadership is lost, [`Leadership::release`]d, or this
/// value is dropped (dropping stops renewing without releasing: others take over after the lease expires).
pub struct Leadership {
    config: Arc<LeaseConfig>,
    api: Api<Lease>,
    held: watch::Receiver<bool>,
    state: Arc<watch::Sender<bool>>,
    stop: Option<oneshot::Sender<()>>,
    /// The renew task; it returns whether it still held the lease when it ended.
    task: Option<JoinHandle<bool>>,
}

impl Leadership {
    fn start(api: Api<Lease>, config: Arc<LeaseConfig>, renewed_at: Instant) -> Self {
        let (tx, rx) = watch::channel(true);
        let state = Arc::new(tx);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(renew_loop(api.clone(), Arc::clone(&config), Arc::clone(&state), stop_rx, renewed_at));
        Self { config, api, held: rx, state, stop: Some(stop_tx), task: Some(task) }
    }

    /// Resolves when leadership is lost (a renewal failed for longer than renew_deadline, or someone else holds
    /// the lease): the caller must stop reconciling. Resolves at once if already lost or released.
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        // The sender lives in `self`, so this only ends when the value turns false.
        let _ = held.wait_for(|held| !*held).await;
    }

    pub fn is_leader(&self) -> bool {
        *self.held.borrow()
    }

    /// Gives the lease up at once (sets holderIdentity to empty and leaseDurationSeconds 1, as client-go's
    /// ReleaseOnCancel does) so a standby takes over immediately. Does nothing to the lease if leadership was
    /// already lost.
    pub async fn release(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A renew task that panicked may have left the lease held: release it then too (the write only
        // happens if the lease still names us).
        let still_held = match self.task.take() {
            Some(task) => task.await.unwrap_or(true),
            None => false,
        };
        self.state.send_replace(false);
        if !still_held {
            return Ok(());
        }
        let config = &self.config;
        let result = tokio::time::timeout(config.lease_duration, release_lease(&self.api, config))
            .await
            .context("releasing the lease timed out")
            .and_then(|r| r);
        match &result {
            Ok(()) => {
                tracing::info!(identity = %config.identity, lease = %config.name, namespace = %config.namespace, "released leadership")
            }
            Err(error) => {
                tracing::warn!(identity = %config.identity, error = %error, "could not release the lease; it expires on its own")
            }
        }
        result
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.state.send_replace(false);
    }
}

/// Sets the shared state to "not leader" when the renew task ends in any way (return, abort or panic).
struct NotLeaderOnDrop(Arc<watch::Sender<bool>>);

impl Drop for NotLeaderOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

async fn renew_loop(
    api: Api<Lease>,
    config: Arc<LeaseConfig>,
    state: Arc<watch::Sender<bool>>,
    mut stop: oneshot::Receiver<()>,
    mut renewed_at: Instant,
) -> bool {
    let _guard = NotLeaderOnDrop(state);
    let identity = &config.identity;
    loop {
        tokio::select! {
            _ = &mut stop => return true,
            () = tokio::time::sleep(config.retry_period) => {}
        }
        let started = Instant::now();
        let remaining = config.renew_deadline.saturating_sub(renewed_at.elapsed());
        let attempt = tokio::select! {
            // Dropping the in-flight request is fine: a write that still lands only renews our own lease.
            _ = &mut stop => return true,
            attempt = tokio::time::timeout(remaining, try_acquire_or_renew(&api, &config, true)) => attempt,
        };
        match attempt {
            Ok(Ok(Attempt::Held)) => renewed_at = started,
            Ok(Ok(Attempt::HeldByOther(holder))) => {
                tracing::info!(identity = %identity, holder = %holder, lease = %config.name, namespace = %config.namespace, "lost leadership: lease held by another candidate");
                return false;
            }
            Ok(Ok(Attempt::Missing)) => {
                tracing::info!(identity = %identity, lease = %config.name, namespace = %config.namespace, "lost leadership: lease was deleted");
                return false;
            }
            Ok(Ok(Attempt::Conflict)) => {
                tracing::debug!(identity = %identity, "lease renewal raced another writer; re-reading");
            }
            Ok(Err(error)) => {
                tracing::warn!(identity = %identity, error = %error, "lease renewal failed");
            }
            Err(_) => tracing::warn!(identity = %identity, "lease renewal timed out"),
        }
        if renewed_at.elapsed() >= config.renew_deadline {
            tracing::info!(identity = %identity, lease = %config.name, namespace = %config.namespace, "lost leadership: could not renew the lease within the renew deadline");
            return false;
        }
    }
}

/// One read-then-write step.
enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Another candidate holds the lease and (when acquiring) it has not expired.
    HeldByOther(String),
    /// Our write lost an optimistic-concurrency race: re-read and try again.
    Conflict,
    /// The lease does not exist (only reported when renewing).
    Missing,
}

async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig, renewing: bool) -> Result<Attempt, kube::Error> {
    let now = jiff::Timestamp::now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        if renewing {
            return Ok(Attempt::Missing);
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(config.lease_duration_seconds()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return conflict_as_attempt(api.create(&PostParams::default(), &lease).await);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == config.identity {
        if !renewing {
            // We held it before (e.g. restarted with the same identity): count it as a new acquisition.
            spec.acquire_time = Some(MicroTime(now));
        }
    } else {
        if renewing || (!holder.is_empty() && !expired(spec, now)) {
            return Ok(Attempt::HeldByOther(holder));
        }
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(config.lease_duration_seconds());
    // `lease` still carries the resourceVersion we read: the API server rejects the replace (409) if anyone
    // wrote in between.
    conflict_as_attempt(api.replace(&config.name, &PostParams::default(), &lease).await)
}

fn conflict_as_attempt(result: Result<Lease, kube::Error>) -> Result<Attempt, kube::Error> {
    match result {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
        Err(error) => Err(error),
    }
}

/// Whether the holder's `renewTime + leaseDurationSeconds` is in the past. A lease without any timestamp is
/// treated as expired.
fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let Some(MicroTime(last)) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0)));
    last.checked_add(duration).is_ok_and(|until| until < now)
}

async fn release_lease(api: &Api<Lease>, config: &LeaseConfig) -> anyhow::Result<()> {
    for _ in 0..5 {
        let Some(mut lease) = api.get_opt(&config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return Ok(()); // someone else holds it already
        }
        let now = MicroTime(jiff::Timestamp::now());
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match conflict_as_attempt(api.replace(&config.name, &PostParams::default(), &lease).await)? {
            Attempt::Held => return Ok(()),
            _ => continue,
        }
    }
    bail!("could not release the lease: it kept changing")
}

/// `period` plus up to 20 % random jitter, so candidates do not poll in lockstep.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::rng().random_range(0.0..0.2))
}
