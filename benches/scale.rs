//! Scale benchmark: the real (release-built) `passwordsafe-operator` binary against the bundled control plane
//! (`tests/control-plane/`, or `E2E_KUBECONFIG`) and the Password Safe simulator with a fixed latency on every
//! API call. For each size N it measures
//!
//! 1. **cold sync**: N PasswordSafeSecrets (6 managed accounts : 1 ISA account : 1 Secrets Safe credential :
//!    1 text : 1 file) are created while no operator runs; then the operator starts and we time until every
//!    one is Ready. Per-secret latency is from the operator's start to that resource being seen Ready. The
//!    latency bound is the calls the client's flows make, each taking the configured latency, at most
//!    `min(store maxConcurrency, --concurrency)` in flight, plus one sign-in. The store polls every 60 s (its
//!    `spec.changeDetectionInterval`, the product default) during the cold sync.
//! 2. **steady state** without rotation, then with 1 % of the accounts in use rotated (on demand) per
//!    interval: Password Safe calls per secret per refresh interval. Time is compressed: the operator runs
//!    with `--default-refresh-interval R` (R stands for 1 h; N x 15 ms, at least 30 s) and
//!    `--change-detection-interval R/60` (stands for 60 s), which the store uses once the cold sync is done
//!    and its `changeDetectionInterval` is removed (that store edit is measured too). The store's
//!    `requestDefaults.durationMinutes` is 1, so ISA releases (never checked in) expire within the run.
//! 3. **rotation propagation**, on a second simulator and store polled every 60 s (real time, not
//!    compressed), running alongside the steady phases: scheduled rotations (NextChangeDate known in advance)
//!    and unscheduled ones (`rotate_account`), from the simulator's change time to the bench's Secret watch
//!    seeing the new password. The simulators' clocks are never advanced: the operator schedules by its own
//!    wall clock, so a jump in the simulator's clock would make announced changes look overdue instead.
//! 4. the operator's peak RSS (VmHWM) and CPU seconds (utime + stime) from `/proc/<pid>/`.
//!
//! ```sh
//! cargo bench --bench scale                                     # N = 100, 1000, 10000 (about 15 min)
//! cargo bench --bench scale -- --sizes 50 --quick               # CI smoke run (well under a minute)
//! cargo bench --bench scale -- --help                           # every flag
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use passwordsafe_operator::api::{PasswordSafeSecret, PasswordSafeStore};
use passwordsafe_operator::sync::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use passwordsafe_simulator::{Fault, FaultRule, GeneratedSeed, Handle, Running, ServeOptions};
use serde_json::{Value, json};
use support::e2e::{self, Cluster};

/// Password Safe calls the client's flows make per resource of each kind (see `src/passwordsafe/`):
/// managed account: `GET ManagedAccounts?systemName&accountName`, `POST Requests`, `GET Credentials`,
/// `PUT Requests/Checkin`; ISA: the look-up and `POST ISARequests`; Secrets Safe: the listing by path and
/// title (a credential's password comes with it), plus `GET .../text` or `GET .../file/download`.
const FLOW_CALLS: [(Kind, u64); 5] =
    [(Kind::Managed, 4), (Kind::Isa, 2), (Kind::Credential, 1), (Kind::Text, 2), (Kind::File, 2)];

#[derive(Parser, Debug, Clone)]
#[command(name = "scale", about = "Scale benchmark of passwordsafe-operator (see benches/scale.rs)")]
struct Args {
    /// Numbers of PasswordSafeSecrets; each size is a separate run with its own namespace and simulator.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 10000])]
    sizes: Vec<usize>,
    /// Delay of every Password Safe API call (a `*` latency fault in the simulator).
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Where the JSON results go (relative paths are taken from the package root).
    #[arg(long, default_value = "target/bench/scale.json")]
    json: PathBuf,
    /// Short phases for a smoke run: R = 6 s, one interval per steady phase, 5 s rotation poll, 5 + 5
    /// rotations.
    #[arg(long)]
    quick: bool,
    /// The operator's `--concurrency` (reconciles at once; the operator's default).
    #[arg(long, default_value_t = 64)]
    concurrency: u16,
    /// The store's `spec.maxConcurrency` (Password Safe calls in flight through it).
    #[arg(long, default_value_t = 8)]
    store_concurrency: u32,
    /// Compressed refresh interval standing for 1 h (the operator's `--default-refresh-interval`); the
    /// change-detection interval is a sixtieth of it. Default: N x 15 ms, at least 30 s (6 s with --quick),
    /// so that the operator's refresh reconciles (N per interval) stay well within what the API server of
    /// this machine serves.
    #[arg(long, value_parser = parse_seconds)]
    refresh: Option<Duration>,
    /// Refresh intervals per steady phase. Default 2, or 1 when the interval is longer than 60 s (and with
    /// --quick).
    #[arg(long)]
    intervals: Option<u32>,
    /// Share of the accounts in use rotated per interval in the second steady phase.
    #[arg(long, default_value_t = 1.0)]
    rotating_percent: f64,
    /// Change-detection interval of the rotation-propagation store (real time). Default 60 s (5 s with
    /// --quick).
    #[arg(long, value_parser = parse_seconds)]
    rotation_poll: Option<Duration>,
    /// Scheduled rotations measured per size. Default 20 (5 with --quick).
    #[arg(long)]
    scheduled: Option<usize>,
    /// Unscheduled rotations measured per size. Default 20 (5 with --quick).
    #[arg(long)]
    unscheduled: Option<usize>,
    /// PasswordSafeSecrets created at once by the bench.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// The operator binary (default: the release build cargo made for this bench).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Measure only the cold sync (for experiments, e.g. `--latency-ms 0` for the Kubernetes-side floor).
    #[arg(long)]
    cold_only: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim().trim_end_matches('s');
    trimmed.parse::<f64>().map(Duration::from_secs_f64).map_err(|e| format!("{text:?}: {e} (seconds, e.g. 60s)"))
}

/// The settings every size runs with, after defaults.
#[derive(Debug, Clone)]
struct Plan {
    latency: Duration,
    concurrency: u16,
    store_concurrency: u32,
    refresh: Duration,
    poll: Duration,
    intervals: u32,
    rotating_percent: f64,
    rotation_poll: Duration,
    scheduled: usize,
    unscheduled: usize,
    create_concurrency: usize,
    /// The store's requestDefaults.durationMinutes.
    duration_minutes: u32,
    refresh_override: Option<Duration>,
    intervals_override: Option<u32>,
    quick: bool,
    cold_only: bool,
}

