//! The client handle: one session, one connection pool and one concurrency limit, shared by every clone.

use std::sync::Arc;

use reqwest::StatusCode;
use url::Url;

use super::config::ClientConfig;
use super::error::Result;
use super::models::SignedInUser;
use super::requests::Leases;
use super::retrieve::{AccountCredential, RetrievalKey};
use super::session::Sessions;
use super::single_flight::SingleFlight;
use super::transport::{Call, CallObserver, NoopObserver, Response, Transport};

/// A Password Safe API client. Cheap to clone; clones share the session and limits.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub transport: Transport,
    pub sessions: Sessions,
    pub retrievals: SingleFlight<RetrievalKey, Arc<AccountCredential>>,
    pub leases: Leases,
    pub page_size: u32,
    pub base_url: Url,
    /// Distinguishes this client's request IDs from another server's in [`CallObserver`] reports.
    pub id: u64,
    /// Every request cycle holds this shared; `close` takes it exclusively, so it waits for the cycles in
    /// flight (and their check-ins) before signing out.
    pub cycles: tokio::sync::RwLock<()>,
    /// Set by `close`: no new request cycle starts.
    pub closing: std::sync::atomic::AtomicBool,
    /// Requests opened and not yet checked in (deliberately held ones excepted): `close` checks in what is
    /// left, e.g. after a failed check-in.
    pub open: std::sync::Mutex<std::collections::BTreeSet<i64>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.inner.base_url.as_str()).finish_non_exhaustive()
    }
}

static NEXT_CLIENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_observer(config, Arc::new(NoopObserver))
    }

    /// A client whose HTTP exchanges and sign-ins are reported to `observer` (metrics).
    pub fn with_observer(config: ClientConfig, observer: Arc<dyn CallObserver>) -> Result<Self> {
        let transport = Transport::new(&config, observer)?;
        let sessions = Sessions::new(config.auth.clone(), config.token_renew_margin);
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                sessions,
                retrievals: SingleFlight::default(),
                leases: Leases::default(),
                page_size: config.page_size.max(1),
                base_url: config.base_url,
                id: NEXT_CLIENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                cycles: tokio::sync::RwLock::new(()),
                closing: std::sync::atomic::AtomicBool::new(false),
                open: std::sync::Mutex::default(),
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Signs in now (or reuses the current session) and returns who we are: a cheap credentials check.
    pub async fn sign_in(&self) -> Result<SignedInUser> {
        Ok(self.inner.sessions.current(&self.inner.transport).await?.user.clone())
    }

    /// Ends the session (`POST Auth/Signout`). Returns whether a session was signed out. The next call
    /// signs in again.
    pub async fn sign_out(&self) -> bool {
        self.inner.sessions.sign_out(&self.inner.transport).await
    }

    /// Closes the client (all clones): no new request cycle starts; the ones in flight get up to `wait` to
    /// finish and check in; requests still open after that are checked in here; then the session ends and
    /// later calls fail with a retryable `Aborted` error instead of signing in again (a caller still holding
    /// a replaced client must not open a session that no one signs out). Returns whether a session was
    /// signed out.
    pub async fn close(&self, wait: std::time::Duration) -> bool {
        let inner = &self.inner;
        inner.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        let drained = tokio::time::timeout(wait, inner.cycles.write()).await;
        if drained.is_err() {
            tracing::warn!(wait_s = wait.as_secs(), "request cycles still running at close; checking in what is open");
        }
        let left: Vec<i64> = std::mem::take(&mut *inner.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .into_iter()
            .collect();
        for request_id in left {
            if let Err(e) = self.check_in(request_id, "passwordsafe-operator stopping").await {
                tracing::warn!(request_id, error = %e, "check-in at close failed; the request stays open until it expires");
            }
        }
        inner.sessions.close(&inner.transport).await
    }

    /// Sign-ins performed so far by this client (all clones).
    pub fn sign_in_count(&self) -> u64 {
        self.inner.sessions.sign_in_count()
    }

    /// Sends an authenticated call. A 401 means the session ended on the server (idle timeout, restart,
    /// sign-out elsewhere): we sign in again once and repeat the call; a second 401 is returned as an error.
    pub(crate) async fn send(&self, call: Call) -> Result<Response> {
        let inner = &self.inner;
        let mut retried = false;
        loop {
            let session = inner.sessions.current(&inner.transport).await?;
            let response = inner.transport.execute(&session.authorize(call.clone())).await?;
            if response.status == StatusCode::UNAUTHORIZED && !retried {
                tracing::debug!(endpoint = call.endpoint, "session rejected; signing in again");
                inner.sessions.invalidate(session.generation).await;
                retried = true;
                continue;
            }
            return response.error_for_status();
        }
    }
}
