//! The fault suite: the real `passwordsafe-operator` binary, under the shipped RBAC, on the real control plane
//! of tests/support/e2e.rs, while Password Safe (the simulator's fault rules) or the Kubernetes API (the fault
//! proxy of tests/support/fault_proxy.rs) misbehave, and when the operator is killed in the middle of a large
//! sync. Every test asserts what a user would see: Secrets with the right values once a fault clears, Ready
//! conditions and events carrying the API's reason while it lasts, no release request left open, every
//! Password Safe session signed out, and no seeded secret value (password, key, file, API key, client secret,
//! session cookie) in the operator's TRACE logs, events, status or metrics, in clear or base64.
//!
//! Timing is bounded by `eventually` deadlines only; figures (how long a sync took) are printed, not asserted.
//! The tests run on a multi-threaded runtime: the simulator and the cookie tap live on it, and must keep
//! serving while the test thread waits for `kubectl`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use passwordsafe_operator::api::PasswordSafeSecret;
use passwordsafe_simulator::{Fault, FaultRule, Running, Seed, ServeOptions, TestCa};
use serde_json::{Value, json};
use support::e2e::{self, Cluster, Operator, eventually};
use support::fault_proxy::FaultProxy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long any one expected outcome may take (two shared cores, several operators at once).
const WAIT: Duration = Duration::from_secs(90);
/// The store's request duration (`requestDefaults.durationMinutes`): no release may outlive it.
const REQUEST_MINUTES: i64 = 10;
/// The client's default body cap (`ClientConfig::max_response_bytes`).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The six kinds of source, one PasswordSafeSecret each: managed account, SSH key, ISA account, alias,
/// Secrets Safe (credential, text, file) and a whole folder.
const KINDS: [&str; 6] = ["app", "ssh", "isa", "alias", "safe", "folder"];

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_passwordsafe-operator"))
}

/// One test's world: a namespace, a simulator (behind a cookie tap), a store pointing at it, the operator.
struct World {
    cluster: &'static Cluster,
    ns: String,
    sim: Running,
    tap: CookieTap,
    operator: Operator,
    /// The operator's kubeconfig (its ServiceAccount token, or the fault proxy's).
    kubeconfig: PathBuf,
    proxy: Option<FaultProxy>,
    /// Logs of operators this world already stopped or killed: the leak check reads them too.
    past_logs: String,
    /// Values this test put into Password Safe besides the seed's (the leak check looks for them too).
    extra_secrets: Vec<String>,
}

