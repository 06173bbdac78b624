//! passwordsafe-operator: keeps Kubernetes Secrets in sync with BeyondTrust Password Safe.
#![forbid(unsafe_code)]

pub mod passwordsafe;
