//! End-to-end: the real `passwordsafe-operator` binary, under the RBAC shipped in deploy/, against a real
//! kube-apiserver + etcd + kube-controller-manager (see tests/support/e2e.rs) and the Password Safe simulator.
//! Assertions are on what a user sees: Secrets, status, printer columns, events, and the operator's logs.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use passwordsafe_simulator::{Running, Seed, ServeOptions};
use serde_json::Value;
use support::e2e::{self, Cluster, Operator, eventually};
use support::fault_proxy::FaultProxy;

const WAIT: Duration = Duration::from_secs(60);

/// One test's world: its namespace, a simulator, the operator watching that namespace.
struct World {
    cluster: &'static Cluster,
    ns: String,
    sim: Running,
    operator: Operator,
    /// Between the operator and the API server, when the test injects Kubernetes faults.
    proxy: Option<FaultProxy>,
    /// The operator's kubeconfig (its ServiceAccount token, or the proxy).
    kubeconfig: std::path::PathBuf,
}

impl World {
    /// A namespace with the example store (pointed at a fresh simulator, polling every 5 s) and a running
    /// operator, ready to receive examples.
    async fn new(prefix: &str) -> World {
        Self::start(prefix, false, &[]).await
    }

    /// Like `new`, with the operator talking to the API server through the fault-injecting proxy.
    async fn behind_proxy(prefix: &str) -> World {
        Self::start(prefix, true, &[]).await
    }

    async fn start(prefix: &str, via_proxy: bool, operator_args: &[&str]) -> World {
        let cluster = e2e::cluster().await;
        let ns = cluster.namespace(prefix).await;
        let sim = passwordsafe_simulator::start(Seed::demo(), ServeOptions::default()).await.unwrap();
        let mut kubeconfig = cluster.operator_kubeconfig(&ns).await.unwrap();
        let mut proxy = None;
        if via_proxy {
            let (started, proxied) = FaultProxy::in_front_of(&kubeconfig, &ns).await;
            kubeconfig = proxied;
            proxy = Some(started);
        }
        let operator = start_operator(&kubeconfig, &ns, operator_args);
        let world = World { cluster, ns, sim, operator, proxy, kubeconfig };
        world.apply_example("store-apikey.yaml");
        world.kubectl(&[
            "patch",
            "psstore",
            "passwordsafe",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"changeDetectionInterval":"5s"}}"#,
        ]);
        world
    }

    /// An example manifest with its namespaces and the simulator URL made this world's.
    fn example(&self, file: &str) -> String {
        std::fs::read_to_string(e2e::repo_root().join("deploy/examples").join(file))
            .unwrap()
            .replace("namespace: demo", &format!("namespace: {}", self.ns))
            .replace("namespace: passwordsafe-system", &format!("namespace: {}", self.ns))
            .replace("http://127.0.0.1:8080/BeyondTrust/api/public/v3", &self.sim.base_url())
    }

    fn apply_example(&self, file: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], &self.example(file));
        assert!(out.0, "kubectl apply {file}: {}", out.1);
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.cluster.kubectl_ok(&self.ns, args)
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> (bool, String) {
        self.cluster.kubectl(&self.ns, args, stdin)
    }

    async fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.cluster.admin().await, &self.ns)
    }

    async fn secret_value(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        let secret = self.secrets().await.get_opt(name).await.ok()??;
        secret.data?.get(key).map(|b| b.0.clone())
    }

    /// The PasswordSafeSecret as JSON.
    fn pss(&self, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", "pss", name, "-o", "json"])).unwrap()
    }

    fn ready(&self, name: &str) -> Option<(String, String, String)> {
        let pss = self.pss(name);
        let c = pss["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        Some((c["status"].as_str()?.into(), c["reason"].as_str()?.into(), c["message"].as_str()?.into()))
    }

    async fn wait_ready(&self, name: &str) {
        eventually(&format!("{name} Ready"), WAIT, || async { self.ready(name).filter(|r| r.0 == "True") }).await;
    }

    fn password_of(&self, system: &str, account: &str) -> String {
        self.sim.handle().account(system, account).unwrap().password
    }

    async fn wait_lease_holder(&self, who: &str) {
        let args = ["get", "lease", "passwordsafe-operator", "-o", "jsonpath={.spec.holderIdentity}"];
        eventually(&format!("{who} to hold the Lease"), WAIT, || async {
            (self.kubectl_stdin(&args, "").1 == who).then_some(())
        })
        .await;
    }

    /// Rotates an account in the simulator and waits for the Secret to carry the new password.
    async fn rotate_and_wait_synced(&self, system: &str, account: &str, secret: &str) {
        self.sim.handle().rotate_account(system, account).unwrap();
        let after = self.password_of(system, account);
        eventually(&format!("{secret} to follow the rotation"), WAIT, || async {
            (self.secret_value(secret, "password").await? == after.as_bytes()).then_some(())
        })
        .await;
    }

    async fn finish(mut self) {
        assert_eq!(self.operator.terminate().await, Some(0), "the operator exits 0 on SIGTERM");
        // Other tests' operators also watch cluster-scoped stores: give them a moment to sign out of ours.
        eventually("every session signed out", Duration::from_secs(10), || async {
            (self.sim.handle().active_sessions() == 0).then_some(())
        })
        .await;
        let logs = self.operator.logs();
        assert!(!logs.contains("forbidden"), "the operator hit an RBAC denial:\n{}", tail(&logs));
        self.cluster.delete_namespace(&self.ns).await;
    }
}