impl Plan {
    fn from(args: &Args) -> Self {
        Plan {
            latency: Duration::from_millis(args.latency_ms),
            concurrency: args.concurrency,
            store_concurrency: args.store_concurrency,
            // Set per size by `for_size`.
            refresh: Duration::ZERO,
            poll: Duration::ZERO,
            intervals: 0,
            rotating_percent: args.rotating_percent,
            rotation_poll: args.rotation_poll.unwrap_or(Duration::from_secs(if args.quick { 5 } else { 60 })),
            scheduled: args.scheduled.unwrap_or(if args.quick { 5 } else { 20 }),
            unscheduled: args.unscheduled.unwrap_or(if args.quick { 5 } else { 20 }),
            create_concurrency: args.create_concurrency.max(1),
            duration_minutes: 1,
            refresh_override: args.refresh,
            intervals_override: args.intervals,
            quick: args.quick,
            cold_only: args.cold_only,
        }
    }

    /// The compressed intervals for size `n`.
    fn for_size(&self, n: usize) -> Plan {
        let refresh = self.refresh_override.unwrap_or(if self.quick {
            Duration::from_secs(6)
        } else {
            Duration::from_millis(15 * n as u64).max(Duration::from_secs(30))
        });
        let intervals = self
            .intervals_override
            .unwrap_or(if self.quick || refresh > Duration::from_secs(60) { 1 } else { 2 })
            .max(1);
        Plan { refresh, poll: refresh / 60, intervals, ..self.clone() }
    }

    /// Both steady phases together.
    fn steady_total(&self) -> Duration {
        self.refresh * self.intervals * 2
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Managed,
    Isa,
    Credential,
    Text,
    File,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Managed => "managed",
            Kind::Isa => "isa",
            Kind::Credential => "credential",
            Kind::Text => "text",
            Kind::File => "file",
        }
    }

    fn flow_calls(self) -> u64 {
        FLOW_CALLS.iter().find(|(k, _)| *k == self).map_or(0, |(_, n)| *n)
    }
}

/// One PasswordSafeSecret of the workload and the Password Safe object it reads.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    kind: Kind,
    /// System and account (managed, ISA) or folder and title (Secrets Safe).
    parent: String,
    child: String,
}

/// The workload of size `n`: slots 0-5 of every ten are managed accounts, 6 ISA, 7-9 Secrets Safe credential,
/// text and file. Accounts and secrets are numbered as `GeneratedSeed` names them (`isa_every = 7` makes
/// exactly slot 6 ISA).
fn workload(n: usize) -> (Vec<Item>, usize, usize) {
    let (mut accounts, mut secrets) = (0usize, 0usize);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let slot = i % 10;
        let name = format!("pss-{i:05}");
        if slot < 7 {
            let index = (i / 10) * 7 + slot;
            accounts = accounts.max(index + 1);
            let kind = if slot == 6 { Kind::Isa } else { Kind::Managed };
            items.push(Item {
                name,
                kind,
                parent: format!("sys-{:04}", index / 100),
                child: format!("acct-{index:05}"),
            });
        } else {
            let index = (i / 10) * 3 + (slot - 7);
            secrets = secrets.max(index + 1);
            let kind = [Kind::Credential, Kind::Text, Kind::File][slot - 7];
            items.push(Item {
                name,
                kind,
                parent: format!("bench/f{:03}", index / 100),
                child: format!("secret-{index:05}"),
            });
        }
    }
    (items, accounts, secrets)
}

fn pss_manifest(item: &Item, store: &str) -> Value {
    let account = |field: Option<&str>| {
        let mut a = json!({"system": item.parent, "account": item.child});
        if let Some(f) = field {
            a["field"] = json!(f);
        }
        a
    };
    let secret = |field: Option<&str>| {
        let mut s = json!({"folderPath": item.parent, "title": item.child});
        if let Some(f) = field {
            s["field"] = json!(f);
        }
        s
    };
    let data = match item.kind {
        Kind::Managed => json!([
            {"secretKey": "password", "managedAccount": account(None)},
            {"secretKey": "username", "managedAccount": account(Some("username"))},
        ]),
        Kind::Isa => json!([{"secretKey": "password", "managedAccount": account(None)}]),
        Kind::Credential => json!([
            {"secretKey": "username", "secretsSafe": secret(Some("username"))},
            {"secretKey": "password", "secretsSafe": secret(Some("password"))},
        ]),
        Kind::Text => json!([{"secretKey": "config", "secretsSafe": secret(None)}]),
        Kind::File => json!([{"secretKey": "file.txt", "secretsSafe": secret(None)}]),
    };
    json!({
        "apiVersion": "passwordsafe.dev/v1alpha1",
        "kind": "PasswordSafeSecret",
        "metadata": {"name": item.name},
        "spec": {"storeRef": {"name": store}, "data": data},
    })
}

/// The product's default change-detection interval.
const PRODUCTION_POLL: Duration = Duration::from_secs(60);

/// The simulator seeds' API key and user (see `GeneratedSeed`).
const API_KEY: &str = "bench-key";
const RUN_AS: &str = "bench";

/// A store and its API-key Secret pointing at `sim`.
async fn create_store(
    kube: &kube::Client,
    ns: &str,
    name: &str,
    sim: &Running,
    plan: &Plan,
    poll: Option<Duration>,
) -> anyhow::Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-api-key")},
        "stringData": {"api-key": API_KEY},
    }))?;
    Api::<Secret>::namespaced(kube.clone(), ns).create(&PostParams::default(), &secret).await?;
    let mut spec = json!({
        "url": sim.base_url(),
        "auth": {"apiKey": {"secretRef": {"name": format!("{name}-api-key"), "key": "api-key"}, "runAs": RUN_AS}},
        "maxConcurrency": plan.store_concurrency,
        "requestDefaults": {"durationMinutes": plan.duration_minutes, "reason": "scale benchmark"},
    });
    if let Some(poll) = poll {
        spec["changeDetectionInterval"] = json!(format!("{}s", poll.as_secs()));
    }
    let store: PasswordSafeStore = serde_json::from_value(json!({
        "apiVersion": "passwordsafe.dev/v1alpha1", "kind": "PasswordSafeStore",
        "metadata": {"name": name}, "spec": spec,
    }))?;
    Api::<PasswordSafeStore>::namespaced(kube.clone(), ns).create(&PostParams::default(), &store).await?;
    Ok(())
}

