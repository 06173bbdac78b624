//! Leader election against a real kube-apiserver (tests/support/e2e.rs): acquire, standby, release, expiry,
//! and losing the lease to someone else. Short timings; only eventual outcomes are asserted, never durations.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use passwordsafe_operator::leader::{LeaderElector, LeaseConfig};

const LEASE: &str = "passwordsafe-operator-leader";
const WAIT: Duration = Duration::from_secs(15);

fn config(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: ns.to_owned(),
        name: LEASE.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    }
}

async fn setup(prefix: &str) -> (kube::Client, String) {
    let cluster = support::e2e::cluster().await;
    let ns = cluster.namespace(prefix).await;
    (cluster.admin().await, ns)
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns).get_opt(LEASE).await.unwrap()?;
    lease.spec?.holder_identity
}

#[tokio::test]
async fn acquires_a_fresh_lease() {
    let (client, ns) = setup("leader-fresh").await;
    let elector = LeaderElector::new(client.clone(), config(&ns, "candidate-a"));
    let leadership = tokio::time::timeout(WAIT, elector.acquire()).await.expect("acquires").unwrap();
    assert!(leadership.is_leader());

    let lease = Api::<Lease>::namespaced(client.clone(), &ns).get(LEASE).await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("candidate-a"));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());

    // It keeps renewing: renewTime moves on while it still holds the lease.
    let first = spec.renew_time.unwrap();
    support::e2e::eventually("renewTime to advance", WAIT, || async {
        let spec = Api::<Lease>::namespaced(client.clone(), &ns).get(LEASE).await.unwrap().spec.unwrap();
        (spec.renew_time.as_ref() > Some(&first)).then_some(())
    })
    .await;
    assert!(leadership.is_leader());
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("candidate-a"));
    leadership.release().await.unwrap();
}

#[tokio::test]
async fn standby_waits_while_holder_renews_then_takes_over_on_release() {
    let (client, ns) = setup("leader-release").await;
    let first = LeaderElector::new(client.clone(), config(&ns, "candidate-a"));
    let second = LeaderElector::new(client.clone(), config(&ns, "candidate-b"));
    let leadership = tokio::time::timeout(WAIT, first.acquire()).await.expect("first acquires").unwrap();

    let standby = tokio::time::timeout(Duration::from_secs(6), second.acquire()).await;
    assert!(standby.is_err(), "the second candidate must not acquire while the first renews");
    assert!(leadership.is_leader());
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("candidate-a"));

    let standby = tokio::spawn(async move { second.acquire().await });
    leadership.release().await.unwrap();
    let taken = tokio::time::timeout(WAIT, standby).await.expect("second acquires after release").unwrap().unwrap();
    assert!(taken.is_leader());
    let spec = Api::<Lease>::namespaced(client.clone(), &ns).get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("candidate-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    taken.release().await.unwrap();
    assert_eq!(holder(&client, &ns).await.as_deref(), Some(""));
}

#[tokio::test]
async fn standby_takes_over_after_the_holder_stops_renewing() {
    let (client, ns) = setup("leader-expiry").await;
    let first = LeaderElector::new(client.clone(), config(&ns, "candidate-a"));
    let second = LeaderElector::new(client.clone(), config(&ns, "candidate-b"));
    let leadership = tokio::time::timeout(WAIT, first.acquire()).await.expect("first acquires").unwrap();
    let standby = tokio::spawn(async move { second.acquire().await });

    // Crash without releasing: renewal stops, the lease still names the first candidate until it expires.
    drop(leadership);
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("candidate-a"));

    let taken = tokio::time::timeout(WAIT, standby).await.expect("second acquires after expiry").unwrap().unwrap();
    assert!(taken.is_leader());
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("candidate-b"));
    taken.release().await.unwrap();
}

#[tokio::test]
async fn lost_resolves_when_someone_else_takes_the_lease() {
    let (client, ns) = setup("leader-lost").await;
    let elector = LeaderElector::new(client.clone(), config(&ns, "candidate-a"));
    let leadership = tokio::time::timeout(WAIT, elector.acquire()).await.expect("acquires").unwrap();

    let api = Api::<Lease>::namespaced(client.clone(), &ns);
    support::e2e::eventually("the lease to be overwritten", WAIT, || async {
        let mut lease = api.get(LEASE).await.unwrap();
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = Some("intruder".to_owned());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now()));
        // A 409 means the holder renewed in between: read again.
        api.replace(LEASE, &PostParams::default(), &lease).await.ok().map(|_| ())
    })
    .await;

    tokio::time::timeout(WAIT, leadership.lost()).await.expect("lost() resolves");
    assert!(!leadership.is_leader());
    // The ex-holder does not write the lease back, and releasing it leaves the intruder's lease alone.
    leadership.release().await.unwrap();
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("intruder"));
}
