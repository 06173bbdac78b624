//! Shared helpers of the integration tests: seeds, a simulator per test, clients pointed at it.
#![allow(dead_code)]

pub mod e2e;
pub mod fault_proxy;
pub mod helm;
pub mod kube_mock;

use std::sync::{Arc, Mutex};

use passwordsafe_operator::passwordsafe::{Auth, Client, ClientConfig, RetryPolicy, SecretString, TlsConfig};
use passwordsafe_simulator::{Running, Seed, ServeOptions};

pub const API_KEY: &str = "c479a66f0e8f4b6e9c2d7a1b3f5e8d0a4c6b9e2f1a3d5c7e9b0f2a4c6e8d0b1f3a5c7e9d1b3f5a7c9e0d2f4b6a8c0e2d4f6a8b0c2e4d6f8a0b2c4d6e8f0a2b4";
pub const CLIENT_SECRET: &str = "oauth-client-secret-Zx81Pq";
pub const USER_PASSWORD: &str = "runas-user-password-Kk29";
pub const APP_PASSWORD: &str = "Pw-app_user-7Hq!x2";
pub const SSH_PASSWORD: &str = "Pw-ssh_user-Lm4$e9";
pub const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0-SECRETKEY\n-----END OPENSSH PRIVATE KEY-----\n";
pub const SSH_PASSPHRASE: &str = "passphrase-Vb7Tn3";
pub const ISA_PASSWORD: &str = "Pw-isa_admin-Qa5^r1";
pub const SECRET_PASSWORD: &str = "secrets-safe-password-Wd3";
pub const SECRET_TEXT: &str = "text secret: line one\nline two-Ty6";
/// Binary file content with bytes that are not UTF-8, a NUL and CR/LF: must come back exact.
pub const FILE_BYTES: &[u8] = &[0x00, 0xff, 0xfe, b'\r', b'\n', 0x80, b'k', b'e', b'y', 0x00, 0x7f];

/// Every secret value the default seed holds: tests assert none of them shows up where it must not.
pub fn seeded_secret_values() -> Vec<&'static str> {
    vec![
        API_KEY,
        CLIENT_SECRET,
        USER_PASSWORD,
        APP_PASSWORD,
        SSH_PASSWORD,
        "SECRETKEY",
        SSH_PASSPHRASE,
        ISA_PASSWORD,
        SECRET_PASSWORD,
        "Ty6",
    ]
}

pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The default test seed; `extra_accounts` adds accounts to system `bulk` as YAML list items.
pub fn seed_yaml(extra_accounts: &str) -> String {
    format!(
        r#"
users:
  - name: svc-operator
    userId: 2
  - name: svc-pwd
    userId: 3
    password: "{USER_PASSWORD}"
apiKeys:
  - key: "{API_KEY}"
    runAs: [svc-operator]
    requirePassword: false
  - key: "{API_KEY}-pwd"
    runAs: [svc-pwd]
    requirePassword: true
oauthClients:
  - clientId: operator-client
    clientSecret: "{CLIENT_SECRET}"
    user: svc-operator
    tokenLifetimeSeconds: 600
  - clientId: short-lived
    clientSecret: "{CLIENT_SECRET}"
    user: svc-operator
    tokenLifetimeSeconds: 2
systems:
  - name: db01
    platformId: 4
    accounts:
      - name: app_user
        password: "{APP_PASSWORD}"
        maxConcurrentRequests: 5
      - name: ssh_user
        password: "{SSH_PASSWORD}"
        dssKey: {ssh_key:?}
        passphrase: "{SSH_PASSPHRASE}"
        maxConcurrentRequests: 5
      - name: isa_admin
        password: "{ISA_PASSWORD}"
        isaAccess: true
      - name: denied
        password: "denied-pass"
        deniedUsers: [svc-operator]
      - name: approver_only
        password: "approver-pass"
        approverOnly: true
      - name: needs_approval
        password: "approval-pass"
        requiresApproval: true
      - name: no_approvers
        password: "no-approvers-pass"
        notEnoughApprovers: true
  - name: bulk
    platformId: 4
    accounts:
      - name: placeholder
        password: "placeholder-pass"
{extra_accounts}
aliases:
  - name: db-app
    system: db01
    account: app_user
secretsSafe:
  folders:
    - path: prod/db
      secrets:
        - title: db-creds
          type: credential
          username: dbuser
          password: "{SECRET_PASSWORD}"
          notes: "rotated quarterly"
        - title: app-config
          type: text
          text: {secret_text:?}
        - title: tls-bundle
          type: file
          fileName: bundle.bin
          contentBase64: "{file_b64}"
    - path: prod/db/archive
      secrets:
        - title: old-creds
          type: credential
          username: old
          password: "old-pass"
"#,
        ssh_key = SSH_KEY,
        secret_text = SECRET_TEXT,
        file_b64 = base64(FILE_BYTES),
    )
}

/// `n` plain and `isa` ISA accounts named `acct-NNN` / `isa-NNN` on system `bulk`.
pub fn bulk_accounts(n: usize, isa: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!("      - name: acct-{i:03}\n        password: \"bulk-pass-{i:03}\"\n"));
    }
    for i in 0..isa {
        out.push_str(&format!(
            "      - name: isa-{i:03}\n        password: \"isa-pass-{i:03}\"\n        isaAccess: true\n"
        ));
    }
    out
}

pub async fn start(seed_yaml: &str) -> Running {
    let seed = Seed::from_yaml_str(seed_yaml).expect("seed parses");
    passwordsafe_simulator::start(seed, ServeOptions::default()).await.expect("simulator starts")
}

pub async fn start_default() -> Running {
    start(&seed_yaml("")).await
}

pub fn api_key_auth() -> Auth {
    Auth::ApiKey { key: SecretString::new(API_KEY), run_as: "svc-operator".into(), password: None }
}

pub fn oauth_auth(client_id: &str) -> Auth {
    Auth::OAuth { client_id: client_id.into(), client_secret: SecretString::new(CLIENT_SECRET), run_as: None }
}

/// A config for the simulator: plain HTTP, fast retries so failure tests stay quick.
pub fn config(sim: &Running, auth: Auth) -> ClientConfig {
    let mut config = ClientConfig::new(&sim.base_url(), auth).expect("valid config");
    config.tls = TlsConfig { system_roots: false, insecure_skip_verify: false, ca_bundle_pem: None, identity: None };
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_retry_after: std::time::Duration::from_secs(2),
    };
    config.max_concurrency = 64;
    config
}

pub fn client(sim: &Running) -> Client {
    Client::new(config(sim, api_key_auth())).expect("client builds")
}

/// A `tracing` writer into memory, to assert on what the client logs.
#[derive(Clone, Default)]
pub struct CapturedLogs(pub Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs a TRACE-level subscriber writing into memory for the current thread.
pub fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, guard)
}
