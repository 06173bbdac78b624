//! A fault-injecting proxy between kube-rs and a real kube-apiserver, for end-to-end tests.
//!
//! ```text
//! operator (kube-rs) --plain HTTP/1.1, 127.0.0.1--> FaultProxy --HTTPS, the proxy's own credentials--> kube-apiserver
//! ```
//!
//! The client side is plain HTTP so the proxy can see each request (method, path, `watch=true`) and answer some
//! of them itself. The client sends no credentials ([`FaultProxy::kubeconfig_yaml`] has an empty user); the proxy
//! authenticates upstream with the bearer token or client certificate of its [`Upstream`]. Requests and responses
//! are streamed (watch responses go through chunk by chunk as the apiserver sends them), connections are kept
//! alive on both sides, and each client connection has its own upstream connection.
//!
//! Faults, changeable while running through a [`FaultHandle`]: close open watch connections now or after a while,
//! answer resumed watches with 410 `Expired` (the client must list again), answer a fraction of writes with an
//! error status and a Kubernetes `Status` body (never forwarded upstream), delay each request, and cut and refuse
//! connections (an outage). Random decisions come from a seeded RNG, so a test sees the same sequence every run.
//!
//! Header values and bodies are never logged (the `Authorization` header carries the upstream credentials).
//! The upstream TLS runs on rustls' connection state machine driven by tokio sockets (no tokio-rustls needed).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The RNG seed of [`FaultProxy::start`].
pub const DEFAULT_SEED: u64 = 0x5EED_FA17;

/// Largest request or response head (request/status line plus headers) the proxy accepts.
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size line of a chunked body.
const MAX_LINE: usize = 4096;
/// Read buffer size for both sides.
const READ_SIZE: usize = 16 * 1024;
/// While a response streams, the proxy keeps reading the client side to notice when it goes away; bytes of a
/// pipelined next request are buffered up to this much.
const MAX_PIPELINED: usize = 1024 * 1024;

/// The real kube-apiserver and how the proxy authenticates to it.
#[derive(Clone)]
pub struct Upstream {
    /// `https://HOST:PORT` (a path prefix is kept and put in front of every request path).
    pub server: url::Url,
    /// PEM certificate(s) the apiserver's serving certificate must chain to.
    pub ca_pem: String,
    pub auth: UpstreamAuth,
}

/// The proxy's own credentials towards the apiserver.
#[derive(Clone)]
pub enum UpstreamAuth {
    /// Sent as `Authorization: Bearer …` on every forwarded request.
    Token(String),
    /// Presented as the TLS client certificate (PEM certificate chain and PEM private key).
    ClientCert { cert_pem: String, key_pem: String },
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("server", &self.server.as_str()).field("auth", &self.auth).finish()
    }
}

impl fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::ClientCert { .. } => f.write_str("ClientCert { key: <redacted> }"),
        }
    }
}

impl Upstream {
    /// Reads the server, CA and user of the kubeconfig's current context. The CA comes from
    /// `certificate-authority-data` or `certificate-authority`; the user must have a `token`/`tokenFile`
    /// (`token-file`) or a client certificate and key (`client-certificate[-data]`, `client-key[-data]`).
    /// Relative file paths are relative to the kubeconfig's directory.
    pub fn from_kubeconfig(path: impl AsRef<Path>) -> anyhow::Result<Upstream> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_kubeconfig_yaml(&text, base).with_context(|| format!("kubeconfig {}", path.display()))
    }

    /// As [`Upstream::from_kubeconfig`], from the kubeconfig's text; relative paths are resolved against `base`.
    pub fn from_kubeconfig_yaml(yaml: &str, base: &Path) -> anyhow::Result<Upstream> {
        let doc: serde_yaml::Value = serde_yaml::from_str(yaml).context("not YAML")?;
        let current = doc["current-context"].as_str().context("no current-context")?;
        let context = &named(&doc["contexts"], current).context("current context not found")?["context"];
        let cluster_name = context["cluster"].as_str().context("context has no cluster")?;
        let cluster = &named(&doc["clusters"], cluster_name).context("context's cluster not found")?["cluster"];
        let user_name = context["user"].as_str().context("context has no user")?;
        let user = &named(&doc["users"], user_name).context("context's user not found")?["user"];

        let server = cluster["server"].as_str().context("cluster has no server")?;
        let server = url::Url::parse(server).with_context(|| format!("cluster server {server:?}"))?;
        let ca_pem = inline_or_file(cluster, "certificate-authority-data", "certificate-authority", base)?
            .context("cluster has no certificate-authority(-data)")?;
        let auth = if let Some(token) = user["token"].as_str() {
            UpstreamAuth::Token(token.trim().to_owned())
        } else if let Some(file) = user["tokenFile"].as_str().or(user["token-file"].as_str()) {
            let token = std::fs::read_to_string(base.join(file)).context("reading the user's token file")?;
            UpstreamAuth::Token(token.trim().to_owned())
        } else {
            let cert_pem = inline_or_file(user, "client-certificate-data", "client-certificate", base)?;
            let key_pem = inline_or_file(user, "client-key-data", "client-key", base)?;
            match (cert_pem, key_pem) {
                (Some(cert_pem), Some(key_pem)) => UpstreamAuth::ClientCert { cert_pem, key_pem },
                _ => bail!("user has neither a token nor a client certificate and key"),
            }
        };
        Ok(Upstream { server, ca_pem, auth })
    }
}

