//! A context's PEM credentials and the TLS client configuration made of
//! them: TLS 1.3 only (ring), trusting only the context's CA, presenting the
//! client certificate, offering ALPN h2.
//!
//! Must never: trust the system's roots or any CA besides the context's,
//! offer TLS 1.2, or skip the server certificate check. Bad PEM is a
//! [`ClientError::Credentials`] naming which file's content is wrong.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ClientError;

/// PEM credentials of one context.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: Vec<u8>,
    pub crt_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl Credentials {
    /// Read the three PEM files.
    pub fn from_files(
        ca: &std::path::Path,
        crt: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, ClientError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| ClientError::Credentials(format!("cannot read {}: {e}", p.display())))
        };
        Ok(Credentials {
            ca_pem: read(ca)?,
            crt_pem: read(crt)?,
            key_pem: read(key)?,
        })
    }

    /// A TLS 1.3-only client config (ring) trusting only the CA, presenting
    /// the client certificate, offering ALPN h2.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ClientError::Credentials(format!("{what}: {e}"))
        };
        let mut roots = rustls::RootCertStore::empty();
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.ca_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("CA certificate is not valid PEM", &e))?;
        if cas.is_empty() {
            return Err(ClientError::Credentials(
                "the CA file holds no certificate".into(),
            ));
        }
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| bad("CA certificate is not usable", &e))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.crt_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("client certificate is not valid PEM", &e))?;
        if chain.is_empty() {
            return Err(ClientError::Credentials(
                "the client certificate file holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| bad("client key is not valid PEM", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad("TLS setup", &e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad("client certificate and key do not match", &e))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Role};

    fn creds(ca: &Ca, crt: &str, key: &str) -> Credentials {
        Credentials {
            ca_pem: ca.cert.cert_pem.clone().into_bytes(),
            crt_pem: crt.as_bytes().to_vec(),
            key_pem: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn good_credentials_make_a_tls13_h2_config() {
        let ca = Ca::generate("Test CA").unwrap();
        let a = ca.client_cert("a", Role::Admin).unwrap();
        let cfg = creds(&ca, &a.cert_pem, &a.key_pem).tls_config().unwrap();
        assert_eq!(cfg.alpn_protocols, [b"h2".to_vec()]);
    }

    // Moved from tests/tls_errors.rs (issue 11: one mTLS suite, against the
    // real agent; what needs no node is tested here).
    #[test]
    fn mismatched_key_is_a_credentials_error() {
        let ca = Ca::generate("Test CA").unwrap();
        let a = ca.client_cert("a", Role::Admin).unwrap();
        let b = ca.client_cert("b", Role::Admin).unwrap();
        let e = creds(&ca, &a.cert_pem, &b.key_pem)
            .tls_config()
            .unwrap_err();
        assert!(matches!(e, ClientError::Credentials(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("invalid credentials: client certificate and key do not match"),
            "{e}"
        );
    }
}
