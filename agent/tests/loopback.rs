//! Loopback tests of the real `matic-agent` process over mutual TLS, driven
//! with osctl's client library: TLS rejections, the role table, Install
//! (success and every failure mode) against a disk-image file, Rollback and
//! BootStatus, marking the boot successful, services, logs, dmesg, and
//! malformed requests.
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use matic_boot::Slot;
use matic_proto::v1::install_request::Msg;
use matic_proto::v1::*;
use matic_tests::release::TestKey;
use osctl::client::{ClientError, Credentials, explain_status};

use osctl::pki::{Ca, CertSpec, Eku, Role};
use prost::bytes::{Buf, BufMut};
use tonic::Code;

fn assert_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) -> tonic::Status {
    let s = r.expect_err("call should fail");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().contains(needle),
        "message {:?} lacks {needle:?}",
        s.message()
    );
    s
}

// ---------------------------------------------------------------- TLS

fn client_tls(node: &Node, cert: Option<&osctl::pki::CertifiedKey>) -> rustls::ClientConfig {
    match cert {
        Some(c) => node.creds(c).tls_config().unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(rustls::pki_types::CertificateDer::from(
                    node.ca.cert.cert_der.clone(),
                ))
                .unwrap();
            let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            cfg.alpn_protocols = vec![b"h2".to_vec()];
            cfg
        }
    }
}

/// A tonic channel over our own TLS connector (for requests osctl would never send).
async fn raw_channel(node: &Node, cfg: rustls::ClientConfig) -> tonic::transport::Channel {
    let cfg = Arc::new(cfg);
    let addr = node.addr;
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let cfg = cfg.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

/// Handshake, then read: with TLS 1.3 the server's verdict on our
/// certificate arrives as an alert after the client's side is done. Returns
/// the alert and the sentence osctl makes of that error.
async fn tls_alert(
    node: &Node,
    cfg: rustls::ClientConfig,
) -> (rustls::AlertDescription, ClientError) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let err = tls
        .read(&mut buf)
        .await
        .expect_err("server must refuse the session");
    let explained = osctl::client::explain_error(&err, &node.addr.to_string(), true);
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(a)) => (*a, explained),
        other => panic!("expected a TLS alert, got {err} / {other:?}"),
    }
}

/// The first RPC over osctl's own connection to `target` (as `osctl
/// version` makes it): it must fail (TLS 1.3: connect succeeds, the first
/// RPC fails); the error osctl prints for it.
async fn first_rpc_error(target: &str, creds: &Credentials) -> ClientError {
    let mut conn = osctl::client::connect(target, creds, &osctl::client::Options::default())
        .await
        .expect("TLS 1.3: connect succeeds, the first RPC fails");
    let st = conn
        .client
        .version(VersionRequest {})
        .await
        .expect_err("the first RPC must fail");
    conn.explain(&st)
}

/// The one mTLS rejection suite (issue 11): the real agent's verdict on each
/// bad client certificate, seen three ways: the TLS alert it sends, the
/// error osctl's library makes of that alert, and the sentence of the first
/// RPC over osctl's own connection (what `osctl` prints after `NODE: `).
/// It replaced osctl/tests/tls_errors.rs (against a fake webpki server, not
/// the agent's verifier) and the mTLS test of osctl/tests/cli_against_agent.rs
/// (the same sentences through the binary, whose `NODE: sentence` line and
/// exit code osctl/tests/cli_fake.rs checks for any failed node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_negatives_are_rejected() {
    let node = Node::start("mtls", NodeOpts::default());
    let bad = |spec: CertSpec| node.ca.issue(&spec).unwrap();

    // Plaintext HTTP/2: no TLS record ever comes back.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(
            buf.is_empty() || buf[0] == 0x15,
            "plaintext got a non-alert answer: {buf:?}"
        );
        let plain =
            tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr)).unwrap();
        if let Ok(ch) = plain.connect().await {
            let r = matic_proto::v1::machine_service_client::MachineServiceClient::new(ch)
                .version(VersionRequest {})
                .await;
            assert!(r.is_err(), "plaintext gRPC must fail");
        }
    }
    // No client certificate.
    let (alert, e) = tls_alert(&node, client_tls(&node, None)).await;
    assert_eq!(
        (alert, &e),
        (
            rustls::AlertDescription::CertificateRequired,
            &ClientError::ClientCertRequired
        )
    );
    assert_eq!(
        e.to_string(),
        "the node requires a client certificate and got none"
    );
    let target = node.addr.to_string();

    // Another CA.
    let other = Ca::generate("other CA")
        .unwrap()
        .client_cert("mallory", Role::Admin)
        .unwrap();
    let (alert, e) = tls_alert(&node, client_tls(&node, Some(&other))).await;
    assert_eq!(
        (alert, &e),
        (
            rustls::AlertDescription::UnknownCA,
            &ClientError::ClientCertUnknownCa
        )
    );
    assert_eq!(
        e.to_string(),
        "the node rejected your client certificate (issued by another CA?)"
    );
    assert_eq!(first_rpc_error(&target, &node.creds(&other)).await, e);

    // Another CA with the same name (a different key): the signature does
    // not verify; still "another CA" to a person.
    let (_, ca) = x509_parser::parse_x509_certificate(&node.ca.cert.cert_der).unwrap();
    let ca_name = ca
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("the harness CA has a common name");
    let twin = Ca::generate(ca_name)
        .unwrap()
        .client_cert("mallory", Role::Admin)
        .unwrap();
    let (_, e) = tls_alert(&node, client_tls(&node, Some(&twin))).await;
    assert_eq!(e, ClientError::ClientCertUnknownCa);
    assert_eq!(first_rpc_error(&target, &node.creds(&twin)).await, e);

    // Expired.
    let expired = bad(CertSpec::client("old", Role::Admin).expired());
    let (alert, e) = tls_alert(&node, client_tls(&node, Some(&expired))).await;
    assert_eq!(
        (alert, e),
        (
            rustls::AlertDescription::CertificateExpired,
            ClientError::ClientCertExpired
        )
    );
    let e = first_rpc_error(&target, &node.creds(&expired)).await;
    assert_eq!(
        e.to_string(),
        "the node rejected your client certificate: it has expired or is not yet valid"
    );

    // serverAuth only (webpki refuses the purpose).
    let server_only = bad(CertSpec::client("srv", Role::Admin).ekus(&[Eku::ServerAuth]));
    let (alert, e) = tls_alert(&node, client_tls(&node, Some(&server_only))).await;
    assert_eq!(
        (alert, e),
        (
            rustls::AlertDescription::UnsupportedCertificate,
            ClientError::ClientCertPurpose
        )
    );
    let e = first_rpc_error(&target, &node.creds(&server_only)).await;
    assert_eq!(
        e.to_string(),
        "the node rejected your client certificate: it is not allowed for client authentication (it needs the clientAuth extended key usage)"
    );

    // No EKU at all (webpki would accept it; our verifier must not).
    let no_eku = bad(CertSpec::client("noeku", Role::Admin).no_eku());
    let (alert, e) = tls_alert(&node, client_tls(&node, Some(&no_eku))).await;
    assert_eq!(
        (alert, &e),
        (
            rustls::AlertDescription::UnsupportedCertificate,
            &ClientError::ClientCertPurpose
        )
    );
    assert_eq!(first_rpc_error(&target, &node.creds(&no_eku)).await, e);
    node.wait_log("without the clientAuth extended key usage");

    // And a good certificate still works after all that.
    let mut c = node.client(Role::Reader).await;
    let v = c.version(VersionRequest {}).await.unwrap().into_inner();
    assert_eq!(v.os_version, "1.2.3");
    assert_eq!(v.slot, "A");
    assert_eq!(v.agent_version, env!("CARGO_PKG_VERSION"));
}

