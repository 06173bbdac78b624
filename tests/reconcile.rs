//! Reconcile tests: the real reconciler against kube-rs's mocked API (tower-test, see support/kube_mock.rs)
//! and the Password Safe simulator over real HTTP.

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use passwordsafe_operator::api::{ClusterPasswordSafeStore, PasswordSafeSecret, PasswordSafeStore};
use passwordsafe_operator::controller::events::EventPublisher;
use passwordsafe_operator::controller::reconcile::{Context, FINALIZER, needs_cleanup, reconcile};
use passwordsafe_operator::controller::{Next, StoreRegistry};
use passwordsafe_operator::passwordsafe::{NoopObserver, SecretBytes};
use passwordsafe_operator::sync::hmac::DataHmac;
use passwordsafe_simulator::{Fault, FaultRule, Running};
use serde_json::{Value, json};
use support::kube_mock::{KubeMock, MockFault};
use support::*;

const NS: &str = "demo";
const PSS_PATH: &str = "/apis/passwordsafe.dev/v1alpha1/namespaces/demo/passwordsafesecrets/app";
const SECRET_PATH: &str = "/api/v1/namespaces/demo/secrets/app";

fn b64(bytes: &[u8]) -> String {
    k8s_openapi::ByteString(bytes.to_vec()).serialize_to_b64()
}

trait B64 {
    fn serialize_to_b64(&self) -> String;
}
impl B64 for k8s_openapi::ByteString {
    fn serialize_to_b64(&self) -> String {
        serde_json::to_value(self).unwrap().as_str().unwrap().to_owned()
    }
}

struct Rig {
    sim: Running,
    mock: KubeMock,
    ctx: Arc<Context>,
    _stores: Writer<PasswordSafeStore>,
    _cluster: Writer<ClusterPasswordSafeStore>,
}

/// A store `ps` in namespace demo pointing at a fresh simulator, its API-key Secret, and a context.
async fn rig(extra_accounts: &str, cluster_store: Option<Value>) -> Rig {
    let sim = start(&seed_yaml(extra_accounts)).await;
    let (kube, mock) = KubeMock::start();
    mock.put(
        "/api/v1/namespaces/demo/secrets/ps-api",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ps-api", "namespace": NS}, "data": {"key": b64(API_KEY.as_bytes())}}),
    );
    let (ctx, store_writer, cluster_writer) = context(kube, &sim.base_url(), cluster_store);
    Rig { sim, mock, ctx, _stores: store_writer, _cluster: cluster_writer }
}

