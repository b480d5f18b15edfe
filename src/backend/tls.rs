//! TLS client configuration for HTTP backends (Consul), with rustls and the ring provider that
//! the etcd client already uses, so the binary carries one TLS stack.
//!
//! Verification is on unless `--client-insecure` is given; then a warning is logged at start.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsSettings;

/// Builds the client configuration: trusted roots from `--client-ca-keys` (or the system's),
/// a client certificate when one is given.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;

    let builder = if settings.insecure {
        tracing::warn!(
            "TLS certificate verification is OFF (--client-insecure): anyone on the path can impersonate the backend"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &settings.ca {
            Some(ca) => {
                let certificates = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("cannot read CA {ca:?}: {e}"))?;
                for certificate in certificates {
                    let certificate =
                        certificate.map_err(|e| format!("cannot read CA {ca:?}: {e}"))?;
                    roots
                        .add(certificate)
                        .map_err(|e| format!("unusable CA certificate in {ca:?}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("no certificate found in CA file {ca:?}"));
                }
            }
            None => {
                // The system's trust store; unreadable entries are skipped, as curl does.
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        builder.with_root_certificates(roots)
    };

    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read client certificate {cert:?}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read client key {key:?}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("unusable client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A configuration that trusts nothing, for clients that only ever speak plain HTTP (reqwest
/// still wants one, as terad installs no process-wide TLS provider).
pub fn plain_config() -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// The verifier behind `--client-insecure`: accepts any certificate, still checks signatures so
/// the handshake is well-formed.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
