//! An API answer before it becomes an HTTP response, and the answer shapes Password Safe uses for errors.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// An answer to one API call.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: ReplyBody,
    pub headers: Vec<(http::HeaderName, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Empty,
    Json(Bytes),
    Binary { content_type: &'static str, data: Bytes },
}

impl Reply {
    /// `value` serialized as JSON. Serialization of the simulator's own types cannot fail in practice; if it
    /// ever does, the client sees a 500 rather than the simulator panicking.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::raw_json(status, Bytes::from(body)),
            Err(e) => Reply::message(StatusCode::INTERNAL_SERVER_ERROR, &format!("serialization failed: {e}")),
        }
    }

    /// A body that is sent as JSON without checking it (faults send invalid JSON on purpose).
    pub fn raw_json(status: StatusCode, body: Bytes) -> Reply {
        Reply { status, body: ReplyBody::Json(body), headers: Vec::new() }
    }

    /// A JSON string body, the server's usual way of explaining an error (`"Managed Account not found"`).
    pub fn message(status: StatusCode, message: &str) -> Reply {
        Reply::json(status, message)
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply { status, body: ReplyBody::Empty, headers: Vec::new() }
    }

    pub fn binary(content_type: &'static str, data: Bytes) -> Reply {
        Reply { status: StatusCode::OK, body: ReplyBody::Binary { content_type, data }, headers: Vec::new() }
    }

    pub fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: &str) -> Reply {
        Reply::message(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: &str) -> Reply {
        Reply::message(StatusCode::NOT_FOUND, message)
    }

    /// 401 with the body real servers send for a missing or expired session.
    pub fn unauthorized() -> Reply {
        Reply::message(StatusCode::UNAUTHORIZED, "User not authenticated")
    }

    /// 403 carrying a Password Safe sub-code as a bare JSON number (`4031`).
    pub fn forbidden(code: SubCode) -> Reply {
        Reply::json(StatusCode::FORBIDDEN, &(code as u16))
    }

    pub fn conflict() -> Reply {
        Reply::message(StatusCode::CONFLICT, "Conflicting request exists")
    }
}

/// The 403 sub-codes of the guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum SubCode {
    /// No permission on the account, or the account is not valid for the system / not API enabled.
    NoPermission = 4031,
    /// Only approvers can access this account.
    ApproverOnly = 4033,
    /// The request is not approved yet.
    NotApproved = 4034,
    /// Not enough approvers are configured to approve a request.
    NotEnoughApprovers = 4035,
}

/// Handlers return `Err(reply)` for every early exit so that `?` reads naturally.
pub(crate) type Answer = Result<Reply, Reply>;

/// Collapses an [`Answer`]: both arms are replies.
pub(crate) fn settle(answer: Answer) -> Reply {
    answer.unwrap_or_else(|reply| reply)
}