/// The node's certificate as osctl judges it, against the real agent: a
/// name it is not valid for, a CA the client does not trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_problems_are_explained() {
    let node = Node::start("mtls-server", NodeOpts::default());
    let admin = node.cert(Role::Admin);
    // The node's certificate is for 127.0.0.1, not localhost.
    let host = format!("localhost:{}", node.addr.port());
    let e = first_rpc_error(&host, &node.creds(&admin)).await;
    assert_eq!(
        e.to_string(),
        "server certificate not valid for localhost (it is for 127.0.0.1)"
    );
    // The client's CA does not sign the node's certificate.
    let mut creds = node.creds(&admin);
    creds.ca_pem = Ca::generate("stranger CA")
        .unwrap()
        .cert
        .cert_pem
        .into_bytes();
    let e = first_rpc_error(&node.addr.to_string(), &creds).await;
    assert_eq!(
        e.to_string(),
        "server certificate is not signed by your CA (wrong context or CA file?)"
    );
}

// ---------------------------------------------------------------- roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_table_is_enforced() {
    let node = Node::start(
        "roles",
        NodeOpts {
            b_bootable: true,
            ..Default::default()
        },
    );
    let before = (node.attrs(Slot::A), node.attrs(Slot::B));
    let r = release(1, "x", A_COUNTER, 100_000);

    let mut reader = node.client(Role::Reader).await;
    let e = assert_code(
        install(&mut reader, release_msgs(&r, 65536)).await,
        Code::PermissionDenied,
        "Install needs os:admin",
    );
    assert_eq!(
        explain_status(&e, "n").to_string(),
        "permission denied: Install needs os:admin (your certificate has os:reader)"
    );
    let e = assert_code(
        reader.reboot(RebootRequest {}).await,
        Code::PermissionDenied,
        "Reboot needs os:operator or os:admin",
    );
    assert!(
        explain_status(&e, "n")
            .to_string()
            .starts_with("permission denied: Reboot needs os:operator or os:admin")
    );
    assert_code(
        reader.shutdown(ShutdownRequest {}).await,
        Code::PermissionDenied,
        "Shutdown needs",
    );
    assert_code(
        reader.rollback(RollbackRequest { no_reboot: true }).await,
        Code::PermissionDenied,
        "Rollback needs",
    );
    assert_code(
        reader
            .service_restart(ServiceRestartRequest {
                name: "containerd".into(),
            })
            .await,
        Code::PermissionDenied,
        "ServiceRestart needs os:admin",
    );
    // Reads are fine.
    reader.version(VersionRequest {}).await.unwrap();
    reader.boot_status(BootStatusRequest {}).await.unwrap();
    reader.service_list(ServiceListRequest {}).await.unwrap();
    node.expect_fifo_silent(Duration::from_millis(300));
    assert_eq!(
        (node.attrs(Slot::A), node.attrs(Slot::B)),
        before,
        "denied calls changed the GPT"
    );

    let mut op = node.client(Role::Operator).await;
    assert_code(
        install(&mut op, release_msgs(&r, 65536)).await,
        Code::PermissionDenied,
        "Install needs os:admin (your certificate has os:operator)",
    );
    assert_code(
        op.service_restart(ServiceRestartRequest {
            name: "containerd".into(),
        })
        .await,
        Code::PermissionDenied,
        "ServiceRestart needs os:admin",
    );
    assert_eq!((node.attrs(Slot::A), node.attrs(Slot::B)), before);
    op.reboot(RebootRequest {}).await.unwrap();
    node.expect_fifo("reboot");
    op.shutdown(ShutdownRequest {}).await.unwrap();
    node.expect_fifo("poweroff");

    // A certificate with no known role can call nothing.
    let nobody = node
        .ca
        .issue(&CertSpec::client("nobody", Role::Reader).organizations(&["acme"]))
        .unwrap();
    let mut c = node.client_with(&nobody).await.unwrap();
    assert_code(
        c.version(VersionRequest {}).await,
        Code::PermissionDenied,
        "your certificate has no role",
    );
}

