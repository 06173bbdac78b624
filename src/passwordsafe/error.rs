//! The one error type of the Password Safe client.
//!
//! Every failure names the API operation (`POST Requests`, `GET Credentials`, ...) and says what went wrong in
//! words an administrator can act on. HTTP failures keep the status, the API's sub-code where the body has
//! one (4031, 4033, 4034, 4035, ...) and the server's message. No variant ever carries a request or response
//! body that could hold a credential: decode failures describe the shape, never the content.

use std::time::Duration;

/// A Password Safe sub-code found in a 403/409 response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCode {
    /// 4031: the user may not request/release this account, or the account is not valid for the system.
    NoPermission,
    /// 4033: approver-only API or account.
    ApproverOnly,
    /// 4034: the request is not yet approved.
    NotApproved,
    /// 4035: not enough approvers are configured to approve a request.
    NotEnoughApprovers,
    /// 4036: the request has already been approved.
    AlreadyApproved,
    /// 4091: a conflicting request exists.
    ConflictingRequest,
    /// Any other four-digit code.
    Other(u16),
}

impl ApiCode {
    pub fn from_number(code: u16) -> Self {
        match code {
            4031 => Self::NoPermission,
            4033 => Self::ApproverOnly,
            4034 => Self::NotApproved,
            4035 => Self::NotEnoughApprovers,
            4036 => Self::AlreadyApproved,
            4091 => Self::ConflictingRequest,
            other => Self::Other(other),
        }
    }

    pub fn number(self) -> u16 {
        match self {
            Self::NoPermission => 4031,
            Self::ApproverOnly => 4033,
            Self::NotApproved => 4034,
            Self::NotEnoughApprovers => 4035,
            Self::AlreadyApproved => 4036,
            Self::ConflictingRequest => 4091,
            Self::Other(n) => n,
        }
    }

    /// What the code means, in plain words.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::NoPermission => {
                "the user has no permission to request this account, or the account is not valid for the system"
            }
            Self::ApproverOnly => "approver-only API or account: only approvers may use it",
            Self::NotApproved => "the request is not yet approved",
            Self::NotEnoughApprovers => "not enough approvers are configured to approve a request",
            Self::AlreadyApproved => "the request has already been approved",
            Self::ConflictingRequest => "a conflicting request exists",
            Self::Other(_) => "unrecognised Password Safe status code",
        }
    }

    /// Finds a sub-code in an error body. Real servers answer a bare number (`4031`), a JSON string
    /// (`"4031"`), text that starts with the code (`4031 - User does not have ...`) or, rarely, an object
    /// with the code in a property. We accept all of these; a body without a code yields `None`.
    pub fn parse(body: &str) -> Option<Self> {
        let text = body.trim().trim_matches('"').trim();
        if let Some(code) = leading_code(text) {
            return Some(Self::from_number(code));
        }
        // An object such as {"ErrorCode": 4031, "Message": "..."}: look at every number-ish value.
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        value
            .as_object()?
            .values()
            .find_map(|v| match v {
                serde_json::Value::Number(n) => {
                    n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| is_sub_code(*n))
                }
                serde_json::Value::String(s) => leading_code(s.trim()),
                _ => None,
            })
            .map(Self::from_number)
    }
}

fn is_sub_code(n: u16) -> bool {
    (4000..=4999).contains(&n)
}

fn leading_code(text: &str) -> Option<u16> {
    let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() != 4 {
        return None;
    }
    let rest = &text[digits.len()..];
    if !(rest.is_empty() || rest.starts_with([' ', '-', ':', ',', '.'])) {
        return None;
    }
    digits.parse().ok().filter(|n| is_sub_code(*n))
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with an error status.
    Api { status: u16, code: Option<ApiCode>, message: String },
    /// The server asked us to slow down for longer than we are willing to wait inside one call.
    RateLimited { retry_after: Option<Duration> },
    /// No TCP/TLS connection could be made (refused, DNS, TLS handshake, certificate rejected).
    Connect(String),
    /// The call did not finish within the per-call timeout.
    Timeout,
    /// The connection broke while sending or receiving.
    Transport(String),
    /// The body was larger than the configured cap.
    ResponseTooLarge { limit: usize },
    /// The body did not have the expected shape. Describes the shape only, never the content.
    InvalidResponse(String),
    /// A lookup found nothing (a managed account, alias, secret or folder).
    NotFound(String),
    /// A lookup found more than one match where one was expected.
    Ambiguous(String),
    /// The client's configuration is unusable (bad URL, unreadable CA bundle or key, ...).
    Config(String),
    /// A retrieval task ended without an answer (it panicked or the runtime is shutting down).
    Aborted(String),
}

