//! Error explanation: which [`ClientError`] a failed call or connection
//! is. A gRPC status, an error's source chain (our connector's own
//! [`ClientError`], a rustls error, possibly inside an `io::Error`, an I/O
//! error kind) or the text h2 kept of a TLS alert each become one sentence.
//!
//! Why it digs: with TLS 1.3 the client finishes its handshake before the
//! server has looked at the client certificate, so a rejected certificate
//! does not fail `connect`; it fails the first RPC, and tonic reports it as
//! an opaque "transport error". The rustls alert the node sent (`UnknownCA`,
//! `CertificateExpired`, ...) is buried in the error's source chain, inside
//! an `io::Error` (whose `source()` skips the wrapped error, so it has to be
//! unwrapped by hand).
//!
//! Must never: open connections or make calls (it only reads errors), or
//! replace a message the node wrote for people (permission denied,
//! resource limits) with a guess of its own.

use std::error::Error as StdError;

use rustls::{AlertDescription, CertificateError};
use tonic::{Code, Status};

use super::error::ClientError;
use super::target::Target;

/// An I/O failure to reach `addr`, in words.
pub(crate) fn unreachable(addr: &str, e: &std::io::Error) -> ClientError {
    use std::io::ErrorKind::*;
    let reason = match e.kind() {
        ConnectionRefused => "connection refused".to_string(),
        TimedOut => "timed out".to_string(),
        HostUnreachable => "no route to host".to_string(),
        NetworkUnreachable => "network unreachable".to_string(),
        _ => e.to_string(),
    };
    ClientError::Unreachable {
        addr: addr.to_string(),
        reason,
    }
}

/// Translate a failed RPC's status. PERMISSION_DENIED and UNAUTHENTICATED
/// carry the agent's own message; transport failures are explained from the
/// error chain.
pub fn explain_status(status: &Status, addr: &str) -> ClientError {
    match status.code() {
        Code::PermissionDenied => {
            let m = status.message();
            let m = m
                .strip_prefix("permission denied: ")
                .or_else(|| m.strip_prefix("permission denied"))
                .unwrap_or(m);
            return ClientError::PermissionDenied(m.trim().to_string());
        }
        Code::Unauthenticated => {
            return ClientError::Unauthenticated(status.message().to_string());
        }
        // The agent's caps (log streams): its message says which and what to do.
        Code::ResourceExhausted if status.source().is_none() => {
            let m = status.message().trim();
            return ClientError::Other(if m.is_empty() {
                "the node is busy: it is at one of its limits; try again later".into()
            } else {
                format!("the node is busy: {m}")
            });
        }
        _ => {}
    }
    if let Some(src) = status.source() {
        let found = explain_error(src, addr, true);
        if !matches!(found, ClientError::Other(_)) {
            return found;
        }
    }
    // A status with a source was made on our side from a transport failure
    // (the node did not send it).
    match status.code() {
        Code::Cancelled | Code::Unavailable | Code::Unknown if status.source().is_some() => {
            ClientError::ConnectionLost {
                addr: addr.to_string(),
                detail: status.message().to_string(),
            }
        }
        code => ClientError::Rpc {
            code,
            message: status.message().to_string(),
        },
    }
}

/// Walk an error's source chain for something we can explain: our own
/// [`ClientError`] (from the connector), a rustls error (possibly inside an
/// `io::Error`), or an I/O error kind. `after_handshake` says whether the TLS
/// handshake had completed (then a dropped connection is most likely a
/// rejected client certificate).
pub fn explain_error(
    err: &(dyn StdError + 'static),
    addr: &str,
    after_handshake: bool,
) -> ClientError {
    let mut io_kind = None;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ClientError>() {
            return c.clone();
        }
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return explain_rustls(t, addr);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(c) = inner.downcast_ref::<ClientError>() {
                    return c.clone();
                }
                if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                    return explain_rustls(t, addr);
                }
            }
            io_kind.get_or_insert((io.kind(), io.to_string()));
        }
        // h2 keeps only the kind and text of an I/O error, so a TLS alert
        // received mid-connection survives only as rustls's message text.
        if let Some(a) = alert_from_text(&e.to_string()) {
            return explain_rustls(&rustls::Error::AlertReceived(a), addr);
        }
        cur = e.source();
    }
    if let Some((kind, text)) = io_kind {
        use std::io::ErrorKind::*;
        return match kind {
            ConnectionReset | BrokenPipe | UnexpectedEof if after_handshake => {
                ClientError::ClosedAfterHandshake(text)
            }
            _ => unreachable(addr, &std::io::Error::new(kind, text)),
        };
    }
    ClientError::Other(chain_text(err))
}

