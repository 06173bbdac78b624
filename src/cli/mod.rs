//! The command line: `run`, `crd`, `check` and `version`.

mod check;

use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};

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
    /// PasswordSafeSecrets reconciled at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Refresh interval of PasswordSafeSecrets that do not set one.
    #[arg(long, env = "DEFAULT_REFRESH_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub default_refresh_interval: std::time::Duration,
    /// How often each store re-reads Password Safe's listings to detect rotations (stores may override).
    #[arg(long, env = "CHANGE_DETECTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub change_detection_interval: std::time::Duration,
    /// Path of a kubeconfig (default: in-cluster config, then KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
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
    let config = crate::controller::Config {
        namespace: args.namespace,
        operator_namespace: args.operator_namespace,
        concurrency: args.concurrency,
        default_refresh: args.default_refresh_interval,
        poll_interval: args.change_detection_interval,
        reporter: "passwordsafe-operator".into(),
    };
    tracing::info!(?config, "starting");
    crate::controller::run(kube, config, shutdown_signal()).await
}

async fn kube_client(path: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
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
