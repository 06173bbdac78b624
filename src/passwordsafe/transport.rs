//! HTTP plumbing shared by every call: one connection pool, a concurrency limit, a per-call timeout, a cap on
//! response size, and retries with exponential backoff and jitter. It knows nothing of sessions (see
//! `session.rs`) or of what the calls mean.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;
use zeroize::Zeroizing;

use super::config::{ClientConfig, RetryPolicy};
use super::error::{ApiCode, Error, ErrorKind, Result};
use super::secret::{SecretBytes, SecretString};
use super::tls;

/// Sees every HTTP exchange (metrics, tests). `status` is `None` when no response arrived.
pub trait CallObserver: Send + Sync + 'static {
    fn on_call(&self, _endpoint: &'static str, _status: Option<u16>, _elapsed: Duration) {}
    fn on_sign_in(&self) {}
    /// A request (`POST Requests` / `POST Aliases/{id}/Requests`) was opened or joined; it expires on the
    /// server after `expires_in` unless checked in first. `client` tells clients (servers) apart.
    fn on_request_opened(&self, _client: u64, _request_id: i64, _expires_in: Duration) {}
    /// The request was checked in (or found already gone).
    fn on_request_closed(&self, _client: u64, _request_id: i64) {}
}

/// The default observer: does nothing.
pub struct NoopObserver;
impl CallObserver for NoopObserver {}

/// Whether a call may be sent again after an attempt whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads, check-ins, sign-ins, and `POST Requests` with `ConflictOption=reuse` (a repeat returns the
    /// request the first attempt created): retried on connection failures, timeouts, 5xx and 429.
    Safe,
    /// Calls whose repeat would create something twice (`POST ISARequests`): retried only when we know the
    /// server did not act on it, i.e. the connection was never made, or a 429 refused it.
    OnlyIfNotProcessed,
}