impl World {
    /// `via_proxy`: the operator talks to the API server through the fault-injecting proxy.
    async fn start(prefix: &str, seed_yaml: &str, via_proxy: bool) -> World {
        let cluster = e2e::cluster().await;
        let ns = cluster.namespace(prefix).await;
        let sim = support::start(seed_yaml).await;
        let tap = CookieTap::start(sim.local_addr()).await;
        let mut kubeconfig = cluster.operator_kubeconfig(&ns).await.unwrap();
        let mut proxy = None;
        if via_proxy {
            let (started, proxied) = FaultProxy::in_front_of(&kubeconfig, &ns).await;
            kubeconfig = proxied;
            proxy = Some(started);
        }
        let operator = start_operator(&kubeconfig, &ns);
        let world = World {
            cluster,
            ns,
            sim,
            tap,
            operator,
            kubeconfig,
            proxy,
            past_logs: String::new(),
            extra_secrets: Vec::new(),
        };
        let store = store("passwordsafe", &world.tap.base_url(), json!({}));
        world.apply(&[api_key_secret("passwordsafe-api-key"), store]);
        world
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.cluster.kubectl_ok(&self.ns, args)
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> (bool, String) {
        self.cluster.kubectl(&self.ns, args, stdin)
    }

    /// `kubectl apply` of objects (as JSON), in this world's namespace.
    fn apply(&self, objects: &[Value]) {
        let yaml: Vec<String> = objects.iter().map(|o| serde_yaml::to_string(o).unwrap()).collect();
        let (ok, out) = self.kubectl_stdin(&["apply", "-f", "-"], &yaml.join("---\n"));
        assert!(ok, "kubectl apply: {out}");
    }

    fn get_json(&self, kind: &str, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", kind, name, "-o", "json"])).unwrap()
    }

    /// The Ready condition of a PasswordSafeSecret, when it reports on its current generation.
    fn ready(&self, name: &str) -> Option<Ready> {
        condition_of(&self.get_json("pss", name))
    }

    async fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.cluster.admin().await, &self.ns)
    }

    async fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let secret = self.secrets().await.get_opt(name).await.ok()??;
        Some(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())
    }

    fn password_of(&self, account: &str) -> String {
        self.sim.handle().account("db01", account).unwrap().password
    }

    /// What each of the six Secrets must hold, from the simulator's current values.
    fn expected(&self, name: &str) -> BTreeMap<String, Vec<u8>> {
        let h = self.sim.handle();
        let ssh = h.account("db01", "ssh_user").unwrap();
        let entries: Vec<(&str, Vec<u8>)> = match name {
            "app" => vec![("username", b"app_user".to_vec()), ("password", self.password_of("app_user").into_bytes())],
            "ssh" => vec![
                ("password", ssh.password.into_bytes()),
                ("key", ssh.dss_key.unwrap().into_bytes()),
                ("passphrase", ssh.passphrase.unwrap().into_bytes()),
            ],
            "isa" => vec![("password", self.password_of("isa_admin").into_bytes())],
            "alias" | "via-oauth" => vec![("password", self.password_of("app_user").into_bytes())],
            "safe" => vec![
                ("username", b"dbuser".to_vec()),
                ("password", support::SECRET_PASSWORD.as_bytes().to_vec()),
                ("config", support::SECRET_TEXT.as_bytes().to_vec()),
                ("bundle", support::FILE_BYTES.to_vec()),
            ],
            "folder" => vec![
                ("db-creds", support::SECRET_PASSWORD.as_bytes().to_vec()),
                ("db-creds.username", b"dbuser".to_vec()),
                ("app-config", support::SECRET_TEXT.as_bytes().to_vec()),
                ("tls-bundle", support::FILE_BYTES.to_vec()),
            ],
            other => panic!("no expectation for {other}"),
        };
        entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Ready on its current generation, and the Secret holds exactly the expected data.
    async fn wait_synced(&self, name: &str) {
        self.wait_on(name, "synced", || async {
            let ready = self.ready(name)?;
            (ready.status == "True" && self.secret_data(name).await? == self.expected(name)).then_some(())
        })
        .await;
    }

    /// Polls `check` until it returns `Some`, for at most [`WAIT`]; on a timeout, panics saying what `name` and
    /// its Secret look like and what the operator logged about it.
    async fn wait_on<T, F, Fut>(&self, name: &str, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(value) = check().await {
                    return value;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match found {
            Ok(value) => value,
            Err(_) => panic!("timed out after {WAIT:?} waiting for {name} {what}\n{}", self.explain(name).await),
        }
    }

    /// A resource's status, whether its Secret exists and has the expected keys (never their values), and the
    /// operator's last log lines about it and its last warnings.
    async fn explain(&self, name: &str) -> String {
        let status = match self.kubectl_stdin(&["get", "pss", name, "-o", "json"], "") {
            (true, json) => {
                serde_json::from_str::<Value>(&json).map_or_else(|e| json!(e.to_string()), |o| o["status"].clone())
            }
            (false, out) => json!(out),
        };
        let secret = match self.secret_data(name).await {
            None => "missing".to_owned(),
            Some(data) if data == self.expected(name) => "as expected".to_owned(),
            Some(data) => format!("differs (keys {:?})", data.keys().collect::<Vec<_>>()),
        };
        let logs = self.operator.logs();
        let about = format!("name=\"{name}\"");
        let last = |wanted: &dyn Fn(&str) -> bool| {
            let lines: Vec<&str> = logs.lines().filter(|l| wanted(l)).collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "status: {status:#}\nSecret: {secret}\noperator log about {name}:\n{}\noperator warnings:\n{}",
            last(&|l: &str| l.contains(&about) && !l.contains("HTTP{")),
            // Watches the fault proxy cut end with "eof in poll": expected here, and many.
            last(&|l: &str| (l.contains(" WARN ") || l.contains(" ERROR ")) && !l.contains("eof in poll")),
        )
    }

    async fn wait_all_synced(&self, names: &[&str]) {
        for name in names {
            self.wait_synced(name).await;
        }
    }

    /// Waits until the Ready condition of the current generation is False with `reason`; returns its message.
    async fn wait_failed(&self, name: &str, reason: &str) -> String {
        let ready = self
            .wait_on(name, &format!("Ready=False with reason {reason}"), || async {
                self.ready(name).filter(|r| r.status == "False" && r.reason == reason)
            })
            .await;
        ready.message
    }

    /// Changes every listed resource's spec (a new request reason): each syncs again at once. Returns when.
    fn bump(&self, names: &[&str], round: &str) -> jiff::Timestamp {
        let at = jiff::Timestamp::now();
        for name in names {
            let patch = json!({"spec": {"request": {"reason": format!("fault suite: {round}")}}}).to_string();
            self.kubectl(&["patch", "pss", name, "--type", "merge", "-p", &patch]);
        }
        at
    }

    /// Events (events.k8s.io) about a resource.
    fn events_of(&self, name: &str) -> Vec<EventSeen> {
        let events: Value =
            serde_json::from_str(&self.kubectl(&["get", "events.v1.events.k8s.io", "-o", "json"])).unwrap();
        let time = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| EventSeen {
                reason: e["reason"].as_str().unwrap_or_default().to_owned(),
                note: e["note"].as_str().unwrap_or_default().to_owned(),
                last_seen: time(&e["series"]["lastObservedTime"]).or_else(|| time(&e["eventTime"])),
            })
            .collect()
    }

    /// A failure shows as the Ready condition and as a Warning event, both with the reason, and the
    /// condition's message says what the API answered. The event must have been (re)published after `since`
    /// and its note says the same (a repeat only counts up the series of an event with the same note).
    async fn expect_failure(&self, since: jiff::Timestamp, name: &str, reason: &str, said: &[&str]) {
        let message = self.wait_failed(name, reason).await;
        for words in said {
            assert!(message.contains(words), "{name}: the condition should say {words:?}: {message}");
        }
        let since = since - jiff::SignedDuration::from_secs(2);
        let fits = |e: &EventSeen| {
            e.reason == reason && e.last_seen.is_some_and(|t| t >= since) && said.iter().all(|w| e.note.contains(w))
        };
        let mut last = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                last = self.events_of(name);
                if last.iter().any(fits) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "{name}: no Warning event {reason} saying {said:?} since {since}; events: {last:#?}");
    }

    /// Release requests still open, after checking none outlives the duration it was opened for.
    fn open_requests(&self) -> usize {
        let h = self.sim.handle();
        let open = h.open_requests();
        let limit = h.now() + jiff::SignedDuration::from_mins(REQUEST_MINUTES);
        for request in &open {
            assert!(request.expires <= limit, "a request open longer than its duration: {request:?}");
        }
        open.len()
    }

    /// No seeded secret value (nor the session cookies the simulator handed out, nor values generated since)
    /// in the operators' logs, events, status, or `/metrics`; in clear or base64.
    async fn assert_no_leak(&self) {
        let mut places = vec![
            ("the operator's logs", format!("{}{}", self.past_logs, self.operator.logs())),
            ("events", self.kubectl(&["get", "events", "-o", "json"])),
            ("PasswordSafeSecret status", self.kubectl(&["get", "pss", "-o", "json"])),
            ("store status", self.kubectl(&["get", "psstore", "-o", "json"])),
        ];
        match self.operator.http_get("/metrics").await {
            Ok((200, metrics)) => places.push(("/metrics", metrics)),
            other => println!("note: /metrics not searched ({other:?})"),
        }
        let mut values: Vec<String> = support::seeded_secret_values().into_iter().map(str::to_owned).collect();
        values.push(support::SECRET_TEXT.to_owned());
        for account in self.sim.handle().accounts() {
            let current = [Some(account.state.password), account.state.dss_key, account.state.passphrase];
            // The seed's bulk passwords share a prefix, searched for once (see the 1 000-secret test).
            values.extend(current.into_iter().flatten().filter(|v| !v.starts_with("bulk-pass-")));
        }
        values.extend(self.extra_secrets.iter().cloned());
        let cookies = self.tap.cookies();
        values.extend(cookies.iter().cloned());
        let mut needles: BTreeSet<String> = BTreeSet::new();
        for value in values.iter().filter(|v| v.len() >= 8) {
            needles.insert(support::base64(value.as_bytes()));
            needles.extend(value.lines().filter(|l| l.len() >= 8 && !l.starts_with("-----")).map(str::to_owned));
        }
        needles.insert(support::base64(support::FILE_BYTES));
        for (place, text) in &places {
            for needle in &needles {
                assert!(!text.contains(needle.as_str()), "a secret value leaked into {place} ({} bytes)", needle.len());
            }
            assert!(!text.contains("ASP.NET_SessionId="), "a session cookie header leaked into {place}");
        }
        println!(
            "leak check: {} values ({} session cookies and tokens) searched in {}: 0 hits",
            needles.len(),
            cookies.len(),
            places.iter().map(|(p, t)| format!("{p} ({} KiB)", t.len() / 1024)).collect::<Vec<_>>().join(", ")
        );
    }

    /// Faults off, leak check, SIGTERM (exit 0), every session signed out, no request left open.
    async fn finish(mut self) {
        self.sim.handle().clear_faults();
        if let Some(proxy) = &self.proxy {
            proxy.handle().clear();
        }
        self.assert_no_leak().await;
        assert_eq!(self.operator.terminate().await, Some(0), "the operator exits 0 on SIGTERM");
        eventually("every session signed out", Duration::from_secs(20), || async {
            (self.sim.handle().active_sessions() == 0).then_some(())
        })
        .await;
        assert_eq!(self.open_requests(), 0, "requests left open: {:?}", self.sim.handle().open_requests());
        let logs = self.operator.logs();
        assert!(!logs.contains("forbidden"), "the operator hit an RBAC denial:\n{}", tail(&logs));
        // The shutdown's own log lines, too.
        self.assert_no_leak_in_logs_only();
        self.cluster.delete_namespace(&self.ns).await;
    }

    fn assert_no_leak_in_logs_only(&self) {
        let logs = self.operator.logs();
        for value in support::seeded_secret_values().iter().filter(|v| v.len() >= 8) {
            assert!(!logs.contains(value), "a secret value leaked into the operator's shutdown logs");
        }
    }
}

