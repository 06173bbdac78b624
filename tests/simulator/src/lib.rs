//! A BeyondTrust Password Safe API simulator for tests, demos and benchmarks.
//!
//! It speaks real HTTP(S) with the shapes of the Password Safe 24.1 public API (see CONTRACT.md and the
//! README next to this crate): API-key and OAuth sign-in with an `ASP.NET_SessionId` session, managed
//! accounts, release requests and credentials, ISA releases, aliases and Secrets Safe. A simulated clock
//! drives request expiry and credential rotation; fault rules make endpoints slow, failing or rude.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use passwordsafe_simulator::{Seed, ServeOptions, start};
//! let running = start(Seed::demo(), ServeOptions::default()).await?;
//! println!("{}", running.base_url());
//! running.handle().advance_clock(std::time::Duration::from_secs(3600));
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod clock;
mod faults;
mod handle;
mod input;
mod reply;
mod router;
mod seed;
mod server;
mod state;
mod tls;
mod wire;

pub use faults::{Fault, FaultRule};
pub use handle::{AccountInfo, AccountState, Handle, OpenRequest, SecretUpdate};
pub use router::Endpoint;
pub use seed::{
    AccountSeed, AliasSeed, ApiKeySeed, Compat, DEMO_SEED_YAML, FolderSeed, GeneratedSeed, OAuthClientSeed, SecretKind,
    SecretSeed, SecretsSafeSeed, Seed, SystemSeed, UserSeed,
};
pub use server::{Running, ServeOptions, start};
pub use tls::{IssuedCert, TestCa, TlsOptions};
