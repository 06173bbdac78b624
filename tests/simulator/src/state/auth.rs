//! Sign-in (API key or OAuth bearer token), sessions and the OAuth token endpoint.

use http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;

use super::{Session, State, Token};
use crate::clock::plus;
use crate::input::Query;
use crate::reply::Reply;
use crate::wire;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "ASP.NET_SessionId";

/// ASP.NET session ids are 24 characters of lower-case letters and digits.
const SESSION_ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz012345";
const SESSION_ID_LEN: usize = 24;
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_LEN: usize = 64;

/// The parts of `Authorization: PS-Auth key=...; runas=...; pwd=[...];` the simulator checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PsAuth {
    pub key: String,
    pub runas: Option<String>,
    pub pwd: Option<String>,
}

/// Parses a `PS-Auth` header, tolerating spacing and case differences. The password is bracketed and may
/// itself contain `;` or `=`, so it runs to the first `]` that ends the parameter.
pub(crate) fn parse_ps_auth(header: &str) -> Option<PsAuth> {
    let header = header.trim();
    let scheme_len = "PS-Auth".len();
    // `get` rather than slicing: the header is client input and may not have a char boundary there.
    if !header.get(..scheme_len)?.eq_ignore_ascii_case("PS-Auth") {
        return None;
    }
    let mut rest = header.get(scheme_len..)?;
    let mut auth = PsAuth::default();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if name == "pwd" && after.starts_with('[') {
            bracketed(after)?
        } else {
            after.split_once(';').unwrap_or((after, ""))
        };
        let value = value.trim().to_string();
        match name.as_str() {
            "key" => auth.key = value,
            "runas" => auth.runas = Some(value),
            "pwd" => auth.pwd = Some(value),
            _ => {} // e.g. `challenge=` for two-factor, which the simulator does not model
        }
        rest = remaining;
    }
    (!auth.key.is_empty()).then_some(auth)
}

/// Splits `[secret]; rest` into `secret` and `rest`.
fn bracketed(text: &str) -> Option<(&str, &str)> {
    let inner = &text[1..];
    let mut search_from = 0;
    while let Some(offset) = inner[search_from..].find(']') {
        let close = search_from + offset;
        let after = inner[close + 1..].trim_start();
        if after.is_empty() || after.starts_with(';') {
            return Some((&inner[..close], after));
        }
        search_from = close + 1;
    }
    None
}

#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    expires_in: i64,
    token_type: &'static str,
    scope: &'static str,
}

#[derive(Serialize)]
struct OAuthError {
    error: &'static str,
}

impl State {
    /// `POST Auth/SignAppIn`: checks the API key (or bearer token) and opens a session.
    pub fn sign_in(&mut self, authorization: Option<&str>) -> Reply {
        let now = self.tick();
        let Some((user, ends)) = authorization.and_then(|header| self.authorize(header, now)) else {
            return Reply::unauthorized();
        };
        let session_id = self.random_id(SESSION_ID_LEN, SESSION_ID_ALPHABET);
        self.sessions.insert(session_id.clone(), Session { user, last_seen: now, ends });
        let u = &self.users[user];
        let body = wire::SignedInUser {
            user_id: u.id,
            sid: None,
            email_address: u.email.as_deref(),
            user_name: &u.name,
            name: &u.display_name,
        };
        Reply::json(StatusCode::OK, &body)
            .with_header(http::header::SET_COOKIE, format!("{SESSION_COOKIE}={session_id}; path=/; HttpOnly"))
    }

    /// The user an `Authorization` header stands for, and when a session opened with it must end (OAuth
    /// sessions end with their token).
    fn authorize(&self, header: &str, now: Timestamp) -> Option<(usize, Option<Timestamp>)> {
        let header = header.trim();
        if let Some(token) = strip_scheme(header, "Bearer") {
            let token = self.tokens.get(token.trim())?;
            return (now < token.expires).then_some((token.user, Some(token.expires)));
        }
        let auth = parse_ps_auth(header)?;
        let key = self.api_keys.get(&auth.key)?;
        let user = self.user_index(auth.runas.as_deref()?.trim())?;
        if !key.run_as.contains(&user) {
            return None;
        }
        if key.require_password {
            let expected = self.users[user].password.as_deref()?;
            if auth.pwd.as_deref() != Some(expected) {
                return None;
            }
        }
        Some((user, None))
    }