// ---------------------------------------------------------------- install

/// Checks the state after an install refused once it had begun: target
/// invalidated and its manifest block gone (BootStatus shows no release),
/// running slot's bytes and attributes untouched.
fn assert_refused(node: &Node, a_digest: &[u8], a_attrs: matic_boot::SlotAttrs) {
    let b = node.attrs(Slot::B);
    assert_eq!(
        (b.priority(), b.tries(), b.successful()),
        (0, 0, false),
        "target must be invalidated: {b}"
    );
    assert!(!b.will_boot());
    assert_eq!(
        node.slot_digest(Slot::A),
        a_digest,
        "running slot A was modified"
    );
    assert_eq!(
        node.attrs(Slot::A),
        a_attrs,
        "running slot A's attributes changed"
    );
    assert!(
        node.slot_tail(Slot::B).iter().all(|&x| x == 0),
        "the target's old manifest block must be gone"
    );
}

/// Checks the state after an install refused before it began: both slots'
/// attributes and every byte of both slots as they were.
fn assert_untouched(node: &Node, before: &Before) {
    assert_eq!(
        (node.attrs(Slot::A), node.attrs(Slot::B)),
        (before.a_attrs, before.b_attrs),
        "a refused install changed the GPT"
    );
    assert_eq!(
        node.slot_digest(Slot::A),
        before.a_digest,
        "slot A was written"
    );
    assert_eq!(
        node.slot_digest(Slot::B),
        before.b_digest,
        "slot B was written"
    );
}

/// Both slots as they were before an install.
struct Before {
    a_attrs: matic_boot::SlotAttrs,
    b_attrs: matic_boot::SlotAttrs,
    a_digest: Vec<u8>,
    b_digest: Vec<u8>,
}

impl Before {
    fn of(node: &Node) -> Self {
        Self {
            a_attrs: node.attrs(Slot::A),
            b_attrs: node.attrs(Slot::B),
            a_digest: node.slot_digest(Slot::A),
            b_digest: node.slot_digest(Slot::B),
        }
    }
}

/// Marks the running slot A successful on the disk, as the agent does once
/// the boot is healthy (these nodes run with `--no-boot-ok`): installs are
/// refused while the running slot is on trial.
fn prove_a(node: &Node) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&node.disk)
        .unwrap();
    let mut d = matic_boot::Disk::open(f).unwrap();
    d.mark_successful(Slot::A).unwrap();
    d.write().unwrap();
}

