//! Domain logic between a PasswordSafeSecret and its Kubernetes Secret: what to fetch, when to look again,
//! and what the Secret should contain. Pure where it can be; unit-tested without a cluster.

pub mod schedule;
