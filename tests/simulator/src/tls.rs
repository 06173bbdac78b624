//! TLS for the simulator's listener (optionally requiring client certificates), and a small certificate
//! authority for tests and the `--self-signed` mode.

use std::sync::Arc;

use anyhow::{Context, anyhow, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS settings of the listener.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Server certificate chain (leaf first), PEM.
    pub cert_pem: String,
    /// The leaf's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// When set, handshakes without a client certificate signed by one of these CAs are rejected (mTLS).
    pub client_ca_pem: Option<String>,
}

/// The ring provider, installed explicitly on every config rather than relying on a process default.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &str, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("reading {what}: {e:?}"))?;
    ensure!(!certs.is_empty(), "{what} holds no certificate");
    Ok(certs)
}

/// Builds the rustls server configuration (HTTP/2 and HTTP/1.1 offered through ALPN).
pub(crate) fn server_config(options: &TlsOptions) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = certificates(&options.cert_pem, "the server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(options.key_pem.as_bytes())
        .map_err(|e| anyhow!("reading the server key: {e:?}"))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &options.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_pem, "the client CA")? {
                roots.add(cert).context("adding a client CA certificate")?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).context("server certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A throw-away certificate authority: issues a server certificate for the simulator and client
/// certificates for mTLS tests.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, "passwordsafe-simulator test CA");
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(TestCa { params, key, cert_pem })
    }

    /// The CA certificate (PEM) clients should trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issue(&self, mut params: CertificateParams, usage: ExtendedKeyUsagePurpose) -> anyhow::Result<IssuedCert> {
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> anyhow::Result<IssuedCert> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("localhost"));
        self.issue(params, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with this common name.
    pub fn client_cert(&self, common_name: &str) -> anyhow::Result<IssuedCert> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        self.issue(params, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Listener settings with a server certificate for `127.0.0.1` and `localhost`; with `require_client_cert`
    /// the listener accepts only client certificates issued by this CA.
    pub fn tls_options(&self, require_client_cert: bool) -> anyhow::Result<TlsOptions> {
        let server = self.server_cert(&["127.0.0.1", "localhost"])?;
        Ok(TlsOptions {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem,
            client_ca_pem: require_client_cert.then(|| self.cert_pem.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_build_a_server_config() {
        let ca = TestCa::new().unwrap();
        server_config(&ca.tls_options(false).unwrap()).unwrap();
        server_config(&ca.tls_options(true).unwrap()).unwrap();
        let client = ca.client_cert("tester").unwrap();
        assert!(client.cert_pem.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn garbage_pem_is_an_error() {
        let options = TlsOptions { cert_pem: "nope".into(), key_pem: "nope".into(), client_ca_pem: None };
        assert!(server_config(&options).is_err());
    }
}
