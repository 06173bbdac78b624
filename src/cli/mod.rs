//! The command line: `run`, `crd`, `check` and `version`.

mod check;

use clap::{Parser, Subcommand};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::leader::{LeaderElector, LeaseConfig};
use crate::telemetry::metrics::{Health, Metrics};
use crate::telemetry::{self, LogFormat, server};

#[derive(Parser, Debug)]
#[command(
    name = "passwordsafe-operator",
    version,
    about = "Keeps Kubernetes Secrets in sync with BeyondTrust Password Safe"
)]
pub struct Cli {
    /// Log filter, e.g. `info` or `info,passwordsafe_operator=debug` (RUST_LOG overrides).
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller: keep Secrets in sync with Password Safe until SIGTERM/SIGINT.
    Run(Box<RunArgs>),
    /// Sign in to Password Safe and read the given items, reporting each step. Prints no credential values.
    Check(Box<check::CheckArgs>),
    /// Print every CustomResourceDefinition as YAML (`kubectl apply -f -` ready).
    Crd,
    /// Print the version.
    Version,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace the operator runs in: holds its HMAC key Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "passwordsafe-system")]
    pub operator_namespace: String,
    /// PasswordSafeSecrets reconciled at once. Password Safe calls are limited separately, per store
    /// (`maxConcurrency`), so most of these wait on Kubernetes writes while others use the store's slots.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,
    /// Refresh interval of PasswordSafeSecrets that do not set one.
    #[arg(long, env = "DEFAULT_REFRESH_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub default_refresh_interval: std::time::Duration,
    /// How often each store re-reads Password Safe's listings to detect rotations (stores may override).
    #[arg(long, env = "CHANGE_DETECTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub change_detection_interval: std::time::Duration,
    /// After SIGTERM, how long in-flight syncs get to finish, check in and sign out before the process exits.
    /// Keep it below the pod's terminationGracePeriodSeconds (30 s by default).
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,
    /// Address of `/metrics` (Prometheus text).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Address of `/healthz` and `/readyz` (may equal the metrics address).
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: std::net::SocketAddr,
    /// Path of a kubeconfig (default: in-cluster config, then KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Reconcile only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: the operator namespace).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "passwordsafe-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else hostname and process ID).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long standbys wait after the holder's last renewal before taking over (after a crash; a clean
    /// shutdown releases the Lease at once).
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
    /// How long the holder keeps failing to renew before it stops reconciling. Below the lease duration.
    #[arg(long, env = "LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: std::time::Duration,
    /// Interval of renewals and of a standby's attempts. Below the renew deadline.
    #[arg(long, env = "LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::sync::duration::parse(text)
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log_level, cli.log_format);
    match cli.command {
        Command::Version => {
            println!("passwordsafe-operator {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Run(args) => runtime()?.block_on(run(*args)),
        Command::Crd => {
            print!("{}", crate::api::crds_yaml());
            Ok(())
        }
        Command::Check(args) => runtime()?.block_on(check::run(*args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let kube = kube_client(args.kubeconfig.as_deref()).await?;
    let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
    let config = crate::controller::Config {
        namespace: args.namespace,
        operator_namespace: args.operator_namespace.clone(),
        concurrency: args.concurrency,
        default_refresh: args.default_refresh_interval,
        poll_interval: args.change_detection_interval,
        reporter: "passwordsafe-operator".into(),
        shutdown_timeout: args.shutdown_timeout,
        metrics: metrics.clone(),
        health: health.clone(),
    };
    tracing::info!(?config, leader_elect = args.leader_elect, "starting");
    let signal = shutdown_signal().boxed().shared();
    let (metrics_at, health_at) =
        server::serve(args.metrics_addr, args.health_addr, metrics.clone(), health, signal.clone()).await?;
    tracing::info!(%metrics_at, %health_at, "serving /metrics, /healthz and /readyz");
    if !args.leader_elect {
        metrics.set_leader(true);
        return crate::controller::run(kube, config, signal).await;
    }
    let lease = LeaseConfig {
        lease_duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        retry_period: args.lease_retry_period,
        ..LeaseConfig::new(
            args.lease_namespace.unwrap_or(args.operator_namespace),
            args.lease_name,
            args.identity.unwrap_or_else(default_identity),
        )
    };
    let elector = LeaderElector::new(kube.clone(), lease);
    run_as_leader(kube, config, elector, signal).await
}

/// The controllers run only while this replica holds the Lease. SIGTERM releases it, so a standby takes over at
/// once; a lost Lease stops the controllers and exits non-zero, so the replica restarts as a standby.
async fn run_as_leader(
    kube: kube::Client,
    config: crate::controller::Config,
    elector: LeaderElector,
    signal: Shared<BoxFuture<'static, ()>>,
) -> anyhow::Result<()> {
    config.health.set_standing_by(true);
    let leadership = tokio::select! {
        leadership = elector.acquire() => Arc::new(leadership?),
        _ = signal.clone() => {
            tracing::info!("stopped while standing by");
            return Ok(());
        }
    };
    let (metrics, health) = (config.metrics.clone(), config.health.clone());
    health.set_standing_by(false);
    metrics.set_leader(true);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let leadership = leadership.clone();
        tokio::spawn(async move {
            leadership.lost().await;
            let _ = lost_tx.send(());
        })
    };
    let lost = Arc::new(AtomicBool::new(false));
    let stop = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                _ = signal => {}
                result = lost_rx => if result.is_ok() { lost.store(true, Ordering::SeqCst) },
            }
        }
    };
    let result = crate::controller::run(kube, config, stop).await;
    metrics.set_leader(false);
    watcher.abort();
    let _ = watcher.await;
    if lost.load(Ordering::SeqCst) {
        anyhow::bail!("lost the leader Lease; stopping so this replica restarts as a standby");
    }
    match Arc::try_unwrap(leadership) {
        Ok(leadership) => leadership.release().await?,
        Err(_) => tracing::warn!("could not release the Lease; the standby takes over when it expires"),
    }
    result
}

/// `hostname-pid`: unique enough for replicas outside Kubernetes; in a pod, POD_NAME is used instead.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "passwordsafe-operator".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}

/// The longest the operator waits for the Kubernetes API server to start answering a request. kube-rs sets no
/// read timeout (a watch stays open for minutes), so a request sent on a connection that died without a reset
/// (a control-plane node or load balancer gone) would hold its reconcile for good. The API server itself gives
/// up on an ordinary request after 60 s (`--request-timeout`) and answers a watch at once, so this limit only
/// cuts connections that are gone. Response bodies are not timed: watches stream for minutes, and kube's
/// watcher has its own idle limit for them.
const KUBE_RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(70);

pub(crate) async fn kube_client(path: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    client_answering_within(config, KUBE_RESPONSE_TIMEOUT)
}

/// A kube client whose requests fail when the API server has not started answering within `limit` (kube's
/// retries of 429/503/504 included).
fn client_answering_within(config: kube::Config, limit: std::time::Duration) -> anyhow::Result<kube::Client> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&tower::timeout::TimeoutLayer::new(limit)).build())
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A server that accepts connections and never answers (a connection that died silently looks the same
    /// from the client): the request fails once the limit has passed, instead of waiting for ever.
    #[tokio::test]
    async fn a_kubernetes_request_without_an_answer_fails_after_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: http::Uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        let client = client_answering_within(kube::Config::new(url), Duration::from_millis(200)).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(30), client.apiserver_version()).await;
        assert!(matches!(outcome, Ok(Err(kube::Error::Service(_)))), "{outcome:?}");
        silent.abort();
    }
}
