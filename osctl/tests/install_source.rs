//! Where `osctl install` may take a release from, with the real binary
//! against the fake API server and a tiny HTTP(S) server in the test:
//! https only unless `--insecure`, no redirect from https down to http
//! (with `--insecure` too), and `--sha256` (of the whole release file)
//! checked before any byte reaches a node (the fake records every Install
//! it sees).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};

use osctl::pki::{self, CertifiedKey, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

struct Env {
    dir: PathBuf,
    addr: String,
    fake: common::Fake,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    fn server_cert(&self) -> CertifiedKey {
        CertifiedKey {
            cert_pem: std::fs::read_to_string(self.pki().join("server.crt")).unwrap(),
            key_pem: std::fs::read_to_string(self.pki().join("server.key")).unwrap(),
            cert_der: vec![],
        }
    }
    /// Runs osctl with the test's config; https servers are trusted through
    /// `SSL_CERT_FILE` (the API's CA signed their certificate too).
    async fn osctl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_osctl"))
            .args(args)
            .args(["-n", &self.addr])
            .env("OSCTL_CONFIG", self.pki().join("osctlconfig"))
            .env("SSL_CERT_FILE", self.pki().join("ca.crt"))
            .env_remove("SSL_CERT_DIR")
            .output()
            .await
            .unwrap()
    }
    /// The manifest block of the Install the node saw.
    fn installs(&self) -> Option<Vec<u8>> {
        self.fake.seen.lock().unwrap().install_header.clone()
    }
    /// The release file every test serves: version 4.0.
    fn image(&self) -> Vec<u8> {
        let p = self.dir.join("r.release");
        if !p.exists() {
            common::release(&self.dir, "r", "4.0", 300_000);
        }
        std::fs::read(p).unwrap()
    }
}

async fn env(tag: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("osctl-src-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki_dir = dir.join("pki");
    pki::gen_certs(
        &pki_dir,
        &["127.0.0.1".into(), "localhost".into()],
        &[("reader".into(), Role::Reader)],
    )
    .unwrap();
    osctl::config::Config::for_generated(&["127.0.0.1".into()])
        .save(&pki_dir.join("osctlconfig"))
        .unwrap();
    let mut e = Env {
        dir,
        addr: String::new(),
        fake: common::Fake::default(),
    };
    let ca = std::fs::read_to_string(pki_dir.join("ca.crt")).unwrap();
    e.addr = common::spawn(&e.server_cert(), &ca, e.fake.clone())
        .await
        .to_string();
    e
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the web server answers: a body, or a redirect.
#[derive(Clone)]
enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

/// A one-request-per-connection HTTP/1.1 server (TLS when `cert` is
/// given) answering every path the same; returns its address and the
/// request lines it received.
async fn web(answer: Answer, cert: Option<&CertifiedKey>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let acceptor = cert.map(|c| {
        let chain = vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (answer, log, acceptor) = (answer.clone(), log.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            serve_one(tls, &answer, &log).await;
                        }
                    }
                    None => serve_one(tcp, &answer, &log).await,
                }
            });
        }
    });
    (addr, seen)
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    answer: &Answer,
    log: &Mutex<Vec<String>>,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let first = text(&req).lines().next().unwrap_or_default().to_owned();
    log.lock().unwrap().push(first);
    let (head, body) = match answer {
        Answer::Body(b) => (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                b.len()
            ),
            b.as_slice(),
        ),
        Answer::Redirect(to) => (
            format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
            &[][..],
        ),
    };
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn plain_http_is_refused_unless_insecure() {
    let e = env("http").await;
    let data = e.image();
    let (http, hits) = web(Answer::Body(data.clone()), None).await;
    let url = format!("http://{http}/rel/maticos-3.1.release");
    let o = e.osctl(&["install", &url]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: refusing {url}: plain http:// can be altered on the way; use https://, or pass --insecure (best with --sha256) to accept it\n"
        )
    );
    assert!(hits.lock().unwrap().is_empty(), "nothing was downloaded");
    // Refused for its scheme before anything else: nothing is downloaded.
    let bare = format!("http://{http}/image");
    let o = e.osctl(&["install", &bare]).await;
    assert!(
        text(&o.stderr).starts_with(&format!("osctl: refusing {bare}: plain http://")),
        "{}",
        text(&o.stderr)
    );
    assert!(e.installs().is_none(), "nothing was sent to the node");

    let want = hex(&Sha256::digest(&data));
    let o = e
        .osctl(&["install", &url, "--insecure", "--sha256", &want])
        .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let seen = e.fake.seen.lock().unwrap().clone();
    assert!(seen.install_digest_ok);
    assert_eq!(seen.install_bytes, data.len() as u64 - 4096);
}

