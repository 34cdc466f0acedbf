//! Connection set-up to one node: TCP, then a TLS 1.3 handshake with the
//! context's [`Credentials`], then HTTP/2 (tonic) with large receive
//! windows, wrapped as the generated [`Client`].
//!
//! Must never: send a byte of HTTP/2 before the node's verdict on our
//! certificate (see [`Primed`]: it is what makes rejections readable), wait
//! past the connect timeout, or turn an error into a sentence itself (that
//! is [`super::explain`]'s; the connector only hands over what it saw).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use matic_proto::v1::machine_service_client::MachineServiceClient;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::Status;
use tonic::transport::{Channel, Endpoint, Uri};

use super::credentials::Credentials;
use super::error::ClientError;
use super::explain::{explain_error, explain_status, unreachable};
use super::target::Target;

/// HTTP/2 receive windows: large enough that a 256 KiB-chunk stream never
/// stalls on flow control.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// Default time allowed for TCP connect plus TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The generated client over our TLS channel.
pub type Client = MachineServiceClient<Channel>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Role};
    use matic_proto::v1::VersionRequest;

    // Moved from tests/tls_errors.rs (issue 11: the one mTLS suite runs
    // against the real agent; a peer that is no TLS server needs no agent).
    #[tokio::test]
    async fn plaintext_server_is_not_tls() {
        let ca = Ca::generate("Test CA").unwrap();
        let admin = ca.client_cert("admin", Role::Admin).unwrap();
        let creds = Credentials {
            ca_pem: ca.cert.cert_pem.clone().into_bytes(),
            crt_pem: admin.cert_pem.into_bytes(),
            key_pem: admin.key_pem.into_bytes(),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let mut conn = connect(&addr.to_string(), &creds, &Options::default())
            .await
            .unwrap();
        let st = conn.client.version(VersionRequest {}).await.unwrap_err();
        let e = conn.explain(&st).to_string();
        assert!(
            e.starts_with(&format!(
                "{addr} did not answer with TLS 1.3 (is it the MaticOS API?): "
            )),
            "{e}"
        );
    }
}