fn start_operator(kubeconfig: &Path, ns: &str) -> Operator {
    Operator::start(binary(), kubeconfig, ns, &["--change-detection-interval", "5s"]).unwrap()
}

fn tail(text: &str) -> String {
    text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[derive(Debug)]
struct EventSeen {
    reason: String,
    note: String,
    last_seen: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone)]
struct Ready {
    status: String,
    reason: String,
    message: String,
}

/// The Ready condition, only when it was written for the object's current generation.
fn condition_of(pss: &Value) -> Option<Ready> {
    let generation = pss["metadata"]["generation"].as_i64()?;
    let c = pss["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?;
    (c["observedGeneration"].as_i64() == Some(generation)).then(|| Ready {
        status: c["status"].as_str().unwrap_or_default().to_owned(),
        reason: c["reason"].as_str().unwrap_or_default().to_owned(),
        message: c["message"].as_str().unwrap_or_default().to_owned(),
    })
}

fn api_key_secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": {"api-key": support::API_KEY}})
}

/// A PasswordSafeStore signing in with the seed's API key as `svc-operator`; `extra` is merged into its spec.
fn store(name: &str, url: &str, extra: Value) -> Value {
    let mut spec = json!({
        "url": url,
        "auth": {"apiKey": {"secretRef": {"name": "passwordsafe-api-key", "key": "api-key"}, "runAs": "svc-operator"}},
        "requestDefaults": {"durationMinutes": REQUEST_MINUTES, "reason": "fault suite"},
        "changeDetectionInterval": "5s",
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    json!({"apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore", "metadata": {"name": name}, "spec": spec})
}

fn pss(name: &str, store: &str, data: Value, data_from: Value) -> Value {
    json!({"apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeSecret", "metadata": {"name": name},
        "spec": {"storeRef": {"name": store}, "data": data, "dataFrom": data_from}})
}

fn account(key: &str, account: &str, field: &str) -> Value {
    json!({"secretKey": key, "managedAccount": {"system": "db01", "account": account, "field": field}})
}

fn safe_item(key: &str, title: &str, field: &str) -> Value {
    json!({"secretKey": key, "secretsSafe": {"folderPath": "prod/db", "title": title, "field": field}})
}

/// The six PasswordSafeSecrets of [`KINDS`], on store `store`.
fn six(store: &str) -> Vec<Value> {
    vec![
        pss(
            "app",
            store,
            json!([account("username", "app_user", "username"), account("password", "app_user", "password")]),
            json!([]),
        ),
        pss(
            "ssh",
            store,
            json!([
                account("password", "ssh_user", "password"),
                account("key", "ssh_user", "dsskey"),
                account("passphrase", "ssh_user", "passphrase")
            ]),
            json!([]),
        ),
        pss("isa", store, json!([account("password", "isa_admin", "password")]), json!([])),
        pss("alias", store, json!([{"secretKey": "password", "alias": {"name": "db-app"}}]), json!([])),
        pss(
            "safe",
            store,
            json!([
                safe_item("username", "db-creds", "username"),
                safe_item("password", "db-creds", "password"),
                safe_item("config", "app-config", "text"),
                safe_item("bundle", "tls-bundle", "file")
            ]),
            json!([]),
        ),
        pss("folder", store, json!([]), json!([{"secretsSafeFolder": {"folderPath": "prod/db"}}])),
    ]
}

fn rule(endpoint: &str, fault: Fault) -> FaultRule {
    FaultRule::new(endpoint, fault)
}

fn status(code: u16, body: &str) -> Fault {
    Fault::Status { status: code, body: Some(body.to_owned()) }
}

// -------------------------------------------------------------------------------------------------------------
// Password Safe faults
// -------------------------------------------------------------------------------------------------------------

/// 20 % server errors, 429s with Retry-After, dropped connections and latency on every endpoint while six
/// Secrets sync; then one hard fault per endpoint (5xx, long and short Retry-After, malformed and oversized
/// bodies, dropped connections, 4031, 4035, 409, 410, 400), a session that expires mid-sync, and a refused
/// sign-in. Each shows as
/// Ready=False and a Warning event with the API's reason and words; each Secret converges once it clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_safe_faults_show_as_reasons_and_every_secret_converges_once_they_clear() {
    let world = World::start("ps-faults", &support::seed_yaml(""), false).await;
    let h = world.sim.handle();
    let started = Instant::now();

    // Noise on every endpoint while everything syncs for the first time.
    h.set_faults(vec![
        rule("*", status(503, "\"Service Unavailable\"")).with_probability(0.2),
        rule("*", Fault::TooManyRequests { retry_after_secs: 1 }).with_probability(0.05),
        rule("*", Fault::Drop).with_probability(0.03),
        rule("*", Fault::Latency { ms: 20 }),
    ]);
    world.apply(&six("passwordsafe"));
    world.wait_all_synced(&KINDS).await;
    assert!(world.operator.logs().contains("retrying Password Safe call"), "the noise reached the operator");
    println!("six Secrets synced through 20% 5xx, 429s and drops in {:.1} s", started.elapsed().as_secs_f64());
    h.clear_faults();

    // Round 1: a hard fault per endpoint.
    h.set_faults(vec![
        rule("GET Credentials", status(503, "\"Service Unavailable\"")),
        rule("POST ISARequests", Fault::TooManyRequests { retry_after_secs: 600 }),
        rule("GET Aliases/Credentials", Fault::Malformed),
        rule("GET Secrets-Safe/Secrets/file/download", Fault::Oversized { bytes: MAX_BODY + 1024 }),
    ]);
    let since = world.bump(&KINDS, "round 1");
    world.expect_failure(since, "app", "ServerError", &["GET Credentials", "HTTP 503"]).await;
    world.expect_failure(since, "ssh", "ServerError", &["GET Credentials", "HTTP 503"]).await;
    world.expect_failure(since, "isa", "RateLimited", &["POST ISARequests", "HTTP 429", "600s"]).await;
    world.expect_failure(since, "alias", "InvalidResponse", &["GET Aliases/Credentials"]).await;
    world.expect_failure(since, "safe", "ResponseTooLarge", &["file/download"]).await;
    world.expect_failure(since, "folder", "ResponseTooLarge", &["file/download"]).await;
    h.clear_faults();
    world.wait_all_synced(&KINDS).await;
    assert_eq!(world.open_requests(), 0, "every request checked in after round 1");

    // Round 2: other endpoints, other answers.
    h.set_faults(vec![
        rule("GET Credentials", Fault::Drop),
        rule("POST ISARequests", status(403, "4031")),
        rule("GET Aliases", status(410, "\"API version 3.0 is disabled\"")),
        rule("GET Secrets-Safe/Secrets/text", status(400, "\"The secret's text could not be read\"")),
    ]);
    let since = world.bump(&KINDS, "round 2");
    world.expect_failure(since, "app", "ConnectionFailed", &["GET Credentials"]).await;
    world.expect_failure(since, "ssh", "ConnectionFailed", &["GET Credentials"]).await;
    world.expect_failure(since, "isa", "PermissionDenied", &["POST ISARequests", "4031"]).await;
    world.expect_failure(since, "alias", "ApiVersionDisabled", &["GET Aliases", "HTTP 410", "disabled"]).await;
    world
        .expect_failure(since, "safe", "BadRequest", &["Secrets-Safe/Secrets/text", "HTTP 400", "could not be read"])
        .await;
    world.expect_failure(since, "folder", "BadRequest", &["Secrets-Safe/Secrets/text", "HTTP 400"]).await;
    h.clear_faults();
    world.wait_all_synced(&KINDS).await;
    assert_eq!(world.open_requests(), 0, "every request checked in after round 2");

    // Round 3: conflicts, approval sub-codes, and a rate limit that outlasts the client's retries.
    h.set_faults(vec![
        rule("POST Requests", status(409, "\"Conflicting request exists\"")),
        rule("POST Aliases/Requests", status(409, "\"Conflicting request exists\"")),
        rule("POST ISARequests", status(403, "\"4035 - Not enough approvers\"")),
        rule("GET Secrets-Safe/Secrets", Fault::TooManyRequests { retry_after_secs: 1 }),
    ]);
    let since = world.bump(&KINDS, "round 3");
    world.expect_failure(since, "app", "ConflictingRequest", &["POST Requests", "HTTP 409"]).await;
    world.expect_failure(since, "ssh", "ConflictingRequest", &["POST Requests", "HTTP 409"]).await;
    world.expect_failure(since, "alias", "ConflictingRequest", &["POST Aliases/Requests", "HTTP 409"]).await;
    world.expect_failure(since, "isa", "NotEnoughApprovers", &["POST ISARequests", "4035"]).await;
    world.expect_failure(since, "safe", "RateLimited", &["GET Secrets-Safe/Secrets", "HTTP 429", "1s"]).await;
    world.expect_failure(since, "folder", "RateLimited", &["GET Secrets-Safe/Secrets", "HTTP 429"]).await;
    h.clear_faults();
    world.wait_all_synced(&KINDS).await;
    assert_eq!(world.open_requests(), 0, "every request checked in after round 3");

    // Sessions that expire in the middle of syncs: the client signs in again and carries on.
    let sign_ins = h.call_count("POST Auth/SignAppIn");
    h.set_faults(vec![
        rule("GET Credentials", Fault::Latency { ms: 300 }),
        rule("GET Secrets-Safe/Secrets/text", Fault::Latency { ms: 300 }),
    ]);
    world.bump(&KINDS, "session expiry");
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        h.expire_sessions();
    }
    h.clear_faults();
    world.wait_all_synced(&KINDS).await;
    assert!(h.call_count("POST Auth/SignAppIn") >= sign_ins + 2, "the operator signed in again after expiry");
    assert_eq!(world.open_requests(), 0, "every request checked in after session expiry");

    // Sign-in refused: every resource and the store say so, and recover once it is accepted again.
    h.set_faults(vec![rule("POST Auth/SignAppIn", status(401, "\"User not authenticated\""))]);
    h.expire_sessions();
    let since = world.bump(&KINDS, "sign-in refused");
    for name in KINDS {
        world.expect_failure(since, name, "Unauthenticated", &["POST Auth/SignAppIn", "HTTP 401"]).await;
    }
    let store_patch = json!({"spec": {"changeDetectionInterval": "6s"}}).to_string();
    world.kubectl(&["patch", "psstore", "passwordsafe", "--type", "merge", "-p", &store_patch]);
    eventually("the store reports the refused sign-in", WAIT, || async {
        condition_of(&world.get_json("psstore", "passwordsafe"))
            .filter(|r| r.status == "False" && r.reason == "Unauthenticated")
    })
    .await;
    h.clear_faults();
    world.wait_all_synced(&KINDS).await;
    world.kubectl(&["patch", "psstore", "passwordsafe", "--type", "merge", "-p", &store_patch.replace("6s", "5s")]);
    eventually("the store signs in again", WAIT, || async {
        condition_of(&world.get_json("psstore", "passwordsafe")).filter(|r| r.status == "True")
    })
    .await;
    println!("password_safe_faults: {:.1} s", started.elapsed().as_secs_f64());
    world.finish().await;
}

