//! TLS between the client and Password Safe: verification on by default, a private CA by configuration,
//! mutual TLS, and the loud opt-in to skip verification.

mod support;

use passwordsafe_operator::passwordsafe::{Client, ClientIdentity, SecretString, TlsConfig};
use passwordsafe_simulator::{Running, Seed, ServeOptions, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use support::*;

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["passwordsafe-operator".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();

    Pki {
        ca_pem: ca.as_ref().pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

async fn start_tls(pki: &Pki, require_client_cert: bool) -> Running {
    let tls = TlsOptions {
        cert_pem: pki.server_cert_pem.clone(),
        key_pem: pki.server_key_pem.clone(),
        client_ca_pem: require_client_cert.then(|| pki.ca_pem.clone()),
    };
    let opts = ServeOptions { tls: Some(tls), ..ServeOptions::default() };
    passwordsafe_simulator::start(Seed::from_yaml_str(&seed_yaml("")).unwrap(), opts).await.unwrap()
}

fn client_with(sim: &Running, tls: TlsConfig) -> Client {
    let mut config = config(sim, api_key_auth());
    config.tls = tls;
    config.retry.max_attempts = 1;
    Client::new(config).unwrap()
}

#[tokio::test]
async fn an_unknown_server_certificate_is_refused() {
    let server_pki = pki();
    let sim = start_tls(&server_pki, false).await;
    assert!(sim.base_url().starts_with("https://"));
    // A CA bundle from another, unrelated CA.
    let tls = TlsConfig { system_roots: false, ca_bundle_pem: Some(pki().ca_pem), ..TlsConfig::default() };
    let err = client_with(&sim, tls).sign_in().await.unwrap_err();
    assert_eq!(err.reason(), "ConnectionFailed", "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    assert_eq!(sim.handle().call_count("POST Auth/SignAppIn"), 0);
}

#[tokio::test]
async fn a_server_certificate_from_the_configured_ca_is_accepted() {
    let pki = pki();
    let sim = start_tls(&pki, false).await;
    let tls = TlsConfig { system_roots: false, ca_bundle_pem: Some(pki.ca_pem.clone()), ..TlsConfig::default() };
    let user = client_with(&sim, tls).sign_in().await.unwrap();
    assert_eq!(user.user_name.as_deref(), Some("svc-operator"));
}

#[tokio::test(flavor = "current_thread")]
async fn skipping_verification_works_only_when_asked_and_says_so_loudly() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let sim = start_tls(&pki, false).await;
    let tls = TlsConfig { system_roots: false, insecure_skip_verify: true, ..TlsConfig::default() };
    client_with(&sim, tls).sign_in().await.unwrap();
    let text = logs.text();
    assert!(text.contains("WARN") && text.contains("verification is DISABLED"), "{text}");
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_gets_one() {
    let pki = pki();
    let sim = start_tls(&pki, true).await;
    let without = TlsConfig { system_roots: false, ca_bundle_pem: Some(pki.ca_pem.clone()), ..TlsConfig::default() };
    let err = client_with(&sim, without.clone()).sign_in().await.unwrap_err();
    assert!(err.is_retryable() || err.reason() == "ConnectionFailed", "{err}");

    let identity = ClientIdentity {
        cert_pem: pki.client_cert_pem.clone(),
        key_pem: SecretString::new(pki.client_key_pem.clone()),
    };
    let with = TlsConfig { identity: Some(identity), ..without };
    client_with(&sim, with).sign_in().await.unwrap();
}

#[test]
fn a_client_key_that_is_not_pem_is_a_config_error_without_the_key_in_it() {
    let pki = pki();
    let tls = TlsConfig {
        system_roots: false,
        ca_bundle_pem: Some(pki.ca_pem.clone()),
        identity: Some(ClientIdentity {
            cert_pem: pki.client_cert_pem,
            key_pem: SecretString::new("not-a-key-SECRETVALUE"),
        }),
        insecure_skip_verify: false,
    };
    let config = passwordsafe_operator::passwordsafe::ClientConfig {
        tls,
        ..passwordsafe_operator::passwordsafe::ClientConfig::new(
            "https://127.0.0.1:1/BeyondTrust/api/public/v3",
            api_key_auth(),
        )
        .unwrap()
    };
    let err = Client::new(config).unwrap_err();
    assert_eq!(err.reason(), "InvalidConfig");
    assert!(!err.to_string().contains("SECRETVALUE"), "{err}");
}
