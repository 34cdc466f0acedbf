//! TLS for the API: loads the node PKI, builds a TLS-1.3-only rustls server
//! config (ring provider) whose client verifier demands a certificate that
//! chains to the node CA *and* carries the clientAuth EKU, and turns accepted
//! TCP connections into authenticated streams tonic can serve, within the
//! handshake and connection caps of [`crate::limits`] and split into the
//! admin lane and the shared one. Never lets a connection past without a
//! verified certificate, and never blocks the accept loop.
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::auth::Peer;
use crate::limits::{
    ADMIN_CONNECTIONS, Budget, CONNECTIONS, HANDSHAKE_TIMEOUT, PENDING_HANDSHAKES, Permit,
    REFUSED_CONNECTIONS, REFUSED_LINGER, Throttled,
};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading PEM from {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCert { path: PathBuf },
    #[error("CA certificate from {path} rejected: {source}")]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("building the client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("server certificate/key from {dir}: {source}")]
    ServerCert { dir: PathBuf, source: rustls::Error },
}

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Builds the server config from `<pki-dir>/{ca.crt,server.crt,server.key}`.
pub fn server_config(pki_dir: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_path = pki_dir.join("ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(&ca_path)? {
        roots.add(ca).map_err(|source| TlsError::BadCa {
            path: ca_path.clone(),
            source,
        })?;
    }
    let webpki =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier = Arc::new(ClientAuthEkuVerifier { inner: webpki });
    let certs = read_certs(&pki_dir.join("server.crt"))?;
    let key_path = pki_dir.join("server.key");
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|source| TlsError::Pem {
        path: key_path.clone(),
        source,
    })?;
    let server_err = |source| TlsError::ServerCert {
        dir: pki_dir.to_owned(),
        source,
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(server_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(server_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// The webpki verifier plus the one check webpki leaves out: a client
/// certificate *without* an extended key usage extension is accepted by
/// webpki, but the API demands clientAuth explicitly. Failing here fails the
/// handshake, so the client gets a certificate alert rather than a session.
#[derive(Debug)]
pub struct ClientAuthEkuVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

/// Whether a DER certificate carries an EKU extension listing clientAuth.
pub fn has_client_auth_eku(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
}

impl ClientCertVerifier for ClientAuthEkuVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, validity and (when present) EKU purpose first: webpki's errors are the precise ones.
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !has_client_auth_eku(end_entity) {
            eprintln!(
                "matic-agent: rejecting client certificate without the clientAuth extended key usage"
            );
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An accepted, mutually authenticated connection and who is on the other
/// end. It holds its slot of the connection budget until tonic drops it.
pub struct AuthedConn {
    inner: TlsStream<BufReader<TcpStream>>,
    peer: Peer,
    _slot: Permit,
    /// A refused connection (over the cap) reads end of file when this
    /// fires, which ends it once its calls have had their answer.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Connected for AuthedConn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for AuthedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(linger) = self.linger.as_mut()
            && linger.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Socket read buffer under TLS. rustls asks for at most 4 KiB per read; a
/// buffer below it turns an image stream's ~130,000 `recv` calls per
/// 512 MiB into a few thousand (docs/api.md, "Install throughput").
const SOCKET_READ_BUFFER: usize = 256 << 10;

/// Authenticated connections, split by lane: `admin` (certificates with
/// `os:admin`) is served on the admin runtime, `shared` (everyone else) on
/// the main one.
pub struct Incoming {
    pub admin: ReceiverStream<Result<AuthedConn, std::io::Error>>,
    pub shared: ReceiverStream<Result<AuthedConn, std::io::Error>>,
}

/// Connections in their TLS handshake, oldest first. Each handshake task
/// holds the receiving end of its entry; a closed entry is one that ended.
#[derive(Default)]
struct Pending {
    queue: Mutex<VecDeque<oneshot::Sender<()>>>,
}

impl Pending {
    /// Registers a new handshake; past [`PENDING_HANDSHAKES`] live ones the
    /// oldest is told to give up. The receiver fires on eviction.
    fn admit(&self) -> (oneshot::Receiver<()>, usize) {
        let (tx, rx) = oneshot::channel();
        let mut evicted = 0;
        let Ok(mut q) = self.queue.lock() else {
            return (rx, 0);
        };
        q.retain(|t| !t.is_closed());
        while q.len() >= PENDING_HANDSHAKES {
            if let Some(old) = q.pop_front()
                && old.send(()).is_ok()
            {
                evicted += 1;
            }
        }
        q.push_back(tx);
        (rx, evicted)
    }
}

static HANDSHAKE_LOG: Throttled = Throttled::new();
static REFUSED_LOG: Throttled = Throttled::new();

/// Accepts TCP connections, runs each TLS handshake in its own task (at most
/// [`PENDING_HANDSHAKES`] at once, newest kept, each for at most
/// [`HANDSHAKE_TIMEOUT`]) and yields the authenticated ones that fit the
/// connection budget, on their lane. Failed and refused ones are logged
/// (throttled) and closed; nothing stops the accept loop.
pub fn incoming(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Incoming {
    let (admin_tx, admin_rx) = mpsc::channel(16);
    let (shared_tx, shared_rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let budget = Budget::new("connections", CONNECTIONS, ADMIN_CONNECTIONS);
    let refusals = Budget::new("refused connections", REFUSED_CONNECTIONS, 0);
    let pending = Arc::new(Pending::default());
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("matic-agent: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (evict, evicted) = pending.admit();
            if evicted > 0 {
                HANDSHAKE_LOG.log(format_args!(
                    "{PENDING_HANDSHAKES} TLS handshakes pending: closed the oldest"
                ));
            }
            let acceptor = acceptor.clone();
            let (admin_tx, shared_tx, budget, refusals) = (
                admin_tx.clone(),
                shared_tx.clone(),
                budget.clone(),
                refusals.clone(),
            );
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    acceptor.accept(BufReader::with_capacity(SOCKET_READ_BUFFER, tcp)),
                );
                let tls = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            HANDSHAKE_LOG.log(format_args!("TLS handshake with {addr} failed: {e}"));
                            return;
                        }
                        Err(_) => {
                            HANDSHAKE_LOG.log(format_args!("TLS handshake with {addr} timed out"));
                            return;
                        }
                    },
                    _ = evict => return,
                };
                let der = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let Some(der) = der else {
                    // Unreachable with a mandatory verifier; refuse rather than serve anonymously.
                    eprintln!("matic-agent: {addr} presented no client certificate");
                    return;
                };
                let mut peer = Peer::from_cert(addr, &der);
                let admin = peer.is_admin();
                let (slot, linger) = match budget.try_acquire(admin) {
                    Ok(p) => (p, None),
                    Err(e) => {
                        let most = e.limit + if admin { ADMIN_CONNECTIONS } else { 0 };
                        let role = if admin { "os:admin" } else { "other roles" };
                        // Answered with the reason for a moment, so the
                        // client can say why; past a few, simply closed.
                        let Ok(p) = refusals.try_acquire(false) else {
                            REFUSED_LOG.log(format_args!(
                                "closing the connection of {} ({addr}): {most} authenticated connections open, the most for {role}",
                                peer.name,
                            ));
                            return;
                        };
                        REFUSED_LOG.log(format_args!(
                            "refusing every call of {} ({addr}) with RESOURCE_EXHAUSTED: {most} authenticated connections open, the most for {role}",
                            peer.name,
                        ));
                        peer.refused = Some(e.to_string().into());
                        (p, Some(Box::pin(tokio::time::sleep(REFUSED_LINGER))))
                    }
                };
                // Refused connections never take the admin lane's time.
                let admin = admin && linger.is_none();
                let conn = AuthedConn {
                    inner: tls,
                    peer,
                    _slot: slot,
                    linger,
                };
                let _ = if admin {
                    admin_tx.send(Ok(conn)).await
                } else {
                    shared_tx.send(Ok(conn)).await
                };
            });
        }
    });
    Incoming {
        admin: ReceiverStream::new(admin_rx),
        shared: ReceiverStream::new(shared_rx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_client_auth() {
        assert!(!has_client_auth_eku(b"not a certificate"));
        assert!(!has_client_auth_eku(&[]));
    }
}