/// A PasswordSafeSecret `app` in demo stored in the mock; with our finalizer (as after the first pass) when its
/// deletion policy needs one.
fn pss(rig: &Rig, spec: Value) -> PasswordSafeSecret {
    let mut object = json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeSecret",
        "metadata": {"name": "app", "namespace": NS, "uid": "pss-uid", "generation": 1},
        "spec": spec,
    });
    let parsed: PasswordSafeSecret = serde_json::from_value(object.clone()).unwrap();
    if needs_cleanup(&parsed.spec.target) {
        object["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    rig.mock.put(PSS_PATH, object.clone());
    serde_json::from_value(object).unwrap()
}

/// The resource as the API server now has it (status included), optionally at a new generation.
fn reread(rig: &Rig) -> PasswordSafeSecret {
    serde_json::from_value(rig.mock.get(PSS_PATH).unwrap()).unwrap()
}

fn app_user_spec() -> Value {
    json!({
        "storeRef": {"name": "ps"},
        "data": [
            {"secretKey": "password", "managedAccount": {"system": "db01", "account": "app_user"}},
            {"secretKey": "username", "managedAccount": {"system": "db01", "account": "app_user", "field": "username"}}
        ]
    })
}

async fn run(
    rig: &Rig,
    object: PasswordSafeSecret,
) -> Result<Next, passwordsafe_operator::controller::reconcile::Error> {
    reconcile(Arc::new(object), rig.ctx.clone()).await
}

fn secret_data(rig: &Rig, key: &str) -> Option<String> {
    rig.mock.get(SECRET_PATH)?["data"][key].as_str().map(str::to_owned)
}

fn status(rig: &Rig) -> Value {
    rig.mock.get(PSS_PATH).unwrap()["status"].clone()
}

fn ready(rig: &Rig) -> (String, String, String) {
    let s = status(rig);
    let c = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    (c["status"].as_str().unwrap().into(), c["reason"].as_str().unwrap().into(), c["message"].as_str().unwrap().into())
}

/// The reason of every event published, in order: kube's recorder creates an event the first time and
/// patches its series count when the same reason repeats.
fn event_reasons(rig: &Rig) -> Vec<String> {
    rig.mock
        .requests()
        .iter()
        .filter(|r| r.path.contains("/events"))
        .filter_map(|r| match r.method.as_str() {
            "POST" => r.body["reason"].as_str().map(str::to_owned),
            "PATCH" => rig.mock.get(&r.path).and_then(|e| e["reason"].as_str().map(str::to_owned)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_new_resource_gets_an_owned_secret_a_ready_status_and_an_event() {
    let rig = rig("", None).await;
    let action = run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    assert_ne!(action, Next::OnChange);
    assert_eq!(secret_data(&rig, "password"), Some(b64(APP_PASSWORD.as_bytes())));
    assert_eq!(secret_data(&rig, "username"), Some(b64(b"app_user")));
    let applied = &rig.mock.calls("PATCH", "/secrets/app")[0];
    assert!(
        applied.query.contains("fieldManager=passwordsafe-operator") && applied.query.contains("force=true"),
        "{}",
        applied.query
    );
    let secret = rig.mock.get(SECRET_PATH).unwrap();
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "pss-uid");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(secret["metadata"]["labels"]["app.kubernetes.io/managed-by"], "passwordsafe-operator");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(ready(&rig).0, "True");
    let s = status(&rig);
    assert!(s["dataHmac"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert_eq!(s["observedGeneration"], 1);
    assert!(s["lastSyncTime"].is_string() && s["nextSyncTime"].is_string());
    assert_eq!(s["sources"][0]["source"], "managedAccount:db01/app_user");
    assert!(s["sources"][0]["lastChangeDate"].is_string());
    assert_eq!(event_reasons(&rig), ["Synced"]);
    assert!(rig.sim.handle().open_requests().is_empty());
}

#[tokio::test]
async fn an_unchanged_resource_is_not_fetched_or_written_again() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let requests_before = rig.sim.handle().call_count("POST Requests");
    rig.mock.clear_requests();
    run(&rig, reread(&rig)).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Requests"), requests_before, "no new credential retrieval");
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty(), "no write when nothing changed");
    assert!(event_reasons(&rig).is_empty(), "no event without a change: {}", rig.mock.transcript());
}

#[tokio::test]
async fn a_reconcile_with_nothing_new_keeps_the_planned_sync_from_memory_when_the_cache_has_no_status() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let announced = status(&rig)["nextSyncTime"].clone();
    rig.mock.clear_requests();
    // Once this process has written the status, the watch cache holds the resource without it.
    let mut cached = reread(&rig);
    cached.status = None;
    run(&rig, cached.clone()).await.unwrap();
    assert!(rig.mock.calls("PATCH", "/app/status").is_empty(), "nothing new to report: {}", rig.mock.transcript());
    assert_eq!(status(&rig)["nextSyncTime"], announced);
    // A failure is reported with its event; the same failure again, from the same status-less copy, is told
    // apart from a new one by memory: no second event.
    let mut broken = cached;
    broken.metadata.generation = Some(2);
    broken.spec.data[0].managed_account.as_mut().unwrap().account = "ghost".into();
    assert_eq!(run(&rig, broken.clone()).await.unwrap_err().reason(), "NotFound");
    assert_eq!(run(&rig, broken).await.unwrap_err().reason(), "NotFound");
    assert_eq!(ready(&rig).1, "NotFound");
    assert_eq!(event_reasons(&rig), ["NotFound"]);
}

/// A status write that the API server may have applied (the connection broke after the patch went out) is not
/// trusted: the next reconcile with nothing new to sync writes the status again rather than keeping the planned
/// sync on the strength of what it meant to write before.
#[tokio::test]
async fn a_status_write_lost_in_transit_is_written_again_by_the_next_reconcile() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let mut cached = reread(&rig);
    cached.status = None;
    // A reconcile fails reading the Secret (a 500, nothing written); its failure status reaches the server, but
    // its response is lost.
    rig.mock.fault_next("GET", "/secrets/app", MockFault::Status(500));
    rig.mock.fault_next("PATCH", "/app/status", MockFault::BreakAfterApplying);
    assert_eq!(run(&rig, cached.clone()).await.unwrap_err().reason(), "KubernetesError");
    assert_eq!(ready(&rig).0, "False", "the failure reached the server");

    rig.mock.clear_requests();
    run(&rig, cached).await.unwrap();
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty(), "the Secret was fine: {}", rig.mock.transcript());
    assert_eq!(ready(&rig).0, "True", "Ready again on the server: {}", rig.mock.transcript());
}

#[tokio::test]
async fn a_deleted_or_edited_secret_is_restored_without_asking_password_safe() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let requests_before = rig.sim.handle().call_count("POST Requests");

    rig.mock.remove(SECRET_PATH);
    run(&rig, reread(&rig)).await.unwrap();
    assert_eq!(secret_data(&rig, "password"), Some(b64(APP_PASSWORD.as_bytes())));

    let mut edited = rig.mock.get(SECRET_PATH).unwrap();
    edited["data"]["password"] = json!(b64(b"tampered"));
    rig.mock.put(SECRET_PATH, edited);
    run(&rig, reread(&rig)).await.unwrap();
    assert_eq!(secret_data(&rig, "password"), Some(b64(APP_PASSWORD.as_bytes())));
    assert_eq!(rig.sim.handle().call_count("POST Requests"), requests_before);
    assert!(event_reasons(&rig).contains(&"SecretRestored".to_owned()), "{:?}", event_reasons(&rig));
}