/// "a: b: c" of an error and its sources, without repeats.
pub fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn explain_rustls(e: &rustls::Error, addr: &str) -> ClientError {
    use rustls::Error as E;
    match e {
        // Our side refused the server's certificate (during connect).
        E::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName => ClientError::ServerNameMismatch {
                name: host_of(addr),
                presented: String::new(),
            },
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => ClientError::ServerNameMismatch {
                name: expected.to_str().into_owned(),
                presented: if presented.is_empty() {
                    String::new()
                } else {
                    let names: Vec<String> = presented.iter().map(|p| presented_name(p)).collect();
                    format!(" (it is for {})", names.join(", "))
                },
            },
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                ClientError::ServerUnknownCa
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => ClientError::ServerExpired,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                ClientError::ServerPurpose
            }
            other => ClientError::ServerCertificate(other.to_string()),
        },
        // The node refused us: the alert says why.
        E::AlertReceived(a) => match a {
            AlertDescription::UnknownCA | AlertDescription::DecryptError => {
                ClientError::ClientCertUnknownCa
            }
            AlertDescription::CertificateExpired => ClientError::ClientCertExpired,
            AlertDescription::UnsupportedCertificate => ClientError::ClientCertPurpose,
            AlertDescription::CertificateRequired => ClientError::ClientCertRequired,
            AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied => {
                ClientError::ClientCertRejected(format!("TLS alert: {}", alert_words(a)))
            }
            AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure => {
                ClientError::NotTls {
                    addr: addr.to_string(),
                    detail: format!("TLS alert: {}", alert_words(a)),
                }
            }
            other => ClientError::Tls {
                addr: addr.to_string(),
                detail: format!("TLS alert: {}", alert_words(other)),
            },
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => ClientError::NotTls {
            addr: addr.to_string(),
            detail: e.to_string(),
        },
        other => ClientError::Tls {
            addr: addr.to_string(),
            detail: other.to_string(),
        },
    }
}

/// The alert in rustls's "received fatal alert: UnknownCA" text.
fn alert_from_text(text: &str) -> Option<AlertDescription> {
    let (_, rest) = text.split_once("received fatal alert: ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    use AlertDescription as A;
    [
        A::UnknownCA,
        A::DecryptError,
        A::CertificateExpired,
        A::UnsupportedCertificate,
        A::CertificateRequired,
        A::BadCertificate,
        A::CertificateUnknown,
        A::CertificateRevoked,
        A::AccessDenied,
        A::ProtocolVersion,
        A::HandshakeFailure,
        A::InternalError,
        A::DecodeError,
        A::IllegalParameter,
        A::NoApplicationProtocol,
    ]
    .into_iter()
    .find(|a| format!("{a:?}") == name)
}

/// rustls presents SAN names as `IpAddress(10.0.2.15)` / `DnsName("x")`.
fn presented_name(s: &str) -> String {
    match s.split_once('(') {
        Some((_, rest)) => rest.trim_end_matches(')').trim_matches('"').to_string(),
        None => s.to_string(),
    }
}

fn alert_words(a: &AlertDescription) -> String {
    format!("{a:?}")
}

fn host_of(addr: &str) -> String {
    Target::parse(addr)
        .map(|t| t.host)
        .unwrap_or_else(|_| addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_read_from_text() {
        assert_eq!(
            alert_from_text("io error: received fatal alert: UnknownCA"),
            Some(AlertDescription::UnknownCA)
        );
        assert_eq!(alert_from_text("received fatal alert: Nonsense"), None);
        assert_eq!(presented_name("IpAddress(10.0.2.15)"), "10.0.2.15");
        assert_eq!(presented_name("DnsName(\"node1\")"), "node1");
    }

    #[test]
    fn permission_denied_passes_the_agents_message_through() {
        let s = Status::permission_denied("reboot needs os:operator or os:admin");
        assert_eq!(
            explain_status(&s, "n:50051").to_string(),
            "permission denied: reboot needs os:operator or os:admin"
        );
        // No doubled prefix when the agent already says it.
        let s = Status::permission_denied("permission denied: install needs os:admin");
        assert_eq!(
            explain_status(&s, "n:50051").to_string(),
            "permission denied: install needs os:admin"
        );
    }

    #[test]
    fn other_statuses_read_as_words() {
        let s = Status::failed_precondition("an install is already running");
        assert_eq!(
            explain_status(&s, "n:50051").to_string(),
            "failed precondition: an install is already running"
        );
        let s = Status::not_found("");
        assert_eq!(explain_status(&s, "n:50051").to_string(), "not found");
    }

    #[test]
    fn alerts_inside_io_errors_are_found() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired),
        );
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport error")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(io);
        assert_eq!(
            explain_error(&e, "n:50051", true),
            ClientError::ClientCertExpired
        );
        let reset = Wrap(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            explain_error(&reset, "n:50051", true),
            ClientError::ClosedAfterHandshake(_)
        ));
        let refused = Wrap(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            explain_error(&refused, "n:50051", false).to_string(),
            "cannot reach n:50051: connection refused"
        );
    }
}