/// A 3 MiB release (`seed`, version `v<seed>`, A's counter) installed into
/// B: its payload in B's first bytes, its manifest block in B's tail.
async fn good_install(
    node: &Node,
    c: &mut osctl::client::Client,
    seed: u64,
) -> matic_tests::release::Release {
    let rel = release(
        seed,
        &format!("v{seed}"),
        A_COUNTER,
        3 * MIB as usize + 12_345,
    );
    let r = install(c, release_msgs(&rel, 256 << 10)).await.unwrap();
    assert_eq!(
        (r.slot.as_str(), r.bytes_written, r.tries),
        ("B", rel.payload.len() as u64, 3)
    );
    let b = node.attrs(Slot::B);
    assert_eq!((b.priority(), b.tries(), b.successful()), (2, 3, false));
    assert!(
        node.slot_bytes(Slot::B, rel.payload.len()) == rel.payload,
        "slot B's bytes differ from the payload"
    );
    assert_eq!(node.slot_tail(Slot::B), rel.block);
    rel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_success_sets_slot_bits_bytes_and_manifest() {
    let node = Node::start("install-ok", NodeOpts::default());
    prove_a(&node);
    let a_digest = node.slot_digest(Slot::A);
    let mut c = node.client(Role::Admin).await;

    // Odd chunking: blocks split over tiny and uneven chunks.
    let rel = release(42, "2.0.0", A_COUNTER + 1, 2 * MIB as usize + 7);
    let p = &rel.payload;
    let mut msgs = vec![InstallRequest {
        msg: Some(Msg::Header(header_with(&rel.block))),
    }];
    for piece in [
        &p[..1],
        &p[1..3],
        &p[3..5000],
        &p[5000..4 * 4096 + 1],
        &p[4 * 4096 + 1..],
    ] {
        msgs.push(InstallRequest {
            msg: Some(Msg::Chunk(Bytes::copy_from_slice(piece))),
        });
    }
    let r = install(&mut c, msgs).await.unwrap();
    assert_eq!(
        r,
        InstallResponse {
            slot: "B".into(),
            version: "2.0.0".into(),
            bytes_written: p.len() as u64,
            tries: 3
        }
    );
    assert!(node.slot_bytes(Slot::B, p.len()) == *p);
    assert_eq!(node.slot_tail(Slot::B), rel.block);
    assert_eq!(node.slot_digest(Slot::A), a_digest);
    let (a, b) = (node.attrs(Slot::A), node.attrs(Slot::B));
    assert_eq!((b.priority(), b.tries(), b.successful()), (2, 3, false));
    assert_eq!(
        (a.priority(), a.tries(), a.successful()),
        (1, 2, true),
        "A stays the fallback at priority 1"
    );
    assert_eq!(node.open_disk().status().next, Some(Slot::B));

    let st = c
        .boot_status(BootStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.disk, node.disk.display().to_string());
    let sb = st.slots.iter().find(|s| s.name == "B").unwrap();
    assert_eq!(
        (
            sb.priority,
            sb.tries,
            sb.successful,
            sb.bootable,
            sb.version.as_str(),
            sb.running,
            sb.next_boot
        ),
        (2, 3, false, true, "2.0.0", false, true)
    );
    // The manifest, as BootStatus shows it.
    assert_eq!(
        sb.release,
        Some(SlotRelease {
            version: "2.0.0".into(),
            security_counter: A_COUNTER + 1,
            key_id: node_key().id.to_string(),
            root_hash: matic_release::hex::string(&rel.manifest.root_hash),
            payload_size: p.len() as u64,
        })
    );
    assert_eq!(sb.release_error, "");
    let sa = st.slots.iter().find(|s| s.name == "A").unwrap();
    assert_eq!(
        (sa.priority, sa.running, sa.next_boot, sa.version.as_str()),
        (1, true, false, "v1")
    );
    assert_eq!(
        sa.release.as_ref().map(|r| r.security_counter),
        Some(A_COUNTER)
    );

    // Version: the running slot's release.
    let v = c.version(VersionRequest {}).await.unwrap().into_inner();
    let vr = v.release.expect("the running slot's release");
    assert_eq!(
        (vr.version.as_str(), vr.security_counter),
        ("v1", A_COUNTER)
    );
    // This host's root is no MaticOS verity device, but it is mounted
    // from something.
    assert!(!v.root_verity);
    assert!(!v.root_device.is_empty(), "{:?}", v.root_device);

    // A second install over it works too (the lock was released), at the
    // same counter as the running slot.
    let rel = good_install(&node, &mut c, 7).await;
    let st = c
        .boot_status(BootStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.slots[1].version, "v7");
    assert_eq!(
        st.slots[1].release.as_ref().map(|r| r.root_hash.clone()),
        Some(matic_release::hex::string(&rel.manifest.root_hash))
    );
}

/// Every way a release can be refused before the target is touched: the
/// refusal's code and sentence, both slots' attributes and bytes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_releases_leave_both_slots_untouched() {
    let mut node = Node::start("install-untrusted", NodeOpts::default());
    prove_a(&node);
    let mut c = node.client(Role::Admin).await;
    // B holds a release, so "untouched" means something.
    good_install(&node, &mut c, 10).await;
    let before = Before::of(&node);

    let good = release(11, "3.0", A_COUNTER, MIB as usize);
    // A SquashFS image streamed as before signed releases: its first block
    // where the manifest goes.
    let mut squash = pattern(12, 64 << 10);
    squash[..4].copy_from_slice(b"hsqs");
    let stranger = release_by(
        &TestKey::from_seed(0x22),
        13,
        "3.0",
        A_COUNTER,
        MIB as usize,
    );
    let mut forged = good.block.clone();
    forged[16] ^= 0x40; // the security counter, after signing
    let old = release(14, "1.4", A_COUNTER - 2, MIB as usize);
    let huge = release(15, "4.0", A_COUNTER, SLOT_BYTES as usize - 60_000);
    let cases: Vec<(&str, Vec<InstallRequest>, Code, String)> = vec![
        (
            "unsigned image",
            install_msgs(header_with(&squash[..4096]), &squash, 16 << 10),
            Code::InvalidArgument,
            "not a signed release: no release manifest (an unsigned image?)".into(),
        ),
        (
            "no manifest",
            install_msgs(header_with(&[]), &good.payload, 256 << 10),
            Code::InvalidArgument,
            "not a signed release: the header carries 0 manifest bytes".into(),
        ),
        (
            "unknown key",
            release_msgs(&stranger, 256 << 10),
            Code::InvalidArgument,
            format!(
                "release refused: the manifest is signed by a key that is not trusted (key id {})",
                stranger.manifest.key_id
            ),
        ),
        (
            "bad signature",
            install_msgs(header_with(&forged), &good.payload, 256 << 10),
            Code::InvalidArgument,
            "release refused: the manifest's signature does not verify".into(),
        ),
        (
            "counter below the running slot's",
            release_msgs(&old, 256 << 10),
            Code::FailedPrecondition,
            format!(
                "release 1.4 has security counter {}, below the running slot's {A_COUNTER}; it would undo a security fix",
                A_COUNTER - 2
            ),
        ),
        (
            "payload larger than the slot",
            release_msgs(&huge, 1 << 20),
            Code::InvalidArgument,
            format!(
                "release 4.0 has a payload of {} bytes; slot B holds at most {}",
                huge.payload.len(),
                SLOT_BYTES - 65536
            ),
        ),
    ];
    for (what, msgs, code, needle) in cases {
        let e = install(&mut c, msgs).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(&needle), "{what}: {:?}", e.message());
        assert_untouched(&node, &before);
    }
    // No trusted key at all: every release refused, with the reason.
    std::fs::remove_dir_all(node.dir.join("release-keys")).unwrap();
    assert_code(
        install(&mut c, release_msgs(&good, 256 << 10)).await,
        Code::FailedPrecondition,
        "no release key is trusted",
    );
    assert_untouched(&node, &before);
    assert!(node.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_failures_leave_target_unbootable_and_running_slot_intact() {
    let mut node = Node::start("install-bad", NodeOpts::default());
    prove_a(&node);
    let a_digest = node.slot_digest(Slot::A);
    let mut c = node.client(Role::Admin).await;

    // Rollback to an empty B is refused before anything changes.
    assert_code(
        c.rollback(RollbackRequest { no_reboot: true }).await,
        Code::FailedPrecondition,
        "will not boot",
    );

    type MakeMsgs = Box<dyn Fn(&matic_tests::release::Release) -> Vec<InstallRequest>>;
    let flipped = |at: fn(usize) -> usize| -> MakeMsgs {
        Box::new(move |r| {
            let mut p = r.payload.clone();
            let i = at(p.len());
            p[i] ^= 0x01;
            install_msgs(header_with(&r.block), &p, 256 << 10)
        })
    };
    let cases: Vec<(&str, MakeMsgs, Code, &str)> = vec![
        (
            "a data byte flipped",
            flipped(|_| 4096 * 300 + 17),
            Code::InvalidArgument,
            "refused: data block 300 (payload byte 1228800) does not match its digest in the verity tree; slot B left unbootable",
        ),
        (
            "a tree byte flipped",
            flipped(|len| len - 4096 + 3),
            Code::InvalidArgument,
            "verity tree level 0",
        ),
        (
            "the last data byte flipped",
            flipped(|_| 3 * MIB as usize - 1),
            Code::InvalidArgument,
            "data block 767 ",
        ),
        (
            "truncated",
            Box::new(|r| {
                install_msgs(
                    header_with(&r.block),
                    &r.payload[..r.payload.len() - 1000],
                    256 << 10,
                )
            }),
            Code::InvalidArgument,
            "ended after",
        ),
        (
            "too long",
            Box::new(|r| {
                let mut p = r.payload.clone();
                p.push(0);
                install_msgs(header_with(&r.block), &p, 256 << 10)
            }),
            Code::InvalidArgument,
            "longer than the manifest's payload",
        ),
    ];
    for (i, (what, msgs, code, needle)) in cases.into_iter().enumerate() {
        good_install(&node, &mut c, 100 + i as u64).await;
        let a_attrs = node.attrs(Slot::A);
        let rel = release(200 + i as u64, "bad", A_COUNTER, 3 * MIB as usize);
        let e = install(&mut c, msgs(&rel)).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(needle), "{what}: {:?}", e.message());
        assert_refused(&node, &a_digest, a_attrs);
        let st = c
            .boot_status(BootStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.slots[1].release, None, "{what}");
        assert!(
            st.slots[1].release_error.starts_with("nothing installed"),
            "{what}: {:?}",
            st.slots[1].release_error
        );
    }

    // Client killed mid-stream: its runtime (and so its sockets) vanish.
    good_install(&node, &mut c, 300).await;
    let a_attrs = node.attrs(Slot::A);
    {
        // The client lives on its own thread and runtime; shutting that
        // runtime down drops its connection mid-stream, like a killed process.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let creds = node.creds(&node.cert(Role::Admin));
        let addr = node.addr.to_string();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let rel = release(301, "killed", A_COUNTER, 3 * MIB as usize);
            let first: Vec<InstallRequest> = install_msgs(
                header_with(&rel.block),
                &rel.payload[..MIB as usize],
                256 << 10,
            );
            let mut killed = rt
                .block_on(osctl::client::connect(
                    &addr,
                    &creds,
                    &osctl::client::Options::default(),
                ))
                .unwrap()
                .client;
            rt.spawn(async move {
                let s = futures::stream::iter(first).chain(futures::stream::pending());
                let _ = killed.install(s).await;
            });
            started_tx.send(()).unwrap();
            let _ = kill_rx.recv();
            rt.shutdown_background();
        });
        started_rx.recv().unwrap();
        node.wait_log("install: release killed ");
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_tx.send(()).unwrap();
        t.join().unwrap();
    }
    // How much arrived before the cut depends on scheduling; that it was refused does not.
    node.wait_log("install into slot B refused: install stream broke off after ");
    assert_refused(&node, &a_digest, a_attrs);

    // Concurrent installs: the second is refused while the first runs.
    good_install(&node, &mut c, 400).await;
    let a_attrs = node.attrs(Slot::A);
    let rel = release(401, "first", A_COUNTER, 3 * MIB as usize);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for m in install_msgs(
        header_with(&rel.block),
        &rel.payload[..MIB as usize],
        256 << 10,
    ) {
        tx.send(m).await.unwrap();
    }
    let mut c1 = node.client(Role::Admin).await;
    let first = tokio::spawn(async move {
        c1.install(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    node.wait_log("install: release first ");
    let other = release(402, "second", A_COUNTER, MIB as usize);
    assert_code(
        install(&mut c, release_msgs(&other, 256 << 10)).await,
        Code::FailedPrecondition,
        "another install is in progress",
    );
    drop(tx); // the first stream now ends early
    assert_code(
        first.await.unwrap(),
        Code::InvalidArgument,
        &format!(
            "ended after 1048576 of the manifest's {} payload bytes",
            rel.payload.len()
        ),
    );
    assert_refused(&node, &a_digest, a_attrs);

    // And after all of it, installs still work and the agent is alive.
    good_install(&node, &mut c, 500).await;
    assert_eq!(node.slot_digest(Slot::A), a_digest);
    assert!(node.alive());
}

// ---------------------------------------------------------------- boot-ok, rollback, boot status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_ok_waits_for_containerd_then_rollback() {
    let node = Node::start(
        "rollback",
        NodeOpts {
            b_bootable: true,
            boot_ok: true,
            ..Default::default()
        },
    );
    // containerd is in init's table but not answering: no boot-ok yet.
    node.expect_fifo_silent(Duration::from_millis(2500));
    assert!(!node.attrs(Slot::A).successful());
    node.wait_log("containerd: connecting to");
    let _containerd =
        std::os::unix::net::UnixListener::bind(node.dir.join("containerd.sock")).unwrap();
    node.expect_fifo("boot-ok");
    assert!(
        node.attrs(Slot::A).successful(),
        "GPT bit must be set before boot-ok is sent"
    );

    let mut op = node.client(Role::Operator).await;
    let st = op
        .boot_status(BootStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let view: Vec<_> = st
        .slots
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.priority,
                s.tries,
                s.successful,
                s.bootable,
                s.version.as_str(),
                s.running,
                s.next_boot,
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            ("A", 2, 2, true, true, "v1", true, true),
            ("B", 1, 0, true, true, "v0", false, false)
        ]
    );
    // Rollback is to a slot already installed: allowed whatever its
    // security counter (B's is below A's).
    let counters: Vec<_> = st
        .slots
        .iter()
        .map(|s| s.release.as_ref().map(|r| r.security_counter))
        .collect();
    assert_eq!(counters, vec![Some(A_COUNTER), Some(1)]);

    let r = op
        .rollback(RollbackRequest { no_reboot: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.slot.as_str(), r.rebooting), ("B", false));
    node.expect_fifo_silent(Duration::from_millis(400));
    let st = op
        .boot_status(BootStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let next: Vec<_> = st
        .slots
        .iter()
        .map(|s| (s.name.as_str(), s.priority, s.next_boot))
        .collect();
    assert_eq!(next, vec![("A", 1, false), ("B", 2, true)]);
    assert_eq!(node.open_disk().status().next, Some(Slot::B));

    let r = op
        .rollback(RollbackRequest { no_reboot: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.slot.as_str(), r.rebooting), ("B", true));
    node.expect_fifo("reboot");

    let h = op.health(HealthRequest {}).await.unwrap().into_inner();
    assert!(h.healthy, "{h:?}");
    assert!(h.checks.iter().any(|c| c.name == "containerd" && c.ok));
}

/// The agent tells init it serves (`listening`, which releases the held
/// containerd), once per start, and answers by then; while init still
/// holds containerd, the health check says so and boot-ok waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boottime_the_agent_tells_init_it_listens_and_health_shows_held() {
    let mut node = Node::start(
        "listening",
        NodeOpts {
            boot_ok: true,
            services: Some(
                "matic-agent running 123 0 - 5\ncontainerd held 0 0 - 0\nkubelet starting 0 0 - 0\n"
                    .into(),
            ),
            ..Default::default()
        },
    );
    node.expect_listening(1);
    let mut op = node.client(Role::Operator).await;
    let h = op.health(HealthRequest {}).await.unwrap().into_inner();
    let containerd = h.checks.iter().find(|c| c.name == "containerd");
    assert!(
        containerd.is_some_and(|c| !c.ok && c.detail.starts_with("held: init starts it")),
        "{h:?}"
    );
    assert!(!h.healthy);
    let l = op
        .service_list(ServiceListRequest {})
        .await
        .unwrap()
        .into_inner();
    let states: Vec<_> = l.services.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["running", "held", "starting"]);
    node.expect_fifo_silent(Duration::from_millis(2500));
    // Init started it: healthy, boot-ok.
    let services = node.dir.join("run/services");
    std::fs::write(
        &services,
        "# matic-init services v1\nmatic-agent running 123 0 - 5\ncontainerd running 200 0 - 2\nkubelet skipped 0 0 - 0\n",
    )
    .unwrap();
    let _containerd =
        std::os::unix::net::UnixListener::bind(node.dir.join("containerd.sock")).unwrap();
    node.expect_fifo("boot-ok");
    node.expect_listening(1);
    // A restarted agent says it again (init ignores it then).
    node.restart_agent();
    node.expect_listening(2);
}

