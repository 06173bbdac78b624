//! `passwordsafe-simulator`: runs the Password Safe API simulator as a process (demos, manual testing,
//! benchmarks driving it from outside).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use passwordsafe_simulator::{Fault, FaultRule, Seed, ServeOptions, TestCa, TlsOptions, start};

/// BeyondTrust Password Safe API simulator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Seed file (YAML or JSON). Default: the built-in demo seed (seeds/demo.yaml).
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Address to listen on. Default: 127.0.0.1:8080 for HTTP, 127.0.0.1:8443 with TLS.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Server certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Serve HTTPS with a freshly generated CA and certificate for 127.0.0.1 and localhost.
    #[arg(long)]
    self_signed: bool,
    /// With --self-signed: write the generated CA certificate (PEM) here for clients to trust.
    #[arg(long, value_name = "FILE", requires = "self_signed")]
    write_ca: Option<PathBuf>,
    /// Delay every API call by this many milliseconds (a global latency fault).
    #[arg(long, value_name = "N")]
    latency_ms: Option<u64>,
    /// Log filter (error, warn, info, debug, trace or a tracing filter such as `passwordsafe_simulator=debug`).
    #[arg(long, default_value = "info", env = "PASSWORDSAFE_SIMULATOR_LOG")]
    log_level: String,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The listener's TLS settings from the command line, if any.
fn tls_options(args: &Args) -> anyhow::Result<Option<TlsOptions>> {
    let client_ca_pem = args.client_ca.as_ref().map(read).transpose()?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Some(TlsOptions { cert_pem: read(cert)?, key_pem: read(key)?, client_ca_pem }));
    }
    if !args.self_signed {
        anyhow::ensure!(client_ca_pem.is_none(), "--client-ca needs --tls-cert/--tls-key or --self-signed");
        return Ok(None);
    }
    let ca = TestCa::new().context("generating a self-signed certificate")?;
    if let Some(path) = &args.write_ca {
        std::fs::write(path, ca.cert_pem()).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut options = ca.tls_options(false)?;
    options.client_ca_pem = client_ca_pem;
    Ok(Some(options))
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).context("--log-level")?;
    // Logs go to stderr: stdout carries only the ready line that scripts wait for.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args.log_level)?;
    let seed = match &args.seed {
        Some(path) => Seed::from_path(path)?,
        None => Seed::demo(),
    };
    let tls = tls_options(&args)?;
    let default_port = if tls.is_some() { 8443 } else { 8080 };
    let addr = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)));
    let running = start(seed, ServeOptions { addr, tls }).await?;
    if let Some(ms) = args.latency_ms {
        running.handle().set_faults(vec![FaultRule::new("*", Fault::Latency { ms })]);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "passwordsafe-simulator ready base_url={} admin_url={}", running.base_url(), running.admin_url())?;
    stdout.flush()?;
    drop(stdout);
    wait_for_signal().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
