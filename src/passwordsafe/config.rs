//! Client configuration: where Password Safe is, how to sign in, how to trust it, and how hard to push it.

use std::time::Duration;

use url::Url;

use super::error::{Error, Result};
use super::secret::SecretString;

/// How the client signs in.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: PS-Auth key=<key>; runas=<user>; pwd=[<password>];` on `POST Auth/SignAppIn`.
    ApiKey { key: SecretString, run_as: String, password: Option<SecretString> },
    /// OAuth client credentials: `POST Auth/Connect/Token`, then `POST Auth/SignAppIn` with the bearer token.
    /// `run_as` is sent as the `RunAs` header (OAuth impersonation, per the guide).
    OAuth { client_id: String, client_secret: SecretString, run_as: Option<String> },
}

/// A client certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: SecretString,
}

/// How the server's certificate is checked, and what we present.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Trust the operating system's root certificates (default: true).
    pub system_roots: bool,
    /// Extra trusted certificate authorities (PEM bundle), e.g. a private CA that issued the server's cert.
    pub ca_bundle_pem: Option<String>,
    /// Client certificate for servers that require mutual TLS.
    pub identity: Option<ClientIdentity>,
    /// Accept any server certificate. Never do this outside a lab: anyone on the path can read credentials.
    /// A warning is logged every time a client is built with it.
    pub insecure_skip_verify: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { system_roots: true, ca_bundle_pem: None, identity: None, insecure_skip_verify: false }
    }
}

/// Retries of one HTTP call inside the client (connection failures, timeouts, 5xx, 429).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retries).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` we wait for inside a call; a longer one (or one that would take the call past
    /// `ClientConfig::max_call_time`) fails the call with `RateLimited` so the caller can reschedule instead of
    /// blocking a worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Parameters of the release requests the client opens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestOptions {
    /// `DurationMinutes` (1-525600). Short by default: the request is checked in as soon as the credential
    /// is read, and a request whose check-in failed then expires soon.
    pub duration_minutes: u32,
    /// `Reason`, shown in Password Safe's audit trail.
    pub reason: String,
    /// `RotateOnCheckin`. `None` leaves it to the access policy (the server's default is true). Only send
    /// `Some` when the access policy allows the API rotation override.
    pub rotate_on_checkin: Option<bool>,
    /// Do not check the request in; let it expire. For accounts that rotate after every release
    /// (ChangePasswordAfterAnyReleaseFlag) when RotateOnCheckin=false is not allowed: holding the request
    /// keeps the password we synced valid until the request's expiry.
    pub hold_until_expiry: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            duration_minutes: 10,
            reason: "passwordsafe-operator sync".into(),
            rotate_on_checkin: None,
            hold_until_expiry: false,
        }
    }
}

impl RequestOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=525_600).contains(&self.duration_minutes) {
            return Err(Error::config(format!(
                "request duration {} minutes is outside 1-525600",
                self.duration_minutes
            )));
        }
        if self.reason.chars().count() > 1000 {
            return Err(Error::config("request reason is longer than 1000 characters"));
        }
        Ok(())
    }
}

/// Everything a [`Client`](super::Client) needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://host/BeyondTrust/api/public/v3` (a trailing slash is optional).
    pub base_url: Url,
    pub auth: Auth,
    pub tls: TlsConfig,
    /// Limit of one HTTP call, body included.
    pub timeout: Duration,
    /// Limit of one call with its retries and `Retry-After` waits: no retry starts that could not end (after
    /// `timeout`) within it. A server that hangs then holds a caller for one `timeout`, not `max_attempts`.
    pub max_call_time: Duration,
    pub connect_timeout: Duration,
    /// Largest response body accepted (Secrets Safe files included).
    pub max_response_bytes: usize,
    /// Calls in flight at once against this server, across all callers of this client.
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    /// Renew an OAuth session this long before its token expires.
    pub token_renew_margin: Duration,
    /// Page size of bulk listings (`limit`).
    pub page_size: u32,
    pub user_agent: String,
}

impl ClientConfig {
    pub fn new(base_url: &str, auth: Auth) -> Result<Self> {
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            auth,
            tls: TlsConfig::default(),
            timeout: Duration::from_secs(30),
            max_call_time: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            token_renew_margin: Duration::from_secs(60),
            page_size: 1000,
            user_agent: concat!("passwordsafe-operator/", env!("CARGO_PKG_VERSION")).into(),
        })
    }
}

/// Parses the API base URL and makes sure it ends with `/`, so relative joins keep the `/v3` segment.
pub fn parse_base_url(raw: &str) -> Result<Url> {
    let mut url = Url::parse(raw.trim()).map_err(|e| Error::config(format!("API URL {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::config(format!("API URL {raw:?}: scheme must be https (or http for a local simulator)")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!("API URL {raw:?}: must not have a query or fragment")));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_a_trailing_slash_so_joins_keep_the_version() {
        let url = parse_base_url("https://ps.example/BeyondTrust/api/public/v3").unwrap();
        assert_eq!(
            url.join("Auth/SignAppIn").unwrap().as_str(),
            "https://ps.example/BeyondTrust/api/public/v3/Auth/SignAppIn"
        );
        assert!(parse_base_url("ftp://x/").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("https://x/v3?a=b").is_err());
    }

    #[test]
    fn request_options_are_bounded_like_the_api() {
        assert!(RequestOptions::default().validate().is_ok());
        assert!(RequestOptions { duration_minutes: 0, ..Default::default() }.validate().is_err());
        assert!(RequestOptions { duration_minutes: 525_601, ..Default::default() }.validate().is_err());
    }
}
