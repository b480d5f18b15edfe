//! A throw-away certificate authority, generated at test time: a CA, a server certificate for
//! 127.0.0.1/localhost and a client certificate, as PEM files in a temporary directory.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct TestCa {
    _dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA that signed nothing: trusting it must fail verification.
    pub other_ca_cert: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl TestCa {
    pub fn generate() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };

        let ca_key = KeyPair::generate().unwrap();
        let params = ca_params("terad test CA");
        let ca_cert = write("ca.pem", params.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(params, ca_key);

        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, stem);
            params.extended_key_usages = vec![usage];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (
                write(&format!("{stem}.pem"), cert.pem()),
                write(&format!("{stem}-key.pem"), key.serialize_pem()),
            )
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        let (client_cert, client_key) = leaf(
            vec!["terad".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );

        let other_key = KeyPair::generate().unwrap();
        let other_ca_cert = write(
            "other-ca.pem",
            ca_params("unrelated CA")
                .self_signed(&other_key)
                .unwrap()
                .pem(),
        );

        TestCa {
            _dir: dir,
            ca_cert,
            server_cert,
            server_key,
            client_cert,
            client_key,
            other_ca_cert,
        }
    }
}
