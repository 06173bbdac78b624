//! One Password Safe session shared by every caller of a client.
//!
//! Sign-in is single-flight: the session slot is an async mutex held across the sign-in, so a burst of
//! callers that find no session wait for the one sign-in in progress and then share its cookie. When a call
//! answers 401, the caller invalidates the session *it used* (by generation); if someone already replaced it,
//! the invalidation is a no-op and the caller simply uses the new one. So N concurrent 401s cause one sign-in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::SET_COOKIE;
use tokio::sync::Mutex;

use super::config::Auth;
use super::error::{Error, ErrorKind, Result};
use super::models::{SignedInUser, TokenBody};
use super::secret::SecretString;
use super::transport::{Body, Call, Transport};

/// A signed-in session.
pub(crate) struct Session {
    /// Increases with every sign-in; identifies which session a failed call used.
    pub generation: u64,
    /// `ASP.NET_SessionId=...` (and any other cookie the sign-in set), ready for a `Cookie` header.
    pub cookie: Option<SecretString>,
    /// OAuth only: `Bearer <token>`, sent on every call.
    pub bearer: Option<SecretString>,
    pub run_as: Option<String>,
    /// OAuth only: when to sign in afresh, a margin before the token expires.
    pub renew_at: Option<Instant>,
    pub user: SignedInUser,
}

impl Session {
    /// Adds this session's credentials to a call.
    pub fn authorize(&self, mut call: Call) -> Call {
        call.cookie = self.cookie.clone();
        call.authorization = self.bearer.clone();
        call.run_as = self.run_as.clone();
        call
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|at| now < at)
    }
}

pub(crate) struct Sessions {
    auth: Auth,
    renew_margin: Duration,
    slot: Mutex<Option<Arc<Session>>>,
    generations: AtomicU64,
    sign_ins: AtomicU64,
    /// Set by `close`: no sign-in afterwards. Changed only while holding `slot`.
    closed: AtomicBool,
}

impl Sessions {
    pub fn new(auth: Auth, renew_margin: Duration) -> Self {
        Self {
            auth,
            renew_margin,
            slot: Mutex::new(None),
            generations: AtomicU64::new(0),
            sign_ins: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Sign-ins performed by this client so far.
    pub fn sign_in_count(&self) -> u64 {
        self.sign_ins.load(Ordering::Relaxed)
    }

    /// The current session, signing in first when there is none or it is due for renewal.
    pub async fn current(&self, transport: &Transport) -> Result<Arc<Session>> {
        let mut slot = self.slot.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| s.is_fresh(Instant::now())) {
            return Ok(session.clone());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(
                "sign-in",
                ErrorKind::Aborted("client closed: its store changed or the operator is stopping".into()),
            ));
        }
        let stale = slot.take();
        let session = Arc::new(self.sign_in(transport).await?);
        *slot = Some(session.clone());
        drop(slot);
        if let Some(old) = stale {
            // A renewed OAuth session: end the old one rather than leave it open until the server times it out.
            sign_out_session(transport, &old).await;
        }
        Ok(session)
    }