#[tokio::test]
async fn a_rotation_in_password_safe_is_synced_with_a_rotated_event() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    rig.sim.handle().rotate_account("db01", "app_user").unwrap();
    let new_password = rig.sim.handle().account("db01", "app_user").unwrap().password;
    assert_ne!(new_password, APP_PASSWORD);
    run(&rig, reread(&rig)).await.unwrap();
    assert_eq!(secret_data(&rig, "password"), Some(b64(new_password.as_bytes())));
    let reasons = event_reasons(&rig);
    assert!(
        reasons.contains(&"Rotated".to_owned()) && reasons.iter().filter(|r| *r == "Synced").count() == 2,
        "{reasons:?}"
    );
    assert!(rig.sim.handle().open_requests().is_empty());
}

#[tokio::test]
async fn a_spec_change_fetches_again_and_a_template_renders_keys() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let mut object = rig.mock.get(PSS_PATH).unwrap();
    object["metadata"]["generation"] = json!(2);
    object["spec"]["target"] = json!({
        "type": "kubernetes.io/basic-auth",
        "template": {"data": {"DATABASE_URL": "postgres://{{ username }}:{{ password }}@db01:5432/app"}, "keepSourceKeys": true}
    });
    rig.mock.put(PSS_PATH, object);
    run(&rig, reread(&rig)).await.unwrap();
    let url = format!("postgres://app_user:{APP_PASSWORD}@db01:5432/app");
    assert_eq!(secret_data(&rig, "DATABASE_URL"), Some(b64(url.as_bytes())));
    assert_eq!(secret_data(&rig, "password"), Some(b64(APP_PASSWORD.as_bytes())));
    assert_eq!(rig.mock.get(SECRET_PATH).unwrap()["type"], "kubernetes.io/basic-auth");
    assert_eq!(status(&rig)["observedGeneration"], 2);
    assert_eq!(rig.sim.handle().call_count("POST Requests"), 2);
}

