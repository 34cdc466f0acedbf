//! An in-process fake MaticOS API server for osctl's tests: a real rustls
//! TLS 1.3 acceptor with webpki client verification (so the client sees real
//! alerts) in front of a small scripted `MachineService`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use matic_proto::v1::machine_service_server::{MachineService, MachineServiceServer};
use matic_proto::v1::*;
use osctl::pki::CertifiedKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// What the fake server saw of installs.
#[derive(Default, Debug, Clone)]
pub struct Seen {
    pub install_bytes: u64,
    /// The header's manifest block, as sent.
    pub install_header: Option<Vec<u8>>,
    /// The chunks' SHA-256 and count equal the manifest's payload SHA-256
    /// and size.
    pub install_digest_ok: bool,
    /// SHA-256 of all the chunks.
    pub install_sha256: [u8; 32],
    pub restarted: Vec<String>,
    /// The `limit` of the last `Boots` call.
    pub boots_limit: Option<u32>,
    /// The `boot` of the last `Logs` and `Dmesg` calls.
    pub logs_boot: Option<i64>,
    pub dmesg_boot: Option<i64>,
    /// `ImageImport`: the header's size and the bytes that followed.
    pub import_size: Option<u64>,
    pub import_bytes: Vec<u8>,
}

/// The one image the fake lists and imports.
pub fn fake_image() -> Image {
    Image {
        name: "localhost/matic/workload:1".into(),
        digest: format!("sha256:{}", "e8".repeat(32)),
        size: 612_000,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

/// A slot's release as the fake reports it.
pub fn slot_release() -> SlotRelease {
    SlotRelease {
        version: "1.2.3".into(),
        security_counter: 4,
        key_id: "0123456789abcdef".into(),
        root_hash: "ab".repeat(32),
        payload_size: 8192,
    }
}

#[derive(Clone, Default)]
pub struct Fake {
    pub seen: Arc<Mutex<Seen>>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl MachineService for Fake {
    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            os_version: "1.2.3".into(),
            agent_version: "0.1.0".into(),
            kernel: "6.1.0-test".into(),
            slot: "A".into(),
            arch: "x86_64".into(),
            hostname: "fake".into(),
            release: Some(slot_release()),
            root_device: "/dev/dm-0".into(),
            root_verity: true,
        }))
    }
    async fn install(
        &self,
        req: Request<Streaming<InstallRequest>>,
    ) -> Result<Response<InstallResponse>, Status> {
        let mut s = req.into_inner();
        let header = match s.message().await?.and_then(|m| m.msg) {
            Some(install_request::Msg::Header(h)) => h,
            _ => return Err(Status::invalid_argument("first message must be a header")),
        };
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(m) = s.message().await? {
            match m.msg {
                Some(install_request::Msg::Chunk(c)) => {
                    if c.len() > 1 << 20 {
                        return Err(Status::invalid_argument("chunk too large"));
                    }
                    n += c.len() as u64;
                    hasher.update(&c);
                }
                _ => return Err(Status::invalid_argument("second header")),
            }
        }
        let sha: [u8; 32] = hasher.finalize().into();
        let mut seen = self.seen.lock().unwrap();
        seen.install_bytes = n;
        seen.install_sha256 = sha;
        seen.install_header = Some(header.manifest.clone());
        // The structure only: the fake trusts no key (the real agent's
        // checks are agent/tests' business).
        let m = matic_release::Manifest::parse_unverified(&header.manifest)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ok = sha == m.payload_sha256 && n == m.payload_size;
        seen.install_digest_ok = ok;
        if !ok {
            return Err(Status::data_loss("digest mismatch: slot B left unbootable"));
        }
        Ok(Response::new(InstallResponse {
            slot: "B".into(),
            version: m.version().into(),
            bytes_written: n,
            tries: 3,
        }))
    }
    async fn reboot(&self, _: Request<RebootRequest>) -> Result<Response<RebootResponse>, Status> {
        Err(Status::permission_denied(
            "reboot needs os:operator or os:admin",
        ))
    }
    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        Ok(Response::new(ShutdownResponse {}))
    }
    async fn rollback(
        &self,
        r: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        Ok(Response::new(RollbackResponse {
            slot: "B".into(),
            rebooting: !r.into_inner().no_reboot,
        }))
    }
    async fn boot_status(
        &self,
        _: Request<BootStatusRequest>,
    ) -> Result<Response<BootStatusResponse>, Status> {
        Ok(Response::new(BootStatusResponse {
            slots: vec![
                SlotStatus {
                    name: "A".into(),
                    priority: 2,
                    tries: 0,
                    successful: true,
                    bootable: true,
                    version: "1.2.3".into(),
                    running: true,
                    next_boot: true,
                    release: Some(slot_release()),
                    release_error: String::new(),
                },
                SlotStatus {
                    name: "B".into(),
                    priority: 0,
                    tries: 0,
                    successful: false,
                    bootable: false,
                    version: String::new(),
                    running: false,
                    next_boot: false,
                    release: None,
                    release_error: "no release manifest (an unsigned image?)".into(),
                },
            ],
            disk: "/dev/vda".into(),
        }))
    }
    async fn service_list(
        &self,
        _: Request<ServiceListRequest>,
    ) -> Result<Response<ServiceListResponse>, Status> {
        Ok(Response::new(ServiceListResponse {
            services: vec![
                Service {
                    name: "matic-agent".into(),
                    state: "running".into(),
                    pid: 123,
                    restarts: 0,
                    last_exit: "-".into(),
                    state_seconds: 65,
                },
                Service {
                    name: "containerd".into(),
                    state: "backoff".into(),
                    pid: 0,
                    restarts: 2,
                    last_exit: "exit:1".into(),
                    state_seconds: 3,
                },
            ],
        }))
    }
    async fn service_restart(
        &self,
        r: Request<ServiceRestartRequest>,
    ) -> Result<Response<ServiceRestartResponse>, Status> {
        let name = r.into_inner().name;
        if name != "containerd" {
            return Err(Status::not_found(format!("no service {name:?}")));
        }
        self.seen.lock().unwrap().restarted.push(name);
        Ok(Response::new(ServiceRestartResponse {}))
    }
    type LogsStream = Stream<LogsResponse>;
    async fn logs(&self, r: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let r = r.into_inner();
        self.seen.lock().unwrap().logs_boot = Some(r.boot);
        let text = if r.boot == 0 {
            "one\ntwo\nthree\n"
        } else {
            "0.000007 - starting\n5.120417 2026-11-29T20:25:39.120417Z serving\n"
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = if r.tail_lines == 0 {
            lines.len()
        } else {
            r.tail_lines as usize
        };
        let keep = lines[lines.len().saturating_sub(tail)..].join("\n") + "\n";
        // Split mid-line on purpose: the client must reassemble lines.
        let (a, b) = keep.split_at(keep.len() / 2);
        let items = vec![
            Ok(LogsResponse {
                data: a.as_bytes().to_vec(),
            }),
            Ok(LogsResponse {
                data: b.as_bytes().to_vec(),
            }),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
    type DmesgStream = Stream<DmesgResponse>;
    async fn dmesg(&self, r: Request<DmesgRequest>) -> Result<Response<Self::DmesgStream>, Status> {
        let boot = r.into_inner().boot;
        self.seen.lock().unwrap().dmesg_boot = Some(boot);
        if boot != 0 {
            // An earlier boot: its log, a damaged line, then a crash dump.
            let dump = Some(CrashDump {
                index: 1,
                reason: "Panic".into(),
            });
            let m = |usec, text: &str, dump: &Option<CrashDump>| KernelMessage {
                timestamp_usec: usec,
                message: text.into(),
                crash_dump: dump.clone(),
                ..Default::default()
            };
            let items = vec![
                Ok(DmesgResponse {
                    messages: vec![
                        m(0, "Linux version 6.1", &None),
                        KernelMessage {
                            no_timestamp: true,
                            ..m(0, "[    1.9", &None)
                        },
                    ],
                }),
                Ok(DmesgResponse {
                    messages: vec![
                        m(2_023_838, "sysrq: Trigger a crash", &dump),
                        m(
                            2_155_872,
                            "Kernel panic - not syncing: sysrq triggered crash",
                            &dump,
                        ),
                    ],
                }),
            ];
            return Ok(Response::new(Box::pin(tokio_stream::iter(items))));
        }
        let items = vec![Ok(DmesgResponse {
            messages: vec![KernelMessage {
                facility: 0,
                level: 6,
                sequence: 1,
                timestamp_usec: 1_500_000,
                message: "Linux version 6.1".into(),
                ..Default::default()
            }],
        })];
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
    async fn boots(&self, r: Request<BootsRequest>) -> Result<Response<BootsResponse>, Status> {
        self.seen.lock().unwrap().boots_limit = Some(r.into_inner().limit);
        Ok(Response::new(boots()))
    }
    async fn boot_timeline(
        &self,
        r: Request<BootTimelineRequest>,
    ) -> Result<Response<BootTimelineResponse>, Status> {
        let boot = r.into_inner().boot;
        if ![-1, 41].contains(&boot) {
            return Err(Status::not_found(format!(
                "no boot {boot} in the history (it holds boots 41 to 42, 2 in all)"
            )));
        }
        let m = |name: &str, at_ms| BootMark {
            name: name.into(),
            at_ms,
        };
        Ok(Response::new(BootTimelineResponse {
            number: 41,
            marks: vec![
                m("/init", 2210),
                m("stage2", 3210),
                m("agent-listening", 3520),
            ],
        }))
    }
    // The machine configuration is tested against the real agent
    // (cli_against_agent.rs); the fake does not serve it.
    async fn config_apply(
        &self,
        req: Request<ConfigApplyRequest>,
    ) -> Result<Response<ConfigApplyResponse>, Status> {
        // A trial that cut the caller off: its reply never comes.
        if req.get_ref().try_seconds > 0 {
            std::future::pending::<()>().await;
        }
        Err(Status::unimplemented("fake"))
    }
    async fn config_get(
        &self,
        _: Request<ConfigGetRequest>,
    ) -> Result<Response<ConfigGetResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn config_history(
        &self,
        _: Request<ConfigHistoryRequest>,
    ) -> Result<Response<ConfigHistoryResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn config_diff(
        &self,
        _: Request<ConfigDiffRequest>,
    ) -> Result<Response<ConfigDiffResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn config_confirm(
        &self,
        _: Request<ConfigConfirmRequest>,
    ) -> Result<Response<ConfigConfirmResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn config_rollback(
        &self,
        _: Request<ConfigRollbackRequest>,
    ) -> Result<Response<ConfigRollbackResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn time(&self, _: Request<TimeRequest>) -> Result<Response<TimeResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn image_list(
        &self,
        _: Request<ImageListRequest>,
    ) -> Result<Response<ImageListResponse>, Status> {
        Ok(Response::new(ImageListResponse {
            images: vec![fake_image()],
        }))
    }
    async fn image_import(
        &self,
        r: Request<Streaming<ImageImportRequest>>,
    ) -> Result<Response<ImageImportResponse>, Status> {
        let mut s = r.into_inner();
        while let Some(m) = s.message().await? {
            let mut seen = self.seen.lock().unwrap();
            match m.msg {
                Some(image_import_request::Msg::Header(h)) => seen.import_size = Some(h.size),
                Some(image_import_request::Msg::Chunk(c)) => {
                    seen.import_bytes.extend_from_slice(&c)
                }
                None => {}
            }
        }
        Ok(Response::new(ImageImportResponse {
            images: vec![fake_image()],
            blobs_written: 3,
        }))
    }
    async fn container_list(
        &self,
        _: Request<ContainerListRequest>,
    ) -> Result<Response<ContainerListResponse>, Status> {
        Ok(Response::new(ContainerListResponse {
            pods: vec![Pod {
                id: "p".repeat(64),
                name: "default/hello".into(),
                state: "READY".into(),
                created: 1_796_000_461_000_000_000,
            }],
            containers: vec![Container {
                id: "c".repeat(64),
                name: "three".into(),
                pod_id: "p".repeat(64),
                pod: "default/hello".into(),
                image: "localhost/matic/workload:1".into(),
                state: "EXITED".into(),
                started: 1_796_000_462_000_000_000,
                finished: 1_796_000_463_000_000_000,
                exit_code: 3,
            }],
        }))
    }
    type ContainerLogsStream = Stream<LogsResponse>;
    async fn container_logs(
        &self,
        r: Request<ContainerLogsRequest>,
    ) -> Result<Response<Self::ContainerLogsStream>, Status> {
        if !"c".repeat(64).starts_with(&r.into_inner().container) {
            return Err(Status::not_found("no container"));
        }
        let chunks = ["hello from ", "the pod\n"].map(|d| {
            Ok(LogsResponse {
                data: d.as_bytes().to_vec(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        Ok(Response::new(HealthResponse {
            healthy: false,
            checks: vec![
                HealthCheck {
                    name: "api".into(),
                    ok: true,
                    detail: "serving".into(),
                },
                HealthCheck {
                    name: "containerd".into(),
                    ok: false,
                    detail: "socket not answering".into(),
                },
            ],
        }))
    }
}

/// The history the fake keeps: boot 42 running, boot 41 panicked.
pub fn boots() -> BootsResponse {
    BootsResponse {
        held: 2,
        boots: vec![
            BootRecord {
                number: 42,
                slot: "A".into(),
                os_version: "1.2.3".into(),
                kernel: "6.1.0-test".into(),
                start_wall_unix_ms: Some(1_795_983_935_708),
                start_uptime_ms: Some(3_412),
                duration_ms: Some(65_000),
                ending: "running".into(),
                ending_kind: "running".into(),
                successful: true,
                running: true,
                damaged_records: 0,
            },
            BootRecord {
                number: 41,
                slot: "B".into(),
                os_version: "1.3.0".into(),
                kernel: "6.1.0-test".into(),
                start_wall_unix_ms: None,
                start_uptime_ms: Some(3_412),
                duration_ms: Some(2_155),
                ending: "kernel panic: sysrq triggered crash".into(),
                ending_kind: "kernel_panic".into(),
                successful: false,
                running: false,
                damaged_records: 0,
            },
        ],
    }
}

/// A TLS stream tonic can serve.
struct Io(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for Io {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}
impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}
impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Start the fake server with `server` as its certificate, trusting client
/// certificates from `client_ca_pem`. Returns its address.
pub async fn spawn(server: &CertifiedKey, client_ca_pem: &str, fake: Fake) -> SocketAddr {
    osctl::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Io, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(Io(tls))).await;
                }
            });
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MachineServiceServer::new(fake))
            .serve_with_incoming(ReceiverStream::new(rx)),
    );
    addr
}

/// A signed release for the tests: a key made in `dir/keys` and a
/// `hsqs`-headed file of `data_len` bytes signed (real veritysetup) into
/// `dir/NAME.release`. Returns the release's path.
pub fn release(
    dir: &std::path::Path,
    name: &str,
    version: &str,
    data_len: usize,
) -> std::path::PathBuf {
    let keys = dir.join("keys");
    if !keys.join("release.key").exists() {
        osctl::release::keys::generate(&keys).unwrap();
    }
    let sq = dir.join(format!("{name}.squashfs"));
    let mut data: Vec<u8> = (0..data_len as u32).map(|i| (i * 31 % 251) as u8).collect();
    data[..4].copy_from_slice(b"hsqs");
    std::fs::write(&sq, &data).unwrap();
    let out = dir.join(format!("{name}.release"));
    osctl::release::sign::sign(&osctl::release::sign::SignRequest {
        key: &keys.join("release.key"),
        version,
        counter: 1,
        salt: None,
        squashfs: &sq,
        out: &out,
    })
    .unwrap();
    out
}
