//! Everything that can go wrong talking to a node, as [`ClientError`], whose
//! `Display` is the sentence a person reads after the node's name
//! (docs/osctl.md, "Error messages", lists them).
//!
//! Owns the wording only; deciding which variant a failure is belongs to
//! [`super::explain`]. Must never lose the node's own message where the
//! variant carries one (permission denied, other statuses).

use tonic::Code;

/// Everything that can go wrong talking to a node, phrased for a person.
/// The CLI prints these after the node's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("invalid node address {0:?}")]
    BadAddress(String),
    #[error("invalid credentials: {0}")]
    Credentials(String),
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("server certificate not valid for {name}{presented}")]
    ServerNameMismatch { name: String, presented: String },
    #[error("server certificate is not signed by your CA (wrong context or CA file?)")]
    ServerUnknownCa,
    #[error("server certificate has expired or is not yet valid (check the clocks)")]
    ServerExpired,
    #[error("server certificate is not valid for a TLS server (it lacks the serverAuth usage)")]
    ServerPurpose,
    #[error("server certificate is not acceptable: {0}")]
    ServerCertificate(String),
    #[error("{addr} did not answer with TLS 1.3 (is it the MaticOS API?): {detail}")]
    NotTls { addr: String, detail: String },
    #[error("the node rejected your client certificate (issued by another CA?)")]
    ClientCertUnknownCa,
    #[error("the node rejected your client certificate: it has expired or is not yet valid")]
    ClientCertExpired,
    #[error(
        "the node rejected your client certificate: it is not allowed for client authentication (it needs the clientAuth extended key usage)"
    )]
    ClientCertPurpose,
    #[error("the node requires a client certificate and got none")]
    ClientCertRequired,
    #[error("the node rejected your client certificate ({0})")]
    ClientCertRejected(String),
    #[error(
        "the node closed the connection right after the TLS handshake: it probably rejected your client certificate ({0})"
    )]
    ClosedAfterHandshake(String),
    #[error("lost the connection to {addr} ({detail})")]
    ConnectionLost { addr: String, detail: String },
    #[error("TLS error with {addr}: {detail}")]
    Tls { addr: String, detail: String },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("the node did not accept your credentials: {0}")]
    Unauthenticated(String),
    #[error("{}", rpc_message(*.code, .message))]
    Rpc { code: Code, message: String },
    #[error("{0}")]
    Other(String),
}

/// A gRPC code in words ("FailedPrecondition" -> "failed precondition"),
/// then the node's message.
fn rpc_message(code: Code, message: &str) -> String {
    let words = format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_uppercase()).then_some(' ');
            sep.into_iter().chain(c.to_lowercase())
        })
        .collect::<String>();
    if message.is_empty() {
        words
    } else {
        format!("{words}: {message}")
    }
}
