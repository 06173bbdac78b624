//! The BeyondTrust Password Safe public API client (API guide 24.1). Knows nothing of Kubernetes.
//!
//! One [`Client`] holds one session: sign-in is single-flight and renewed before an OAuth token expires or
//! after a 401; calls share one connection pool and a concurrency limit; retrievals of the same account are
//! coalesced; every opened request is checked in. Secret material is only ever held in [`SecretString`] and
//! [`SecretBytes`], which redact themselves and zero their memory on drop.

mod aliases;
mod client;
mod config;
mod credentials;
mod error;
mod managed_accounts;
mod models;
mod requests;
mod retrieve;
mod secret;
mod secrets_safe;
mod session;
mod single_flight;
mod tls;
mod transport;

pub use client::Client;
pub use config::{Auth, ClientConfig, ClientIdentity, RequestOptions, RetryPolicy, TlsConfig, parse_base_url};
pub use credentials::CredentialType;
pub use error::{ApiCode, Error, ErrorKind, Result};
pub use models::{Alias, ChangeState, ManagedAccount, RotationInfo, SecretType, SignedInUser, parse_ps_date};
pub use retrieve::{AccountCredential, CredentialKinds, CredentialSource, Release};
pub use secret::{SecretBytes, SecretString};
pub use secrets_safe::{FolderPath, SecretSummary, SecretsSafeSecret};
pub use transport::{CallObserver, NoopObserver};
