//! A node address as given on the command line or in a context (`host`,
//! `host:port`, `1.2.3.4`, `fd00::1`, `[fd00::1]:port`), split into the host
//! (for TCP and the server certificate check) and the port (50051 unless
//! given).
//!
//! Must never resolve names or touch the network: parsing only.

use std::net::IpAddr;

use rustls::pki_types::ServerName;

use super::error::ClientError;

/// A node address split into host (for TCP and the certificate check) and
/// port. Accepts `host`, `host:port`, `1.2.3.4`, `fd00::1`, `[fd00::1]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, ClientError> {
        let bad = || ClientError::BadAddress(s.to_string());
        let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
            match tail.strip_prefix(':') {
                Some(p) => (h, port(p)?),
                None if tail.is_empty() => (h, matic_proto::DEFAULT_PORT),
                None => return Err(bad()),
            }
        } else if s.parse::<IpAddr>().is_ok() {
            (s, matic_proto::DEFAULT_PORT)
        } else if let Some((h, p)) = s.rsplit_once(':') {
            (h, port(p)?)
        } else {
            (s, matic_proto::DEFAULT_PORT)
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, bracketing IPv6.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name the server certificate must be valid for.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, ClientError> {
        ServerName::try_from(self.host.clone()).map_err(|_| ClientError::BadAddress(self.addr()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_default_port_and_ipv6() {
        let t = |s: &str| Target::parse(s).unwrap();
        assert_eq!(t("10.0.2.15").addr(), "10.0.2.15:50051");
        assert_eq!(t("node1:7000").addr(), "node1:7000");
        assert_eq!(t("fd00::1").addr(), "[fd00::1]:50051");
        assert_eq!(t("[fd00::1]:9").addr(), "[fd00::1]:9");
        assert_eq!(t("[fd00::1]").host, "fd00::1");
        assert!(Target::parse("node:notaport").is_err());
        assert!(Target::parse(":50051").is_err());
        assert!(Target::parse("[::1]x").is_err());
    }
}