/// Creates the resources `create_concurrency` at a time; returns how long it took.
async fn create_all(kube: &kube::Client, ns: &str, items: &[Item], store: &str, plan: &Plan) -> anyhow::Result<f64> {
    let api: Api<PasswordSafeSecret> = Api::namespaced(kube.clone(), ns);
    let started = Instant::now();
    let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = spawn_progress("create", items.len(), created.clone(), started);
    stream::iter(items.iter().map(|item| {
        let (api, created) = (api.clone(), created.clone());
        async move {
            let pss: PasswordSafeSecret = serde_json::from_value(pss_manifest(item, store))?;
            api.create(&PostParams::default(), &pss).await.with_context(|| format!("creating {}", item.name))?;
            created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(plan.create_concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    progress.abort();
    Ok(started.elapsed().as_secs_f64())
}

/// Prints `what: done/total (elapsed)` every 5 s until aborted.
fn spawn_progress(
    what: &'static str,
    total: usize,
    done: Arc<std::sync::atomic::AtomicUsize>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let n = done.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("    {what}: {n}/{total} ({:.0} s)", started.elapsed().as_secs_f64());
        }
    })
}

/// The operator as a child process, with its `/proc` figures.
struct OperatorProcess {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl OperatorProcess {
    /// `passwordsafe-operator run` watching `ns` with these refresh and change-detection intervals.
    fn start(
        binary: &Path,
        kubeconfig: &Path,
        ns: &str,
        plan: &Plan,
        (refresh, poll): (Duration, Duration),
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let child = Command::new(binary)
            .args(["run", "--namespace", ns, "--operator-namespace", ns, "--log-level", "info"])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--concurrency", &plan.concurrency.to_string()])
            // Ephemeral ports: other operators (tests) may run on this machine at the same time.
            .args(["--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"])
            .args(["--default-refresh-interval", &duration_flag(refresh)])
            .args(["--change-detection-interval", &duration_flag(poll)])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log, started: Instant::now() })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn peak_rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmHWM").map_or(f64::NAN, |kib| kib as f64 / 1024.0)
    }

    fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM and wait up to 30 s (in-flight syncs finish, sessions are signed out); SIGKILL after that.
    async fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        for _ in 0..300 {
            if let Some(status) = self.exited() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `1.5s`, `60s`: what the operator's duration flags accept.
fn duration_flag(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in seconds.
fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The bundled control plane (a child of this process), for its CPU seconds.
fn control_plane_pid() -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
        let ppid: u32 = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()?;
        (ppid == me && comm == "control-plane").then_some(pid)
    })
}

/// CPU seconds of the operator, the control plane and this process (simulators, watches, bench).
#[derive(Clone, Copy, Debug, Default)]
struct CpuSample {
    operator: f64,
    control_plane: f64,
    bench: f64,
}

fn cpu_sample(operator: &OperatorProcess) -> CpuSample {
    CpuSample {
        operator: operator.cpu_seconds(),
        control_plane: control_plane_pid().and_then(proc_cpu_seconds).unwrap_or(f64::NAN),
        bench: proc_cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
    }
}

impl CpuSample {
    fn since(&self, before: &CpuSample) -> CpuSample {
        CpuSample {
            operator: self.operator - before.operator,
            control_plane: self.control_plane - before.control_plane,
            bench: self.bench - before.bench,
        }
    }

    fn json(&self) -> Value {
        json!({"operator_s": round3(self.operator), "control_plane_s": round3(self.control_plane), "bench_and_simulator_s": round3(self.bench)})
    }
}

/// When each resource was first seen Ready, by a watch of its own.
#[derive(Default)]
struct ReadyLog {
    first_ready: HashMap<String, Instant>,
    not_ready: HashMap<String, String>,
    /// `status.lastSyncTime` as last seen.
    last_sync: HashMap<String, Timestamp>,
}

fn watch_ready(kube: &kube::Client, ns: &str) -> (Arc<Mutex<ReadyLog>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(ReadyLog::default()));
    let api: Api<PasswordSafeSecret> = Api::namespaced(kube.clone(), ns);
    let task_log = log.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(event) = events.next().await {
            let Ok(pss) = event else { continue };
            let name = pss.metadata.name.clone().unwrap_or_default();
            let ready = pss.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            let mut log = task_log.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = pss.status.as_ref().and_then(|s| s.last_sync_time.as_ref()) {
                log.last_sync.insert(name.clone(), t.0);
            }
            match ready {
                Some(c) if c.status == "True" => {
                    log.not_ready.remove(&name);
                    log.first_ready.entry(name).or_insert_with(Instant::now);
                }
                Some(c) => drop(log.not_ready.insert(name, c.reason.clone())),
                None => {}
            }
        }
    });
    (log, task)
}

/// Waits until every name in `names` reports a `lastSyncTime` at or after `since`.
async fn wait_all_synced_since(
    log: &Mutex<ReadyLog>,
    names: &[String],
    since: Timestamp,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let synced = {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            names.iter().filter(|n| log.last_sync.get(*n).is_some_and(|t| *t >= since)).count()
        };
        if synced == names.len() {
            return Ok(());
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!("    re-synced: {synced}/{} ({:.0} s)", names.len(), started.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        if started.elapsed() > limit {
            bail!("only {synced}/{} re-synced after {limit:?}", names.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every name in `names` is Ready, printing progress; returns the instant the last one was.
async fn wait_all_ready(log: &Mutex<ReadyLog>, names: &[String], limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let (ready, reasons) = {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            let ready = names.iter().filter(|n| log.first_ready.contains_key(*n)).count();
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for reason in log.not_ready.values() {
                *reasons.entry(reason.clone()).or_default() += 1;
            }
            (ready, reasons)
        };
        if ready == names.len() {
            return Ok(());
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "    ready: {ready}/{} ({:.0} s){}",
                names.len(),
                started.elapsed().as_secs_f64(),
                fmt_reasons(&reasons)
            );
            last_print = Instant::now();
        }
        if started.elapsed() > limit {
            bail!("only {ready}/{} Ready after {limit:?}{}", names.len(), fmt_reasons(&reasons));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fmt_reasons(reasons: &BTreeMap<String, usize>) -> String {
    if reasons.is_empty() {
        return String::new();
    }
    format!("; not ready: {reasons:?}")
}

/// Which rotation experiment a tracked Secret belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Category {
    /// NextChangeDate known in advance (rotation store, real-time poll).
    Scheduled,
    /// On demand (rotation store, real-time poll).
    Unscheduled,
    /// The steady phase's 1 % on the main store (compressed poll).
    SteadyRotating,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Scheduled => "scheduled",
            Category::Unscheduled => "unscheduled",
            Category::SteadyRotating => "steady_rotating",
        }
    }
}

struct Tracked {
    handle: Handle,
    system: String,
    account: String,
    category: Category,
    /// LastChangeDate of the value the Secret was last seen with.
    baseline: Timestamp,
}

/// Rotation propagation: for every tracked Secret, the time from the account's LastChangeDate (the
/// simulator's change time, on the wall clock) to the watch seeing that password in the Secret.
#[derive(Default)]
struct Propagation {
    tracked: HashMap<String, Tracked>,
    samples: Vec<(Category, f64)>,
}

impl Propagation {
    fn track(&mut self, secret: &str, handle: &Handle, system: &str, account: &str, category: Category) {
        let baseline = handle.account(system, account).map_or(Timestamp::MIN, |a| a.last_change_date);
        let tracked =
            Tracked { handle: handle.clone(), system: system.into(), account: account.into(), category, baseline };
        self.tracked.insert(secret.into(), tracked);
    }

    fn observe(&mut self, secret: &Secret) {
        let seen = Timestamp::now();
        let Some(name) = secret.metadata.name.as_deref() else { return };
        let Some(tracked) = self.tracked.get_mut(name) else { return };
        let Some(password) = secret.data.as_ref().and_then(|d| d.get("password")) else { return };
        let Some(account) = tracked.handle.account(&tracked.system, &tracked.account) else { return };
        if password.0 == account.password.as_bytes() && account.last_change_date > tracked.baseline {
            let latency = seen.duration_since(account.last_change_date).as_secs_f64();
            tracked.baseline = account.last_change_date;
            self.samples.push((tracked.category, latency));
        }
    }

    fn count(&self, category: Category) -> usize {
        self.samples.iter().filter(|(c, _)| *c == category).count()
    }

    fn latencies(&self, category: Category) -> Vec<f64> {
        self.samples.iter().filter(|(c, _)| *c == category).map(|(_, l)| *l).collect()
    }
}

fn watch_secrets(kube: &kube::Client, ns: &str, propagation: Arc<Mutex<Propagation>>) -> tokio::task::JoinHandle<()> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), ns);
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().applied_objects().boxed();
        while let Some(event) = events.next().await {
            if let Ok(secret) = event {
                propagation.lock().unwrap_or_else(PoisonError::into_inner).observe(&secret);
            }
        }
    })
}