/// The client alone: a call that hangs is not retried past `max_call_time`, while quick failures still are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_call_is_retried_only_within_the_call_time_limit() {
    let sim = support::start_default().await;
    let h = sim.handle();
    let mut config = support::config(&sim, support::api_key_auth());
    config.timeout = Duration::from_millis(400);
    config.max_call_time = Duration::from_millis(700);
    let client = passwordsafe_operator::passwordsafe::Client::new(config).unwrap();
    client.sign_in().await.unwrap();

    h.set_faults(vec![rule("GET ManagedAccounts", Fault::Latency { ms: 2_000 })]);
    let started = Instant::now();
    let err = client.find_managed_account("db01", "app_user").await.unwrap_err();
    assert_eq!(err.reason(), "Timeout", "{err}");
    assert_eq!(h.call_count("GET ManagedAccounts"), 1, "a second attempt could not have ended in time");
    println!("a hanging call failed after {:.1} s", started.elapsed().as_secs_f64());

    // Quick failures fit in the limit: retried as before.
    h.reset_calls();
    h.set_faults(vec![rule("GET ManagedAccounts", status(503, "")).times(2)]);
    client.find_managed_account("db01", "app_user").await.unwrap();
    assert_eq!(h.call_count("GET ManagedAccounts"), 3);
    client.sign_out().await;
}

