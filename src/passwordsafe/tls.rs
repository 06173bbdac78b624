//! The rustls configuration behind the client: which servers we trust and which certificate we present.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::TlsConfig;
use super::error::{Error, Result};

/// Builds the TLS configuration. Verification is on unless `insecure_skip_verify` is set, and then a warning
/// is logged on every call so the setting cannot go unnoticed.
/// `require_roots` is false only for plain-HTTP URLs, where no certificate will ever be checked.
pub fn client_config(tls: &TlsConfig, require_roots: bool) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS protocol versions: {e}")))?;

    let builder = if tls.insecure_skip_verify {
        tracing::warn!(
            "TLS certificate verification is DISABLED for this Password Safe client (insecureSkipVerify): \
             credentials can be read by anyone on the network path; configure a CA bundle instead"
        );
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(root_store(tls, require_roots)?)
    };

    let mut config = match &tls.identity {
        Some(identity) => {
            let certs = parse_certificates(&identity.cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.expose().as_bytes())
                .map_err(|e| Error::config(format!("client private key: not a PEM private key ({e})")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::config(format!("client certificate and key do not match or are unusable: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn root_store(tls: &TlsConfig, require_roots: bool) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if tls.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::debug!(error = %err, "skipping an unreadable system root certificate");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "loaded system root certificates");
    }
    if let Some(pem) = &tls.ca_bundle_pem {
        for cert in parse_certificates(pem, "CA bundle")? {
            roots.add(cert).map_err(|e| Error::config(format!("CA bundle: unusable certificate: {e}")))?;
        }
    }
    if roots.is_empty() && require_roots {
        return Err(Error::config("no trusted root certificates: the system has none and no CA bundle was given"));
    }
    Ok(roots)
}

fn parse_certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("{what}: invalid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(Error::config(format!("{what}: no PEM certificate found")));
    }
    Ok(certs)
}

/// The explicit, opt-in "insecure" mode: any certificate is accepted, but handshake signatures are still
/// checked so the connection is at least well-formed TLS.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_bundle_is_a_clear_config_error() {
        let tls = TlsConfig { system_roots: false, ca_bundle_pem: Some("not pem".into()), ..Default::default() };
        let err = client_config(&tls, true).unwrap_err();
        assert_eq!(err.reason(), "InvalidConfig");
        assert!(err.to_string().contains("CA bundle"), "{err}");
    }

    #[test]
    fn no_roots_at_all_is_refused() {
        let tls = TlsConfig { system_roots: false, ..Default::default() };
        assert!(client_config(&tls, true).is_err());
        assert!(client_config(&tls, false).is_ok());
    }

    #[test]
    fn insecure_mode_builds_without_roots() {
        let tls = TlsConfig { system_roots: false, insecure_skip_verify: true, ..Default::default() };
        assert!(client_config(&tls, true).is_ok());
    }
}