/// The `name: …` entry of a kubeconfig list.
fn named<'a>(list: &'a serde_yaml::Value, name: &str) -> Option<&'a serde_yaml::Value> {
    list.as_sequence()?.iter().find(|entry| entry["name"].as_str() == Some(name))
}

/// A kubeconfig `…-data` field (base64) or its file-path sibling, as text.
fn inline_or_file(section: &serde_yaml::Value, data: &str, file: &str, base: &Path) -> anyhow::Result<Option<String>> {
    let bytes = if let Some(encoded) = section[data].as_str() {
        base64_decode(encoded).with_context(|| format!("{data} is not base64"))?
    } else if let Some(path) = section[file].as_str() {
        std::fs::read(base.join(path)).with_context(|| format!("reading {file}"))?
    } else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| anyhow!("{data}/{file} is not PEM text"))
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => bail!("invalid base64 character"),
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// What the proxy has done so far (a snapshot, see [`FaultHandle::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Requests sent on to the apiserver (watches included).
    pub requests_forwarded: u64,
    /// Watch requests (`watch=true`/`watch=1`) sent on to the apiserver.
    pub watches_forwarded: u64,
    /// Watch requests in progress right now (forwarded or about to be, response not finished).
    pub open_watches: u64,
    /// Requests delayed by [`FaultHandle::latency`].
    pub delayed_requests: u64,
    /// Writes answered by the proxy with an injected error, by HTTP status.
    pub injected_errors: BTreeMap<u16, u64>,
    /// Watch connections closed by [`FaultHandle::drop_watches_now`] or [`FaultHandle::drop_watches_every`].
    pub watches_dropped: u64,
    /// Connections closed by [`FaultHandle::drop_connections_now`].
    pub connections_dropped: u64,
    /// Connections closed right after accepting them, under [`FaultHandle::refuse_connections`].
    pub connections_refused: u64,
    /// Watches answered "resourceVersion too old" (410 `Expired`), under [`FaultHandle::expire_watches`].
    pub watches_expired: u64,
}

impl FaultStats {
    /// All injected write errors, whatever their status.
    pub fn injected_errors_total(&self) -> u64 {
        self.injected_errors.values().sum()
    }
}

/// Faults decided per request (behind a mutex with the RNG).
struct Faults {
    write_error: Option<(u16, f64)>,
    latency: Option<Duration>,
    refuse_connections: bool,
    expire_watches: bool,
    rng: StdRng,
}

/// Signals that open watch connections follow (a `watch` channel, so they notice changes while streaming).
#[derive(Clone, Copy, Debug, Default)]
struct Control {
    /// Bumped by `drop_watches_now`: a watch that started under an older generation is closed.
    drop_generation: u64,
    /// Bumped by `drop_connections_now`: every connection accepted under an older generation is closed.
    drop_all_generation: u64,
    /// Close a watch `period` after it started, or after `since` for watches that were already open.
    drop_every: Option<(Duration, Instant)>,
}

struct Shared {
    faults: Mutex<Faults>,
    control: watch::Sender<Control>,
    stats: Mutex<FaultStats>,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, FaultStats> {
        self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The status to answer this write with, if the dice say so.
    fn write_error(&self) -> Option<u16> {
        let mut faults = self.faults();
        let (status, fraction) = faults.write_error?;
        (faults.rng.random::<f64>() < fraction).then_some(status)
    }
}

/// Changes the proxy's faults while it runs, and reads its counters. Cheap to clone; outlives nothing: once the
/// proxy is shut down, changes have no effect.
#[derive(Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// Closes every watch connection open now (client and upstream sides, without a final chunk). Watches started
    /// afterwards are not affected. kube-rs reads a watch cut mid-chunk as a resumable end of stream (it logs
    /// "eof in poll"): its watcher watches again from the last resourceVersion, without an error or backoff.
    pub fn drop_watches_now(&self) {
        self.shared.control.send_modify(|control| control.drop_generation += 1);
    }