// ---------------------------------------------------------------- services, logs, dmesg

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_list_and_restart() {
    let node = Node::start("services", NodeOpts::default());
    let mut c = node.client(Role::Admin).await;
    let l = c
        .service_list(ServiceListRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = l
        .services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.state.as_str(),
                s.pid,
                s.restarts,
                s.last_exit.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("matic-agent", "running", 123, 0, "-"),
            ("containerd", "backoff", 0, 2, "exit:1"),
            ("kubelet", "skipped", 0, 0, "-")
        ]
    );
    let now = {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::open("/proc/uptime").unwrap(), &mut s)
            .unwrap();
        s.split('.').next().unwrap().parse::<u64>().unwrap()
    };
    // containerd entered its state at boot second 0.
    assert!(
        l.services[1].state_seconds + 2 >= now && l.services[1].state_seconds <= now + 2,
        "{:?}",
        l.services[1]
    );

    c.service_restart(ServiceRestartRequest {
        name: "containerd".into(),
    })
    .await
    .unwrap();
    node.expect_fifo("restart containerd");
    assert_code(
        c.service_restart(ServiceRestartRequest {
            name: "sshd".into(),
        })
        .await,
        Code::NotFound,
        "no service named \"sshd\"",
    );
    assert_code(
        c.service_restart(ServiceRestartRequest {
            name: "../x".into(),
        })
        .await,
        Code::InvalidArgument,
        "invalid service name",
    );
    // Without the fault-injection feature the magic name is just an unknown service.
    #[cfg(not(feature = "fault-injection"))]
    assert_code(
        c.service_restart(ServiceRestartRequest {
            name: "fault:abort-agent".into(),
        })
        .await,
        Code::NotFound,
        "no service named",
    );
    node.expect_fifo_silent(Duration::from_millis(300));
}