    /// `POST Auth/Connect/Token` (client-credentials grant).
    pub fn issue_token(&mut self, form: &Query) -> Reply {
        let now = self.tick();
        let oauth_error = |status, error| Reply::json(status, &OAuthError { error });
        match form.get("grant_type") {
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
            Some("client_credentials") => {}
            Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        }
        let client = form.get("client_id").and_then(|id| self.oauth_clients.get(id));
        let Some(client) = client.filter(|c| Some(c.secret.as_str()) == form.get("client_secret")) else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        };
        let (user, lifetime) = (client.user, client.lifetime);
        let access_token = self.random_id(TOKEN_LEN, TOKEN_ALPHABET);
        self.tokens.insert(access_token.clone(), Token { user, expires: plus(now, lifetime) });
        let answer = TokenAnswer {
            access_token: &access_token,
            expires_in: lifetime.as_secs(),
            token_type: "Bearer",
            scope: "publicapi",
        };
        Reply::json(StatusCode::OK, &answer)
    }

    /// The user of a live session; refreshes its idle timer. A dead session is forgotten and answers 401.
    pub fn authenticate(&mut self, session_id: Option<&str>, now: Timestamp) -> Result<usize, Reply> {
        let id = session_id.ok_or_else(Reply::unauthorized)?;
        let idle = self.idle_timeout;
        let session = self.sessions.get_mut(id).ok_or_else(Reply::unauthorized)?;
        if !Self::session_alive(session, idle, now) {
            self.sessions.remove(id);
            return Err(Reply::unauthorized());
        }
        session.last_seen = now;
        Ok(session.user)
    }

    /// `POST Auth/Signout`.
    pub fn sign_out(&mut self, session_id: Option<&str>) -> Reply {
        let now = self.tick();
        if let Err(reply) = self.authenticate(session_id, now) {
            return reply;
        }
        if let Some(id) = session_id {
            self.sessions.remove(id);
        }
        Reply::empty(StatusCode::OK)
    }

    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = header.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guide_examples_and_tolerates_spacing() {
        let auth = parse_ps_auth("PS-Auth key=c479a66f...c9484d; runas=doe-main\\johndoe; pwd=[un1qu3];").unwrap();
        assert_eq!(auth.key, "c479a66f...c9484d");
        assert_eq!(auth.runas.as_deref(), Some("doe-main\\johndoe"));
        assert_eq!(auth.pwd.as_deref(), Some("un1qu3"));
        let auth = parse_ps_auth("ps-auth   key= abc ;runas =bob").unwrap();
        assert_eq!(auth.key, "abc");
        assert_eq!(auth.runas.as_deref(), Some("bob"));
        assert_eq!(auth.pwd, None);
    }

    #[test]
    fn bracketed_password_may_contain_separators() {
        let auth = parse_ps_auth("PS-Auth key=k; runas=u; pwd=[a;b]=c];").unwrap();
        assert_eq!(auth.pwd.as_deref(), Some("a;b]=c"));
        let auth = parse_ps_auth("PS-Auth key=k; pwd=[x] ; runas=u").unwrap();
        assert_eq!(auth.pwd.as_deref(), Some("x"));
        assert_eq!(auth.runas.as_deref(), Some("u"));
    }

    #[test]
    fn rejects_other_schemes_and_missing_key() {
        assert_eq!(parse_ps_auth("Basic abc"), None);
        assert_eq!(parse_ps_auth("PS-Auth runas=u;"), None);
        assert_eq!(parse_ps_auth("PS-Auth key"), None);
        assert_eq!(parse_ps_auth("PS-Aüth key=k"), None);
    }
}