    /// `Some(period)`: every watch connection is closed once it has been open for `period` (watches already open
    /// count from now). `None`: watches are left alone again.
    pub fn drop_watches_every(&self, period: Option<Duration>) {
        self.shared.control.send_modify(|control| control.drop_every = period.map(|p| (p, Instant::now())));
    }

    /// Closes every client connection open now, watches or not, with their upstream connections (a request in
    /// flight gets no response). Together with [`FaultHandle::refuse_connections`] this is an apiserver outage.
    pub fn drop_connections_now(&self) {
        self.shared.control.send_modify(|control| control.drop_all_generation += 1);
    }

    /// While `true`, new client connections are closed as soon as they are accepted (the client sees the
    /// connection closed before any response). Open connections are not affected.
    pub fn refuse_connections(&self, refuse: bool) {
        self.shared.faults().refuse_connections = refuse;
    }

    /// While `true`, every watch that resumes from a resourceVersion is answered the way the API server answers one
    /// whose resourceVersion has left its watch cache (after a long disconnection, or while other namespaces
    /// churn): a single `ERROR` event carrying a 410 `Expired` Status, then the end of the stream. The client has
    /// to list again; what changed meanwhile (deletions included) it learns only from that listing.
    pub fn expire_watches(&self, expire: bool) {
        self.shared.faults().expire_watches = expire;
    }

    /// Answers `fraction` (0.0–1.0) of POST/PUT/PATCH/DELETE requests with `status` (400–599) and a Kubernetes
    /// `Status` body, without forwarding them. Replaces any earlier rate; a fraction of 0 turns it off.
    pub fn write_error_rate(&self, status: u16, fraction: f64) {
        assert!((400..=599).contains(&status), "write_error_rate: {status} is not an error status");
        let fraction = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        self.shared.faults().write_error = (fraction > 0.0).then_some((status, fraction));
    }

    /// Waits this long before handling each request (zero turns it off).
    pub fn latency(&self, delay: Duration) {
        self.shared.faults().latency = (!delay.is_zero()).then_some(delay);
    }

    /// Restarts the random sequence from `seed`.
    pub fn reseed(&self, seed: u64) {
        self.shared.faults().rng = StdRng::seed_from_u64(seed);
    }

    /// Turns every fault off (write errors, latency, periodic watch drops, refused connections, expiring
    /// watches). Counters and the random sequence are kept.
    pub fn clear(&self) {
        {
            let mut faults = self.shared.faults();
            faults.write_error = None;
            faults.latency = None;
            faults.refuse_connections = false;
            faults.expire_watches = false;
        }
        self.drop_watches_every(None);
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats().clone()
    }

    /// Sets every counter back to zero (the `open_watches` gauge is kept).
    pub fn reset_stats(&self) {
        let mut stats = self.shared.stats();
        *stats = FaultStats { open_watches: stats.open_watches, ..FaultStats::default() };
    }
}

/// The running proxy. Dropping it stops it too (without waiting); [`FaultProxy::shutdown`] waits until every
/// connection is closed.
pub struct FaultProxy {
    addr: SocketAddr,
    handle: FaultHandle,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (random port) and forwards to `upstream`, with no fault active.
    pub async fn start(upstream: Upstream) -> anyhow::Result<FaultProxy> {
        Self::start_with_seed(upstream, DEFAULT_SEED).await
    }