#[tokio::test]
async fn secrets_safe_and_folder_sources_fill_their_keys() {
    let rig = rig("", None).await;
    let spec = json!({
        "storeRef": {"name": "ps"},
        "data": [
            {"secretKey": "db-password", "secretsSafe": {"folderPath": "prod/db", "title": "db-creds"}},
            {"secretKey": "db-user", "secretsSafe": {"folderPath": "prod/db", "title": "db-creds", "field": "username"}},
            {"secretKey": "bundle", "secretsSafe": {"folderPath": "prod/db", "title": "tls-bundle"}}
        ],
        "dataFrom": [{"secretsSafeFolder": {"folderPath": "prod/db", "keyPrefix": "all-"}}]
    });
    run(&rig, pss(&rig, spec)).await.unwrap();
    assert_eq!(secret_data(&rig, "db-password"), Some(b64(SECRET_PASSWORD.as_bytes())));
    assert_eq!(secret_data(&rig, "db-user"), Some(b64(b"dbuser")));
    assert_eq!(secret_data(&rig, "bundle"), Some(b64(FILE_BYTES)));
    assert_eq!(secret_data(&rig, "all-app-config"), Some(b64(SECRET_TEXT.as_bytes())));
    assert_eq!(secret_data(&rig, "all-db-creds.username"), Some(b64(b"dbuser")));
    assert_eq!(secret_data(&rig, "all-tls-bundle"), Some(b64(FILE_BYTES)));
}

async fn delete_with(creation: &str, deletion: &str) -> Rig {
    let rig = rig("", None).await;
    let mut spec = app_user_spec();
    spec["target"] = json!({"creationPolicy": creation, "deletionPolicy": deletion});
    if creation == "Merge" {
        rig.mock.put(
            SECRET_PATH,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app", "namespace": NS, "uid": "theirs"}, "data": {"theirs": b64(b"x")}}),
        );
    }
    run(&rig, pss(&rig, spec)).await.unwrap();
    let mut object = rig.mock.get(PSS_PATH).unwrap();
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    rig.mock.put(PSS_PATH, object);
    rig.mock.clear_requests();
    let action = run(&rig, reread(&rig)).await.unwrap();
    assert_eq!(action, Next::OnChange);
    let finalizer_patches = rig.mock.calls("PATCH", "/passwordsafesecrets/app").len();
    let has_work = matches!((creation, deletion), ("Owner", "Retain") | ("Orphan", "Delete") | ("Merge", "Delete"));
    assert_eq!(finalizer_patches, usize::from(has_work), "the finalizer, where there is one, is removed");
    rig
}

#[tokio::test]
async fn only_deletion_policies_with_work_to_do_carry_the_finalizer() {
    let rig = rig("", None).await;
    let mut spec = app_user_spec();
    spec["target"] = json!({"creationPolicy": "Owner", "deletionPolicy": "Retain"});
    let mut object = serde_json::to_value(pss(&rig, spec)).unwrap();
    object["metadata"]["finalizers"] = json!(null);
    rig.mock.put(PSS_PATH, object.clone());
    run(&rig, serde_json::from_value(object).unwrap()).await.unwrap();
    let added = &rig.mock.calls("PATCH", "/passwordsafesecrets/app")[0];
    assert!(added.content_type.starts_with("application/json-patch"), "{}", added.content_type);
    assert!(added.body.to_string().contains(FINALIZER), "{}", added.body);
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty(), "applied on the next pass, with the finalizer");

    // The default policy (Owner + Delete) never gets it; one set by an earlier version is removed.
    let rig = rig_default_with_old_finalizer().await;
    let removed = &rig.mock.calls("PATCH", "/passwordsafesecrets/app")[0];
    assert!(removed.content_type.starts_with("application/merge-patch"), "{}", removed.content_type);
    assert_eq!(removed.body["metadata"]["finalizers"], json!([]));
    assert_eq!(rig.mock.get(PSS_PATH).unwrap()["metadata"]["finalizers"], json!([]));
    assert_eq!(secret_data(&rig, "password"), Some(b64(APP_PASSWORD.as_bytes())), "and the same pass syncs");
}

async fn rig_default_with_old_finalizer() -> Rig {
    let rig = rig("", None).await;
    let mut object = serde_json::to_value(pss(&rig, app_user_spec())).unwrap();
    object["metadata"]["finalizers"] = json!([FINALIZER]);
    rig.mock.put(PSS_PATH, object.clone());
    run(&rig, serde_json::from_value(object).unwrap()).await.unwrap();
    rig
}

#[tokio::test]
async fn deletion_of_an_owned_secret_is_left_to_the_garbage_collector() {
    let rig = delete_with("Owner", "Delete").await;
    assert!(rig.mock.calls("DELETE", "/secrets/app").is_empty());
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty());
}

