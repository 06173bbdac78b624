//! Domain logic between a PasswordSafeSecret and its Kubernetes Secret: what to fetch, when to look again,
//! and what the Secret should contain. Pure where it can be; unit-tested without a cluster.

use std::collections::BTreeMap;

use crate::passwordsafe::SecretBytes;

pub mod desired;
pub mod duration;
pub mod hmac;
pub mod keys;
pub mod resolve;
pub mod schedule;
pub mod template;

/// The values of a Secret being built: key → bytes, held redacted.
pub type SecretData = BTreeMap<String, SecretBytes>;