/// A failed Password Safe operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {}", describe(.kind))]
pub struct Error {
    /// The API operation, e.g. `POST Requests`, or a client step such as `sign-in`.
    pub operation: &'static str,
    pub kind: ErrorKind,
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::Api { status, code: Some(code), message } => {
            format!("{} ({}, HTTP {status}){}", code.meaning(), code.number(), suffix(message))
        }
        ErrorKind::Api { status, code: None, message } => {
            format!("{} (HTTP {status}){}", status_meaning(*status), suffix(message))
        }
        ErrorKind::RateLimited { retry_after: Some(d) } => {
            format!("rate limited by the server (HTTP 429), retry after {}s", d.as_secs())
        }
        ErrorKind::RateLimited { retry_after: None } => "rate limited by the server (HTTP 429)".into(),
        ErrorKind::Connect(m) => format!("cannot connect: {m}"),
        ErrorKind::Timeout => "timed out".into(),
        ErrorKind::Transport(m) => format!("connection failed: {m}"),
        ErrorKind::ResponseTooLarge { limit } => format!("response larger than the {limit}-byte limit"),
        ErrorKind::InvalidResponse(m) => format!("unexpected response: {m}"),
        ErrorKind::NotFound(m) => format!("not found: {m}"),
        ErrorKind::Ambiguous(m) => format!("ambiguous: {m}"),
        ErrorKind::Config(m) => format!("invalid configuration: {m}"),
        ErrorKind::Aborted(m) => format!("aborted: {m}"),
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => {
            "not authenticated (check the API key, RunAs user and password, OAuth client, or the source address allowed by the API registration)"
        }
        403 => "access forbidden",
        404 => "not found",
        409 => "a conflicting request exists",
        410 => "this API version has been disabled on the server",
        500..=599 => "server error",
        _ => "unexpected status",
    }
}

impl Error {
    pub fn new(operation: &'static str, kind: ErrorKind) -> Self {
        Self { operation, kind }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Api { status, .. } => Some(*status),
            ErrorKind::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    pub fn api_code(&self) -> Option<ApiCode> {
        match &self.kind {
            ErrorKind::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// True when the same call may succeed later without anyone changing Password Safe's configuration:
    /// connection trouble, timeouts, 5xx, 429, a conflicting request (409/4091) and a request that is still
    /// waiting for approval (4034). Permission, validation and not-found answers are permanent until an
    /// administrator acts.
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            ErrorKind::Api { status, code, .. } => {
                *status >= 500
                    || *status == 409
                    || *status == 408
                    || matches!(code, Some(ApiCode::NotApproved | ApiCode::ConflictingRequest))
            }
            ErrorKind::RateLimited { .. }
            | ErrorKind::Connect(_)
            | ErrorKind::Timeout
            | ErrorKind::Transport(_)
            | ErrorKind::Aborted(_) => true,
            ErrorKind::ResponseTooLarge { .. }
            | ErrorKind::InvalidResponse(_)
            | ErrorKind::NotFound(_)
            | ErrorKind::Ambiguous(_)
            | ErrorKind::Config(_) => false,
        }
    }

    /// A short, fixed reason: the condition reason, event reason and metric label for this error.
    pub fn reason(&self) -> &'static str {
        match &self.kind {
            ErrorKind::Api { code: Some(code), .. } => match code {
                ApiCode::NoPermission => "PermissionDenied",
                ApiCode::ApproverOnly => "ApproverOnly",
                ApiCode::NotApproved => "PendingApproval",
                ApiCode::NotEnoughApprovers => "NotEnoughApprovers",
                ApiCode::ConflictingRequest => "ConflictingRequest",
                ApiCode::AlreadyApproved | ApiCode::Other(_) => "Forbidden",
            },
            ErrorKind::Api { status, code: None, .. } => match status {
                400 => "BadRequest",
                401 => "Unauthenticated",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "ConflictingRequest",
                410 => "ApiVersionDisabled",
                500..=599 => "ServerError",
                _ => "UnexpectedStatus",
            },
            ErrorKind::RateLimited { .. } => "RateLimited",
            ErrorKind::Connect(_) => "ConnectionFailed",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Transport(_) => "ConnectionFailed",
            ErrorKind::ResponseTooLarge { .. } => "ResponseTooLarge",
            ErrorKind::InvalidResponse(_) => "InvalidResponse",
            ErrorKind::NotFound(_) => "NotFound",
            ErrorKind::Ambiguous(_) => "Ambiguous",
            ErrorKind::Config(_) => "InvalidConfig",
            ErrorKind::Aborted(_) => "Aborted",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound(_)) || self.status() == Some(404)
    }