#[tokio::test]
async fn deletion_with_retain_drops_the_owner_reference_so_the_secret_survives() {
    let rig = delete_with("Owner", "Retain").await;
    let patch = &rig.mock.calls("PATCH", "/secrets/app")[0];
    assert_eq!(patch.body["metadata"]["ownerReferences"], json!([]));
    assert!(rig.mock.get(SECRET_PATH).is_some());
}

#[tokio::test]
async fn deletion_of_an_orphan_secret_deletes_it() {
    let rig = delete_with("Orphan", "Delete").await;
    assert_eq!(rig.mock.calls("DELETE", "/secrets/app").len(), 1);
    assert!(rig.mock.get(SECRET_PATH).is_none());
}

#[tokio::test]
async fn deletion_of_a_merged_secret_removes_only_our_keys() {
    let rig = delete_with("Merge", "Delete").await;
    let apply = &rig.mock.calls("PATCH", "/secrets/app")[0];
    assert!(apply.content_type.starts_with("application/apply-patch"));
    assert!(apply.body.get("data").is_none_or(|d| d.as_object().is_none_or(|m| m.is_empty())), "{}", apply.body);
}

#[tokio::test]
async fn merged_secret_with_retain_is_left_alone() {
    let rig = delete_with("Merge", "Retain").await;
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty() && rig.mock.calls("DELETE", "/secrets/app").is_empty());
}

#[tokio::test]
async fn a_secret_the_operator_does_not_manage_is_not_taken_over() {
    let rig = rig("", None).await;
    rig.mock.put(
        SECRET_PATH,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app", "namespace": NS, "uid": "theirs"}, "data": {"theirs": b64(b"x")}}),
    );
    let err = run(&rig, pss(&rig, app_user_spec())).await.unwrap_err();
    assert_eq!(err.reason(), "SecretNotOwned", "{err}");
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty());
    let (status, reason, message) = ready(&rig);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretNotOwned"));
    assert!(message.contains("Merge"), "{message}");
}

#[tokio::test]
async fn a_cluster_store_refuses_namespaces_it_does_not_allow() {
    let cluster = json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "ClusterPasswordSafeStore",
        "metadata": {"name": "shared", "uid": "cluster-uid", "generation": 1},
        "spec": {"url": "http://127.0.0.1:1/BeyondTrust/api/public/v3",
                 "auth": {"apiKey": {"secretRef": {"name": "k", "key": "k", "namespace": "ops"}, "runAs": "x"}},
                 "namespaces": {"names": ["other"]}}
    });
    let rig = rig("", Some(cluster)).await;
    let spec = json!({"storeRef": {"kind": "ClusterPasswordSafeStore", "name": "shared"}, "data": [{"secretKey": "p", "managedAccount": {"system": "db01", "account": "app_user"}}]});
    let err = run(&rig, pss(&rig, spec)).await.unwrap_err();
    assert_eq!(err.reason(), "StoreNotAllowed");
    let (status, reason, message) = ready(&rig);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "StoreNotAllowed"));
    assert!(message.contains("namespace demo"), "{message}");
    assert_eq!(event_reasons(&rig), ["StoreNotAllowed"]);
}

#[tokio::test]
async fn a_missing_account_is_reported_with_the_key_and_the_account() {
    let rig = rig("", None).await;
    let spec = json!({"storeRef": {"name": "ps"}, "data": [{"secretKey": "db-pass", "managedAccount": {"system": "db01", "account": "ghost"}}]});
    let err = run(&rig, pss(&rig, spec)).await.unwrap_err();
    assert_eq!(err.reason(), "NotFound");
    let (_, reason, message) = ready(&rig);
    assert_eq!(reason, "NotFound");
    assert!(message.contains("\"db-pass\"") && message.contains("db01/ghost"), "{message}");
}

#[tokio::test]
async fn permission_denied_is_reported_with_its_sub_code_and_the_request_is_checked_in() {
    let rig = rig("", None).await;
    rig.sim.handle().set_faults(vec![FaultRule {
        endpoint: "GET Credentials".into(),
        fault: Fault::Status { status: 403, body: Some("4031".into()) },
        probability: 1.0,
        remaining: None,
    }]);
    let err = run(&rig, pss(&rig, app_user_spec())).await.unwrap_err();
    assert_eq!(err.reason(), "PermissionDenied");
    let (status, reason, message) = ready(&rig);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PermissionDenied"));
    assert!(message.contains("4031") && message.contains("password"), "{message}");
    assert!(rig.sim.handle().open_requests().is_empty());
    // A second failure with the same cause does not repeat the event.
    run(&rig, reread(&rig)).await.unwrap_err();
    assert_eq!(event_reasons(&rig), ["PermissionDenied"]);
}

