//! HTTP contract tests: a real simulator on a free port, driven with reqwest.

mod accounts;
mod admin;
mod auth;
mod faults;
mod isa_aliases;
mod requests;
mod rotation;
mod scale;
mod secrets;
mod support;
mod tls;
