//! The `ca` check: a CA file kubelet loads at start (the kubeconfig's
//! `certificate-authority`, the configuration's `clientCAFile`) exists and
//! holds PEM `CERTIFICATE` blocks, each a DER certificate that parses, as
//! kubelet's Go x509 loader needs.
//!
//! Must never: accept a file with no certificate in it.

use crate::Node;

/// Checks the CA file at `path` (absolute on the node); the number of
/// certificates in it.
pub fn check(node: &Node, path: &str) -> Result<usize, String> {
    let bytes = node.read(path)?;
    certificates(&bytes).map_err(|why| format!("{path}: {why}"))
}

/// The number of certificates in a PEM bundle; an error when there is none
/// or one is not a certificate.
pub fn certificates(bytes: &[u8]) -> Result<usize, String> {
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no PEM block".into());
    }
    for (i, b) in blocks.iter().enumerate() {
        if b.tag() != "CERTIFICATE" {
            return Err(format!("block {}: {:?}, not CERTIFICATE", i + 1, b.tag()));
        }
        x509_parser::parse_x509_certificate(b.contents())
            .map_err(|e| format!("block {}: not an X.509 certificate: {e}", i + 1))?;
    }
    Ok(blocks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real self-signed certificate (EC P-256, made with openssl for this
    /// test).
    pub const CERT: &str = include_str!("../testdata/ca.crt");

    #[test]
    fn certificates_parse() {
        assert_eq!(certificates(CERT.as_bytes()), Ok(1));
        let two = format!("{CERT}{CERT}");
        assert_eq!(certificates(two.as_bytes()), Ok(2));
    }

    #[test]
    fn not_certificates() {
        assert_eq!(certificates(b""), Err("no PEM block".into()));
        assert!(certificates(b"hello").is_err());
        // The shape the configuration's check accepts, but no certificate.
        let e = certificates(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.contains("not an X.509 certificate"), "{e}");
        let key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";
        let e = certificates(key.as_bytes()).unwrap_err();
        assert!(e.contains("\"PRIVATE KEY\", not CERTIFICATE"), "{e}");
        let e = certificates(format!("{CERT}{key}").as_bytes()).unwrap_err();
        assert!(e.starts_with("block 2"), "{e}");
    }

    #[test]
    fn the_file_must_exist() {
        let node = Node {
            root: std::env::temp_dir().join("standin-ca-none"),
        };
        let e = check(&node, "/etc/kubernetes/pki/ca.crt").unwrap_err();
        assert!(e.starts_with("/etc/kubernetes/pki/ca.crt: "), "{e}");
    }
}
