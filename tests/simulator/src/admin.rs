//! The admin API under `/admin`: JSON, no authentication, never counted and never faulted.

use std::time::Duration;

use base64::Engine;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultRule;
use crate::handle::{Handle, SecretUpdate};
use crate::reply::Reply;
use crate::router::Endpoint;

/// Answers one admin call. `segments` is the path below `/admin`.
pub(crate) fn handle(handle: &Handle, method: &Method, segments: &[String], body: &[u8]) -> Reply {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let path: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (method.as_str(), path.as_slice()) {
        ("GET", ["calls"]) => Reply::json(StatusCode::OK, &handle.calls()),
        ("DELETE", ["calls"]) => done(|| handle.reset_calls()),
        ("GET", ["requests"]) => Reply::json(StatusCode::OK, &handle.open_requests()),
        ("POST", ["requests", id, "approve"]) => approve(handle, id),
        ("GET", ["isa-releases"]) => Reply::json(StatusCode::OK, &handle.isa_releases()),
        ("GET", ["sessions"]) => Reply::json(StatusCode::OK, &json!({ "active": handle.active_sessions() })),
        ("POST", ["sessions", "expire"]) => done(|| handle.expire_sessions()),
        ("GET", ["faults"]) => Reply::json(StatusCode::OK, &handle.faults()),
        ("PUT", ["faults"]) => set_faults(handle, body),
        ("DELETE", ["faults"]) => done(|| handle.clear_faults()),
        ("GET", ["accounts"]) => Reply::json(StatusCode::OK, &handle.accounts()),
        ("POST", ["accounts", "rotate"]) => rotate(handle, body),
        ("POST", ["secrets", "update"]) => update_secret(handle, body),
        ("GET", ["clock"]) => clock(handle),
        ("POST", ["clock", "advance"]) => advance_clock(handle, body),
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

/// Runs an action that cannot fail and answers 204.
fn done(action: impl FnOnce()) -> Reply {
    action();
    Reply::empty(StatusCode::NO_CONTENT)
}

fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": message }))
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
}

fn set_faults(handle: &Handle, body: &[u8]) -> Reply {
    let rules: Vec<FaultRule> = match parse(body) {
        Ok(rules) => rules,
        Err(reply) => return reply,
    };
    if let Some(problem) = rules.iter().find_map(rule_problem) {
        return error(StatusCode::BAD_REQUEST, &problem);
    }
    handle.set_faults(rules);
    Reply::empty(StatusCode::NO_CONTENT)
}

/// What is wrong with a rule, if anything (unknown endpoint, impossible probability or status).
fn rule_problem(rule: &FaultRule) -> Option<String> {
    if rule.endpoint.trim() != "*" && Endpoint::from_name(&rule.endpoint).is_none() {
        return Some(format!("unknown endpoint {:?}", rule.endpoint));
    }
    if !(0.0..=1.0).contains(&rule.probability) {
        return Some(format!("probability {} is not within 0..=1", rule.probability));
    }
    if let crate::faults::Fault::Status { status, .. } = rule.fault
        && StatusCode::from_u16(status).is_err()
    {
        return Some(format!("status {status} is not an HTTP status"));
    }
    None
}

fn approve(handle: &Handle, id: &str) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "request id must be a number");
    };
    match handle.approve_request(id) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    system: String,
    account: String,
}

fn rotate(handle: &Handle, body: &[u8]) -> Reply {
    let body: RotateBody = match parse(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match handle.rotate_account(&body.system, &body.account) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

/// `{"folderPath", "title", "username"?, "password"?, "text"?, "file"? (byte array), "fileText"?,
/// "fileBase64"?, "notes"?}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretUpdateBody {
    folder_path: String,
    title: String,
    username: Option<String>,
    password: Option<String>,
    text: Option<String>,
    file: Option<Vec<u8>>,
    file_text: Option<String>,
    file_base64: Option<String>,
    notes: Option<String>,
}

impl SecretUpdateBody {
    fn file(&mut self) -> Result<Option<Vec<u8>>, Reply> {
        match (self.file.take(), self.file_text.take(), self.file_base64.take()) {
            (None, None, None) => Ok(None),
            (Some(bytes), None, None) => Ok(Some(bytes)),
            (None, Some(text), None) => Ok(Some(text.into_bytes())),
            (None, None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map(Some)
                .map_err(|_| error(StatusCode::BAD_REQUEST, "fileBase64 is not valid base64")),
            _ => Err(error(StatusCode::BAD_REQUEST, "give one of file, fileText, fileBase64")),
        }
    }
}

fn update_secret(handle: &Handle, body: &[u8]) -> Reply {
    let mut body: SecretUpdateBody = match parse(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let file = match body.file() {
        Ok(file) => file,
        Err(reply) => return reply,
    };
    let update =
        SecretUpdate { username: body.username, password: body.password, text: body.text, file, notes: body.notes };
    match handle.update_secret(&body.folder_path, &body.title, update) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => error(StatusCode::NOT_FOUND, &format!("{e:#}")),
    }
}

fn clock(handle: &Handle) -> Reply {
    Reply::json(StatusCode::OK, &json!({ "now": handle.now(), "offsetSeconds": handle.clock_offset().as_secs_f64() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    seconds: f64,
}

fn advance_clock(handle: &Handle, body: &[u8]) -> Reply {
    let body: AdvanceBody = match parse(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Ok(by) = Duration::try_from_secs_f64(body.seconds) else {
        return error(StatusCode::BAD_REQUEST, "seconds must be a non-negative number");
    };
    handle.advance_clock(by);
    clock(handle)
}