fn start_operator(kubeconfig: &std::path::Path, ns: &str, extra: &[&str]) -> Operator {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_passwordsafe-operator"));
    let mut args = vec!["--change-detection-interval", "5s"];
    args.extend_from_slice(extra);
    Operator::start(binary, kubeconfig, ns, &args).unwrap()
}

fn tail(text: &str) -> String {
    text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn examples_sync_into_secrets_under_the_shipped_rbac() {
    let world = World::new("examples").await;
    for file in [
        "managed-account.yaml",
        "ssh-key.yaml",
        "isa-account.yaml",
        "alias.yaml",
        "secrets-safe.yaml",
        "folder.yaml",
        "template-basic-auth.yaml",
    ] {
        world.apply_example(file);
    }
    for name in ["db01-readonly", "web01-deploy-ssh", "web01-root", "web-deploy", "prod-db", "prod-db-folder", "app-db"]
    {
        world.wait_ready(name).await;
    }
    let readonly = world.password_of("db01.example.test", "readonly_user");
    assert_eq!(world.secret_value("db01-readonly", "password").await.unwrap(), readonly.as_bytes());
    assert_eq!(world.secret_value("db01-readonly", "username").await.unwrap(), b"readonly_user");
    let ssh = world.secrets().await.get("web01-deploy-ssh").await.unwrap();
    assert_eq!(ssh.type_.as_deref(), Some("kubernetes.io/ssh-auth"));
    assert!(ssh.data.unwrap()["ssh-privatekey"].0.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----"));
    let labels = world.secrets().await.get("db01-readonly").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "passwordsafe-operator");

    let status = &world.pss("db01-readonly")["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert!(status["dataHmac"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(status["sources"][0]["lastChangeDate"].is_string());
    let table = world.kubectl(&["get", "pss", "-o", "wide"]);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "READY", "STORE", "LAST SYNC", "NEXT SYNC", "AGE", "REASON", "SECRET"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(!table.contains("<invalid>"), "{table}");
    let events = world.kubectl(&["get", "events", "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}"]);
    assert!(events.lines().any(|r| r == "Synced"), "{events}");
    let store = world.kubectl(&["get", "psstore", "passwordsafe", "-o", "jsonpath={.status.conditions[0].reason}"]);
    assert_eq!(store, "SignedIn");

    let sign_ins = world.sim.handle().call_count("POST Auth/SignAppIn");
    // `check --store` signs in with the store's own settings and Secrets, as the operator does. (Async: the
    // simulator it talks to runs on this test's runtime.)
    let check = tokio::process::Command::new(env!("CARGO_BIN_EXE_passwordsafe-operator"))
        .args(["check", "--store", &format!("{}/passwordsafe", world.ns), "--kubeconfig"])
        .arg(&world.cluster.kubeconfig)
        .args(["--managed-account", "db01.example.test/readonly_user", "--secret", "prod/db/postgres-admin"])
        .args(["--managed-account", "db01.example.test/no_such_user"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(!check.status.success(), "one item does not exist: {report}");
    assert!(report.contains(&format!("ok    PasswordSafeStore {}/passwordsafe: http://", world.ns)), "{report}");
    assert!(report.contains("ok    managed account db01.example.test/readonly_user: password ("), "{report}");
    assert!(report.contains("ok    secret prod/db/postgres-admin: credential secret"), "{report}");
    assert!(report.contains("FAIL  managed account db01.example.test/no_such_user"), "{report}");

    // What Prometheus scrapes: counts by endpoint and result, no object names, nothing secret.
    let (status, metrics) = world.operator.http_get("/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"passwordsafe_operator_passwordsafe_api_calls_total{endpoint="POST Requests",status="201"}"#,
        r#"passwordsafe_operator_passwordsafe_api_calls_total{endpoint="PUT Requests/Checkin",status="204"}"#,
        r#"passwordsafe_operator_reconciles_total{result="success"}"#,
        "passwordsafe_operator_passwordsafe_open_requests 0",
        "passwordsafe_operator_managed_secrets 7",
        "passwordsafe_operator_leader 1",
        "passwordsafe_operator_reconcile_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.contains(&format!("passwordsafe_operator_passwordsafe_sign_ins_total {sign_ins}\n")), "{metrics}");
    assert!(!metrics.contains("db01-readonly") && !metrics.contains(&world.ns), "no per-object labels");
    assert_eq!(world.operator.http_get("/readyz").await.unwrap(), (200, "ready\n".to_owned()));
    assert_eq!(world.operator.http_get("/healthz").await.unwrap().0, 200);

    // Nothing secret in the operator's TRACE logs, in events, in status or in the metrics.
    let mut visible = world.operator.logs();
    visible.push_str(&metrics);
    visible.push_str(&report);
    visible.push_str(&world.kubectl(&["get", "events", "-o", "json"]));
    visible.push_str(&world.kubectl(&["get", "pss", "-o", "json"]));
    let handle = world.sim.handle();
    let mut values: Vec<String> = handle
        .accounts()
        .into_iter()
        .flat_map(|a| [Some(a.state.password), a.state.dss_key, a.state.passphrase])
        .flatten()
        .collect();
    values.extend(["demo-api-key-0123456789abcdef".to_owned(), "Pg-Admin-Passw0rd".to_owned()]);
    for value in values.iter().filter(|v| v.len() >= 8) {
        assert!(!visible.contains(&support::base64(value.as_bytes())), "a credential value leaked base64-encoded");
        for line in value.lines().filter(|l| l.len() >= 8 && !l.starts_with("-----")) {
            assert!(!visible.contains(line), "a credential value leaked into logs, events or status");
        }
    }
    world.finish().await;
}

#[tokio::test]
async fn rotations_and_drift_reach_the_secret() {
    let world = World::new("rotation").await;
    world.apply_example("managed-account.yaml");
    world.wait_ready("db01-readonly").await;
    let before = world.password_of("db01.example.test", "readonly_user");
    world.sim.handle().rotate_account("db01.example.test", "readonly_user").unwrap();
    let after = world.password_of("db01.example.test", "readonly_user");
    assert_ne!(before, after);
    eventually("the rotated password in the Secret", WAIT, || async {
        (world.secret_value("db01-readonly", "password").await? == after.as_bytes()).then_some(())
    })
    .await;

    world.kubectl(&["delete", "secret", "db01-readonly"]);
    eventually("the deleted Secret restored", WAIT, || async { world.secret_value("db01-readonly", "password").await })
        .await;
    world.kubectl(&[
        "patch",
        "secret",
        "db01-readonly",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"password":"dGFtcGVyZWQ="}}"#,
    ]);
    eventually("the edited Secret restored", WAIT, || async {
        (world.secret_value("db01-readonly", "password").await? == after.as_bytes()).then_some(())
    })
    .await;
    let events = world.kubectl(&["get", "events", "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}"]);
    assert!(events.lines().any(|r| r == "Rotated") && events.lines().any(|r| r == "SecretRestored"), "{events}");
    world.finish().await;
}

#[tokio::test]
async fn the_operator_converges_through_dropped_watches_and_conflicting_writes() {
    let world = World::behind_proxy("faults").await;
    let faults = world.proxy.as_ref().unwrap().handle();
    faults.drop_watches_every(Some(Duration::from_secs(2)));
    faults.write_error_rate(409, 0.3);
    world.apply_example("managed-account.yaml");
    world.apply_example("secrets-safe.yaml");
    world.wait_ready("db01-readonly").await;
    world.wait_ready("prod-db").await;
    world.sim.handle().rotate_account("db01.example.test", "readonly_user").unwrap();
    let after = world.password_of("db01.example.test", "readonly_user");
    eventually("the rotation through the faults", WAIT, || async {
        (world.secret_value("db01-readonly", "password").await? == after.as_bytes()).then_some(())
    })
    .await;
    let stats = faults.stats();
    assert!(stats.watches_dropped > 0, "{stats:?}");
    assert!(stats.injected_errors_total() > 0, "{stats:?}");
    faults.clear();
    world.finish().await;
}

/// Short Lease timings, so that a crashed holder's Lease expires within seconds.
const FAST_LEASE: [&str; 7] =
    ["--leader-elect", "--lease-duration", "4s", "--lease-renew-deadline", "3s", "--lease-retry-period", "1s"];

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_a_stopped_or_killed_holder_hands_over() {
    let with_identity = |id: &'static str| [&FAST_LEASE[..], &["--identity", id]].concat();
    let mut world = World::start("leader", false, &with_identity("op-a")).await;
    let mut op_b = start_operator(&world.kubeconfig, &world.ns, &with_identity("op-b"));
    world.wait_lease_holder("op-a").await;
    world.apply_example("managed-account.yaml");
    world.wait_ready("db01-readonly").await;
    assert!(world.operator.logs().contains("fetched from Password Safe"));
    assert!(!op_b.logs().contains("reconcile{"), "the standby must not reconcile:\n{}", tail(&op_b.logs()));
    let (ready, standby_metrics) = (op_b.http_get("/readyz").await.unwrap(), op_b.http_get("/metrics").await.unwrap());
    assert_eq!(ready.0, 200, "a standby is ready: it has nothing to sync");
    assert!(standby_metrics.1.contains("passwordsafe_operator_leader 0"), "{}", standby_metrics.1);

    // SIGTERM: the holder releases the Lease on its way out, so the standby takes over at once.
    let stopped = std::time::Instant::now();
    assert_eq!(world.operator.terminate().await, Some(0));
    world.wait_lease_holder("op-b").await;
    println!("Lease taken over {:.1} s after SIGTERM to the holder", stopped.elapsed().as_secs_f64());
    // Taken over because it was released, not because it expired (the figure above is printed, not asserted:
    // no timing assertions in tests).
    assert!(world.operator.logs().contains("released leadership"), "{}", tail(&world.operator.logs()));
    world.rotate_and_wait_synced("db01.example.test", "readonly_user", "db01-readonly").await;

    // SIGKILL: nothing is released; the next standby takes over once the Lease expires.
    let mut op_c = start_operator(&world.kubeconfig, &world.ns, &with_identity("op-c"));
    eventually("op-c to stand by", WAIT, || async { op_c.logs().contains("lease held by another").then_some(()) })
        .await;
    let killed = std::time::Instant::now();
    op_b.kill();
    world.wait_lease_holder("op-c").await;
    println!("Lease taken over {:.1} s after SIGKILL of the holder", killed.elapsed().as_secs_f64());
    // The killed operator could not sign out: the server ends its session when it times out.
    world.sim.handle().expire_sessions();
    world.rotate_and_wait_synced("db01.example.test", "readonly_user", "db01-readonly").await;

    assert_eq!(op_c.terminate().await, Some(0));
    assert!(!op_c.logs().contains("forbidden"), "{}", tail(&op_c.logs()));
    world.finish().await;
}

#[tokio::test]
async fn deletion_honours_each_policy_and_the_garbage_collector_removes_owned_secrets() {
    let world = World::new("deletion").await;
    world.apply_example("managed-account.yaml"); // Owner, Delete
    world.apply_example("merge-existing.yaml"); // Merge, Retain
    world.wait_ready("db01-readonly").await;
    world.wait_ready("app-config-db-credentials").await;
    let owner_refs = world.secrets().await.get("db01-readonly").await.unwrap().metadata.owner_references.unwrap();
    assert_eq!(owner_refs[0].kind, "PasswordSafeSecret");
    // Only a policy with work to do at deletion holds the resource with a finalizer.
    let finalizers = |name: &str| world.kubectl(&["get", "pss", name, "-o", "jsonpath={.metadata.finalizers}"]);
    assert_eq!(finalizers("db01-readonly"), "", "Owner + Delete: the garbage collector needs no finalizer");
    assert_eq!(finalizers("app-config-db-credentials"), "", "Merge + Retain: nothing to do at deletion");

    world.kubectl(&["delete", "pss", "db01-readonly", "--wait=true"]);
    eventually("the garbage collector to delete the owned Secret", WAIT, || async {
        world.secrets().await.get_opt("db01-readonly").await.unwrap().is_none().then_some(())
    })
    .await;
    world.kubectl(&["delete", "pss", "app-config-db-credentials", "--wait=true"]);
    let kept = world.secrets().await.get("app-config").await.unwrap().data.unwrap();
    assert!(kept.contains_key("DB_PASSWORD") && kept.contains_key("DB_HOST"), "Merge + Retain keeps the data");

    // Orphan + Delete: no owner reference, the operator deletes the Secret itself.
    let orphan = format!(
        "apiVersion: passwordsafe.dev/v1alpha1\nkind: PasswordSafeSecret\nmetadata: {{name: orphan, namespace: {}}}\nspec:\n  storeRef: {{name: passwordsafe}}\n  target: {{creationPolicy: Orphan, deletionPolicy: Delete}}\n  data: [{{secretKey: p, managedAccount: {{system: db01.example.test, account: readonly_user}}}}]\n",
        world.ns
    );
    let (ok, out) = world.kubectl_stdin(&["apply", "-f", "-"], &orphan);
    assert!(ok, "{out}");
    world.wait_ready("orphan").await;
    assert!(
        world.secrets().await.get("orphan").await.unwrap().metadata.owner_references.unwrap_or_default().is_empty()
    );
    assert_eq!(finalizers("orphan"), r#"["passwordsafe.dev/cleanup"]"#);
    world.kubectl(&["delete", "pss", "orphan", "--wait=true"]);
    assert!(world.secrets().await.get_opt("orphan").await.unwrap().is_none());
    world.finish().await;
}

#[tokio::test]
async fn a_data_change_restarts_the_listed_workloads() {
    let world = World::new("rollout").await;
    world.apply_example("rollout-restart.yaml");
    world.wait_ready("app-db-alias").await;
    let annotation = |w: &World| {
        w.kubectl(&[
            "get",
            "deployment",
            "app",
            "-o",
            r#"jsonpath={.spec.template.metadata.annotations.passwordsafe\.dev/restartedAt}"#,
        ])
    };
    assert_eq!(annotation(&world), "", "no restart on the first sync");
    world.sim.handle().rotate_account("db01.example.test", "app_user").unwrap();
    eventually("the Deployment's pod template annotated", WAIT, || async {
        Some(annotation(&world)).filter(|a| !a.is_empty())
    })
    .await;
    world.finish().await;
}

#[tokio::test]
async fn a_cluster_store_refuses_a_namespace_it_does_not_allow() {
    let world = World::new("refused").await;
    let cluster_store = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: cluster-key, namespace: {ns}}}\nstringData: {{api-key: demo-api-key-0123456789abcdef}}\n---\n\
         apiVersion: passwordsafe.dev/v1alpha1\nkind: ClusterPasswordSafeStore\nmetadata: {{name: only-elsewhere-{ns}}}\n\
         spec:\n  url: {url}\n  auth: {{apiKey: {{secretRef: {{name: cluster-key, key: api-key, namespace: {ns}}}, runAs: svc-k8s-operator}}}}\n  namespaces: {{names: [somewhere-else]}}\n---\n\
         apiVersion: passwordsafe.dev/v1alpha1\nkind: PasswordSafeSecret\nmetadata: {{name: refused, namespace: {ns}}}\n\
         spec:\n  storeRef: {{kind: ClusterPasswordSafeStore, name: only-elsewhere-{ns}}}\n  data: [{{secretKey: p, managedAccount: {{system: db01.example.test, account: readonly_user}}}}]\n",
        ns = world.ns,
        url = world.sim.base_url()
    );
    let (ok, out) = world.kubectl_stdin(&["apply", "-f", "-"], &cluster_store);
    assert!(ok, "{out}");
    let (status, reason, message) =
        eventually("the refusal", WAIT, || async { world.ready("refused").filter(|r| r.0 == "False") }).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "StoreNotAllowed"));
    assert!(message.contains(&world.ns), "{message}");
    assert!(world.secrets().await.get_opt("refused").await.unwrap().is_none());
    world.kubectl(&["delete", "clusterpasswordsafestore", &format!("only-elsewhere-{}", world.ns)]);
    world.finish().await;
}