/// Password Safe takes longer than the client's timeout (30 s) to answer one resource's credential: that
/// resource fails with reason Timeout after one timeout, not after minutes of retries; the other resources
/// keep syncing meanwhile; the request it opened is checked in; it converges once the server is fast again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_slower_than_the_client_timeout_blocks_no_worker_for_minutes() {
    let world = World::start("ps-slow", &support::seed_yaml(""), false).await;
    let h = world.sim.handle();
    world.apply(&six("passwordsafe")[..2]);
    world.wait_all_synced(&["app", "ssh"]).await;

    h.set_faults(vec![rule("GET Aliases/Credentials", Fault::Latency { ms: 45_000 })]);
    let started = Instant::now();
    world.apply(&six("passwordsafe")[3..4]);
    eventually("the alias's request open while its credential hangs", WAIT, || async {
        (world.open_requests() == 1).then_some(())
    })
    .await;
    // Another resource of the same store follows a rotation while the slow call hangs.
    h.rotate_account("db01", "ssh_user").unwrap();
    eventually("ssh follows its rotation while the alias hangs", WAIT, || async {
        (world.secret_data("ssh").await? == world.expected("ssh")).then_some(())
    })
    .await;
    let message = eventually(
        "the alias fails with reason Timeout within about one client timeout",
        Duration::from_secs(75),
        || async { world.ready("alias").filter(|r| r.status == "False" && r.reason == "Timeout").map(|r| r.message) },
    )
    .await;
    println!("the hanging call was reported after {:.1} s: {message}", started.elapsed().as_secs_f64());
    assert!(message.contains("GET Aliases/Credentials"), "{message}");
    eventually("the alias's request checked in after the timeout", WAIT, || async {
        (world.open_requests() == 0).then_some(())
    })
    .await;
    h.clear_faults();
    world.wait_synced("alias").await;
    world.finish().await;
}

