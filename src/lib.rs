//! passwordsafe-operator: keeps Kubernetes Secrets in sync with BeyondTrust Password Safe.
//!
//! Modules, in the order data flows through them: [`passwordsafe`] talks to the Password Safe API and knows
//! nothing of Kubernetes; [`cli`] is the command line; [`telemetry`] sets up logging.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod leader;
pub mod passwordsafe;
pub mod sync;
pub mod telemetry;