#[derive(Clone)]
pub(crate) enum Body {
    Empty,
    Json(serde_json::Value),
    /// Form fields; values may be secrets (the OAuth client secret).
    Form(Vec<(&'static str, SecretString)>),
}

/// One API call, described fully so it can be sent more than once.
#[derive(Clone)]
pub(crate) struct Call {
    /// The operation's name, e.g. `GET Credentials`: used in errors, logs and metrics (bounded set).
    pub endpoint: &'static str,
    pub method: Method,
    /// Path relative to the API base, e.g. `Credentials/124`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    pub replay: Replay,
    pub authorization: Option<SecretString>,
    pub cookie: Option<SecretString>,
    pub run_as: Option<String>,
}

impl Call {
    pub fn new(endpoint: &'static str, method: Method, path: impl Into<String>) -> Self {
        Self {
            endpoint,
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::Empty,
            replay: Replay::Safe,
            authorization: None,
            cookie: None,
            run_as: None,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }
}

/// A complete response. The body is held as secret bytes: it may be a credential.
pub(crate) struct Response {
    pub endpoint: &'static str,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: SecretBytes,
}

impl Response {
    /// Turns an error status into the client's typed error, keeping the sub-code and the server's message.
    pub fn error_for_status(self) -> Result<Response> {
        let status = self.status.as_u16();
        if status < 400 {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(self.body.expose());
        Err(Error::new(
            self.endpoint,
            ErrorKind::Api { status, code: ApiCode::parse(&text), message: server_message(&text) },
        ))
    }

    pub fn is_json(&self) -> bool {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.body.expose()).map_err(|e| {
            // serde_json's message names the line, column and expected type, never the offending value.
            Error::invalid(self.endpoint, format!("body is not the expected JSON ({})", redact_serde_error(&e)))
        })
    }
}

/// The server's own words from an error body, trimmed to one short line. Error bodies never carry
/// credentials (they answer calls that failed), but they are still shortened so a log line stays a line.
fn server_message(text: &str) -> String {
    let one_line: String = text.trim().trim_matches('"').split_whitespace().collect::<Vec<_>>().join(" ");
    let mut message: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        message.push('…');
    }
    message
}

/// serde_json's data errors quote the unexpected value ("invalid type: string \"x\", expected ..."); keep the
/// category and position only.
fn redact_serde_error(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected field types",
        serde_json::error::Category::Eof => "truncated body",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    timeout: Duration,
    max_call_time: Duration,
    max_body: usize,
    pub observer: Arc<dyn CallObserver>,
}

impl Transport {
    pub fn new(config: &ClientConfig, observer: Arc<dyn CallObserver>) -> Result<Self> {
        if config.max_concurrency == 0 {
            return Err(Error::config("max concurrency must be at least 1"));
        }
        let https = config.base_url.scheme() == "https";
        if !https {
            tracing::warn!(url = %config.base_url, "Password Safe URL is plain HTTP: credentials travel unencrypted; use this only for a local simulator");
        }
        let tls = tls::client_config(&config.tls, https)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| Error::config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Self {
            http,
            base: config.base_url.clone(),
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            retry: config.retry.clone(),
            timeout: config.timeout,
            max_call_time: config.max_call_time,
            max_body: config.max_response_bytes,
            observer,
        })
    }

    /// Sends the call, retrying what is safe to retry. Any HTTP status comes back as `Ok`; the caller decides
    /// what a status means. A 429 or 5xx that is still there after the last attempt is returned as is.
    pub async fn execute(&self, call: &Call) -> Result<Response> {
        let started = Instant::now();
        // A retry after `delay` must be able to end within the call's time limit.
        let in_time = |delay: Duration| started.elapsed() + delay + self.timeout <= self.max_call_time;
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(call).await;
            let retry_in = match &outcome {
                Ok(resp) if resp.status == StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&resp.headers);
                    let delay = wait.unwrap_or_else(|| self.backoff(attempt));
                    if wait.is_some_and(|w| w > self.retry.max_retry_after)
                        || attempt >= self.retry.max_attempts
                        || !in_time(delay)
                    {
                        return Err(Error::new(call.endpoint, ErrorKind::RateLimited { retry_after: wait }));
                    }
                    Some(delay)
                }
                Ok(resp) if resp.status.is_server_error() && call.replay == Replay::Safe => Some(self.backoff(attempt)),
                Err(e) if e.kind_is_connect() || (call.replay == Replay::Safe && e.is_retryable()) => {
                    Some(self.backoff(attempt))
                }
                _ => None,
            };
            match retry_in {
                Some(delay) if attempt < self.retry.max_attempts && in_time(delay) => {
                    tracing::debug!(
                        endpoint = call.endpoint,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Password Safe call"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of many
    /// callers spread out but none retries immediately.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry.base_delay.saturating_mul(1u32 << (attempt - 1).min(16));
        let capped = exp.min(self.retry.max_delay);
        let half = capped / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    async fn send_once(&self, call: &Call) -> Result<Response> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::new(call.endpoint, ErrorKind::Aborted("client closed".into())))?;
        let started = Instant::now();
        let result = self.exchange(call).await;
        drop(permit);
        let status = result.as_ref().ok().map(|r| r.status.as_u16());
        self.observer.on_call(call.endpoint, status, started.elapsed());
        match &result {
            Ok(r) => tracing::debug!(
                endpoint = call.endpoint,
                status = r.status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Password Safe call"
            ),
            Err(e) => tracing::debug!(endpoint = call.endpoint, error = %e, "Password Safe call failed"),
        }
        result
    }

    async fn exchange(&self, call: &Call) -> Result<Response> {
        let url = self.base.join(&call.path).map_err(|e| Error::config(format!("URL for {}: {e}", call.endpoint)))?;
        let mut request = self.http.request(call.method.clone(), url).timeout(self.timeout);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(auth) = &call.authorization {
            request = request.header(AUTHORIZATION, sensitive_header(auth, call.endpoint)?);
        }
        if let Some(cookie) = &call.cookie {
            request = request.header(COOKIE, sensitive_header(cookie, call.endpoint)?);
        }
        if let Some(run_as) = &call.run_as {
            request = request.header("RunAs", run_as.as_str());
        }
        request = match &call.body {
            // The guide's examples post an empty body with a JSON content type to SignAppIn.
            Body::Empty => request.header(CONTENT_TYPE, "application/json").body(""),
            Body::Json(value) => request.json(value),
            Body::Form(fields) => {
                let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.expose())).collect();
                let encoded = Zeroizing::new(serde_urlencoded_pairs(&pairs));
                request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(encoded.as_bytes().to_vec())
            }
        };
        let mut response = request.send().await.map_err(|e| transport_error(call.endpoint, &e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if response.content_length().is_some_and(|len| len > self.max_body as u64) {
            return Err(Error::new(call.endpoint, ErrorKind::ResponseTooLarge { limit: self.max_body }));
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(call.endpoint, &e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(Error::new(call.endpoint, ErrorKind::ResponseTooLarge { limit: self.max_body }));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { endpoint: call.endpoint, status, headers, body: SecretBytes::new(std::mem::take(&mut *body)) })
    }
}

fn sensitive_header(value: &SecretString, endpoint: &'static str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
        Error::new(endpoint, ErrorKind::Config("a credential contains characters not allowed in an HTTP header".into()))
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Reads `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(raw).ok()?;
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

impl Error {
    /// The connection was never established, so the server cannot have acted on the call.
    pub(crate) fn kind_is_connect(&self) -> bool {
        matches!(self.kind, ErrorKind::Connect(_))
    }
}

fn transport_error(endpoint: &'static str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect(error_chain(e))
    } else {
        ErrorKind::Transport(error_chain(e))
    };
    Error::new(endpoint, kind)
}

/// An error and its causes on one line ("error sending request: connection refused"), without the URL's
/// query string.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let text = strip_url(&err.to_string());
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

fn strip_url(text: &str) -> String {
    match (text.find(" for url ("), text.rfind(')')) {
        (Some(start), Some(end)) if end > start => format!("{}{}", &text[..start], &text[end + 1..]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn server_messages_are_one_short_line() {
        assert_eq!(server_message("\"Managed Account not found\""), "Managed Account not found");
        assert_eq!(server_message("a\n  b"), "a b");
        assert_eq!(server_message(&"x".repeat(500)).chars().count(), 301);
    }

    #[test]
    fn serde_errors_never_quote_the_value() {
        let err = serde_json::from_str::<i64>("\"hunter2\"").unwrap_err();
        assert!(!redact_serde_error(&err).contains("hunter2"));
    }

    #[test]
    fn urls_are_stripped_from_transport_messages() {
        assert_eq!(strip_url("error sending request for url (http://x/y?a=b): boom"), "error sending request: boom");
    }
}