// -------------------------------------------------------------------------------------------------------------
// Kubernetes API faults
// -------------------------------------------------------------------------------------------------------------

/// Between the operator and the API server: 5xx answers to 30 % of writes (500, then 503), watches dropped
/// every two seconds, latency on every request, a short outage (connections dropped and refused), and an
/// absence after which every watch has expired (410) and lists again. The Secrets still follow rotations, and
/// deleted ones are restored; 409s on writes are covered by tests/e2e.rs. One store signs in with OAuth,
/// so the leak check also covers the client secret and the bearer tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_converges_through_5xx_on_writes_dropped_watches_and_an_api_outage() {
    let world = World::start("kube-faults", &support::seed_yaml(""), true).await;
    let faults = world.proxy.as_ref().unwrap().handle();
    faults.drop_watches_every(Some(Duration::from_secs(2)));
    faults.write_error_rate(500, 0.3);
    faults.latency(Duration::from_millis(30));
    let started = Instant::now();
    let oauth = json!({"auth": {"oauth": {
        "clientIdSecretRef": {"name": "oauth-client", "key": "client-id"},
        "clientSecretSecretRef": {"name": "oauth-client", "key": "client-secret"}}}});
    world.apply(&[
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oauth-client"},
            "stringData": {"client-id": "operator-client", "client-secret": support::CLIENT_SECRET}}),
        store("oauth", &world.tap.base_url(), oauth),
        six("passwordsafe")[0].clone(),
        six("passwordsafe")[4].clone(),
        pss("via-oauth", "oauth", json!([account("password", "app_user", "password")]), json!([])),
    ]);
    world.wait_all_synced(&["app", "safe", "via-oauth"]).await;
    assert!(world.sim.handle().call_count("POST Auth/Connect/Token") > 0, "the OAuth store took a token");

    faults.write_error_rate(503, 0.3);
    world.sim.handle().rotate_account("db01", "app_user").unwrap();
    world.wait_all_synced(&["app", "via-oauth"]).await;

    // An outage: every connection cut, new ones refused, for a few seconds.
    faults.refuse_connections(true);
    faults.drop_connections_now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    faults.refuse_connections(false);
    world.sim.handle().rotate_account("db01", "app_user").unwrap();
    world.wait_all_synced(&["app", "via-oauth"]).await;
    world.kubectl(&["delete", "secret", "safe"]);
    world.wait_synced("safe").await;

    // Away long enough for the API server to have moved on: every watch comes back to 410 `Expired` and lists
    // again. A Secret deleted meanwhile is missing from the new listing (no delete event says so) and is
    // restored; the others stay synced. (No third rotation here: three unannounced rotations this soon after
    // the operator's own check-ins read as a rotation loop, which waits out its back-off by design.)
    faults.refuse_connections(true);
    faults.drop_connections_now();
    world.kubectl(&["delete", "secret", "app"]);
    faults.expire_watches(true);
    faults.refuse_connections(false);
    world.wait_synced("app").await;
    faults.expire_watches(false);
    world.wait_all_synced(&["via-oauth", "safe"]).await;

    let stats = faults.stats();
    println!("kubernetes faults: {stats:?} in {:.1} s", started.elapsed().as_secs_f64());
    assert!(stats.injected_errors.get(&500).is_some_and(|n| *n > 0), "{stats:?}");
    assert!(stats.injected_errors.get(&503).is_some_and(|n| *n > 0), "{stats:?}");
    assert!(stats.watches_dropped > 0 && stats.connections_refused > 0 && stats.watches_expired > 0, "{stats:?}");
    faults.clear();
    world.finish().await;
}

// -------------------------------------------------------------------------------------------------------------
// SIGKILL in the middle of a large sync
// -------------------------------------------------------------------------------------------------------------

const BULK: usize = 1000;