#[tokio::test]
async fn invalid_manifests_are_rejected_by_the_api_server_naming_the_field() {
    let cluster = e2e::cluster().await;
    let ns = cluster.namespace("invalid").await;
    let apply = |manifest: &str| {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["-n", &ns, "apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(manifest.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let head = "apiVersion: passwordsafe.dev/v1alpha1\nkind: PasswordSafeSecret\nmetadata: {name: bad}\nspec:\n  storeRef: {name: s}\n";
    let cases = [
        ("  data: [{secretKey: p, managedAccount: {system: a, account: b}, alias: {name: c}}]\n", "spec.data[0]"),
        ("  data: [{secretKey: \"bad key\", alias: {name: c}}]\n", "spec.data[0].secretKey"),
        (
            "  data: [{secretKey: p, alias: {name: c}}]\n  target: {creationPolicy: Sometimes}\n",
            "spec.target.creationPolicy",
        ),
        (
            "  data: [{secretKey: p, alias: {name: c}}]\n  request: {durationMinutes: 0}\n",
            "spec.request.durationMinutes",
        ),
        ("  data: []\n", "set at least one of data and dataFrom"),
        ("  data: [{secretKey: \"..\", alias: {name: c}}]\n", "a Secret key cannot be . or .."),
    ];
    for (body, field) in cases {
        let (ok, err) = apply(&format!("{head}{body}"));
        assert!(!ok && err.contains(field), "expected a rejection naming {field}: {err}");
    }
    cluster.delete_namespace(&ns).await;
}

/// One line per rule: API groups, resources, verbs.
fn rule_lines(rules: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>) -> Vec<String> {
    let line = |r: &k8s_openapi::api::rbac::v1::PolicyRule| {
        format!(
            "{:?} {:?} {:?}",
            r.api_groups.clone().unwrap_or_default(),
            r.resources.clone().unwrap_or_default(),
            r.verbs
        )
    };
    rules.unwrap_or_default().iter().map(line).collect()
}

#[test]
fn the_shipped_rbac_is_exactly_this() {
    assert_eq!(
        rule_lines(e2e::shipped_cluster_role().unwrap().rules),
        [
            r#"["passwordsafe.dev"] ["passwordsafesecrets", "passwordsafestores", "clusterpasswordsafestores"] ["get", "list", "watch", "patch"]"#,
            r#"["passwordsafe.dev"] ["passwordsafesecrets/status", "passwordsafestores/status", "clusterpasswordsafestores/status"] ["get", "patch"]"#,
            r#"[""] ["secrets"] ["get", "list", "watch", "create", "patch", "delete"]"#,
            r#"[""] ["namespaces"] ["get"]"#,
            r#"["apps"] ["deployments", "statefulsets", "daemonsets"] ["patch"]"#,
            r#"["events.k8s.io"] ["events"] ["create", "patch"]"#,
        ],
        "a change to the operator's permissions must be reviewed: update this test with it"
    );
    assert_eq!(
        rule_lines(e2e::shipped_role().unwrap().rules),
        [r#"["coordination.k8s.io"] ["leases"] ["get", "create", "update"]"#]
    );
}
