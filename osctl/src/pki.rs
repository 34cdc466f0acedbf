//! The API's PKI: a CA, the node's server certificate and role-carrying client
//! certificates, generated with rcgen (ring).
//!
//! Every certificate gets explicit validity (backdated one hour for clock skew)
//! and an explicit distinguished name (CN + O); rcgen's defaults (valid
//! 1975–4096, CN "rcgen self signed cert") are never used. Client roles are the
//! Subject Organization values (`os:admin`, `os:operator`, `os:reader`), as
//! Talos does.
//!
//! [`CertSpec`] exposes every knob on purpose, so tests can build the bad
//! certificates the agent must reject: expired, serverAuth-only, without any
//! EKU extension, or from another CA.
//!
//! Must never: write a private key readable by others (even for an
//! instant), replace a CA that `gen-certs` finds in its directory, or issue
//! a certificate without an explicit validity and name.
//!
//! About 450 lines of non-test code in one file on purpose: it is one
//! concept (issuing certificates), and the spec, the CA applying it and the
//! files `gen-certs` writes are read together when a certificate is wrong.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// How far `not_before` is backdated, so a node whose clock is a little behind
/// still accepts a certificate issued just now.
pub const CLOCK_SKEW: Duration = Duration::hours(1);
/// Lifetime of the CA.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// Lifetime of the server certificate (as long as the CA: the node cannot be
/// reached to renew it once it expires).
pub const SERVER_VALIDITY: Duration = Duration::days(3650);
/// Lifetime of client certificates.
pub const CLIENT_VALIDITY: Duration = Duration::days(365);

/// Errors of the PKI module; each names the certificate or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid subject alternative name {name:?}: {source}")]
    San {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable CA: {source}")]
    LoadCa {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("unknown role {0:?}: expected os:admin, os:operator or os:reader")]
    UnknownRole(String),
}

/// An API role, carried as a Subject Organization value of a client
/// certificate (the contract's, shared with the agent).
pub use matic_contract::role::Role;

/// Parses a role given on the command line (`os:admin` or `admin`).
pub fn parse_role(s: &str) -> Result<Role, PkiError> {
    s.parse().map_err(|_| PkiError::UnknownRole(s.to_string()))
}

/// Extended key usages a [`CertSpec`] can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eku {
    ServerAuth,
    ClientAuth,
}

/// Everything that goes into one certificate. Build one with [`CertSpec::ca`],
/// [`CertSpec::server`] or [`CertSpec::client`], then adjust it with the
/// builder methods (tests use them to make deliberately bad certificates).
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub common_name: String,
    /// Subject Organization values (the roles, for client certificates).
    pub organizations: Vec<String>,
    /// IP addresses or DNS names; strings that parse as IPs become IP SANs.
    pub sans: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Empty means no extended key usage extension at all.
    pub ekus: Vec<Eku>,
    pub is_ca: bool,
}

impl CertSpec {
    fn base(common_name: &str, validity: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        CertSpec {
            common_name: common_name.to_string(),
            organizations: Vec::new(),
            sans: Vec::new(),
            not_before: now - CLOCK_SKEW,
            not_after: now + validity,
            ekus: Vec::new(),
            is_ca: false,
        }
    }

    /// A CA valid for 10 years, Organization "MaticOS".
    pub fn ca(common_name: &str) -> Self {
        let mut s = Self::base(common_name, CA_VALIDITY);
        s.organizations = vec!["MaticOS".into()];
        s.is_ca = true;
        s
    }

    /// A server certificate for the given IP/DNS names, serverAuth only.
    pub fn server(common_name: &str, sans: &[String]) -> Self {
        let mut s = Self::base(common_name, SERVER_VALIDITY);
        s.organizations = vec!["MaticOS".into()];
        s.sans = sans.to_vec();
        s.ekus = vec![Eku::ServerAuth];
        s
    }

