//! The API client: gRPC over TLS 1.3 with a client certificate, and the
//! translation of TLS, network and gRPC failures into sentences a person
//! understands.
//!
//! Why the translation digs: with TLS 1.3 the client finishes its handshake
//! before the server has looked at the client certificate, so a rejected
//! certificate does not fail `connect`; it fails the first RPC, and tonic
//! reports it as an opaque "transport error". The rustls alert the node sent
//! (`UnknownCA`, `CertificateExpired`, ...) is buried in the error's source
//! chain, inside an `io::Error` (whose `source()` skips the wrapped error, so
//! it has to be unwrapped by hand).

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use matic_proto::v1::machine_service_client::MachineServiceClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

/// HTTP/2 receive windows: large enough that a 256 KiB-chunk stream never
/// stalls on flow control.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// Default time allowed for TCP connect plus TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The generated client over our TLS channel.
pub type Client = MachineServiceClient<Channel>;

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

    fn server_name(&self) -> Result<ServerName<'static>, ClientError> {
        ServerName::try_from(self.host.clone()).map_err(|_| ClientError::BadAddress(self.addr()))
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Options {
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// An open connection to one node.
#[derive(Clone)]
pub struct Connection {
    pub target: Target,
    pub client: Client,
}

impl Connection {
    /// Turn a failed RPC into a sentence; `rpc` names the call ("reboot").
    pub fn explain(&self, status: &Status) -> ClientError {
        explain_status(status, &self.target.addr())
    }
}

/// A client for `target` (`host[:port]`, port 50051 by default).
///
/// The channel is lazy: this only checks the address and the credentials.
/// The first call connects (TCP, then a TLS 1.3 handshake that checks the
/// server certificate against the CA and the host name or IP, then waits
/// for the node's verdict on our certificate) and any failure there, such as
/// an unreachable node or a rejected certificate, is that call's error:
/// turn it into a sentence with [`Connection::explain`]. (With TLS 1.3 a
/// rejected client certificate can only be noticed after the handshake
/// anyway; this way every kind of failure shows up in one place.)
pub async fn connect(
    target: &str,
    creds: &Credentials,
    opts: &Options,
) -> Result<Connection, ClientError> {
    let target = Target::parse(target)?;
    target.server_name()?;
    let tls = Arc::new(creds.tls_config()?);
    let connector = TlsTcpConnector {
        target: target.clone(),
        tls,
        timeout: opts.connect_timeout,
    };
    // The scheme is http because TLS is done by our connector, not by tonic.
    let uri = format!("http://{}", target.addr());
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|_| ClientError::BadAddress(target.addr()))?
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .tcp_nodelay(true);
    let channel = endpoint.connect_with_connector_lazy(connector);
    Ok(Connection {
        target,
        client: MachineServiceClient::new(channel)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20),
    })
}

/// tonic connector: TCP connect + TLS handshake, failing with a
/// [`ClientError`] that [`explain_error`] finds again in the chain.
#[derive(Clone)]
struct TlsTcpConnector {
    target: Target,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

type TlsIo = TokioIo<Primed>;

/// How long the connector waits for the node's first bytes after the
/// handshake (see [`Primed`]). An HTTP/2 server sends its SETTINGS at once;
/// if a node stays quiet we carry on without the early verdict.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(3);

/// A TLS stream whose first plaintext bytes were already read by the
/// connector and are replayed before anything else.
///
/// Why: in TLS 1.3 the node judges our certificate only after our side of the
/// handshake is done. Waiting for its first bytes (its HTTP/2 SETTINGS, or a
/// TLS alert) before sending anything turns a rejection into a clean,
/// well-reported connect error. Sending the HTTP/2 preface first would leave
/// unread data at the node when it closes, so its kernel sends a RST that can
/// destroy the alert, and the call fails as "operation was canceled".
pub struct Primed {
    first: Vec<u8>,
    pos: usize,
    inner: tokio_rustls::client::TlsStream<TcpStream>,
}

impl tokio::io::AsyncRead for Primed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.first.len() {
            let n = (self.first.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.first[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Primed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Read the node's first bytes after the handshake: data means it accepted
/// us; an alert or a close means it did not.
async fn prime(
    mut tls: tokio_rustls::client::TlsStream<TcpStream>,
    addr: &str,
) -> Result<Primed, ClientError> {
    use tokio::io::AsyncReadExt;
    let mut first = vec![0u8; 16 * 1024];
    match tokio::time::timeout(FIRST_BYTES_WAIT, tls.read(&mut first)).await {
        Ok(Ok(0)) => {
            return Err(ClientError::ClosedAfterHandshake(
                "it closed the connection without a word".into(),
            ));
        }
        Ok(Ok(n)) => first.truncate(n),
        Ok(Err(e)) => return Err(explain_error(&e, addr, true)),
        Err(_) => first.clear(),
    }
    Ok(Primed {
        first,
        pos: 0,
        inner: tls,
    })
}

impl tower::Service<Uri> for TlsTcpConnector {
    type Response = TlsIo;
    type Error = ClientError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, ClientError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr = this.target.addr();
            let name = this.target.server_name()?;
            let work = async {
                let tcp = TcpStream::connect((this.target.host.as_str(), this.target.port))
                    .await
                    .map_err(|e| unreachable(&addr, &e))?;
                let _ = tcp.set_nodelay(true);
                let tls = TlsConnector::from(this.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| explain_error(&e, &addr, false))?;
                prime(tls, &addr).await
            };
            match tokio::time::timeout(this.timeout, work).await {
                Ok(r) => r.map(TokioIo::new),
                Err(_) => Err(ClientError::Unreachable {
                    addr,
                    reason: format!("timed out after {} s", this.timeout.as_secs()),
                }),
            }
        })
    }
}

fn unreachable(addr: &str, e: &std::io::Error) -> ClientError {
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