#[tokio::test]
async fn an_account_that_rotates_after_every_check_in_is_reported_as_a_loop_and_backed_off() {
    let extra = "      - name: loopy\n        password: \"loop-pass\"\n        changePasswordAfterAnyRelease: true\n";
    let rig = rig(extra, None).await;
    let spec = json!({"storeRef": {"name": "ps"}, "data": [{"secretKey": "p", "managedAccount": {"system": "bulk", "account": "loopy"}}]});
    let mut action = run(&rig, pss(&rig, spec)).await.unwrap();
    for _ in 0..3 {
        action = run(&rig, reread(&rig)).await.unwrap();
    }
    let s = status(&rig);
    let looped =
        s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "RotationLoop").cloned().unwrap_or_default();
    assert_eq!(looped["status"], "True", "{s}");
    assert!(looped["message"].as_str().unwrap().contains("rotateOnCheckin: false"));
    assert!(event_reasons(&rig).contains(&"RotationLoop".to_owned()));
    assert!(requeue_secs(&action) >= 60.0, "{action:?}");
}

/// Logs at TRACE, events and status of a success and a failure carry no credential value.
#[tokio::test(flavor = "current_thread")]
async fn no_credential_value_reaches_logs_events_or_status() {
    let (logs, _guard) = capture_logs();
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    rig.sim.handle().set_faults(vec![FaultRule {
        endpoint: "GET Credentials".into(),
        fault: Fault::Malformed,
        probability: 1.0,
        remaining: None,
    }]);
    rig.sim.handle().rotate_account("db01", "app_user").unwrap();
    let _ = run(&rig, reread(&rig)).await;
    let mut visible = logs.text();
    for r in rig.mock.requests().iter().filter(|r| !r.path.contains("/secrets/")) {
        visible.push_str(&r.body.to_string());
    }
    for value in seeded_secret_values().into_iter().chain([APP_PASSWORD]) {
        assert!(!visible.contains(value), "{value} leaked");
        assert!(!visible.contains(&b64(value.as_bytes())), "{value} leaked base64-encoded");
    }
}

/// The requeue delay of a reconcile's result (0 when it waits for a change).
fn requeue_secs(next: &Next) -> f64 {
    match next {
        Next::After(delay) => delay.as_secs_f64(),
        Next::OnChange => 0.0,
    }
}

#[tokio::test]
async fn a_data_change_restarts_the_listed_workloads_but_the_first_sync_does_not() {
    let rig = rig("", None).await;
    let deployment = "/apis/apps/v1/namespaces/demo/deployments/web";
    rig.mock.put(deployment, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {"template": {"metadata": {}}}}));
    let mut spec = app_user_spec();
    spec["rolloutRestartTargets"] =
        json!([{"kind": "Deployment", "name": "web"}, {"kind": "StatefulSet", "name": "missing"}]);
    run(&rig, pss(&rig, spec)).await.unwrap();
    assert!(rig.mock.calls("PATCH", "/deployments/web").is_empty(), "no restart on the first sync");

    rig.sim.handle().rotate_account("db01", "app_user").unwrap();
    run(&rig, reread(&rig)).await.unwrap();
    let restarted = rig.mock.get(deployment).unwrap();
    assert!(
        restarted["spec"]["template"]["metadata"]["annotations"]["passwordsafe.dev/restartedAt"].is_string(),
        "{restarted}"
    );
    let reasons = event_reasons(&rig);
    assert!(
        reasons.contains(&"RolloutRestart".to_owned()) && reasons.contains(&"RolloutRestartFailed".to_owned()),
        "{reasons:?}"
    );
    assert_eq!(ready(&rig).0, "True", "a failed restart does not fail the sync");
}

const STORE_PATH: &str = "/apis/passwordsafe.dev/v1alpha1/namespaces/demo/passwordsafestores/ps";

