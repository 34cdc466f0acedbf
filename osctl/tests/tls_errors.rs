//! The client's error translation against a real in-process rustls server:
//! each mTLS failure must come out as the sentence a person understands.

mod common;

use matic_proto::v1::{RebootRequest, VersionRequest};
use osctl::client::{ClientError, Credentials, Options, connect};
use osctl::pki::{Ca, CertSpec, CertifiedKey, Eku, Role};

fn creds(ca: &Ca, client: &CertifiedKey) -> Credentials {
    Credentials {
        ca_pem: ca.cert.cert_pem.clone().into_bytes(),
        crt_pem: client.cert_pem.clone().into_bytes(),
        key_pem: client.key_pem.clone().into_bytes(),
    }
}

struct Setup {
    ca: Ca,
    addr: std::net::SocketAddr,
}

async fn setup() -> Setup {
    let ca = Ca::generate("Test CA one").unwrap();
    let server = ca
        .server_cert(&["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    let addr = common::spawn(&server, &ca.cert.cert_pem, common::Fake::default()).await;
    Setup { ca, addr }
}

/// Connect and make one call; the error (from connect or the RPC) as text.
async fn version_error(addr: &str, c: &Credentials) -> Option<String> {
    let mut conn = match connect(addr, c, &Options::default()).await {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    match conn.client.version(VersionRequest {}).await {
        Ok(_) => None,
        Err(s) => Some(conn.explain(&s).to_string()),
    }
}

#[tokio::test]
async fn good_admin_certificate_works() {
    let s = setup().await;
    let admin = s.ca.client_cert("admin", Role::Admin).unwrap();
    let mut conn = connect(
        &s.addr.to_string(),
        &creds(&s.ca, &admin),
        &Options::default(),
    )
    .await
    .unwrap();
    let v = conn
        .client
        .version(VersionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.os_version, "1.2.3");
}

#[tokio::test]
async fn client_certificate_from_another_ca() {
    let s = setup().await;
    let other = Ca::generate("Test CA two").unwrap();
    let foreign = other.client_cert("mallory", Role::Admin).unwrap();
    let e = version_error(&s.addr.to_string(), &creds(&s.ca, &foreign)).await;
    assert_eq!(
        e.as_deref(),
        Some("the node rejected your client certificate (issued by another CA?)")
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_with_the_same_name() {
    // Same CA distinguished name, different key: webpki reports a bad
    // signature rather than an unknown issuer; still "another CA".
    let s = setup().await;
    let twin = Ca::generate("Test CA one").unwrap();
    let foreign = twin.client_cert("mallory", Role::Admin).unwrap();
    let e = version_error(&s.addr.to_string(), &creds(&s.ca, &foreign)).await;
    assert_eq!(
        e.as_deref(),
        Some("the node rejected your client certificate (issued by another CA?)")
    );
}

#[tokio::test]
async fn expired_client_certificate() {
    let s = setup().await;
    let old =
        s.ca.issue(&CertSpec::client("old", Role::Admin).expired())
            .unwrap();
    let e = version_error(&s.addr.to_string(), &creds(&s.ca, &old))
        .await
        .unwrap();
    assert!(
        e.starts_with("the node rejected your client certificate: it has expired"),
        "{e}"
    );
}

#[tokio::test]
async fn server_auth_only_client_certificate() {
    let s = setup().await;
    let c =
        s.ca.issue(&CertSpec::client("x", Role::Admin).ekus(&[Eku::ServerAuth]))
            .unwrap();
    let e = version_error(&s.addr.to_string(), &creds(&s.ca, &c))
        .await
        .unwrap();
    assert!(e.contains("needs the clientAuth extended key usage"), "{e}");
}

#[tokio::test]
async fn server_certificate_for_another_name() {
    let ca = Ca::generate("Test CA").unwrap();
    let server = ca.server_cert(&["10.0.2.15".into()]).unwrap();
    let addr = common::spawn(&server, &ca.cert.cert_pem, common::Fake::default()).await;
    let admin = ca.client_cert("admin", Role::Admin).unwrap();
    let e = version_error(&addr.to_string(), &creds(&ca, &admin))
        .await
        .unwrap();
    assert_eq!(
        e,
        "server certificate not valid for 127.0.0.1 (it is for 10.0.2.15)"
    );
}

#[tokio::test]
async fn server_certificate_from_another_ca() {
    let s = setup().await;
    let other = Ca::generate("Other CA").unwrap();
    let admin = other.client_cert("admin", Role::Admin).unwrap();
    // The client trusts only `other`; the server's certificate is from s.ca.
    let e = version_error(&s.addr.to_string(), &creds(&other, &admin))
        .await
        .unwrap();
    assert_eq!(
        e,
        "server certificate is not signed by your CA (wrong context or CA file?)"
    );
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    let ca = Ca::generate("Test CA").unwrap();
    let admin = ca.client_cert("admin", Role::Admin).unwrap();
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = version_error(&format!("127.0.0.1:{port}"), &creds(&ca, &admin))
        .await
        .unwrap();
    assert_eq!(
        e,
        format!("cannot reach 127.0.0.1:{port}: connection refused")
    );
}

#[tokio::test]
async fn plaintext_server_is_not_tls() {
    let ca = Ca::generate("Test CA").unwrap();
    let admin = ca.client_cert("admin", Role::Admin).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let e = version_error(&addr.to_string(), &creds(&ca, &admin))
        .await
        .unwrap();
    assert!(e.contains("did not answer with TLS 1.3"), "{e}");
}

#[tokio::test]
async fn permission_denied_message_passes_through() {
    let s = setup().await;
    let reader = s.ca.client_cert("r", Role::Reader).unwrap();
    let mut conn = connect(
        &s.addr.to_string(),
        &creds(&s.ca, &reader),
        &Options::default(),
    )
    .await
    .unwrap();
    let st = conn.client.reboot(RebootRequest {}).await.unwrap_err();
    assert_eq!(
        conn.explain(&st),
        ClientError::PermissionDenied("reboot needs os:operator or os:admin".into())
    );
    assert_eq!(
        conn.explain(&st).to_string(),
        "permission denied: reboot needs os:operator or os:admin"
    );
}

#[tokio::test]
async fn mismatched_key_is_a_credentials_error() {
    let ca = Ca::generate("Test CA").unwrap();
    let a = ca.client_cert("a", Role::Admin).unwrap();
    let b = ca.client_cert("b", Role::Admin).unwrap();
    let mut c = creds(&ca, &a);
    c.key_pem = b.key_pem.into_bytes();
    let e = connect("127.0.0.1:1", &c, &Options::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Credentials(_)), "{e}");
}