/// The API server's request counters (`apiserver_request_total`) summed by `VERB resource[/subresource]`,
/// and the seconds it spent serving them (`apiserver_request_duration_seconds_sum`). Empty when the metrics
/// cannot be read (an existing cluster may not allow it).
async fn apiserver_requests(kube: &kube::Client) -> BTreeMap<String, (f64, f64)> {
    let request = http::Request::get("/metrics").body(Vec::new()).expect("a valid request");
    let Ok(text) = kube.request_text(request).await else { return BTreeMap::new() };
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let (counter, is_count) = if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
            (rest, true)
        } else if let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_sum{") {
            (rest, false)
        } else {
            continue;
        };
        let Some((labels, value)) = counter.rsplit_once("} ") else { continue };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| kv.strip_prefix(&format!("{name}=\"")).map(|v| v.trim_end_matches('"')))
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else { continue };
        if matches!(verb, "WATCH" | "CONNECT") || resource.is_empty() {
            continue;
        }
        let key = match label("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let entry = out.entry(key).or_default();
        if is_count { entry.0 += value } else { entry.1 += value }
    }
    out
}

/// What the API server served between two [`apiserver_requests`] readings (requests, seconds), busiest first;
/// only kinds with at least `min` requests.
fn apiserver_since(before: &BTreeMap<String, (f64, f64)>, after: &BTreeMap<String, (f64, f64)>, min: f64) -> Value {
    let mut rows: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(k, (n, s))| {
            let (n0, s0) = before.get(k).copied().unwrap_or_default();
            (k.clone(), n - n0, s - s0)
        })
        .filter(|(_, n, _)| *n >= min)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let seconds: f64 = rows.iter().map(|r| r.2).sum();
    json!({
        "requests_total": total,
        "server_seconds_total": round3(seconds),
        "by_kind": rows.iter().map(|(k, n, s)| json!({"request": k, "count": n, "server_seconds": round3(*s)})).collect::<Vec<_>>(),
    })
}