fn store_object(rig: &Rig, key_secret: &str) -> PasswordSafeStore {
    let object = json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
        "metadata": {"name": "ps", "namespace": NS, "uid": "store-uid", "generation": 1},
        "spec": {"url": rig.sim.base_url(), "auth": {"apiKey": {"secretRef": {"name": key_secret, "key": "key"}, "runAs": "svc-operator"}}}
    });
    rig.mock.put(STORE_PATH, object.clone());
    serde_json::from_value(object).unwrap()
}

#[tokio::test]
async fn store_status_reports_whether_sign_in_works() {
    use passwordsafe_operator::controller::{StoreContext, reconcile_store};
    let rig = rig("", None).await;
    let ctx = Arc::new(StoreContext { kube: rig.ctx.kube.clone(), registry: rig.ctx.stores.clone() });
    reconcile_store(Arc::new(store_object(&rig, "ps-api")), ctx.clone()).await.unwrap();
    let condition = rig.mock.get(STORE_PATH).unwrap()["status"]["conditions"][0].clone();
    assert_eq!((condition["status"].as_str(), condition["reason"].as_str()), (Some("True"), Some("SignedIn")));
    assert!(condition["message"].as_str().unwrap().contains("svc-operator"));

    // The key is rotated in Kubernetes to a wrong one: the watch invalidates the client, sign-in fails.
    rig.mock.put(
        "/api/v1/namespaces/demo/secrets/ps-api",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ps-api", "namespace": NS}, "data": {"key": b64(b"wrong-key")}}),
    );
    let affected = rig.ctx.stores.invalidate_secret(NS, "ps-api");
    assert_eq!(affected.len(), 1);
    reconcile_store(Arc::new(store_object(&rig, "ps-api")), ctx).await.unwrap();
    let condition = rig.mock.get(STORE_PATH).unwrap()["status"]["conditions"][0].clone();
    assert_eq!((condition["status"].as_str(), condition["reason"].as_str()), (Some("False"), Some("Unauthenticated")));
    assert!(!rig.mock.transcript().contains("wrong-key") && !rig.mock.transcript().contains(API_KEY));
}

#[tokio::test]
async fn a_missing_credentials_secret_is_named_in_store_and_secret_status() {
    use passwordsafe_operator::controller::{StoreContext, reconcile_store};
    let rig = rig("", None).await;
    rig.mock.remove("/api/v1/namespaces/demo/secrets/ps-api");
    let ctx = Arc::new(StoreContext { kube: rig.ctx.kube.clone(), registry: rig.ctx.stores.clone() });
    reconcile_store(Arc::new(store_object(&rig, "ps-api")), ctx).await.unwrap();
    let condition = rig.mock.get(STORE_PATH).unwrap()["status"]["conditions"][0].clone();
    assert_eq!(
        (condition["status"].as_str(), condition["reason"].as_str()),
        (Some("False"), Some("StoreCredentialsMissing"))
    );
    assert!(condition["message"].as_str().unwrap().contains("Secret demo/ps-api not found"), "{condition}");

    let err = run(&rig, pss(&rig, app_user_spec())).await.unwrap_err();
    assert_eq!(err.reason(), "StoreCredentialsMissing");
    let (_, reason, message) = ready(&rig);
    assert_eq!(reason, "StoreCredentialsMissing");
    assert!(message.contains("demo/ps-api"), "{message}");
}

#[tokio::test]
async fn one_client_serves_every_resource_of_a_store_until_its_credentials_change() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let other: PasswordSafeSecret = serde_json::from_value(json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeSecret",
        "metadata": {"name": "other", "namespace": NS, "uid": "other-uid", "generation": 1},
        "spec": {"storeRef": {"name": "ps"}, "data": [{"secretKey": "k", "secretsSafe": {"folderPath": "prod/db", "title": "app-config"}}]}
    }))
    .unwrap();
    rig.mock.put(
        "/apis/passwordsafe.dev/v1alpha1/namespaces/demo/passwordsafesecrets/other",
        serde_json::to_value(&other).unwrap(),
    );
    run(&rig, other.clone()).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Auth/SignAppIn"), 1, "one session for both resources");
    rig.ctx.stores.invalidate_secret(NS, "ps-api");
    let mut changed = serde_json::to_value(&other).unwrap();
    changed["metadata"]["generation"] = json!(2);
    run(&rig, serde_json::from_value(changed).unwrap()).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Auth/SignAppIn"), 2, "a rebuilt client signs in again");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rig.sim.handle().call_count("POST Auth/Signout"), 1, "the replaced client's session is ended");
}

