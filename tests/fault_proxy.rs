//! The fault-injecting proxy of the end-to-end tests, against a real kube-apiserver (the development control
//! plane of tests/control-plane, one per test binary): plain forwarding, watch streaming, dropped watches and
//! kube-rs's reconnect, injected write errors as Kubernetes statuses, seeded fractions, latency, token auth.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use support::CapturedLogs;
use support::e2e;
use support::fault_proxy::{FaultHandle, FaultProxy, Upstream, UpstreamAuth};
use tokio::sync::mpsc;

const LABEL: &str = "fault-proxy-test";
/// How long any single expected event may take (generous: two shared cores).
const WAIT: Duration = Duration::from_secs(20);

/// The admin credentials of the shared end-to-end cluster (tests/support/e2e.rs).
async fn admin_upstream() -> Upstream {
    Upstream::from_kubeconfig(&e2e::cluster().await.kubeconfig).expect("admin kubeconfig")
}

async fn start_proxy(upstream: Upstream) -> (FaultProxy, FaultHandle, kube::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    captured_logs();
    let proxy = FaultProxy::start(upstream).await.expect("start the fault proxy");
    let config = proxy.kube_config(Some("default")).await.expect("kube config for the proxy");
    let client = kube::Client::try_from(config).expect("kube client");
    let handle = proxy.handle();
    (proxy, handle, client)
}

async fn admin_proxy() -> (FaultProxy, FaultHandle, kube::Client) {
    start_proxy(admin_upstream().await).await
}

fn config_map(name: &str, test: &str, data: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(LABEL.to_owned(), test.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()),
        ..ConfigMap::default()
    }
}

fn api_status(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a watcher running in the background reported: object names, or `!error` for a stream error.
async fn next_event(events: &mut mpsc::UnboundedReceiver<String>, what: &str) -> String {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the watcher task ended")
}

async fn wait_for_object(events: &mut mpsc::UnboundedReceiver<String>, name: &str) {
    loop {
        if next_event(events, name).await == name {
            return;
        }
    }
}

/// A kube-runtime watcher (default backoff) on this test's ConfigMaps, reporting into a channel.
fn spawn_watcher(client: kube::Client, test: &str) -> (mpsc::UnboundedReceiver<String>, tokio::task::JoinHandle<()>) {
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let config = watcher::Config::default().labels(&format!("{LABEL}={test}"));
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(cm) => cm.metadata.name.unwrap_or_default(),
                Err(_) => "!error".to_owned(),
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    (rx, task)
}

#[tokio::test]
async fn forwards_create_get_list_delete() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);

    // Large enough to span many TLS records and socket reads both ways.
    let big = "0123456789abcdef".repeat(20_000);
    let cm = config_map("fp-crud", "crud", &[("small", "v".to_owned()), ("big", big.clone())]);
    let created = api.create(&PostParams::default(), &cm).await.expect("create");
    assert_eq!(created.data.as_ref().unwrap()["big"], big);

    let got = api.get("fp-crud").await.expect("get");
    assert_eq!(got.data.as_ref().unwrap()["small"], "v");
    assert_eq!(got.data.as_ref().unwrap()["big"], big);

    let list = api.list(&ListParams::default().labels(&format!("{LABEL}=crud"))).await.expect("list");
    let names: Vec<_> = list.items.iter().filter_map(|cm| cm.metadata.name.as_deref()).collect();
    assert_eq!(names, ["fp-crud"]);

    api.delete("fp-crud", &DeleteParams::default()).await.expect("delete");
    let status = api_status(api.get("fp-crud").await);
    assert_eq!(status.code, 404);
    assert!(status.is_not_found());

    let stats = faults.stats();
    assert_eq!(stats.requests_forwarded, 5);
    assert_eq!(stats.injected_errors_total(), 0);
    assert_eq!(stats.delayed_requests, 0);
    // kube-rs kept its connection alive through the proxy.
    assert!(stats.connections_accepted < stats.requests_forwarded, "{stats:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn streams_watch_events() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let (mut events, watcher_task) = spawn_watcher(client, "stream");
    eventually("the watch is open", || faults.stats().open_watches >= 1).await;

    api.create(&PostParams::default(), &config_map("fp-stream-a", "stream", &[])).await.expect("create a");
    wait_for_object(&mut events, "fp-stream-a").await;
    api.create(&PostParams::default(), &config_map("fp-stream-b", "stream", &[])).await.expect("create b");
    wait_for_object(&mut events, "fp-stream-b").await;

    let stats = faults.stats();
    assert_eq!(stats.watches_forwarded, 1, "one watch carried both events: {stats:?}");
    assert_eq!(stats.watches_dropped, 0);
    watcher_task.abort();
    proxy.shutdown().await;
}