    pub async fn start_with_seed(upstream: Upstream, seed: u64) -> anyhow::Result<FaultProxy> {
        let target = Arc::new(Target::new(&upstream)?);
        let listener = TcpListener::bind("127.0.0.1:0").await.context("fault proxy: binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults {
                write_error: None,
                latency: None,
                refuse_connections: false,
                expire_watches: false,
                rng: StdRng::seed_from_u64(seed),
            }),
            control: watch::Sender::new(Control::default()),
            stats: Mutex::new(FaultStats::default()),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, target, shared.clone(), stopped));
        Ok(FaultProxy { addr, handle: FaultHandle { shared }, stop, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// A proxy in front of the API server `kubeconfig` reaches (with its credentials), and a kubeconfig for
    /// the proxy written beside it (`*.proxy.kubeconfig`, default namespace `namespace`).
    pub async fn in_front_of(kubeconfig: &Path, namespace: &str) -> (FaultProxy, std::path::PathBuf) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let proxy = FaultProxy::start(Upstream::from_kubeconfig(kubeconfig).unwrap()).await.unwrap();
        let proxied = kubeconfig.with_extension("proxy.kubeconfig");
        std::fs::write(&proxied, proxy.kubeconfig_yaml(Some(namespace))).unwrap();
        (proxy, proxied)
    }

    /// A kubeconfig pointing at the proxy with no credentials (the proxy authenticates upstream).
    pub fn kubeconfig_yaml(&self, namespace: Option<&str>) -> String {
        let namespace = match namespace {
            // A JSON string is a valid YAML scalar, whatever it contains.
            Some(ns) => format!("\n    namespace: {}", serde_json::Value::from(ns)),
            None => String::new(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fault-proxy\n  cluster:\n    server: {url}\n\
             users:\n- name: fault-proxy\n  user: {{}}\n\
             contexts:\n- name: fault-proxy\n  context:\n    cluster: fault-proxy\n    user: fault-proxy{namespace}\n\
             current-context: fault-proxy\n",
            url = self.url(),
        )
    }

    /// [`FaultProxy::kubeconfig_yaml`] loaded as a kube-rs configuration.
    pub async fn kube_config(&self, namespace: Option<&str>) -> anyhow::Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml(namespace))?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?)
    }

    /// Stops accepting, closes every connection and waits for that.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: Arc<Target>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.stats().connections_accepted += 1;
                    if shared.faults().refuse_connections {
                        shared.stats().connections_refused += 1;
                        drop(stream);
                        continue;
                    }
                    connections.spawn(serve_connection(stream, target.clone(), shared.clone()));
                }
                Err(error) => {
                    tracing::debug!(%error, "fault proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Where and how to reach the apiserver.
struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// The server URL's path without its trailing `/` (usually empty).
    path_prefix: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    bearer: Option<String>,
}

impl Target {
    fn new(upstream: &Upstream) -> anyhow::Result<Target> {
        let server = &upstream.server;
        ensure!(server.scheme() == "https", "fault proxy: upstream server must be https://, not {}", server.scheme());
        let host = server.host().context("fault proxy: upstream server has no host")?;
        let server_name = match host {
            url::Host::Ipv4(ip) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
            url::Host::Ipv6(ip) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
            url::Host::Domain(name) => ServerName::try_from(name.to_owned())?,
        };
        let port = server.port_or_known_default().unwrap_or(443);
        let authority = format!("{}:{port}", server.host_str().unwrap_or_default());

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(upstream.ca_pem.as_bytes()) {
            roots.add(cert.context("fault proxy: upstream CA is not PEM")?)?;
        }
        ensure!(!roots.is_empty(), "fault proxy: upstream CA holds no certificate");
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let (mut tls, bearer) = match &upstream.auth {
            UpstreamAuth::Token(token) => (builder.with_no_client_auth(), Some(token.clone())),
            UpstreamAuth::ClientCert { cert_pem, key_pem } => {
                let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| anyhow!("fault proxy: upstream client certificate is not PEM"))?;
                ensure!(!certs.is_empty(), "fault proxy: upstream client certificate holds no certificate");
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|_| anyhow!("fault proxy: upstream client key is not a PEM private key"))?;
                (builder.with_client_auth_cert(certs, key)?, None)
            }
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Target {
            authority,
            path_prefix: server.path().trim_end_matches('/').to_owned(),
            server_name,
            tls: Arc::new(tls),
            bearer,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Byte plumbing: sources and sinks for the plain client side and the TLS upstream side.

trait Source {
    /// Reads some bytes; 0 at end of stream.
    async fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize>;
}

trait Sink {
    async fn send(&mut self, data: &[u8]) -> io::Result<()>;
}

impl Source for OwnedReadHalf {
    async fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read(out).await
    }
}

impl Sink for OwnedWriteHalf {
    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data).await
    }
}

/// Swallows a request body the proxy answers itself.
struct Discard;