#[tokio::test]
async fn after_a_restart_an_unchanged_secret_is_adopted_without_requesting_credentials_again() {
    let rig = rig("", None).await;
    run(&rig, pss(&rig, app_user_spec())).await.unwrap();
    let requests = rig.sim.handle().call_count("POST Requests");
    // A new process: nothing in memory, a new store client.
    let restarted = restart(&rig).await;
    rig.mock.clear_requests();
    run_with(&restarted.0, reread(&rig)).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Requests"), requests, "adopted, not fetched");
    assert!(rig.mock.calls("PATCH", "/secrets/app").is_empty());

    // After a rotation, or with a tampered Secret, a restarted operator fetches.
    rig.sim.handle().rotate_account("db01", "app_user").unwrap();
    let restarted = restart(&rig).await;
    run_with(&restarted.0, reread(&rig)).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Requests"), requests + 1);
    let mut tampered = rig.mock.get(SECRET_PATH).unwrap();
    tampered["data"]["password"] = json!(b64(b"tampered"));
    rig.mock.put(SECRET_PATH, tampered);
    let restarted = restart(&rig).await;
    run_with(&restarted.0, reread(&rig)).await.unwrap();
    assert_eq!(rig.sim.handle().call_count("POST Requests"), requests + 2);
    let current = rig.sim.handle().account("db01", "app_user").unwrap().password;
    assert_eq!(secret_data(&rig, "password"), Some(b64(current.as_bytes())));
}

/// A context as a freshly started operator has it: same cluster and Password Safe, empty memory.
/// The writers keep the store caches alive as long as the context is used.
async fn restart(rig: &Rig) -> (Arc<Context>, Writer<PasswordSafeStore>, Writer<ClusterPasswordSafeStore>) {
    context(rig.ctx.kube.clone(), &rig.sim.base_url(), None)
}

/// A context whose store `ps` (demo) points at `url`, with an optional cluster store, as the operator builds it.
fn context(
    kube: kube::Client,
    url: &str,
    cluster_store: Option<Value>,
) -> (Arc<Context>, Writer<PasswordSafeStore>, Writer<ClusterPasswordSafeStore>) {
    let store: PasswordSafeStore = serde_json::from_value(json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
        "metadata": {"name": "ps", "namespace": NS, "uid": "store-uid", "generation": 1},
        "spec": {"url": url, "auth": {"apiKey": {"secretRef": {"name": "ps-api", "key": "key"}, "runAs": "svc-operator"}}}
    }))
    .unwrap();
    let (store_reader, mut store_writer) = reflector::store::<PasswordSafeStore>();
    for event in [watcher::Event::Init, watcher::Event::InitApply(store), watcher::Event::InitDone] {
        store_writer.apply_watcher_event(&event);
    }
    let (cluster_reader, mut cluster_writer) = reflector::store::<ClusterPasswordSafeStore>();
    cluster_writer.apply_watcher_event(&watcher::Event::Init);
    if let Some(cluster) = cluster_store {
        cluster_writer.apply_watcher_event(&watcher::Event::InitApply(serde_json::from_value(cluster).unwrap()));
    }
    cluster_writer.apply_watcher_event(&watcher::Event::InitDone);
    let registry = Arc::new(StoreRegistry::new(
        kube.clone(),
        store_reader,
        cluster_reader,
        Arc::new(NoopObserver),
        Duration::from_secs(60),
        None,
    ));
    let events = EventPublisher::new(kube.clone(), "passwordsafe-operator");
    let hmac = DataHmac::new(SecretBytes::new(vec![7u8; 32])).unwrap();
    (Arc::new(Context::new(kube, events, registry, hmac, Duration::from_secs(3600))), store_writer, cluster_writer)
}

async fn run_with(
    ctx: &Arc<Context>,
    object: PasswordSafeSecret,
) -> Result<Next, passwordsafe_operator::controller::reconcile::Error> {
    reconcile(Arc::new(object), ctx.clone()).await
}