    pub(crate) fn invalid(operation: &'static str, what: impl Into<String>) -> Self {
        Self::new(operation, ErrorKind::InvalidResponse(what.into()))
    }

    pub(crate) fn config(what: impl Into<String>) -> Self {
        Self::new("configure client", ErrorKind::Config(what.into()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_codes_are_found_in_every_known_body_shape() {
        for body in [
            "4031",
            "\"4031\"",
            "4031 - User does not have permission",
            "\"4031: no\"",
            r#"{"ErrorCode":4031}"#,
            r#"{"code":"4031"}"#,
        ] {
            assert_eq!(ApiCode::parse(body), Some(ApiCode::NoPermission), "{body}");
        }
        assert_eq!(ApiCode::parse("4034"), Some(ApiCode::NotApproved));
        assert_eq!(ApiCode::parse("4035"), Some(ApiCode::NotEnoughApprovers));
        assert_eq!(ApiCode::parse("4033"), Some(ApiCode::ApproverOnly));
        assert_eq!(ApiCode::parse("4091"), Some(ApiCode::ConflictingRequest));
    }

    #[test]
    fn bodies_without_a_sub_code_yield_none() {
        for body in ["", "\"User not authenticated\"", "40312", "403", "12345", "2024-01-01", "{}", "[4031]", "5000"] {
            assert_eq!(ApiCode::parse(body), None, "{body}");
        }
    }

    #[test]
    fn errors_are_classified() {
        let api = |status, code: Option<u16>| {
            Error::new(
                "POST Requests",
                ErrorKind::Api { status, code: code.map(ApiCode::from_number), message: String::new() },
            )
        };
        assert!(!api(403, Some(4031)).is_retryable());
        assert!(!api(403, Some(4033)).is_retryable());
        assert!(!api(403, Some(4035)).is_retryable());
        assert!(api(403, Some(4034)).is_retryable());
        assert!(api(409, None).is_retryable());
        assert!(api(503, None).is_retryable());
        assert!(!api(404, None).is_retryable());
        assert!(!api(410, None).is_retryable());
        assert!(!api(400, None).is_retryable());
        assert_eq!(api(403, Some(4031)).reason(), "PermissionDenied");
        assert_eq!(api(410, None).reason(), "ApiVersionDisabled");
        assert!(Error::new("x", ErrorKind::Timeout).is_retryable());
        assert!(!Error::new("x", ErrorKind::InvalidResponse("y".into())).is_retryable());
    }

    #[test]
    fn messages_name_the_operation_code_and_meaning() {
        let e = Error::new(
            "POST Requests",
            ErrorKind::Api { status: 403, code: Some(ApiCode::NoPermission), message: "denied".into() },
        );
        let text = e.to_string();
        assert!(text.starts_with("POST Requests: "), "{text}");
        assert!(text.contains("4031") && text.contains("no permission") && text.contains("denied"), "{text}");
    }
}