impl Sink for Discard {
    async fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS client connection: rustls' state machine fed from and flushed to a tokio socket. Reads and writes are
/// never concurrent here (HTTP/1.1 on one connection is request, then response).
struct TlsClient {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    /// Ciphertext read from the socket and not yet handed to rustls.
    incoming: Vec<u8>,
}

impl TlsClient {
    async fn connect(target: &Target) -> anyhow::Result<TlsClient> {
        let tcp = TcpStream::connect(&target.authority).await.context("connecting to the apiserver")?;
        tcp.set_nodelay(true)?;
        let tls = rustls::ClientConnection::new(target.tls.clone(), target.server_name.clone())?;
        let mut client = TlsClient { tcp, tls, incoming: Vec::new() };
        while client.tls.is_handshaking() {
            client.flush_tls().await?;
            if client.tls.is_handshaking() && client.tls.wants_read() {
                client.pull().await.context("TLS handshake with the apiserver")?;
            }
        }
        client.flush_tls().await?;
        Ok(client)
    }

    /// Writes out whatever TLS records rustls has queued.
    async fn flush_tls(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out)?;
        }
        if !out.is_empty() {
            self.tcp.write_all(&out).await?;
        }
        Ok(())
    }

    /// Hands rustls more ciphertext (from `incoming`, else from the socket). `UnexpectedEof` at end of stream.
    async fn pull(&mut self) -> io::Result<()> {
        if self.incoming.is_empty() {
            let mut buf = [0u8; READ_SIZE];
            let n = self.tcp.read(&mut buf).await?;
            if n == 0 {
                // An empty read tells rustls the transport ended; its reader then reports the end.
                self.tls.read_tls(&mut io::empty())?;
                self.tls.process_new_packets().map_err(io::Error::other)?;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.incoming.extend_from_slice(&buf[..n]);
        }
        let mut pending = &self.incoming[..];
        let used = self.tls.read_tls(&mut pending)?;
        self.incoming.drain(..used);
        self.tls.process_new_packets().map_err(io::Error::other)?;
        Ok(())
    }

    /// True when this idle connection cannot carry another request (closed, or the server sent something).
    fn is_stale(&mut self) -> bool {
        if !self.incoming.is_empty() {
            return true;
        }
        let would_block = |result: io::Result<usize>| matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        !would_block(self.tls.reader().read(&mut [0u8; 1])) || !would_block(self.tcp.try_read(&mut [0u8; 1]))
    }
}

impl Source for TlsClient {
    async fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: fine at a body boundary, and callers that expected more
                // bytes report the end themselves.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.flush_tls().await?;
            match self.pull().await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {} // the reader reports it next round
                Err(e) => return Err(e),
            }
        }
    }
}