    /// Forgets the session a call used, if it is still the current one (see the module docs).
    pub async fn invalidate(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|s| s.generation == generation) {
            *slot = None;
        }
    }

    /// Ends the current session, if any (`POST Auth/Signout`).
    pub async fn sign_out(&self, transport: &Transport) -> bool {
        let taken = self.slot.lock().await.take();
        match taken {
            Some(session) => sign_out_session(transport, &session).await,
            None => false,
        }
    }

    /// Signs out for good: later calls fail instead of signing in. A caller still holding a replaced client
    /// (an in-flight sync when the store changed, a poll at shutdown) would otherwise open a session that no
    /// one signs out. A sign-in in progress finishes first (it holds the slot) and is then signed out.
    pub async fn close(&self, transport: &Transport) -> bool {
        let taken = {
            let mut slot = self.slot.lock().await;
            self.closed.store(true, Ordering::SeqCst);
            slot.take()
        };
        match taken {
            Some(session) => sign_out_session(transport, &session).await,
            None => false,
        }
    }

    async fn sign_in(&self, transport: &Transport) -> Result<Session> {
        let (authorization, run_as, renew_at) = match &self.auth {
            Auth::ApiKey { key, run_as, password } => (ps_auth_header(key, run_as, password.as_ref()), None, None),
            Auth::OAuth { client_id, client_secret, run_as } => {
                let token = request_token(transport, client_id, client_secret).await?;
                let lifetime = Duration::from_secs(token.expires_in.unwrap_or(600));
                let margin = self.renew_margin.min(lifetime / 2);
                let bearer = SecretString::new(format!("Bearer {}", token.access_token));
                (bearer, run_as.clone(), Some(Instant::now() + lifetime - margin))
            }
        };
        let mut call = Call::new("POST Auth/SignAppIn", Method::POST, "Auth/SignAppIn");
        call.authorization = Some(authorization.clone());
        call.run_as = run_as.clone();
        let response = transport.execute(&call).await?;
        if response.status.as_u16() == 401 && response.headers.contains_key("WWW-Authenticate-2FA") {
            return Err(Error::new(
                "POST Auth/SignAppIn",
                ErrorKind::Config("the RunAs user is configured for a two-factor challenge, which an operator cannot answer; use an API user without 2FA or OAuth client credentials".into()),
            ));
        }
        let response = response.error_for_status()?;
        let user: SignedInUser = if response.body.is_empty() { SignedInUser::default() } else { response.json()? };
        let cookie = session_cookie(&response.headers);
        let bearer = matches!(self.auth, Auth::OAuth { .. }).then_some(authorization);
        if cookie.is_none() && bearer.is_none() {
            return Err(Error::invalid("POST Auth/SignAppIn", "sign-in succeeded but set no session cookie"));
        }
        self.sign_ins.fetch_add(1, Ordering::Relaxed);
        transport.observer.on_sign_in();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(generation, user = user.user_name.as_deref().unwrap_or(""), "signed in to Password Safe");
        Ok(Session { generation, cookie, bearer, run_as, renew_at, user })
    }
}

/// `PS-Auth key=<key>; runas=<user>; pwd=[<password>];`
fn ps_auth_header(key: &SecretString, run_as: &str, password: Option<&SecretString>) -> SecretString {
    let pwd = password.map(|p| format!(" pwd=[{}];", p.expose())).unwrap_or_default();
    SecretString::new(format!("PS-Auth key={}; runas={};{pwd}", key.expose(), run_as))
}

async fn request_token(transport: &Transport, client_id: &str, client_secret: &SecretString) -> Result<TokenBody> {
    let mut call = Call::new("POST Auth/Connect/Token", Method::POST, "Auth/connect/token");
    call.body = Body::Form(vec![
        ("grant_type", SecretString::from("client_credentials")),
        ("client_id", SecretString::from(client_id)),
        ("client_secret", client_secret.clone()),
    ]);
    let response = transport.execute(&call).await?.error_for_status()?;
    let token: TokenBody = response.json()?;
    if token.access_token.is_empty() {
        return Err(Error::invalid("POST Auth/Connect/Token", "empty access_token"));
    }
    if let Some(kind) = token.token_type.as_deref().filter(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(Error::invalid("POST Auth/Connect/Token", format!("token_type {kind:?} is not Bearer")));
    }
    Ok(token)
}

/// All `name=value` pairs the server set, joined for a `Cookie` header. The server authenticates later calls
/// by `ASP.NET_SessionId`; load balancers in front of it may add affinity cookies, which we keep too.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<SecretString> {
    let pairs: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect();
    (!pairs.is_empty()).then(|| SecretString::new(pairs.join("; ")))
}

async fn sign_out_session(transport: &Transport, session: &Session) -> bool {
    let call = session.authorize(Call::new("POST Auth/Signout", Method::POST, "Auth/Signout"));
    match transport.execute(&call).await.and_then(|r| r.error_for_status()) {
        Ok(_) => {
            tracing::info!(generation = session.generation, "signed out of Password Safe");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-out failed; the server will end the session when it times out");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn ps_auth_header_follows_the_guide() {
        let key = SecretString::new("c479a66f");
        assert_eq!(
            ps_auth_header(&key, "doe-main\\johndoe", None).expose(),
            "PS-Auth key=c479a66f; runas=doe-main\\johndoe;"
        );
        let pwd = SecretString::new("un1qu3");
        assert_eq!(ps_auth_header(&key, "u", Some(&pwd)).expose(), "PS-Auth key=c479a66f; runas=u; pwd=[un1qu3];");
    }

    #[test]
    fn every_set_cookie_pair_is_kept() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("ASP.NET_SessionId=abc; path=/; HttpOnly"));
        h.append(SET_COOKIE, HeaderValue::from_static("lb=node1; Secure"));
        assert_eq!(session_cookie(&h).unwrap().expose(), "ASP.NET_SessionId=abc; lb=node1");
        assert!(session_cookie(&HeaderMap::new()).is_none());
    }
}