/// 1 000 PasswordSafeSecrets, one bulk account each. The operator is killed with SIGKILL in the middle of
/// the first sync, with release requests open, and started again: every Secret converges, no release request
/// is left open (the restarted operator joins, with `ConflictOption=reuse`, and checks in what the killed one
/// opened), and what was already synced is adopted rather than requested again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_1000_secret_sync_then_restart_converges_without_leftover_requests() {
    let mut world = World::start("kill", &support::seed_yaml(&support::bulk_accounts(BULK, 0)), false).await;
    let h = world.sim.handle();
    let admin = world.cluster.admin().await;
    let api: Api<PasswordSafeSecret> = Api::namespaced(admin.clone(), &world.ns);
    let secrets: Api<Secret> = Api::namespaced(admin, &world.ns);
    let owned = ListParams::default().labels("app.kubernetes.io/managed-by=passwordsafe-operator");
    // Slow credential reads keep requests open at any moment, so the kill leaves some behind.
    h.set_faults(vec![rule("GET Credentials", Fault::Latency { ms: 300 })]);

    let started = Instant::now();
    let created = futures::stream::iter(0..BULK)
        .map(|i| {
            let api = api.clone();
            async move {
                let data = json!([{"secretKey": "password", "managedAccount": {"system": "bulk", "account": format!("acct-{i:03}")}}]);
                let object: PasswordSafeSecret = serde_json::from_value(pss(&format!("pss-{i:03}"), "passwordsafe", data, json!([]))).unwrap();
                api.create(&PostParams::default(), &object).await.map(drop)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(created.iter().all(Result::is_ok), "{:?}", created.iter().find(|r| r.is_err()));
    let created_in = started.elapsed();

    // Kill once a quarter is synced, at a moment requests are open.
    let count_synced = || async { secrets.list_metadata(&owned).await.map(|l| l.items.len()).unwrap_or(0) };
    let at_kill = eventually("a quarter of the Secrets synced", Duration::from_secs(300), || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = count_synced().await;
        (n >= BULK / 4 && !h.open_requests().is_empty()).then_some(n)
    })
    .await;
    let first_run = started.elapsed();
    world.kill();
    let open_at_kill = h.open_requests().len();
    // Nothing changes status now that the operator is dead.
    let ready_at_kill = ready_count(&world);
    assert!(ready_at_kill < BULK, "the kill must land in the middle of the sync ({ready_at_kill} already Ready)");
    assert!(open_at_kill > 0, "the killed operator left release requests open");
    h.clear_faults();
    // The killed operator could not sign out: the server ends its session when it times out.
    h.expire_sessions();
    h.reset_calls();
    world.restart();
    let restarted = Instant::now();

    let all = eventually("all 1000 Secrets synced after the restart", Duration::from_secs(300), || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = secrets.list(&owned).await.ok()?;
        let good = list
            .items
            .iter()
            .filter(|s| {
                let name = s.metadata.name.as_deref().unwrap_or_default();
                let want = format!("bulk-pass-{}", name.trim_start_matches("pss-"));
                s.data.as_ref().and_then(|d| d.get("password")).is_some_and(|v| v.0 == want.as_bytes())
            })
            .count();
        (good == BULK && ready_count(&world) == BULK).then_some(good)
    })
    .await;
    let converged_in = restarted.elapsed();
    let post_requests = h.call_count("POST Requests");
    println!(
        "1000-secret sync: created in {:.1} s; {at_kill} Secrets ({ready_at_kill} Ready) after {:.1} s when killed, \
         {open_at_kill} requests open then; {all} synced {:.1} s after the restart with {post_requests} POST Requests \
         ({} GET ManagedAccounts, {} sign-ins); total {:.1} s",
        created_in.as_secs_f64(),
        first_run.as_secs_f64(),
        converged_in.as_secs_f64(),
        h.call_count("GET ManagedAccounts"),
        h.call_count("POST Auth/SignAppIn"),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(world.open_requests(), 0, "no request left open: {:?}", h.open_requests());
    // What was synced and Ready at the kill is adopted, not requested again (a few in-flight ones may be).
    assert!(
        post_requests as usize <= BULK - ready_at_kill + 32,
        "{post_requests} POST Requests after the restart for {} resources not yet Ready",
        BULK - ready_at_kill
    );
    world.extra_secrets.push("bulk-pass-".to_owned());
    world.extra_secrets.push(support::base64(b"bulk-pass")[..12].to_owned());
    world.finish().await;
}

/// PasswordSafeSecrets Ready on their current generation.
fn ready_count(world: &World) -> usize {
    let list: Value = serde_json::from_str(&world.kubectl(&["get", "pss", "-o", "json"])).unwrap();
    list["items"].as_array().into_iter().flatten().filter_map(condition_of).filter(|r| r.status == "True").count()
}

impl World {
    /// SIGKILL: no shutdown path runs (no check-in, no sign-out).
    fn kill(&mut self) {
        self.operator.kill();
        self.past_logs.push_str(&self.operator.logs());
    }

    fn restart(&mut self) {
        self.operator = start_operator(&self.kubeconfig, &self.ns);
    }

    async fn wait_store(&self, name: &str, status: &str) -> Ready {
        let started = Instant::now();
        let ready = eventually(&format!("store {name} Ready={status}"), WAIT, || async {
            condition_of(&self.get_json("psstore", name)).filter(|r| r.status == status)
        })
        .await;
        println!("store {name} Ready={status} after {:.1} s: {ready:?}", started.elapsed().as_secs_f64());
        ready
    }
}

// -------------------------------------------------------------------------------------------------------------
// TLS at the operator level
// -------------------------------------------------------------------------------------------------------------

/// A store pointing at a simulator with a certificate from a private CA is refused (Ready False, TLS reason)
/// without `caSecretRef` and signs in with it; a simulator that requires mutual TLS needs the client
/// certificate from `clientCertificateSecretRef`. A PasswordSafeSecret syncs through the mTLS store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_trust_a_private_ca_only_when_given_and_present_a_client_certificate_for_mtls() {
    let world = World::start("tls", &support::seed_yaml(""), false).await;
    let ca = TestCa::new().unwrap();
    let seed = || Seed::from_yaml_str(&support::seed_yaml("")).unwrap();
    let tls = passwordsafe_simulator::start(
        seed(),
        ServeOptions { tls: Some(ca.tls_options(false).unwrap()), ..ServeOptions::default() },
    )
    .await
    .unwrap();
    let mtls = passwordsafe_simulator::start(
        seed(),
        ServeOptions { tls: Some(ca.tls_options(true).unwrap()), ..ServeOptions::default() },
    )
    .await
    .unwrap();
    let client = ca.client_cert("passwordsafe-operator").unwrap();
    let ca_ref = json!({"tls": {"caSecretRef": {"name": "private-ca", "key": "ca.crt"}}});
    world.apply(&[
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "private-ca"}, "stringData": {"ca.crt": ca.cert_pem()}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "client-cert"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": client.cert_pem, "tls.key": client.key_pem}}),
        store("tls-without-ca", &tls.base_url(), json!({})),
        store("tls-with-ca", &tls.base_url(), ca_ref.clone()),
        store("mtls-without-cert", &mtls.base_url(), ca_ref),
        store(
            "mtls-with-cert",
            &mtls.base_url(),
            json!({"tls": {"caSecretRef": {"name": "private-ca", "key": "ca.crt"}, "clientCertificateSecretRef": {"name": "client-cert"}}}),
        ),
        pss("through-mtls", "mtls-with-cert", json!([account("password", "app_user", "password")]), json!([])),
        pss("through-unknown-ca", "tls-without-ca", json!([account("password", "app_user", "password")]), json!([])),
    ]);
    let refused = world.wait_store("tls-without-ca", "False").await;
    assert_eq!(refused.reason, "ConnectionFailed", "{refused:?}");
    assert!(refused.message.to_lowercase().contains("certificate"), "{refused:?}");
    assert_eq!(world.wait_store("tls-with-ca", "True").await.reason, "SignedIn");
    let no_cert = world.wait_store("mtls-without-cert", "False").await;
    assert_eq!(no_cert.reason, "ConnectionFailed", "{no_cert:?}");
    assert_eq!(world.wait_store("mtls-with-cert", "True").await.reason, "SignedIn");

    eventually("a Secret synced through the mTLS store", WAIT, || async {
        let data = world.secret_data("through-mtls").await?;
        let want = mtls.handle().account("db01", "app_user")?.password;
        (data.get("password")? == want.as_bytes()).then_some(())
    })
    .await;
    let message = world.wait_failed("through-unknown-ca", "ConnectionFailed").await;
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    world.kubectl(&["delete", "pss", "through-mtls", "through-unknown-ca", "--wait=true"]);
    for name in ["tls-without-ca", "tls-with-ca", "mtls-without-cert", "mtls-with-cert"] {
        world.kubectl(&["delete", "psstore", name]);
    }
    eventually("the TLS stores signed out", Duration::from_secs(30), || async {
        (tls.handle().active_sessions() == 0 && mtls.handle().active_sessions() == 0).then_some(())
    })
    .await;
    world.finish().await;
}

