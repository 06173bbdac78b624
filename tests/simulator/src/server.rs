//! The HTTP(S) server: accept loop, optional TLS, per-connection HTTP/1.1 or HTTP/2, and the request path
//! (routing, counting, faults, dispatch).
//!
//! The accept loop is written by hand because the `Drop` fault must close one connection without answering:
//! each connection task races hyper against an abort signal that the request handler can raise.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api::{self, Call};
use crate::faults::{self, Fault, MALFORMED_BODY};
use crate::handle::{Handle, Shared};
use crate::input::Query;
use crate::reply::{Reply, ReplyBody};
use crate::router::{self, ApiVersion, Route, Routing};
use crate::seed::Seed;
use crate::state::{SESSION_COOKIE, State};
use crate::tls::{self, TlsOptions};

/// Request bodies are small JSON documents; anything bigger is refused.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How often time-driven changes are applied when no call arrives.
const TICK_INTERVAL: Duration = Duration::from_millis(200);
/// A TLS handshake that has not finished by then is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight calls before cutting connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Default `127.0.0.1:0` (any free port).
    pub addr: SocketAddr,
    pub tls: Option<TlsOptions>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0), tls: None }
    }
}

/// A running simulator. Dropping it stops the server too; [`Running::shutdown`] also waits for it.
pub struct Running {
    addr: SocketAddr,
    scheme: &'static str,
    handle: Handle,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// `{scheme}://127.0.0.1:{port}/BeyondTrust/api/public/v3`.
    pub fn base_url(&self) -> String {
        format!("{}/BeyondTrust/api/public/v3", self.origin())
    }

    /// `{scheme}://127.0.0.1:{port}/admin`.
    pub fn admin_url(&self) -> String {
        format!("{}/admin", self.origin())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops accepting, lets in-flight calls finish (up to a few seconds) and waits for the server tasks.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    /// An unspecified bind address (`0.0.0.0`, `::`) is reached through loopback.
    fn origin(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("{}://{}", self.scheme, SocketAddr::new(ip, self.addr.port()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Starts a simulator for `seed`. Must be called within a Tokio runtime.
pub async fn start(seed: Seed, options: ServeOptions) -> anyhow::Result<Running> {
    let state = State::from_seed(&seed, jiff::Timestamp::now())?;
    let shared = Arc::new(Shared::new(state));
    let acceptor = options.tls.as_ref().map(tls::server_config).transpose()?.map(TlsAcceptor::from);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(options.addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(accept_loop(listener, acceptor, shared.clone(), shutdown_rx.clone())),
        tokio::spawn(ticker(shared.clone(), shutdown_rx)),
    ];
    tracing::info!(%addr, scheme, "simulator listening");
    Ok(Running { addr, scheme, handle: Handle { shared }, shutdown, tasks })
}

/// Applies time-driven changes (expiry, scheduled rotations) even when nobody calls.
async fn ticker(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => shared.lock().housekeeping(),
            _ = shutdown.changed() => break,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, acceptor.clone(), shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        connections.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        return serve(stream, shared, shutdown).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => serve(tls_stream, shared, shutdown).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP on one connection until the client leaves, a `Drop` fault aborts it or the server stops.
async fn serve<I>(io: I, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let abort = Arc::new(Notify::new());
    let service = {
        let abort = abort.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let abort = abort.clone();
            async move { Ok::<_, Infallible>(handle_request(request, shared, abort).await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Returning drops the connection and its socket: the client gets no response at all.
        _ = abort.notified() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = abort.notified() => {}
            }
        }
    }
}

async fn handle_request(request: Request<Incoming>, shared: Arc<Shared>, abort: Arc<Notify>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let routing = router::route(&parts.method, parts.uri.path(), parts.uri.query());
    let (label, reply) = match routing {
        Routing::Api { route, version } => {
            let label = route.endpoint().name();
            (label, api_call(&parts, body, route, version, &shared, &abort).await)
        }
        Routing::Admin(segments) => {
            let reply = match read_body(body).await {
                Ok(bytes) => crate::admin::handle(&Handle { shared }, &parts.method, &segments, &bytes),
                Err(reply) => reply,
            };
            ("admin", reply)
        }
        Routing::MethodNotAllowed => (
            "-",
            Reply::message(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("The requested resource does not support http method '{}'.", parts.method),
            ),
        ),
        Routing::NotFound => ("-", Reply::not_found("No HTTP resource was found that matches the request URI.")),
    };
    // Paths and names only: never headers, bodies or query values that could carry credentials.
    tracing::debug!(
        method = %parts.method,
        path = parts.uri.path(),
        endpoint = label,
        status = reply.status.as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    into_response(reply)
}

/// An API call: count it, apply faults, then run it.
async fn api_call(
    parts: &http::request::Parts,
    body: Incoming,
    route: Route,
    version: ApiVersion,
    shared: &Shared,
    abort: &Notify,
) -> Reply {
    let endpoint = route.endpoint();
    let _in_flight = shared.enter_call();
    let decision = {
        let mut guard = shared.lock();
        let state = &mut *guard;
        state.count(endpoint);
        faults::decide(&mut state.faults, endpoint, &mut state.fault_rng)
    };
    // Outside the lock: a slow endpoint must not stall every other call.
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(fault) = decision.fault {
        return fault_reply(fault, abort).await;
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let call = Call {
        route: &route,
        version,
        query: Query::parse(parts.uri.query()),
        authorization: parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
        session: session_cookie(&parts.headers),
        body: &body,
    };
    api::dispatch(&mut shared.lock(), &call)
}

async fn fault_reply(fault: Fault, abort: &Notify) -> Reply {
    match fault {
        Fault::Status { status, body } => Reply::raw_json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Bytes::from(body.unwrap_or_default()),
        ),
        Fault::TooManyRequests { retry_after_secs } => {
            Reply::message(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
                .with_header(header::RETRY_AFTER, retry_after_secs.to_string())
        }
        Fault::Malformed => Reply::raw_json(StatusCode::OK, Bytes::from_static(MALFORMED_BODY)),
        Fault::Oversized { bytes } => Reply::raw_json(StatusCode::OK, Bytes::from(faults::oversized_body(bytes))),
        Fault::Drop => {
            abort.notify_one();
            // The connection task drops this future together with the connection.
            std::future::pending().await
        }
        // Latency never replaces an answer (see `faults::decide`); answer normally if it ever got here.
        Fault::Latency { .. } => Reply::empty(StatusCode::NO_CONTENT),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Reply> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Reply::message(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large."))
        }
        Err(e) => Err(Reply::bad_request(&format!("The request body could not be read: {e}"))),
    }
}

/// The `ASP.NET_SessionId` cookie, from any `Cookie` header.
fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(SESSION_COOKIE))
        .map(|(_, value)| value.trim())
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let (content_type, body) = match reply.body {
        ReplyBody::Empty => (None, Bytes::new()),
        ReplyBody::Json(body) => (Some("application/json; charset=utf-8"), body),
        ReplyBody::Binary { content_type, data } => (Some(content_type), data),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    for (name, value) in reply.headers {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.append(name, value);
            }
            Err(_) => tracing::warn!(header = %name, "dropping a header value that is not valid in HTTP"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; ASP.NET_SessionId=abc ; b=2"));
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.clear();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("asp.net_sessionid=xyz"));
        assert_eq!(session_cookie(&headers), Some("xyz"));
    }
}