#[tokio::test]
async fn https_url_with_the_right_digest_installs_a_wrong_one_sends_nothing() {
    let e = env("https").await;
    let data = e.image();
    let (https, hits) = web(Answer::Body(data.clone()), Some(&e.server_cert())).await;
    let url = format!("https://{https}/maticos-4.0.release");
    let wrong = hex(&Sha256::digest(b"another image"));
    let o = e.osctl(&["install", &url, "--sha256", &wrong]).await;
    assert_eq!(o.status.code(), Some(1));
    let got = hex(&Sha256::digest(&data));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: release {url} has SHA-256 {got}, not {wrong} as --sha256 expects; nothing was sent to any node\n"
        )
    );
    assert_eq!(hits.lock().unwrap().len(), 1, "downloaded once");
    assert!(e.installs().is_none(), "no Install reached the node");

    // The digest as sha256sum prints it, in capitals too.
    let o = e
        .osctl(&[
            "install",
            &url,
            "--sha256",
            &got.to_uppercase(),
            "-o",
            "json",
        ])
        .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["version"], "4.0");
    assert_eq!(e.installs().as_deref(), Some(&data[..4096]));
    let seen = e.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.install_sha256[..], Sha256::digest(&data[4096..])[..]);
}

#[tokio::test]
async fn wrong_digest_of_a_file_sends_nothing() {
    let e = env("file").await;
    let img = e.dir.join("maticos-5.0.release");
    std::fs::write(&img, e.image()).unwrap();
    let wrong = "ab".repeat(32);
    let o = e
        .osctl(&["install", img.to_str().unwrap(), "--sha256", &wrong])
        .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(&format!("not {wrong} as --sha256 expects")),
        "{}",
        text(&o.stderr)
    );
    assert!(e.installs().is_none());
    let o = e
        .osctl(&["install", img.to_str().unwrap(), "--sha256", "xyz"])
        .await;
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(
        text(&o.stderr).contains("expected 64 hexadecimal digits"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn redirect_from_https_to_http_is_refused_even_with_insecure() {
    let e = env("redir").await;
    let (http, http_hits) = web(Answer::Body(e.image()), None).await;
    let target = format!("http://{http}/maticos-6.0.release");
    let (https, hits) = web(Answer::Redirect(target.clone()), Some(&e.server_cert())).await;
    let url = format!("https://{https}/maticos-6.0.release");
    for extra in [&[][..], &["--insecure"][..]] {
        let mut args = vec!["install", url.as_str()];
        args.extend_from_slice(extra);
        let o = e.osctl(&args).await;
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert!(
            text(&o.stderr).starts_with(&format!(
                "osctl: cannot download {url}: redirected to {target}, which would drop TLS; refused"
            )),
            "{extra:?}: {}",
            text(&o.stderr)
        );
    }
    assert_eq!(hits.lock().unwrap().len(), 2);
    assert!(
        http_hits.lock().unwrap().is_empty(),
        "the http URL was never fetched"
    );
    assert!(e.installs().is_none());

    // An https → https redirect is followed.
    let (https2, _) = web(Answer::Body(e.image()), Some(&e.server_cert())).await;
    let (https1, _) = web(
        Answer::Redirect(format!("https://{https2}/maticos-6.0.release")),
        Some(&e.server_cert()),
    )
    .await;
    let o = e
        .osctl(&["install", &format!("https://{https1}/maticos-6.0.release")])
        .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(e.fake.seen.lock().unwrap().install_digest_ok);
}