// -------------------------------------------------------------------------------------------------------------
// A TCP relay that sees the session cookies and tokens
// -------------------------------------------------------------------------------------------------------------

/// Sits between the operator and the plain-HTTP simulator, relays bytes unchanged, and notes every
/// `ASP.NET_SessionId` cookie and OAuth `access_token` the simulator hands out: the leak check then looks for
/// the operator's real session ids and bearer tokens.
struct CookieTap {
    port: u16,
    cookies: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What precedes a session credential in the simulator's answers, and what may end it.
const MARKS: [(&[u8], &[u8]); 2] = [(b"ASP.NET_SessionId=", b"; \r\n"), (b"\"access_token\":\"", b"\"")];

impl CookieTap {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cookies: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let seen = cookies.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, seen.clone()));
            }
        });
        Self { port, cookies, task }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/BeyondTrust/api/public/v3", self.port)
    }

    fn cookies(&self) -> Vec<String> {
        self.cookies.lock().unwrap().iter().cloned().collect()
    }
}

impl Drop for CookieTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, cookies: Arc<Mutex<BTreeSet<String>>>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The end of what came before: a cookie may be split across two reads.
        let mut window: Vec<u8> = Vec::new();
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            note_credentials(&window, &cookies);
            let keep_from = window.len().saturating_sub(128);
            window.drain(..keep_from);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Every complete session cookie and access token in `bytes`.
fn note_credentials(bytes: &[u8], cookies: &Mutex<BTreeSet<String>>) {
    for (mark, ends) in MARKS {
        let mut rest = bytes;
        while let Some(at) = rest.windows(mark.len()).position(|w| w == mark) {
            let value = &rest[at + mark.len()..];
            if let Some(end) = value.iter().position(|b| ends.contains(b))
                && end > 0
            {
                cookies.lock().unwrap().insert(String::from_utf8_lossy(&value[..end]).into_owned());
            }
            rest = value;
        }
    }
}