    /// A client certificate carrying `role`, clientAuth only, valid for 1 year.
    pub fn client(common_name: &str, role: Role) -> Self {
        let mut s = Self::base(common_name, CLIENT_VALIDITY);
        s.organizations = vec![role.org().into()];
        s.ekus = vec![Eku::ClientAuth];
        s
    }

    /// Set the validity window explicitly.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Make the certificate expired: valid from 2 days ago until yesterday.
    pub fn expired(self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.validity(now - Duration::days(2), now - Duration::days(1))
    }

    /// Replace the extended key usages; an empty list omits the extension.
    pub fn ekus(mut self, ekus: &[Eku]) -> Self {
        self.ekus = ekus.to_vec();
        self
    }

    /// Omit the extended key usage extension altogether.
    pub fn no_eku(self) -> Self {
        self.ekus(&[])
    }

    /// Replace the Subject Organization values.
    pub fn organizations(mut self, orgs: &[&str]) -> Self {
        self.organizations = orgs.iter().map(|o| o.to_string()).collect();
        self
    }

    /// Replace the subject alternative names.
    pub fn sans(mut self, sans: &[String]) -> Self {
        self.sans = sans.to_vec();
        self
    }

    fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut p = CertificateParams::default();
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.as_str());
        for o in &self.organizations {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        p.distinguished_name = dn;
        for name in &self.sans {
            let san = match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    SanType::DnsName(name.clone().try_into().map_err(|source| PkiError::San {
                        name: name.clone(),
                        source,
                    })?)
                }
            };
            p.subject_alt_names.push(san);
        }
        if self.is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.use_authority_key_identifier_extension = true;
        }
        p.extended_key_usages = self
            .ekus
            .iter()
            .map(|e| match e {
                Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            })
            .collect();
        Ok(p)
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl CertifiedKey {
    /// Write `<stem>.crt` (0644) and `<stem>.key` (0600) into `dir`; returns
    /// both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let crt = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write_file(&crt, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&key, self.key_pem.as_bytes(), 0o600)?;
        Ok((crt, key))
    }
}

/// A CA able to issue certificates.
pub struct Ca {
    /// The CA's own certificate and key.
    pub cert: CertifiedKey,
    issuer: Issuer<'static, KeyPair>,
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_string(),
        source,
    }
}

impl Ca {
    /// A fresh CA with the default spec (10 years).
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        Self::generate_with(&CertSpec::ca(common_name))
    }

    /// A fresh self-signed CA from `spec` (`spec.is_ca` is forced on).
    pub fn generate_with(spec: &CertSpec) -> Result<Ca, PkiError> {
        let mut spec = spec.clone();
        spec.is_ca = true;
        let what = format!("CA {:?}", spec.common_name);
        let key = KeyPair::generate().map_err(gen_err(&what))?;
        let params = spec.params()?;
        let cert = params.self_signed(&key).map_err(gen_err(&what))?;
        Ok(Ca {
            cert: CertifiedKey {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                cert_der: cert.der().to_vec(),
            },
            issuer: Issuer::new(params, key),
        })
    }

    /// Load an existing CA from its PEM certificate and key files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Ca, PkiError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|source| PkiError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|source| PkiError::LoadCa {
            path: key_path.to_path_buf(),
            source,
        })?;
        let load_err = |source| PkiError::LoadCa {
            path: cert_path.to_path_buf(),
            source,
        };
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(load_err)?;
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .map_err(|_| load_err(rcgen::Error::CouldNotParseCertificate))?;
        Ok(Ca {
            cert: CertifiedKey {
                cert_pem,
                key_pem,
                cert_der: der,
            },
            issuer,
        })
    }

    /// Issue a certificate for `spec`, with a fresh key, signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<CertifiedKey, PkiError> {
        let what = format!("certificate {:?}", spec.common_name);
        let key = KeyPair::generate().map_err(gen_err(&what))?;
        let params = spec.params()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err(&what))?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }

    /// The node's server certificate for the given IP/DNS names.
    pub fn server_cert(&self, sans: &[String]) -> Result<CertifiedKey, PkiError> {
        let cn = sans.first().map(String::as_str).unwrap_or("matic-node");
        self.issue(&CertSpec::server(cn, sans))
    }

    /// A client certificate named `name` carrying `role`.
    pub fn client_cert(&self, name: &str, role: Role) -> Result<CertifiedKey, PkiError> {
        self.issue(&CertSpec::client(name, role))
    }
}