impl Sink for TlsClient {
    async fn send(&mut self, mut data: &[u8]) -> io::Result<()> {
        // rustls' buffer is flushed after every write, so each write starts empty and takes some bytes.
        while !data.is_empty() {
            let n = self.tls.writer().write(data)?;
            self.flush_tls().await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }
}

/// A buffered reader over a [`Source`].
struct BufIn<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Source> BufIn<R> {
    fn new(inner: R) -> Self {
        BufIn { inner, buf: Vec::new(), pos: 0 }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes into the buffer; 0 at end of stream. Cancel-safe.
    async fn fill_more(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; READ_SIZE];
        let n = self.inner.read_some(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// A message head up to and including the blank line; `None` if the stream ends before its first byte.
    async fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Blank lines before a request line are allowed (RFC 9112 §2.2).
        loop {
            while self.available().starts_with(b"\r\n") {
                self.consume(2);
            }
            if let Some(end) = find(self.available(), b"\r\n\r\n") {
                let head = self.available()[..end + 4].to_vec();
                self.consume(end + 4);
                return Ok(Some(head));
            }
            if self.available().len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "message head too large"));
            }
            if self.fill_more().await? == 0 {
                return if self.available().is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
            }
        }
    }

    /// One line including its CRLF.
    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(self.available(), b"\r\n") {
                let line = self.available()[..end + 2].to_vec();
                self.consume(end + 2);
                return Ok(line);
            }
            if self.available().len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill_more().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Passes exactly `n` bytes on to `sink`, as they arrive.
    async fn relay_exact(&mut self, mut n: u64, sink: &mut impl Sink) -> io::Result<()> {
        while n > 0 {
            if self.available().is_empty() && self.fill_more().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = self.available().len().min(usize::try_from(n).unwrap_or(usize::MAX));
            sink.send(&self.available()[..take]).await?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Passes a message body on to `sink` in the framing it came in.
    async fn relay_body(&mut self, framing: Framing, sink: &mut impl Sink) -> io::Result<()> {
        match framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.relay_exact(n, sink).await,
            Framing::Chunked => loop {
                let line = self.read_line().await?;
                sink.send(&line).await?;
                let size = chunk_size(&line)?;
                if size == 0 {
                    // Trailer fields, then the final blank line.
                    loop {
                        let line = self.read_line().await?;
                        sink.send(&line).await?;
                        if line == b"\r\n" {
                            return Ok(());
                        }
                    }
                }
                self.relay_exact(size + 2, sink).await?; // the data and its CRLF
            },
            Framing::UntilClose => loop {
                if self.available().is_empty() && self.fill_more().await? == 0 {
                    return Ok(());
                }
                let n = self.available().len();
                sink.send(&self.available()[..n]).await?;
                self.consume(n);
            },
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("chunk size line is not text"))?;
    let hex = text.trim_end_matches("\r\n").split(';').next().unwrap_or_default().trim();
    u64::from_str_radix(hex, 16).ok().filter(|n| *n < 1 << 40).ok_or_else(|| invalid("bad chunk size"))
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP/1.1 messages.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed message head: start line and header fields, in order.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid("message head is not text"))?;
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines.filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| invalid("header line without a colon"))?;
            if name.is_empty() || name.ends_with([' ', '\t']) {
                return Err(invalid("bad header name"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(Head { start, headers })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (every occurrence) lists `token`.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Body framing by RFC 9112 §6.3, for a request or (with `no_body`) a response that cannot have one.
    fn framing(&self, is_request: bool, no_body: bool) -> io::Result<Framing> {
        if no_body {
            return Ok(Framing::Empty);
        }
        if let Some(codings) = self.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")) {
            let last = codings.1.rsplit(',').next().unwrap_or_default().trim();
            return match (last.eq_ignore_ascii_case("chunked"), is_request) {
                (true, _) => Ok(Framing::Chunked),
                (false, true) => Err(invalid("request body not chunked")),
                (false, false) => Ok(Framing::UntilClose),
            };
        }
        match self.get("content-length") {
            Some(length) => length.parse().map(Framing::Length).map_err(|_| invalid("bad content-length")),
            None if is_request => Ok(Framing::Empty),
            None => Ok(Framing::UntilClose),
        }
    }
}

/// Hop-by-hop fields the proxy sets itself, plus the client's own credentials (the proxy authenticates upstream).
fn forwarded_request_header(name: &str) -> bool {
    const SKIP: [&str; 9] = [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "upgrade",
        "expect",
        "authorization",
    ];
    !SKIP.iter().any(|skip| name.eq_ignore_ascii_case(skip))
}

fn forwarded_response_header(name: &str) -> bool {
    !["connection", "keep-alive", "proxy-connection"].iter().any(|skip| name.eq_ignore_ascii_case(skip))
}

fn is_watch(target: &str) -> bool {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, value)| key == "watch" && (value == "true" || value == "1"))
}

/// Whether a watch request resumes from a resourceVersion (not `0` or none: those start from the current state).
fn resumes(target: &str) -> bool {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes()).any(|(key, value)| key == "resourceVersion" && value != "0")
}

/// What the API server streams for a watch whose resourceVersion it no longer has: HTTP 200, one `ERROR` event
/// with a 410 `Expired` Status, end of stream.
fn expired_watch_response() -> Vec<u8> {
    let event = serde_json::json!({
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "too old resource version (fault proxy)",
            "reason": "Expired",
            "code": 410,
        },
    });
    let line = format!("{event}\n");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{line}\r\n0\r\n\r\n",
        line.len()
    )
    .into_bytes()
}

/// The reason and reason phrase of a Kubernetes `Status` for an HTTP status.
fn status_reason(code: u16) -> (&'static str, &'static str) {
    match code {
        401 => ("Unauthorized", "Unauthorized"),
        403 => ("Forbidden", "Forbidden"),
        404 => ("NotFound", "Not Found"),
        405 => ("MethodNotAllowed", "Method Not Allowed"),
        406 => ("NotAcceptable", "Not Acceptable"),
        409 => ("Conflict", "Conflict"),
        410 => ("Expired", "Gone"),
        413 => ("RequestEntityTooLarge", "Request Entity Too Large"),
        415 => ("UnsupportedMediaType", "Unsupported Media Type"),
        422 => ("Invalid", "Unprocessable Entity"),
        429 => ("TooManyRequests", "Too Many Requests"),
        500 => ("InternalError", "Internal Server Error"),
        501 => ("NotImplemented", "Not Implemented"),
        502 => ("InternalError", "Bad Gateway"),
        503 => ("ServiceUnavailable", "Service Unavailable"),
        504 => ("Timeout", "Gateway Timeout"),
        // 400 and any other 4xx.
        400..=499 => ("BadRequest", "Bad Request"),
        _ => ("InternalError", "Server Error"),
    }
}