async fn collect_until(s: &mut tonic::Streaming<LogsResponse>, got: &mut String, want: &str) {
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        while !got.contains(want) {
            let m = s.message().await.unwrap().expect("stream ended");
            got.push_str(std::str::from_utf8(&m.data).unwrap());
        }
    })
    .await;
    assert!(r.is_ok(), "never received {want:?}; got {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_and_follow() {
    let node = Node::start("logs", NodeOpts::default());
    let mut c = node.client(Role::Reader).await;
    let mut s = c
        .logs(LogsRequest {
            service: "containerd".into(),
            tail_lines: 2,
            follow: false,
            boot: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        got.extend(m.data);
    }
    assert_eq!(String::from_utf8(got).unwrap(), "four\nfive\n");
    let mut s = c
        .logs(LogsRequest {
            service: "containerd".into(),
            tail_lines: 0,
            follow: false,
            boot: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        got.extend(m.data);
    }
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "one\ntwo\nthree\nfour\nfive\n"
    );

    let mut s = c
        .logs(LogsRequest {
            service: "containerd".into(),
            tail_lines: 1,
            follow: true,
            boot: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = String::new();
    collect_until(&mut s, &mut got, "five\n").await;
    assert_eq!(got, "five\n");
    node.append("log/containerd.log", "six\n");
    collect_until(&mut s, &mut got, "six\n").await;
    // Truncated in place, then new output.
    std::fs::write(node.dir.join("log/containerd.log"), "").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    node.append("log/containerd.log", "after truncate\n");
    collect_until(&mut s, &mut got, "after truncate\n").await;
    // Rotated: renamed away, a new file at the path.
    std::fs::rename(
        node.dir.join("log/containerd.log"),
        node.dir.join("log/containerd.log.1"),
    )
    .unwrap();
    std::fs::write(node.dir.join("log/containerd.log"), "rotated\n").unwrap();
    collect_until(&mut s, &mut got, "rotated\n").await;
    assert_eq!(got, "five\nsix\nafter truncate\nrotated\n");

    assert_code(
        c.logs(LogsRequest {
            service: "../run/boot".into(),
            tail_lines: 0,
            follow: false,
            boot: 0,
        })
        .await,
        Code::InvalidArgument,
        "invalid service name",
    );
    assert_code(
        c.logs(LogsRequest {
            service: "a/b".into(),
            tail_lines: 0,
            follow: false,
            boot: 0,
        })
        .await,
        Code::InvalidArgument,
        "'/'",
    );
    assert_code(
        c.logs(LogsRequest {
            service: "kubelet".into(),
            tail_lines: 0,
            follow: false,
            boot: 0,
        })
        .await,
        Code::NotFound,
        "no log at",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmesg_reads_and_follows() {
    let node = Node::start("dmesg", NodeOpts::default());
    let mut c = node.client(Role::Reader).await;
    let mut s = c
        .dmesg(DmesgRequest {
            follow: false,
            boot: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut msgs = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        msgs.extend(m.messages);
    }
    let view: Vec<_> = msgs
        .iter()
        .map(|m| {
            (
                m.facility,
                m.level,
                m.sequence,
                m.timestamp_usec,
                m.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            (0, 6, 1, 1000, "Linux version 6.1.0"),
            (0, 4, 2, 2000, "warning here")
        ]
    );

    let mut s = c
        .dmesg(DmesgRequest {
            follow: true,
            boot: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let first = s.message().await.unwrap().unwrap();
    seen.extend(first.messages.into_iter().map(|m| m.sequence));
    node.append("kmsg", "11,3,3000,-;usb 1-1: new device\n");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(&3) {
            let m = s.message().await.unwrap().unwrap();
            for k in m.messages {
                if k.sequence == 3 {
                    assert_eq!(
                        (k.facility, k.level, k.message.as_str()),
                        (1, 3, "usb 1-1: new device")
                    );
                }
                seen.push(k.sequence);
            }
        }
    })
    .await
    .expect("followed dmesg never delivered the appended record");
    assert_eq!(seen, vec![1, 2, 3]);
}

// ---------------------------------------------------------------- malformed requests

/// Sends raw bytes as a gRPC message; decodes the reply as raw bytes.
#[derive(Clone, Copy)]
struct RawCodec;
struct RawEnc;
struct RawDec;
impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}
impl tonic::codec::Encoder for RawEnc {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}
impl tonic::codec::Decoder for RawDec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_do_not_crash_it() {
    let mut node = Node::start("malformed", NodeOpts::default());
    let a_digest = node.slot_digest(Slot::A);
    let b_before = node.attrs(Slot::B);
    let mut c = node.client(Role::Admin).await;

    assert_code(
        install(
            &mut c,
            vec![InstallRequest {
                msg: Some(Msg::Chunk(Bytes::from_static(b"hsqs...."))),
            }],
        )
        .await,
        Code::InvalidArgument,
        "first install message must be the header",
    );
    assert_code(
        install(&mut c, vec![]).await,
        Code::InvalidArgument,
        "empty install stream",
    );
    assert_code(
        install(&mut c, vec![InstallRequest { msg: None }]).await,
        Code::InvalidArgument,
        "must be the header",
    );
    assert_code(
        install(&mut c, install_msgs(header_with(b"hsqs\0"), b"hsqs", 4)).await,
        Code::InvalidArgument,
        "not a signed release: the header carries 5 manifest bytes",
    );
    assert_code(
        install(
            &mut c,
            install_msgs(header_with(&vec![0xff; 1 << 20]), b"hsqs", 4),
        )
        .await,
        Code::InvalidArgument,
        "not a signed release: the header carries 1048576 manifest bytes",
    );
    // Nothing above got as far as the disk.
    assert_eq!(node.attrs(Slot::B), b_before);

    // A message over the 4 MiB limit.
    let huge = release(9, "huge", A_COUNTER, 5 * MIB as usize);
    let r = install(&mut c, release_msgs(&huge, huge.payload.len())).await;
    assert!(r.is_err(), "a 5 MiB message must be refused");

    // Bytes that are not protobuf at all, to unary, streaming and client-streaming RPCs.
    let ch = raw_channel(&node, client_tls(&node, Some(&node.cert(Role::Admin)))).await;
    let mut g = tonic::client::Grpc::new(ch);
    let garbage = pattern(77, 64 << 10);
    for path in [
        "Version",
        "Logs",
        "Install",
        "ServiceRestart",
        "NoSuchMethod",
    ] {
        g.ready().await.unwrap();
        let p: tonic::codegen::http::uri::PathAndQuery =
            format!("/matic.machine.v1.MachineService/{path}")
                .parse()
                .unwrap();
        let req = tonic::Request::new(futures::stream::iter(vec![
            garbage.clone(),
            garbage.clone(),
        ]));
        let r = g.streaming(req, p, RawCodec).await;
        let failed = match r {
            Err(_) => true,
            Ok(resp) => {
                let mut s = resp.into_inner();
                let mut failed = false;
                while let Some(m) = s.next().await {
                    if m.is_err() {
                        failed = true;
                        break;
                    }
                }
                failed
            }
        };
        assert!(failed, "{path}: garbage must be an error");
    }

    // Still alive and serving; nothing changed on the disk.
    assert!(node.alive());
    let v = c.version(VersionRequest {}).await.unwrap().into_inner();
    assert_eq!(v.slot, "A");
    assert_eq!(node.slot_digest(Slot::A), a_digest);
}

// ---------------------------------------------------------------- install safety (issue 10)

/// Issue 10, item 1: B is the proven slot, A runs on trial (not yet marked
/// successful). An install would target B and invalidate the only slot
/// known to boot; it is refused with a sentence before anything changes.
/// Once A is marked successful the same install goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refused_while_the_running_slot_is_on_trial() {
    let node = Node::start(
        "install-trial",
        NodeOpts {
            b_bootable: true,
            ..Default::default()
        },
    );
    let (a0, b0) = (node.attrs(Slot::A), node.attrs(Slot::B));
    assert!(!a0.successful() && b0.successful() && b0.will_boot());
    let b_digest = node.slot_digest(Slot::B);
    let mut c = node.client(Role::Admin).await;
    let rel = release(11, "trial", A_COUNTER, 2 * MIB as usize);
    let sentence = "slot A is still on trial; wait until it is marked successful, or roll back";
    let e = assert_code(
        install(&mut c, release_msgs(&rel, 256 << 10)).await,
        Code::FailedPrecondition,
        sentence,
    );
    assert_eq!(e.message(), sentence);
    assert_eq!(
        explain_status(&e, "n").to_string(),
        format!("failed precondition: {sentence}")
    );
    assert_eq!(
        (node.attrs(Slot::A), node.attrs(Slot::B)),
        (a0, b0),
        "a refused install changed the GPT"
    );
    assert_eq!(node.slot_digest(Slot::B), b_digest, "slot B was written");
    let st = c
        .boot_status(BootStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.slots[1].version, "v0", "B's release is still shown");
    node.wait_log(&format!("install into slot B refused: {sentence}"));

    prove_a(&node);
    let r = install(&mut c, release_msgs(&rel, 256 << 10))
        .await
        .unwrap();
    assert_eq!(r.slot, "B");
    assert!(node.slot_bytes(Slot::B, rel.payload.len()) == rel.payload);
}

/// Bounded, so that an install that is never aborted fails the test
/// instead of hanging it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the idle install was never aborted")
}

/// Issue 10, item 7: a client that stops sending (before the header, or
/// mid-image) is cut off after `--install-idle-secs`, the target is left
/// invalid, the agent logs why, and the lock is free for the next install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_idle_client_is_aborted_and_releases_the_lock() {
    let node = Node::start(
        "install-idle",
        NodeOpts {
            agent_args: vec!["--install-idle-secs", "1"],
            ..Default::default()
        },
    );
    prove_a(&node);
    let a_digest = node.slot_digest(Slot::A);
    let mut c = node.client(Role::Admin).await;
    good_install(&node, &mut c, 20).await;
    let a_attrs = node.attrs(Slot::A);

    // The header, 1 MiB of a 3 MiB payload, then silence.
    let rel = release(21, "idle", A_COUNTER, 3 * MIB as usize);
    let first = install_msgs(
        header_with(&rel.block),
        &rel.payload[..MIB as usize],
        256 << 10,
    );
    let t0 = std::time::Instant::now();
    let r =
        bounded(c.install(futures::stream::iter(first).chain(futures::stream::pending()))).await;
    assert_code(
        r,
        Code::Aborted,
        &format!(
            "the client sent nothing for 1 s after 1048576 of {} bytes; target slot B left unbootable",
            rel.payload.len()
        ),
    );
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    node.wait_log("install into slot B refused: install aborted: the client sent nothing for 1 s");
    assert_refused(&node, &a_digest, a_attrs);

    // Nothing at all, not even the header: the lock is not held forever.
    let r = bounded(c.install(futures::stream::pending::<InstallRequest>())).await;
    assert_code(
        r,
        Code::Aborted,
        "sent nothing for 1 s while the header was awaited",
    );

    // The lock is free: the next install goes through.
    good_install(&node, &mut c, 22).await;
    assert_eq!(node.slot_digest(Slot::A), a_digest);
}

/// A server key the agent cannot load stops it at once, with the path
/// named, before it listens (guards the start-up order of boot time's
/// changes: nothing is served before the TLS configuration loaded).
#[test]
fn btime_a_server_key_the_agent_cannot_load_stops_it_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("matic-btime-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let ca = Ca::generate("test CA").unwrap();
    let server = ca.server_cert(&["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
    server.write(&dir.join("pki"), "server").unwrap();
    std::fs::write(dir.join("pki/server.key"), "not a key\n").unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_matic-agent"));
    let mut child = matic_tests::agent::command(bin, &dir)
        .arg("--no-boot-ok")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent kept running with a bad server.key");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("server.key"), "the key's path is named: {err}");
    assert!(!err.contains("listening on"), "{err}");
}