/// Password Safe calls by endpoint since `before` (zero counts left out).
fn calls_since(handle: &Handle, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    handle
        .calls()
        .into_iter()
        .map(|(k, v)| {
            let d = v - before.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn stats(values: &[f64]) -> Value {
    json!({
        "n": values.len(),
        "p50_s": round3(percentile(values, 50.0)),
        "p99_s": round3(percentile(values, 99.0)),
        "max_s": round3(percentile(values, 100.0)),
    })
}

/// A simulator with the benchmark seed and the latency fault on every API call.
async fn start_simulator(seed: passwordsafe_simulator::Seed, latency: Duration) -> anyhow::Result<Running> {
    let sim = passwordsafe_simulator::start(seed, ServeOptions::default()).await?;
    if !latency.is_zero() {
        sim.handle().set_faults(vec![FaultRule::new("*", Fault::Latency { ms: latency.as_millis() as u64 })]);
    }
    Ok(sim)
}

/// The rotation store's simulator: `scheduled` accounts whose NextChangeDate falls at the given offsets from
/// now (a one-hour schedule, so each changes once during the run and is not "queued" afterwards), then
/// `unscheduled` accounts without a schedule.
async fn start_rotation_simulator(
    scheduled_offsets: &[Duration],
    unscheduled: usize,
    latency: Duration,
) -> anyhow::Result<Running> {
    let count = scheduled_offsets.len() + unscheduled;
    let mut seed = GeneratedSeed { accounts: count, isa_every: 0, secrets: 0, ..GeneratedSeed::default() }.build();
    let now = Timestamp::now();
    let accounts = seed.systems.iter_mut().flat_map(|s| s.accounts.iter_mut());
    for (account, offset) in accounts.zip(scheduled_offsets) {
        account.rotation_interval_seconds = Some(3600);
        let last = now + jiff::SignedDuration::try_from(*offset)? - jiff::SignedDuration::from_hours(1);
        account.last_change_date = Some(last.to_string());
    }
    start_simulator(seed, latency).await
}

/// Results of one size.
struct SizeResult {
    n: usize,
    json: Value,
    row: Row,
}

/// The figures of one size that go into the table.
#[derive(Clone)]
struct Row {
    create_s: f64,
    cold_s: f64,
    bound_s: f64,
    p50_s: f64,
    p99_s: f64,
    calls_cold: u64,
    expected_calls: u64,
    sign_ins: u64,
    steady_plain: f64,
    steady_rotating: f64,
    scheduled: (usize, f64, f64),
    unscheduled: (usize, f64, f64),
    steady_rotation: (usize, f64, f64),
    rss_mib: f64,
    refresh_s: f64,
    poll_s: f64,
    intervals: u32,
    rss_cold: f64,
    rss_steady: f64,
    restart_s: f64,
    restart_calls: u64,
    cpu_cold: CpuSample,
    cpu_total_s: f64,
    cold_calls: BTreeMap<String, u64>,
}

impl Row {
    /// Every figure "not measured" (shown as `-`/NaN).
    fn not_measured() -> Self {
        let nan = f64::NAN;
        Row {
            create_s: nan,
            cold_s: nan,
            bound_s: nan,
            p50_s: nan,
            p99_s: nan,
            calls_cold: 0,
            expected_calls: 0,
            sign_ins: 0,
            steady_plain: nan,
            steady_rotating: nan,
            scheduled: (0, nan, nan),
            unscheduled: (0, nan, nan),
            steady_rotation: (0, nan, nan),
            rss_mib: nan,
            refresh_s: nan,
            poll_s: nan,
            intervals: 0,
            rss_cold: nan,
            rss_steady: nan,
            restart_s: nan,
            restart_calls: 0,
            cpu_cold: CpuSample::default(),
            cpu_total_s: nan,
            cold_calls: BTreeMap::new(),
        }
    }
}

async fn run_size(
    n: usize,
    plan: &Plan,
    cluster: &'static Cluster,
    binary: &Path,
    out_dir: &Path,
) -> anyhow::Result<SizeResult> {
    let kube = cluster.admin().await;
    let (items, accounts, secrets) = workload(n);
    let mut kinds: BTreeMap<Kind, usize> = BTreeMap::new();
    for item in &items {
        *kinds.entry(item.kind).or_default() += 1;
    }
    eprintln!("== N = {n}: {kinds:?}, {accounts} accounts, {secrets} Secrets Safe secrets");

    let ns = cluster.namespace(&format!("scale-{n}")).await;
    let seed = GeneratedSeed { accounts, isa_every: 7, secrets, ..GeneratedSeed::default() }.build();
    let sim = start_simulator(seed, plan.latency).await?;
    let handle = sim.handle();
    create_store(&kube, &ns, "bench", &sim, plan, Some(PRODUCTION_POLL)).await?;
    let kubeconfig = cluster.operator_kubeconfig(&ns).await?;

    eprintln!("  creating {n} PasswordSafeSecrets ({} at once, no operator running)", plan.create_concurrency);
    let create_s = create_all(&kube, &ns, &items, "bench", plan).await?;
    eprintln!("  created in {create_s:.1} s ({:.0}/s)", n as f64 / create_s);

    // Cold sync.
    let (ready_log, ready_task) = watch_ready(&kube, &ns);
    let calls_before = handle.calls();
    let api_before = apiserver_requests(&kube).await;
    let cpu_before = CpuSample {
        operator: 0.0,
        control_plane: control_plane_pid().and_then(proc_cpu_seconds).unwrap_or(f64::NAN),
        bench: proc_cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
    };
    // One operator process for the whole run, with the compressed intervals. During the cold sync the store
    // polls at the product's default 60 s (its spec.changeDetectionInterval), so the cold sync's calls are the
    // flows' and not those of a compressed poller.
    let log_path = out_dir.join(format!("operator-{n}.log"));
    let mut operator =
        OperatorProcess::start(binary, &kubeconfig, &ns, plan, (plan.refresh, plan.poll), log_path.clone())?;
    eprintln!(
        "  operator pid {} started with --default-refresh-interval {} --change-detection-interval {} (log {})",
        operator.pid(),
        duration_flag(plan.refresh),
        duration_flag(plan.poll),
        log_path.display()
    );
    let expected_calls: u64 = 1 + items.iter().map(|i| i.kind.flow_calls()).sum::<u64>();
    let parallel = u64::from(plan.store_concurrency).min(u64::from(plan.concurrency)).max(1);
    let longest_chain = items.iter().map(|i| i.kind.flow_calls()).max().unwrap_or(0);
    let bound_s =
        plan.latency.as_secs_f64() * (1.0 + ((expected_calls - 1) as f64 / parallel as f64).max(longest_chain as f64));
    let names: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
    let limit = Duration::from_secs_f64((bound_s * 10.0).max(120.0));
    let waited = wait_all_ready(&ready_log, &names, limit).await;
    if let Some(status) = operator.exited() {
        bail!("the operator exited ({status}); see {}", log_path.display());
    }
    waited?;
    let (cold_s, latencies) = {
        let log = ready_log.lock().unwrap_or_else(PoisonError::into_inner);
        let latencies: Vec<f64> = names
            .iter()
            .filter_map(|n| log.first_ready.get(n))
            .map(|t| t.duration_since(operator.started).as_secs_f64())
            .collect();
        (latencies.iter().copied().fold(0.0, f64::max), latencies)
    };
    let cold_calls = calls_since(&handle, &calls_before);
    // Every client's requests (the bench's own watch and this scrape included), not just the operator's.
    let cold_api = apiserver_since(&api_before, &apiserver_requests(&kube).await, (n / 100).max(1) as f64);
    eprintln!(
        "  API server during the cold sync: {} requests, {} s serving them",
        cold_api["requests_total"], cold_api["server_seconds_total"]
    );
    let cpu_cold = cpu_sample(&operator).since(&cpu_before);
    let rss_cold = operator.peak_rss_mib();
    let sign_ins = cold_calls.get("POST Auth/SignAppIn").copied().unwrap_or(0);
    eprintln!(
        "  cold sync: {cold_s:.1} s (bound {bound_s:.1} s, ratio {:.2}); {} calls (flows: {expected_calls}); \
         operator {rss_cold:.1} MiB peak, {:.1} CPU s",
        cold_s / bound_s,
        total(&cold_calls),
        cpu_cold.operator
    );

    // What the cold sync measured, in the table and in the JSON, whether or not the steady phases follow.
    let cold_row = Row {
        create_s,
        cold_s,
        bound_s,
        p50_s: percentile(&latencies, 50.0),
        p99_s: percentile(&latencies, 99.0),
        calls_cold: total(&cold_calls),
        expected_calls,
        sign_ins,
        rss_cold,
        rss_mib: rss_cold,
        cpu_cold,
        cold_calls: cold_calls.clone(),
        ..Row::not_measured()
    };
    let cold_json = json!({
        "wall_s": round3(cold_s),
        "latency_bound_s": round3(bound_s),
        "ratio_to_bound": round3(cold_s / bound_s),
        "per_secret_ready": stats(&latencies),
        "first_ready_s": round3(percentile(&latencies, 0.0)),
        "calls": cold_calls,
        "calls_total": total(&cold_calls),
        "calls_expected_from_flows": expected_calls,
        "sign_ins": sign_ins,
        "operator_peak_rss_mib": round3(rss_cold),
        "cpu": cpu_cold.json(),
        "api_server": cold_api,
    });
    if plan.cold_only {
        let exit = operator.terminate().await;
        eprintln!("  operator stopped (exit {exit:?})");
        let json = json!({ "n": n, "create": {"seconds": round3(create_s)}, "cold_sync": cold_json });
        if std::env::var_os("E2E_KUBECONFIG").is_some() {
            cleanup(&kube, &ns).await;
        }
        ready_task.abort();
        sim.shutdown().await;
        return Ok(SizeResult { n, json, row: cold_row });
    }

    // Switch the store to the compressed poll by removing its changeDetectionInterval: the store's client is
    // rebuilt (a new session and an empty change-detection snapshot) and every resource reconciles.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let edit_wall = Timestamp::now();
    let calls_before = handle.calls();
    let edited = Instant::now();
    let patch = json!({"spec": {"changeDetectionInterval": null}});
    Api::<PasswordSafeStore>::namespaced(kube.clone(), &ns)
        .patch("bench", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await?;
    wait_all_synced_since(&ready_log, &names, Timestamp::from_second(edit_wall.as_second())?, limit).await?;
    if let Some(status) = operator.exited() {
        bail!("the operator exited ({status}); see {}", log_path.display());
    }
    let restart_s = edited.elapsed().as_secs_f64();
    let restart_calls = calls_since(&handle, &calls_before);
    eprintln!(
        "  store switched to the {} ms poll: every resource re-synced after {restart_s:.1} s with {} calls ({restart_calls:?})",
        plan.poll.as_millis(),
        total(&restart_calls)
    );

    // Rotation propagation runs on its own simulator and store, alongside both steady phases.
    let propagation = Arc::new(Mutex::new(Propagation::default()));
    let secrets_task = watch_secrets(&kube, &ns, propagation.clone());
    let scheduled_offsets = scheduled_offsets(plan);
    let rot_sim = start_rotation_simulator(&scheduled_offsets, plan.unscheduled, plan.latency).await?;
    let rot_handle = rot_sim.handle();
    let rot_items: Vec<Item> = (0..scheduled_offsets.len() + plan.unscheduled)
        .map(|i| Item {
            name: format!("rot-{i:03}"),
            kind: Kind::Managed,
            parent: format!("sys-{:04}", i / 100),
            child: format!("acct-{i:05}"),
        })
        .collect();
    {
        let mut p = propagation.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, item) in rot_items.iter().enumerate() {
            let category = if i < scheduled_offsets.len() { Category::Scheduled } else { Category::Unscheduled };
            p.track(&item.name, &rot_handle, &item.parent, &item.child, category);
        }
    }
    create_store(&kube, &ns, "rotation", &rot_sim, plan, Some(plan.rotation_poll)).await?;
    let steady_started = Instant::now();
    create_all(&kube, &ns, &rot_items, "rotation", plan).await?;
    let rot_names: Vec<String> = rot_items.iter().map(|i| i.name.clone()).collect();
    wait_all_ready(&ready_log, &rot_names, Duration::from_secs(60)).await?;
    let unscheduled_task = spawn_unscheduled_rotations(plan, rot_handle.clone(), &rot_items[scheduled_offsets.len()..]);

    // Steady state, no rotation on the main store.
    let intervals = plan.intervals;
    eprintln!(
        "  steady state: {intervals} x {} s intervals without rotation (poll {} ms)",
        plan.refresh.as_secs(),
        plan.poll.as_millis()
    );
    let before = handle.calls();
    let cpu_steady_before = cpu_sample(&operator);
    tokio::time::sleep(plan.refresh * intervals).await;
    let plain_calls = calls_since(&handle, &before);
    let plain = total(&plain_calls) as f64 / n as f64 / f64::from(intervals);
    eprintln!("    {plain:.4} calls per secret per interval ({plain_calls:?})");

    // Steady state with 1 % of the accounts in use rotating per interval.
    let account_items: Vec<&Item> = items.iter().filter(|i| matches!(i.kind, Kind::Managed | Kind::Isa)).collect();
    let per_interval = ((account_items.len() as f64 * plan.rotating_percent / 100.0).round() as usize).max(1);
    eprintln!(
        "  steady state: {intervals} x {} s intervals, {per_interval} accounts rotated per interval",
        plan.refresh.as_secs()
    );
    let before = handle.calls();
    let rotating_started = Instant::now();
    let total_rotations = per_interval * intervals as usize;
    let step = plan.refresh.as_secs_f64() / per_interval as f64;
    for k in 0..total_rotations {
        let at = Duration::from_secs_f64(step * (k as f64 + 0.5));
        tokio::time::sleep(at.saturating_sub(rotating_started.elapsed())).await;
        // Spread over the accounts in use; a fixed stride keeps runs comparable.
        let item = account_items[(k * 7919) % account_items.len()];
        propagation.lock().unwrap_or_else(PoisonError::into_inner).track(
            &item.name,
            &handle,
            &item.parent,
            &item.child,
            Category::SteadyRotating,
        );
        handle.rotate_account(&item.parent, &item.child)?;
    }
    tokio::time::sleep((plan.refresh * intervals).saturating_sub(rotating_started.elapsed())).await;
    let rotating_calls = calls_since(&handle, &before);
    let rotating = total(&rotating_calls) as f64 / n as f64 / f64::from(intervals);
    eprintln!("    {rotating:.4} calls per secret per interval ({rotating_calls:?})");
    let cpu_steady = cpu_sample(&operator).since(&cpu_steady_before);

    // Collect the propagation samples still in flight.
    unscheduled_task.await?;
    let expected = [
        (Category::Scheduled, scheduled_offsets.len()),
        (Category::Unscheduled, plan.unscheduled),
        (Category::SteadyRotating, total_rotations),
    ];
    let wait_limit = plan.rotation_poll + Duration::from_secs(30);
    let waiting_since = Instant::now();
    loop {
        let missing: Vec<(Category, usize)> = {
            let p = propagation.lock().unwrap_or_else(PoisonError::into_inner);
            expected.iter().filter(|(c, n)| p.count(*c) < *n).map(|(c, n)| (*c, n - p.count(*c))).collect()
        };
        if missing.is_empty() {
            break;
        }
        if waiting_since.elapsed() > wait_limit {
            eprintln!("    WARNING: rotations not seen in their Secrets after {wait_limit:?}: {missing:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("  steady phases and propagation took {:.0} s", steady_started.elapsed().as_secs_f64());
    secrets_task.abort();
    ready_task.abort();

    let rss_steady = operator.peak_rss_mib();
    let rss_mib = rss_cold.max(rss_steady);
    let cpu_total_s = operator.cpu_seconds();
    let operator_log = operator.log.clone();
    let exit = operator.terminate().await;
    let sessions_left = handle.active_sessions();
    let requests_left = handle.open_requests().len();
    let p = Propagation {
        tracked: HashMap::new(),
        samples: propagation.lock().unwrap_or_else(PoisonError::into_inner).samples.clone(),
    };
    let summary = |c: Category| {
        let l = p.latencies(c);
        (l.len(), percentile(&l, 50.0), percentile(&l, 99.0))
    };
    let row = Row {
        steady_plain: plain,
        steady_rotating: rotating,
        scheduled: summary(Category::Scheduled),
        unscheduled: summary(Category::Unscheduled),
        steady_rotation: summary(Category::SteadyRotating),
        rss_mib,
        refresh_s: plan.refresh.as_secs_f64(),
        poll_s: plan.poll.as_secs_f64(),
        intervals: plan.intervals,
        rss_steady,
        restart_s,
        restart_calls: total(&restart_calls),
        cpu_total_s,
        ..cold_row
    };
    let propagation_json: serde_json::Map<String, Value> =
        [Category::Scheduled, Category::Unscheduled, Category::SteadyRotating]
            .iter()
            .map(|c| (c.name().to_owned(), stats(&p.latencies(*c))))
            .collect();
    let json = json!({
        "n": n,
        "mix": kinds.iter().map(|(k, v)| (k.name().to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "accounts": accounts,
        "secrets_safe_secrets": secrets,
        "create": {"seconds": round3(create_s), "per_second": round3(n as f64 / create_s)},
        "cold_sync": cold_json,
        "store_poll_switch": {
            "seconds_until_all_resynced": round3(restart_s),
            "calls": restart_calls,
            "calls_total": total(&restart_calls),
        },
        "steady_state": {
            "interval_s": plan.refresh.as_secs_f64(),
            "poll_s": plan.poll.as_secs_f64(),
            "intervals": intervals,
            "no_rotation": {"calls": plain_calls, "calls_per_secret_per_interval": plain},
            "rotating": {
                "accounts_rotated_per_interval": per_interval,
                "calls": rotating_calls,
                "calls_per_secret_per_interval": rotating,
            },
            "cpu": cpu_steady.json(),
        },
        "rotation_propagation": {
            "rotation_store_poll_s": plan.rotation_poll.as_secs_f64(),
            "main_store_poll_s": plan.poll.as_secs_f64(),
            "latency": propagation_json,
        },
        "operator": {
            "peak_rss_mib": round3(rss_mib),
            "peak_rss_mib_after_cold_sync": round3(rss_cold),
            "cpu_s": round3(cpu_total_s),
            "exit_code": exit,
            "log": operator_log,
            "sessions_left_open": sessions_left,
            "requests_left_open": requests_left,
        },
    });
    eprintln!("  operator stopped (exit {exit:?}); sessions left {sessions_left}, requests left {requests_left}");
    if std::env::var_os("E2E_KUBECONFIG").is_some() {
        cleanup(&kube, &ns).await;
    }
    sim.shutdown().await;
    rot_sim.shutdown().await;
    Ok(SizeResult { n, json, row })
}

/// Scheduled rotations: spread over the first half of the steady phases, starting once the rotation
/// store's resources have had time to sync.
fn scheduled_offsets(plan: &Plan) -> Vec<Duration> {
    let first = if plan.steady_total() < Duration::from_secs(60) { 5.0 } else { 20.0 };
    let span = (plan.steady_total().as_secs_f64() / 2.0 - first).max(1.0);
    (0..plan.scheduled)
        .map(|i| Duration::from_secs_f64(first + span * (i as f64 + 0.5) / plan.scheduled as f64))
        .collect()
}

/// Unscheduled rotations at evenly spread times, leaving one rotation-store poll (plus margin) before the
/// steady phases end.
fn spawn_unscheduled_rotations(plan: &Plan, handle: Handle, items: &[Item]) -> tokio::task::JoinHandle<()> {
    let items: Vec<(String, String)> = items.iter().map(|i| (i.parent.clone(), i.child.clone())).collect();
    let first = 2.0;
    let span = (plan.steady_total().as_secs_f64() - plan.rotation_poll.as_secs_f64() - 5.0 - first).max(1.0);
    tokio::spawn(async move {
        let started = Instant::now();
        for (i, (system, account)) in items.into_iter().enumerate() {
            // A deterministic but irregular spread (golden-ratio sequence), so rotations do not line up with
            // the poll ticks.
            let at = Duration::from_secs_f64(first + span * ((i as f64 * 0.618_034) % 1.0));
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
            if let Err(e) = handle.rotate_account(&system, &account) {
                eprintln!("    rotate {system}/{account}: {e}");
            }
        }
    })
}

/// External clusters only: delete the resources while the finalizers can still run, then the namespace.
async fn cleanup(kube: &kube::Client, ns: &str) {
    let api: Api<PasswordSafeSecret> = Api::namespaced(kube.clone(), ns);
    let params = kube::api::PatchParams::default();
    if let Ok(list) = api.list(&Default::default()).await {
        for pss in list {
            let name = pss.metadata.name.unwrap_or_default();
            let patch = json!({"metadata": {"finalizers": null}});
            let _ = api.patch(&name, &params, &kube::api::Patch::Merge(&patch)).await;
        }
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(kube.clone());
    let _ = namespaces.delete(ns, &Default::default()).await;
}

/// This machine, for the record.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = proc_meminfo_kib("MemTotal").map_or(0.0, |k| k as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    json!({"cpu": model, "cores": cores, "memory_gib": (mem_gib * 10.0).round() / 10.0, "kernel": kernel})
}

fn proc_meminfo_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find(|l| l.starts_with(&format!("{field}:")))?.split_whitespace().nth(1)?.parse().ok()
}

fn fmt_s(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn print_table(plan: &Plan, machine: &Value, results: &[SizeResult]) {
    let mut out = String::new();
    let line = |out: &mut String, label: &str, cells: Vec<String>| {
        out.push_str(&format!("| {label} |"));
        for cell in cells {
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    };
    out.push_str(&format!(
        "\nMachine: {} x {}, {} GiB, Linux {}. Latency {} ms per Password Safe call; --concurrency {}, store \
         maxConcurrency {}; rotation store poll {} s.\n\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        plan.latency.as_millis(),
        plan.concurrency,
        plan.store_concurrency,
        plan.rotation_poll.as_secs(),
    ));
    let rows: Vec<&Row> = results.iter().map(|r| &r.row).collect();
    let header: Vec<String> = results.iter().map(|r| format!("N = {}", r.n)).collect();
    line(&mut out, "", header);
    out.push_str(&format!("|---|{}\n", "---:|".repeat(results.len())));
    let cells = |f: &dyn Fn(&Row) -> String| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    line(&mut out, "create the resources (s)", cells(&|r| fmt_s(r.create_s)));
    line(&mut out, "cold sync: wall time until all Ready (s)", cells(&|r| fmt_s(r.cold_s)));
    line(&mut out, "cold sync: latency bound (s)", cells(&|r| fmt_s(r.bound_s)));
    line(&mut out, "cold sync: ratio to bound", cells(&|r| format!("{:.2}", r.cold_s / r.bound_s)));
    line(
        &mut out,
        "cold sync: per-secret p50 / p99 (s)",
        cells(&|r| format!("{} / {}", fmt_s(r.p50_s), fmt_s(r.p99_s))),
    );
    line(
        &mut out,
        "cold sync: Password Safe calls (flows predict)",
        cells(&|r| format!("{} ({})", r.calls_cold, r.expected_calls)),
    );
    line(&mut out, "cold sync: sign-ins", cells(&|r| r.sign_ins.to_string()));
    let endpoints: std::collections::BTreeSet<&String> = rows.iter().flat_map(|r| r.cold_calls.keys()).collect();
    for endpoint in endpoints {
        line(
            &mut out,
            &format!("&nbsp;&nbsp;{endpoint}"),
            cells(&|r| r.cold_calls.get(endpoint).copied().unwrap_or(0).to_string()),
        );
    }
    line(
        &mut out,
        "cold sync: CPU s operator / control plane / bench+sim",
        cells(&|r| format!("{:.1} / {:.1} / {:.1}", r.cpu_cold.operator, r.cpu_cold.control_plane, r.cpu_cold.bench)),
    );
    line(
        &mut out,
        "store edit (poll 60 s → compressed): s until all re-synced / calls",
        cells(&|r| format!("{} / {}", fmt_s(r.restart_s), r.restart_calls)),
    );
    line(
        &mut out,
        "steady: interval R standing for 1 h / poll R/60 / intervals per phase",
        cells(&|r| format!("{} s / {} s / {}", fmt_s(r.refresh_s), fmt_s(r.poll_s), r.intervals)),
    );
    line(&mut out, "steady, no rotation: calls per secret per interval", cells(&|r| format!("{:.4}", r.steady_plain)));
    line(
        &mut out,
        "steady, 1 % rotating: calls per secret per interval",
        cells(&|r| format!("{:.4}", r.steady_rotating)),
    );
    let prop = |x: (usize, f64, f64)| format!("{} / {} (n={})", fmt_s(x.1), fmt_s(x.2), x.0);
    line(&mut out, "scheduled rotation → Secret p50 / p99 (s)", cells(&|r| prop(r.scheduled)));
    line(
        &mut out,
        &format!("unscheduled rotation → Secret p50 / p99 (s), poll {} s", plan.rotation_poll.as_secs()),
        cells(&|r| prop(r.unscheduled)),
    );
    line(&mut out, "steady 1 % rotations → Secret p50 / p99 (s), poll R/60", cells(&|r| prop(r.steady_rotation)));
    line(
        &mut out,
        "operator peak RSS, after cold sync / whole run (MiB)",
        cells(&|r| format!("{:.1} / {:.1}", r.rss_cold, r.rss_steady)),
    );
    line(
        &mut out,
        "operator CPU, cold sync / whole run (s)",
        cells(&|r| format!("{:.1} / {:.1}", r.cpu_cold.operator, r.cpu_total_s)),
    );
    println!("{out}");
}

fn targets(plan: &Plan, results: &[SizeResult]) -> Value {
    let Some(largest) = results.iter().max_by_key(|r| r.n) else { return json!({}) };
    let r = &largest.row;
    json!({
        "n": largest.n,
        "cold_sync_within_1_2x_bound": {"value": round3(r.cold_s / r.bound_s), "met": r.cold_s <= 1.2 * r.bound_s},
        "steady_calls_per_secret_per_interval_le_0_1": {"value": r.steady_plain, "met": r.steady_plain <= 0.1},
        "scheduled_rotation_p99_le_5s": {"value": round3(r.scheduled.2), "met": r.scheduled.2 <= 5.0 && r.scheduled.0 == plan.scheduled},
        "unscheduled_rotation_p99_le_poll": {
            "value": round3(r.unscheduled.2),
            "poll_s": plan.rotation_poll.as_secs_f64(),
            "met": r.unscheduled.2 <= plan.rotation_poll.as_secs_f64() && r.unscheduled.0 == plan.unscheduled,
        },
        "peak_rss_lt_64mib": {"value": round3(r.rss_mib), "met": r.rss_mib < 64.0},
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::from(&args);
    let binary = match &args.operator {
        Some(path) => path.clone(),
        None => PathBuf::from(env!("CARGO_BIN_EXE_passwordsafe-operator")),
    };
    let json_path = if args.json.is_absolute() { args.json.clone() } else { e2e::repo_root().join(&args.json) };
    let out_dir = json_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&out_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let started = Instant::now();
        eprintln!("scale benchmark: operator {}; plan {plan:?}", binary.display());
        eprintln!("starting the control plane (first build about 5 minutes)...");
        let cluster = e2e::cluster().await;
        eprintln!("control plane ready after {:.1} s", started.elapsed().as_secs_f64());
        let mut results = Vec::new();
        let mut sizes = args.sizes.clone();
        sizes.sort_unstable();
        for n in sizes {
            let sized = plan.for_size(n);
            results.push(run_size(n, &sized, cluster, &binary, &out_dir).await.with_context(|| format!("N = {n}"))?);
        }
        let machine = machine();
        print_table(&plan, &machine, &results);
        let report = json!({
            "machine": machine,
            "config": {
                "latency_ms": plan.latency.as_millis() as u64,
                "concurrency": plan.concurrency,
                "store_max_concurrency": plan.store_concurrency,
                    "request_duration_minutes": plan.duration_minutes,
                "rotating_percent": plan.rotating_percent,
                "rotation_store_poll_s": plan.rotation_poll.as_secs_f64(),
                "flow_calls": FLOW_CALLS.iter().map(|(k, n)| (k.name().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "quick": args.quick,
            },
            "sizes": results.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
            "targets": targets(&plan, &results),
            "total_run_s": round3(started.elapsed().as_secs_f64()),
        });
        let mut file = std::fs::File::create(&json_path)?;
        file.write_all(serde_json::to_string_pretty(&report)?.as_bytes())?;
        eprintln!("wrote {} ({:.0} s in all)", json_path.display(), started.elapsed().as_secs_f64());
        anyhow::Ok(())
    })
}
