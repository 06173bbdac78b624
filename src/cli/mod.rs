//! The command line: `crd`, `check` and `version`.

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
    /// Sign in to Password Safe and read the given items, reporting each step. Prints no credential values.
    Check(Box<check::CheckArgs>),
    /// Print every CustomResourceDefinition as YAML (`kubectl apply -f -` ready).
    Crd,
    /// Print the version.
    Version,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log_level, cli.log_format);
    match cli.command {
        Command::Version => {
            println!("passwordsafe-operator {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
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