#[tokio::test]
async fn dropped_watch_is_resumed_by_the_watcher() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let (mut events, watcher_task) = spawn_watcher(client, "drop");
    eventually("the watch is open", || faults.stats().open_watches >= 1).await;
    api.create(&PostParams::default(), &config_map("fp-drop-a", "drop", &[])).await.expect("create a");
    wait_for_object(&mut events, "fp-drop-a").await;

    faults.drop_watches_now();
    eventually("the watch was dropped", || faults.stats().watches_dropped == 1).await;
    // kube-rs takes a watch cut mid-stream for a resumable end ("eof in poll") and watches again from its last
    // resourceVersion; a later object still arrives.
    eventually("the watcher watches again", || faults.stats().watches_forwarded >= 2).await;
    api.create(&PostParams::default(), &config_map("fp-drop-b", "drop", &[])).await.expect("create b");
    wait_for_object(&mut events, "fp-drop-b").await;
    let stats = faults.stats();
    assert!(stats.watches_forwarded >= 2, "{stats:?}");
    assert_eq!(stats.watches_dropped, 1, "the new watch was left alone: {stats:?}");
    watcher_task.abort();
    proxy.shutdown().await;
}

/// A watch resumed from a resourceVersion the "API server" no longer has gets a 410 `Expired` event: kube-rs's
/// watcher lists again (a new `Init`), and an object deleted meanwhile is missing from that listing, where no
/// delete event reports it.
#[tokio::test]
async fn an_expired_watch_makes_the_watcher_list_again() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("fp-expire-a", "expire", &[])).await.expect("create a");
    let config = watcher::Config::default().labels(&format!("{LABEL}=expire"));
    let (tx, mut events) = mpsc::unbounded_channel();
    let watcher_task = tokio::spawn(async move {
        let mut stream =
            std::pin::pin!(watcher(Api::<ConfigMap>::default_namespaced(client), config).default_backoff());
        while let Some(event) = stream.next().await {
            let seen = match event {
                Ok(watcher::Event::Init) => "init".to_owned(),
                Ok(watcher::Event::InitApply(cm)) => format!("listed {}", cm.metadata.name.unwrap_or_default()),
                Ok(watcher::Event::InitDone) => "listed".to_owned(),
                Ok(watcher::Event::Delete(cm)) => format!("deleted {}", cm.metadata.name.unwrap_or_default()),
                Ok(watcher::Event::Apply(cm)) => format!("applied {}", cm.metadata.name.unwrap_or_default()),
                Err(_) => "!error".to_owned(),
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    for expected in ["init", "listed fp-expire-a", "listed"] {
        assert_eq!(next_event(&mut events, expected).await, expected);
    }
    eventually("the watch is open", || faults.stats().open_watches >= 1).await;

    // The watcher is cut off; the object is deleted meanwhile (straight at the API server); when the watcher
    // comes back, its resourceVersion has "expired".
    faults.refuse_connections(true);
    faults.drop_connections_now();
    let direct: Api<ConfigMap> = Api::namespaced(e2e::cluster().await.admin().await, "default");
    direct.delete("fp-expire-a", &DeleteParams::default()).await.expect("delete a");
    faults.expire_watches(true);
    faults.refuse_connections(false);
    eventually("a resumed watch expired", || faults.stats().watches_expired >= 1).await;
    faults.expire_watches(false);
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("listed") {
        seen.push(next_event(&mut events, "a new listing").await);
    }
    assert!(seen.contains(&"init".to_owned()), "the watcher listed again: {seen:?}");
    assert!(!seen.iter().any(|s| s == "deleted fp-expire-a" || s == "listed fp-expire-a"), "{seen:?}");
    watcher_task.abort();
    proxy.shutdown().await;
}

#[tokio::test]
async fn watches_are_dropped_periodically_until_turned_off() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let (mut events, watcher_task) = spawn_watcher(client, "every");
    faults.drop_watches_every(Some(Duration::from_millis(300)));
    eventually("two watches were dropped", || faults.stats().watches_dropped >= 2).await;

    faults.clear();
    api.create(&PostParams::default(), &config_map("fp-every", "every", &[])).await.expect("create");
    wait_for_object(&mut events, "fp-every").await;
    let dropped = faults.stats().watches_dropped;
    eventually("a watch is open again", || faults.stats().open_watches >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(faults.stats().watches_dropped, dropped, "no more drops after clear()");
    watcher_task.abort();
    proxy.shutdown().await;
}

#[tokio::test]
async fn injected_write_errors_are_kubernetes_statuses() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = config_map("fp-errors", "errors", &[("k", "v".to_owned())]);

    faults.write_error_rate(500, 1.0);
    let status = api_status(api.create(&PostParams::default(), &cm).await);
    assert_eq!(status.code, 500);
    assert_eq!(status.reason, "InternalError");
    assert_eq!(status.message, "injected by fault proxy");
    assert!(status.is_failure());

    faults.write_error_rate(409, 1.0);
    let status = api_status(api.create(&PostParams::default(), &cm).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert!(status.is_conflict());

    // Reads go through, and show the failed writes never reached the apiserver.
    assert_eq!(api_status(api.get("fp-errors").await).code, 404);
    api.list(&ListParams::default().labels(&format!("{LABEL}=errors"))).await.expect("list while writes fail");

    faults.clear();
    api.create(&PostParams::default(), &cm).await.expect("create after clear()");
    api.delete("fp-errors", &DeleteParams::default()).await.expect("delete after clear()");

    let stats = faults.stats();
    assert_eq!(stats.injected_errors, BTreeMap::from([(409, 1), (500, 1)]));
    assert_eq!(stats.requests_forwarded, 4, "get, list, create, delete: {stats:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn write_error_fraction_follows_the_seed() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let cm = config_map("fp-fraction", "fraction", &[]);

    let mut runs = Vec::new();
    for _ in 0..2 {
        faults.reseed(7);
        faults.write_error_rate(500, 0.5);
        let mut outcomes = Vec::new();
        for _ in 0..16 {
            outcomes.push(api.create(&dry_run, &cm).await.is_ok());
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1], "same seed, same decisions");
    assert!(runs[0].contains(&true) && runs[0].contains(&false), "some writes failed, some not: {:?}", runs[0]);
    let failed = runs.concat().iter().filter(|ok| !**ok).count() as u64;
    assert_eq!(faults.stats().injected_errors, BTreeMap::from([(500, failed)]));

    faults.write_error_rate(500, 0.0);
    api.create(&dry_run, &cm).await.expect("a fraction of 0 turns errors off");
    proxy.shutdown().await;
}

#[tokio::test]
async fn latency_delays_but_forwards() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    faults.latency(Duration::from_millis(150));
    api.list(&ListParams::default().labels(&format!("{LABEL}=latency"))).await.expect("list");
    assert_eq!(api_status(api.get("fp-latency").await).code, 404);
    let stats = faults.stats();
    assert_eq!(stats.delayed_requests, 2);
    assert_eq!(stats.requests_forwarded, 2);

    faults.clear();
    api.list(&ListParams::default()).await.expect("list");
    assert_eq!(faults.stats().delayed_requests, 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn outage_drops_and_refuses_connections() {
    let (proxy, faults, client) = admin_proxy().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let lp = ListParams::default().labels(&format!("{LABEL}=outage"));
    api.list(&lp).await.expect("list before the outage");

    faults.refuse_connections(true);
    faults.drop_connections_now();
    eventually("the open connection was dropped", || faults.stats().connections_dropped == 1).await;
    for _ in 0..2 {
        let error = api.list(&lp).await.expect_err("no apiserver during the outage");
        assert!(!matches!(error, kube::Error::Api(_)), "a transport error, not an API answer: {error:?}");
    }
    assert!(faults.stats().connections_refused >= 1, "{:?}", faults.stats());

    faults.clear();
    api.list(&lp).await.expect("list after the outage");
    proxy.shutdown().await;
}

/// Everything any test of this binary logs, at TRACE (a global subscriber: a thread-local one would miss
/// events whose callsite another test's thread registered first).
fn captured_logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");
        logs
    })
}

#[tokio::test]
async fn authenticates_upstream_with_a_service_account_token() {
    let (admin_proxy, _, admin) = admin_proxy().await;
    let accounts: Api<ServiceAccount> = Api::default_namespaced(admin);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some("fp-token".to_owned()), ..ObjectMeta::default() },
        ..ServiceAccount::default()
    };
    accounts.create(&PostParams::default(), &account).await.expect("create the ServiceAccount");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(600), ..TokenRequestSpec::default() }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request("fp-token", &PostParams::default(), &request)
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token
        .expect("a token");

    // A token kubeconfig, read the same way as the admin one.
    let admin = admin_upstream().await;
    let server = &admin.server;
    let ca_data = support::base64(admin.ca_pem.as_bytes());
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: sa\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca_data}\nusers:\n- name: u\n  user:\n    token: {token}\n\
         contexts:\n- name: sa\n  context:\n    cluster: c\n    user: u\n"
    );
    let upstream = Upstream::from_kubeconfig_yaml(&kubeconfig, Path::new(".")).expect("token kubeconfig");
    assert!(matches!(&upstream.auth, UpstreamAuth::Token(t) if *t == token));
    assert!(!format!("{upstream:?}").contains(&token), "Debug hides the token");

    let (proxy, faults, client) = start_proxy(upstream).await;
    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("self subject review");
    let user = review.status.and_then(|s| s.user_info).and_then(|u| u.username);
    assert_eq!(user.as_deref(), Some("system:serviceaccount:default:fp-token"));
    assert_eq!(faults.stats().requests_forwarded, 1);
    proxy.shutdown().await;
    admin_proxy.shutdown().await;

    let logs = String::from_utf8_lossy(&captured_logs().0.lock().unwrap()).into_owned();
    assert!(logs.contains("fault proxy: forwarded"), "the proxy's logs were captured");
    assert!(!logs.contains(&token), "the upstream token is never logged");
    let UpstreamAuth::ClientCert { key_pem, .. } = &admin.auth else { panic!("admin cert") };
    let key_body = key_pem.lines().nth(1).expect("a PEM body line");
    assert!(!logs.contains(key_body), "the upstream client key is never logged");
}