/// A complete response with a Kubernetes `Status` body.
fn status_response(code: u16, message: &str, close: bool) -> Vec<u8> {
    let (reason, phrase) = status_reason(code);
    let mut status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if matches!(code, 429 | 503 | 504) {
        status["details"] = serde_json::json!({ "retryAfterSeconds": 1 });
    }
    let body = status.to_string();
    let retry_after = if matches!(code, 429 | 503 | 504) { "Retry-After: 1\r\n" } else { "" };
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n{retry_after}{connection}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------------------------
// One client connection.

enum Next {
    KeepAlive,
    Close,
}

struct Connection {
    client_in: BufIn<OwnedReadHalf>,
    client_out: OwnedWriteHalf,
    upstream: Option<BufIn<TlsClient>>,
    target: Arc<Target>,
    shared: Arc<Shared>,
}

/// Keeps the `open_watches` gauge right however the watch request ends.
struct OpenWatch(Arc<Shared>);

impl OpenWatch {
    fn new(shared: &Arc<Shared>) -> OpenWatch {
        shared.stats().open_watches += 1;
        OpenWatch(shared.clone())
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.stats().open_watches -= 1;
    }
}

async fn serve_connection(stream: TcpStream, target: Arc<Target>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut control = shared.control.subscribe();
    let generation = control.borrow_and_update().drop_all_generation;
    let (read, write) = stream.into_split();
    let mut connection =
        Connection { client_in: BufIn::new(read), client_out: write, upstream: None, target, shared: shared.clone() };
    let serve = async {
        loop {
            match connection.serve_one().await {
                Ok(Next::KeepAlive) => {}
                Ok(Next::Close) => break,
                Err(error) => {
                    tracing::debug!(%error, "fault proxy: connection ended");
                    break;
                }
            }
        }
    };
    let dropped = async {
        while control.changed().await.is_ok() {
            if control.borrow_and_update().drop_all_generation != generation {
                return;
            }
        }
        std::future::pending().await
    };
    tokio::select! {
        () = serve => {}
        () = dropped => {
            shared.stats().connections_dropped += 1;
            tracing::debug!("fault proxy: dropping a connection");
        }
    }
}

impl Connection {
    async fn serve_one(&mut self) -> anyhow::Result<Next> {
        let Some(raw) = self.client_in.read_head().await? else { return Ok(Next::Close) };
        let head = match Head::parse(&raw) {
            Ok(head) => head,
            Err(error) => {
                let response = status_response(400, &format!("fault proxy: {error}"), true);
                self.client_out.write_all(&response).await?;
                return Ok(Next::Close);
            }
        };
        let mut start = head.start.splitn(3, ' ');
        let (method, target, version) =
            (start.next().unwrap_or_default(), start.next().unwrap_or_default(), start.next().unwrap_or_default());
        let framing = match head.framing(true, false) {
            Ok(framing) if version == "HTTP/1.1" && !target.is_empty() => framing,
            _ => {
                let response = status_response(400, "fault proxy: malformed or non-HTTP/1.1 request", true);
                self.client_out.write_all(&response).await?;
                return Ok(Next::Close);
            }
        };
        let (method, target) = (method.to_owned(), origin_form(target).to_owned());
        let client_close = head.has_token("connection", "close");
        let path = target.split('?').next().unwrap_or_default().to_owned();

        if head.get("upgrade").is_some() {
            self.client_in.relay_body(framing, &mut Discard).await?;
            let response = status_response(501, "fault proxy: protocol upgrades are not supported", true);
            self.client_out.write_all(&response).await?;
            return Ok(Next::Close);
        }
        if head.has_token("expect", "100-continue") {
            self.client_out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }

        if !is_watch(&target) {
            return self.handle(&method, &target, &path, &head, framing, client_close).await;
        }
        if resumes(&target) && self.shared.faults().expire_watches {
            self.shared.stats().watches_expired += 1;
            self.client_in.relay_body(framing, &mut Discard).await?;
            self.client_out.write_all(&expired_watch_response()).await?;
            return Ok(Next::Close);
        }
        let shared = self.shared.clone();
        let _open = OpenWatch::new(&shared);
        let dropped = watch_dropped(shared.control.subscribe(), Instant::now());
        tokio::select! {
            next = self.handle(&method, &target, &path, &head, framing, client_close) => next,
            () = dropped => {
                shared.stats().watches_dropped += 1;
                tracing::debug!(%path, "fault proxy: dropping a watch connection");
                Ok(Next::Close)
            }
        }
    }

    async fn handle(
        &mut self,
        method: &str,
        target: &str,
        path: &str,
        head: &Head,
        framing: Framing,
        client_close: bool,
    ) -> anyhow::Result<Next> {
        let delay = self.shared.faults().latency;
        if let Some(delay) = delay {
            self.shared.stats().delayed_requests += 1;
            tokio::time::sleep(delay).await;
        }

        if matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
            && let Some(status) = self.shared.write_error()
        {
            self.client_in.relay_body(framing, &mut Discard).await?;
            *self.shared.stats().injected_errors.entry(status).or_default() += 1;
            tracing::debug!(method, path, status, "fault proxy: injected a write error");
            let response = status_response(status, "injected by fault proxy", client_close);
            self.client_out.write_all(&response).await?;
            return Ok(if client_close { Next::Close } else { Next::KeepAlive });
        }

        if self.upstream.as_mut().is_some_and(|upstream| !upstream.available().is_empty() || upstream.inner.is_stale())
        {
            self.upstream = None;
        }
        if self.upstream.is_none() {
            match TlsClient::connect(&self.target).await {
                Ok(client) => self.upstream = Some(BufIn::new(client)),
                Err(error) => {
                    tracing::debug!(error = format!("{error:#}"), "fault proxy: cannot reach the apiserver");
                    self.client_in.relay_body(framing, &mut Discard).await?;
                    let response = status_response(502, "fault proxy: cannot reach the apiserver", true);
                    self.client_out.write_all(&response).await?;
                    return Ok(Next::Close);
                }
            }
        }
        let Some(upstream) = self.upstream.as_mut() else { unreachable!("connected above") };

        let mut out =
            format!("{method} {}{target} HTTP/1.1\r\nHost: {}\r\n", self.target.path_prefix, self.target.authority);
        for (name, value) in head.headers.iter().filter(|(name, _)| forwarded_request_header(name)) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(token) = &self.target.bearer {
            out.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        out.push_str("\r\n");
        upstream.inner.send(out.as_bytes()).await?;
        drop(out);
        self.client_in.relay_body(framing, &mut upstream.inner).await?;
        {
            let mut stats = self.shared.stats();
            stats.requests_forwarded += 1;
            if is_watch(target) {
                stats.watches_forwarded += 1;
            }
        }
        tracing::debug!(method, path, "fault proxy: forwarded");

        // Interim 1xx responses are passed on; the final one follows.
        let (response, status) = loop {
            let raw = upstream.read_head().await?.ok_or_else(|| anyhow!("the apiserver closed without answering"))?;
            let response = Head::parse(&raw)?;
            let status: u16 = response.start.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                self.client_out.write_all(&raw).await?;
                continue;
            }
            break (response, status);
        };
        let no_body = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
        let framing = response.framing(false, no_body)?;
        let upstream_close = response.has_token("connection", "close") || framing == Framing::UntilClose;
        let close = client_close || framing == Framing::UntilClose;

        let mut out = format!("{}\r\n", response.start);
        for (name, value) in response.headers.iter().filter(|(name, _)| forwarded_response_header(name)) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        self.client_out.write_all(out.as_bytes()).await?;

        // Stream the body; meanwhile notice a client that goes away (it closes a watch by closing the connection).
        {
            let mut relay = std::pin::pin!(upstream.relay_body(framing, &mut self.client_out));
            let client_in = &mut self.client_in;
            loop {
                tokio::select! {
                    relayed = &mut relay => {
                        relayed?;
                        break;
                    }
                    read = client_in.fill_more(), if client_in.available().len() < MAX_PIPELINED => match read {
                        Ok(0) | Err(_) => return Ok(Next::Close),
                        Ok(_) => {} // the next request, pipelined: kept for later
                    },
                }
            }
        }
        if upstream_close {
            self.upstream = None;
        }
        Ok(if close { Next::Close } else { Next::KeepAlive })
    }
}

/// The request target in origin form (`/path?query`), also from an absolute-form target.
fn origin_form(target: &str) -> &str {
    match target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
        Some(rest) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => target,
    }
}

/// Resolves when the watch that started at `started` must be closed.
async fn watch_dropped(mut control: watch::Receiver<Control>, started: Instant) {
    let generation = control.borrow_and_update().drop_generation;
    loop {
        let current = *control.borrow_and_update();
        if current.drop_generation != generation {
            return;
        }
        let deadline = current.drop_every.map(|(period, since)| started.max(since) + period);
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            () = sleep_until(deadline) => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
