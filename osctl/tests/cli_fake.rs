//! The real `osctl` binary against the in-process fake API server: tables,
//! JSON, the per-node fan-out, install streaming, streams and exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use osctl::pki::{self, CertifiedKey, Role};

struct Env {
    _dir: TempDir,
    dir: PathBuf,
    addr: String,
    fake: common::Fake,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(tag: &str) -> TempDir {
    let p = std::env::temp_dir().join(format!(
        "osctl-cli-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

async fn env(tag: &str) -> Env {
    let t = tempdir(tag);
    let dir = t.0.join("pki");
    pki::gen_certs(
        &dir,
        &["127.0.0.1".into(), "localhost".into()],
        &[("reader".into(), Role::Reader)],
    )
    .unwrap();
    osctl::config::Config::for_generated(&["127.0.0.1".into()])
        .save(&dir.join("osctlconfig"))
        .unwrap();
    let server = CertifiedKey {
        cert_pem: std::fs::read_to_string(dir.join("server.crt")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("server.key")).unwrap(),
        cert_der: vec![],
    };
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let fake = common::Fake::default();
    let addr = common::spawn(&server, &ca, fake.clone()).await.to_string();
    Env {
        _dir: t,
        dir,
        addr,
        fake,
    }
}

async fn osctl(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_osctl"))
        .args(args)
        .env("OSCTL_CONFIG", config)
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Env {
    fn config(&self) -> PathBuf {
        self.dir.join("osctlconfig")
    }
    fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap()
    }
    fn two_nodes(&self) -> String {
        format!("127.0.0.1:{p},localhost:{p}", p = self.port())
    }
}

#[tokio::test]
async fn boot_status_table_on_two_nodes() {
    let e = env("bs").await;
    let o = osctl(&e.config(), &["boot-status", "--nodes", &e.two_nodes()]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("NODE") && lines[0].ends_with("RUNNING   NEXT"),
        "{out}"
    );
    let p = e.port();
    assert!(
        lines[1].starts_with(&format!("127.0.0.1:{p}   A ")),
        "{out}"
    );
    assert!(
        lines[3].starts_with(&format!("localhost:{p}   A ")),
        "{out}"
    );
    assert!(
        lines[2].contains(" B ") && lines[2].contains(" no "),
        "{out}"
    );
}

#[tokio::test]
async fn json_output_per_node_and_failed_node_exit_code() {
    let e = env("json").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let nodes = format!("{},{dead}", e.addr);
    let o = osctl(&e.config(), &["services", "-n", &nodes, "-o", "json"]).await;
    assert_eq!(o.status.code(), Some(1));
    // Keys in a stable, readable order: node first.
    assert!(
        text(&o.stdout).starts_with("[\n  {\n    \"node\": "),
        "{}",
        text(&o.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["node"], e.addr.as_str());
    assert_eq!(v[0]["result"]["services"][1]["last_exit"], "exit:1");
    assert_eq!(v[1]["ok"], false);
    assert_eq!(
        v[1]["error"],
        format!("cannot reach {dead}: connection refused")
    );
    assert_eq!(
        text(&o.stderr),
        format!("{dead}: cannot reach {dead}: connection refused\n")
    );

    // Text: the good node's table still prints.
    let o = osctl(&e.config(), &["services", "-n", &nodes]).await;
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(
        out.contains("matic-agent") && out.contains("1m5s ago"),
        "{out}"
    );
}

#[tokio::test]
async fn install_streams_the_file_with_version_from_its_name() {
    let e = env("inst").await;
    let img = e.dir.join("maticos-2.0.1.squashfs");
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&img, &data).unwrap();
    let o = osctl(
        &e.config(),
        &["install", img.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "{}: installed 2.0.1 into slot B (700000 bytes, 3 tries)\n",
            e.addr
        )
    );
    let seen = e.fake.seen.lock().unwrap().clone();
    assert!(seen.install_digest_ok);
    assert_eq!(seen.install_bytes, 700_000);
    assert_eq!(seen.install_header.unwrap().2, "2.0.1");
}

#[tokio::test]
async fn install_from_an_http_url() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env("url").await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = l.local_addr().unwrap();
    let body = data.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
    });
    let url = format!("http://{http}/rel/maticos-3.1.squashfs");
    let o = osctl(
        &e.config(),
        &["install", &url, "--insecure", "-n", &e.addr, "-o", "json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["version"], "3.1");
    assert_eq!(v[0]["result"]["bytes_written"], 300_000);
    assert!(e.fake.seen.lock().unwrap().install_digest_ok);
}

#[tokio::test]
async fn permission_denied_and_not_found_are_sentences() {
    let e = env("deny").await;
    let o = osctl(&e.config(), &["reboot", "-n", &e.addr]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "{}: permission denied: reboot needs os:operator or os:admin\n",
            e.addr
        )
    );
    let o = osctl(&e.config(), &["restart", "nosuch", "-n", &e.addr]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("{}: not found: no service \"nosuch\"\n", e.addr)
    );
    let o = osctl(&e.config(), &["restart", "containerd", "-n", &e.addr]).await;
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        format!("{}: restarting containerd\n", e.addr)
    );
    assert_eq!(e.fake.seen.lock().unwrap().restarted, ["containerd"]);
}

#[tokio::test]
async fn logs_and_dmesg_streams() {
    let e = env("logs").await;
    let o = osctl(&e.config(), &["logs", "containerd", "-n", &e.addr]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "one\ntwo\nthree\n");
    let o = osctl(
        &e.config(),
        &["logs", "containerd", "--tail", "1", "-n", &e.addr],
    )
    .await;
    assert_eq!(text(&o.stdout), "three\n");
    // Two nodes: every line prefixed and whole (the fake splits mid-line).
    let o = osctl(&e.config(), &["logs", "containerd", "-n", &e.two_nodes()]).await;
    let out = text(&o.stdout);
    let p = e.port();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let a = format!("127.0.0.1:{p}");
    let b = format!("localhost:{p}");
    let mut want = vec![];
    for n in [&a, &b] {
        for l in ["one", "two", "three"] {
            want.push(format!("{n}: {l}"));
        }
    }
    want.sort();
    assert_eq!(lines, want);

    let o = osctl(&e.config(), &["dmesg", "-n", &e.addr]).await;
    assert_eq!(text(&o.stdout), "[    1.500000] Linux version 6.1\n");
    let o = osctl(&e.config(), &["dmesg", "-n", &e.addr, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["message"], "Linux version 6.1");
}

#[tokio::test]
async fn health_exit_code_and_version() {
    let e = env("health").await;
    let o = osctl(&e.config(), &["health", "-n", &e.addr]).await;
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(
        out.contains("containerd") && out.contains("socket not answering"),
        "{out}"
    );
    assert_eq!(text(&o.stderr), format!("{}: unhealthy\n", e.addr));
    let o = osctl(&e.config(), &["version", "-n", &e.addr]).await;
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert!(
        out.starts_with(&format!("osctl {}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("1.2.3") && out.contains("6.1.0-test"), "{out}");
}

#[tokio::test]
async fn reader_context_and_missing_config() {
    let e = env("ctx").await;
    // A second context using the reader certificate, selected by --context.
    let mut cfg = osctl::config::Config::load(&e.config()).unwrap();
    let mut reader = cfg.contexts["maticos"].clone();
    reader.crt = "reader.crt".into();
    reader.key = "reader.key".into();
    reader.nodes = vec![e.addr.clone()];
    cfg.contexts.insert("ro".into(), reader);
    cfg.save(&e.config()).unwrap();
    let o = osctl(&e.config(), &["boot-status", "--context", "ro"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = osctl(&e.dir.join("nope"), &["boot-status"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no osctl config found"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn gen_certs_and_completion_from_the_binary() {
    let t = tempdir("gen");
    let out = t.0.join("out");
    let o = osctl(
        &t.0.join("unused"),
        &[
            "gen-certs",
            "--out",
            out.to_str().unwrap(),
            "--san",
            "node1,10.0.2.15",
            "--role",
            "ops=os:operator",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cfg = osctl::config::Config::load(&out.join("osctlconfig")).unwrap();
    assert_eq!(cfg.contexts["maticos"].endpoints, ["10.0.2.15"]);
    assert!(out.join("ops.key").exists());
    let o = osctl(&t.0.join("unused"), &["completion", "bash"]).await;
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("boot-status"));
}

#[tokio::test]
async fn failed_download_names_the_url() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env("404").await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    });
    let url = format!("http://{http}/maticos-1.0.img");
    let o = osctl(&e.config(), &["install", &url, "--insecure", "-n", &e.addr]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("osctl: cannot download {url}: the server answered 404 Not Found\n")
    );
    assert!(e.fake.seen.lock().unwrap().install_header.is_none());
}