/// Write `data` to `path` with `mode`, creating it with that mode from the
/// start (a key is never readable by others, not even for an instant), and
/// fixing the mode of a file that already existed.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

/// 8 hex digits from the clock and pid, to tell CAs apart by name.
fn unique_tag() -> String {
    use sha2::{Digest, Sha256};
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let h = Sha256::digest(format!("{now}-{}", std::process::id()));
    h[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// What `gen-certs` wrote.
#[derive(Debug, Clone)]
pub struct GeneratedFiles {
    pub dir: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
}

/// `osctl gen-certs`: write `ca.*`, `server.*`, `admin.*` and one pair per
/// extra `(name, role)` into `out` (created if missing). The CA is generated
/// fresh unless `out` already holds `ca.crt` and `ca.key`, which are then
/// reused so more client certificates can be added later.
pub fn gen_certs(
    out: &Path,
    sans: &[String],
    extra: &[(String, Role)],
) -> Result<GeneratedFiles, PkiError> {
    fs::create_dir_all(out).map_err(|source| PkiError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    let (ca_crt, ca_key) = (out.join("ca.crt"), out.join("ca.key"));
    let ca = if ca_crt.exists() && ca_key.exists() {
        Ca::load(&ca_crt, &ca_key)?
    } else {
        // A unique CA name: two CAs with one name make verifiers report a
        // bad signature instead of an unknown issuer.
        let ca = Ca::generate(&format!("MaticOS CA {}", unique_tag()))?;
        ca.cert.write(out, "ca")?;
        files.extend([ca_crt, ca_key]);
        ca
    };
    let server = ca.server_cert(sans)?;
    let (c, k) = server.write(out, "server")?;
    files.extend([c, k]);
    let mut clients = vec![("admin".to_string(), Role::Admin)];
    clients.extend(extra.iter().cloned());
    for (name, role) in &clients {
        let (c, k) = ca.client_cert(name, *role)?.write(out, name)?;
        files.extend([c, k]);
    }
    Ok(GeneratedFiles {
        dir: out.to_path_buf(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).expect("parse").1
    }

    fn orgs(c: &X509Certificate<'_>) -> Vec<String> {
        c.subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_string())
            .collect()
    }

    fn cn(c: &X509Certificate<'_>) -> String {
        c.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn days(c: &X509Certificate<'_>) -> i64 {
        let v = c.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86400
    }

    #[test]
    fn ca_is_a_ten_year_ca_with_explicit_name() {
        let ca = Ca::generate("Test CA").unwrap();
        let c = parse(&ca.cert.cert_der);
        assert!(c.is_ca());
        assert_eq!(cn(&c), "Test CA");
        assert_eq!(orgs(&c), ["MaticOS"]);
        assert_eq!(c.subject(), c.issuer());
        // 10 years plus the 1 h backdating rounds down to 3650 days.
        assert_eq!(days(&c), 3650);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let nb = c.validity().not_before.timestamp();
        assert!((now - 3600 - nb).abs() < 60, "not_before backdated by 1 h");
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
    }

    #[test]
    fn server_cert_has_ip_and_dns_sans_and_server_auth_only() {
        let ca = Ca::generate("Test CA").unwrap();
        let s = ca
            .server_cert(&["10.0.2.15".into(), "node1.example".into()])
            .unwrap();
        let c = parse(&s.cert_der);
        assert!(!c.is_ca());
        assert_eq!(cn(&c), "10.0.2.15");
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let san = c.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::IPAddress(b) => format!("ip:{b:?}"),
                GeneralName::DNSName(d) => format!("dns:{d}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["ip:[10, 0, 2, 15]", "dns:node1.example"]);
        assert_eq!(c.issuer(), parse(&ca.cert.cert_der).subject());
    }

    #[test]
    fn client_cert_carries_role_client_auth_and_one_year() {
        let ca = Ca::generate("Test CA").unwrap();
        for role in [Role::Admin, Role::Operator, Role::Reader] {
            let k = ca.client_cert("alice", role).unwrap();
            let c = parse(&k.cert_der);
            assert_eq!(cn(&c), "alice");
            assert_eq!(orgs(&c), [role.org()]);
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            assert_eq!(days(&c), 365);
        }
    }

    #[test]
    fn bad_certificates_for_negative_tests() {
        let ca = Ca::generate("Test CA").unwrap();
        let expired = ca
            .issue(&CertSpec::client("old", Role::Admin).expired())
            .unwrap();
        let c = parse(&expired.cert_der);
        assert!(c.validity().not_after.timestamp() < OffsetDateTime::now_utc().unix_timestamp());

        let no_eku = ca
            .issue(&CertSpec::client("x", Role::Admin).no_eku())
            .unwrap();
        assert!(
            parse(&no_eku.cert_der)
                .extended_key_usage()
                .unwrap()
                .is_none()
        );

        let server_only = ca
            .issue(&CertSpec::client("x", Role::Admin).ekus(&[Eku::ServerAuth]))
            .unwrap();
        let parsed = parse(&server_only.cert_der);
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);

        let other = Ca::generate("Other CA").unwrap();
        let foreign = other.client_cert("x", Role::Admin).unwrap();
        assert_ne!(
            parse(&foreign.cert_der).issuer(),
            parse(&ca.cert.cert_der).subject()
        );
    }

    #[test]
    fn roles_parse_long_and_short_forms() {
        assert_eq!("os:admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        assert_eq!("os:reader".parse::<Role>().unwrap(), Role::Reader);
        assert!("os:root".parse::<Role>().is_err());
        let e = parse_role("root").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown role \"root\": expected os:admin, os:operator or os:reader"
        );
        assert_eq!(parse_role("admin").unwrap(), Role::Admin);
    }

    #[test]
    fn gen_certs_writes_files_with_modes_and_reuses_the_ca() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::testutil::TempDir::new("pki");
        let out = dir.path().join("pki");
        let g = gen_certs(
            &out,
            &["127.0.0.1".into()],
            &[("ops".into(), Role::Operator)],
        )
        .unwrap();
        let names: Vec<_> = g
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "server.crt",
                "server.key",
                "admin.crt",
                "admin.key",
                "ops.crt",
                "ops.key"
            ]
        );
        for f in &g.files {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            let want = if f.extension().unwrap() == "key" {
                0o600
            } else {
                0o644
            };
            assert_eq!(mode, want, "{}", f.display());
        }
        // A second run keeps the CA and signs with it.
        let ca_before = fs::read(out.join("ca.crt")).unwrap();
        let g2 = gen_certs(&out, &["127.0.0.1".into()], &[]).unwrap();
        assert!(!g2.files.iter().any(|p| p.ends_with("ca.crt")));
        assert_eq!(fs::read(out.join("ca.crt")).unwrap(), ca_before);
        let ca_der = Ca::load(&out.join("ca.crt"), &out.join("ca.key"))
            .unwrap()
            .cert
            .cert_der;
        let admin_pem = fs::read(out.join("admin.crt")).unwrap();
        let admin: rustls_pki_types::CertificateDer<'static> =
            rustls_pki_types::pem::PemObject::from_pem_slice(&admin_pem).unwrap();
        let ca = parse(&ca_der);
        let admin = parse(&admin);
        assert_eq!(admin.issuer(), ca.subject());
        admin
            .verify_signature(Some(ca.public_key()))
            .expect("admin cert signed by the reused CA");
    }
}
