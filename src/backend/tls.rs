//! TLS client configuration for HTTP backends (Consul), with rustls and the ring provider that
//! the etcd client already uses, so the binary carries one TLS stack.
//!
//! Verification is on unless `--client-insecure` is given; then a warning is logged at start.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsSettings;

/// Why the TLS client configuration cannot be built; the files are named.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS set-up: {0}")]
    Setup(#[source] rustls::Error),
    #[error("cannot read CA {path:?}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("unusable CA certificate in {path:?}: {source}")]
    UnusableCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("no certificate found in CA file {0:?}")]
    EmptyCa(PathBuf),
    #[error("cannot read client certificate {path:?}: {source}")]
    ReadCert {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("cannot read client key {path:?}: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("unusable client certificate: {0}")]
    UnusableCert(#[source] rustls::Error),
}

/// Builds the client configuration: trusted roots from `--client-ca-keys` (or the system's),
/// a client certificate when one is given.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;

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
                let read = |source| TlsError::ReadCa {
                    path: ca.clone(),
                    source,
                };
                for certificate in CertificateDer::pem_file_iter(ca).map_err(read)? {
                    roots.add(certificate.map_err(read)?).map_err(|source| {
                        TlsError::UnusableCa {
                            path: ca.clone(),
                            source,
                        }
                    })?;
                }
                if roots.is_empty() {
                    return Err(TlsError::EmptyCa(ca.clone()));
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
                .map_err(|source| TlsError::ReadCert {
                    path: cert.clone(),
                    source,
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::ReadKey {
                path: key.clone(),
                source,
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::UnusableCert)
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
