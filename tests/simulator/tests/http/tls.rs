//! HTTPS and mutual TLS.

use std::sync::Arc;

use passwordsafe_simulator::{Seed, ServeOptions, TestCa, start};
use reqwest::StatusCode;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::install_crypto;

fn client(ca: &TestCa, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    reqwest::Client::builder().tls_backend_preconfigured(config).build().unwrap()
}

#[tokio::test]
async fn https_and_mutual_tls() {
    install_crypto();
    let ca = TestCa::new().unwrap();
    let https = start(Seed::demo(), ServeOptions { tls: Some(ca.tls_options(false).unwrap()), ..Default::default() })
        .await
        .unwrap();
    assert!(https.base_url().starts_with("https://127.0.0.1:"));
    let response = client(&ca, None).get(format!("{}/calls", https.admin_url())).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    https.shutdown().await;

    let mtls = start(Seed::demo(), ServeOptions { tls: Some(ca.tls_options(true).unwrap()), ..Default::default() })
        .await
        .unwrap();
    let url = format!("{}/Auth/SignAppIn", mtls.base_url());
    assert!(client(&ca, None).post(&url).send().await.is_err(), "no client certificate: handshake fails");
    let identity = ca.client_cert("operator").unwrap();
    let with_cert = client(&ca, Some((&identity.cert_pem, &identity.key_pem)));
    let response = with_cert.post(&url).header("Authorization", crate::support::DEMO_AUTH).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let other_ca = TestCa::new().unwrap();
    let foreign = other_ca.client_cert("stranger").unwrap();
    assert!(client(&ca, Some((&foreign.cert_pem, &foreign.key_pem))).post(&url).send().await.is_err());
}
