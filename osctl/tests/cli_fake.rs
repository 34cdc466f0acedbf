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
    assert_eq!(lines.len(), 7, "{out}");
    assert!(
        lines[0].starts_with("NODE")
            && lines[0].contains("VERSION   COUNTER   KEY ID             ROOT HASH      RUNNING")
            && lines[0].ends_with("RUNNING   NEXT"),
        "{out}"
    );
    // Slot A's manifest: version, counter, key id, root hash cut to 12 digits.
    assert!(
        lines[1].contains("   1.2.3     4         0123456789abcdef   abababababab   yes"),
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
    // Why B has no manifest, after the table, one line per node.
    assert_eq!(
        lines[5..],
        [
            format!("127.0.0.1:{p}: slot B: no release manifest (an unsigned image?)"),
            format!("localhost:{p}: slot B: no release manifest (an unsigned image?)"),
        ]
    );
    let o = osctl(&e.config(), &["boot-status", "-n", &e.addr, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let slots = &v[0]["result"]["slots"];
    assert_eq!(slots[0]["release"]["security_counter"], 4);
    assert_eq!(slots[0]["release"]["key_id"], "0123456789abcdef");
    assert_eq!(slots[0]["release"]["root_hash"], "ab".repeat(32));
    assert_eq!(slots[1]["release"], serde_json::Value::Null);
    assert_eq!(
        slots[1]["release_error"],
        "no release manifest (an unsigned image?)"
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

/// SHA-256, as the fake records it.
fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

#[tokio::test]
async fn install_sends_the_manifest_then_exactly_the_payload() {
    let e = env("inst").await;
    // 700,000 bytes of "SquashFS": 171 data blocks, so the payload has a
    // two-level tree and does not end on a chunk boundary.
    let rel = common::release(&e.dir, "r", "2.0.1", 700_000);
    let file = std::fs::read(&rel).unwrap();
    let payload = &file[4096..];
    let o = osctl(
        &e.config(),
        &["install", rel.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "{}: installed 2.0.1 into slot B ({} bytes, 3 tries)\n",
            e.addr,
            payload.len()
        )
    );
    let seen = e.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.install_header.as_deref(), Some(&file[..4096]));
    assert_eq!(seen.install_bytes, payload.len() as u64);
    assert_eq!(seen.install_sha256, sha256(payload));
    assert!(seen.install_digest_ok);
}

#[tokio::test]
async fn install_refuses_a_non_release_and_the_version_flag_before_connecting() {
    let e = env("notrel").await;
    let img = e.dir.join("maticos-2.0.1.squashfs");
    let mut data = vec![7u8; 100_000];
    data[..4].copy_from_slice(b"hsqs");
    std::fs::write(&img, &data).unwrap();
    let o = osctl(
        &e.config(),
        &["install", img.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: {} is not a MaticOS release (no MATICREL manifest at its start); make one from a SquashFS root image with `osctl release sign`\n",
            img.display()
        )
    );
    // A release cut short: its manifest names more bytes than there are.
    let rel = common::release(&e.dir, "cut", "1", 50_000);
    let len = std::fs::metadata(&rel).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&rel)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let o = osctl(
        &e.config(),
        &["install", rel.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: {} is {} bytes, but its manifest says {len} (the 4096-byte manifest block and the payload): truncated or extended\n",
            rel.display(),
            len - 1
        )
    );
    // --version is gone: the manifest has it. Refused even with no config.
    let o = osctl(
        &e.dir.join("no-config"),
        &["install", rel.to_str().unwrap(), "--version", "9"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "osctl: osctl install no longer takes --version: the version is in the release's signed manifest (set it with `osctl release sign --version V`)\n"
    );
    assert!(e.fake.seen.lock().unwrap().install_header.is_none());
}

#[tokio::test]
async fn install_from_an_http_url() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env("url").await;
    let rel = common::release(&e.dir, "u", "3.1", 300_000);
    let data = std::fs::read(&rel).unwrap();
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
    let url = format!("http://{http}/rel/maticos-3.1.release");
    let o = osctl(
        &e.config(),
        &["install", &url, "--insecure", "-n", &e.addr, "-o", "json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["version"], "3.1");
    assert_eq!(v[0]["result"]["bytes_written"], data.len() as u64 - 4096);
    let seen = e.fake.seen.lock().unwrap().clone();
    assert!(seen.install_digest_ok);
    assert_eq!(seen.install_header.as_deref(), Some(&data[..4096]));
}

/// A `--try` whose reply never comes (the change cut the client off) ends
/// with a sentence saying what happens next, not a hang.
#[tokio::test]
async fn a_trial_that_cuts_the_client_off_is_not_waited_for_forever() {
    let e = env("trialcut").await;
    let doc = e.dir.join("try.toml");
    std::fs::write(&doc, "version = 1\n").unwrap();
    let started = std::time::Instant::now();
    let o = osctl(
        &e.config(),
        &[
            "config",
            "apply",
            doc.to_str().unwrap(),
            "--try",
            "60s",
            "-n",
            &e.addr,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "{}: no reply within 20 s: the change may have cut",
            e.addr
        )) && err.contains("when the 60 s window ends"),
        "{err}"
    );
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
    assert!(
        out.contains("   /dev/dm-0   yes      4         0123456789abcdef   abababababab\n"),
        "{out}"
    );
    let o = osctl(&e.config(), &["version", "-n", &e.addr, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v[0]["result"];
    assert_eq!(r["root_device"], "/dev/dm-0");
    assert_eq!(r["root_verity"], true);
    assert_eq!(r["release"]["version"], "1.2.3");
    assert_eq!(r["release"]["payload_size"], 8192);
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
    let url = format!("http://{http}/maticos-1.0.release");
    let o = osctl(&e.config(), &["install", &url, "--insecure", "-n", &e.addr]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("osctl: cannot download {url}: the server answered 404 Not Found\n")
    );
    assert!(e.fake.seen.lock().unwrap().install_header.is_none());
}

#[tokio::test]
async fn boots_table_json_and_timeline() {
    let e = env("boots").await;
    let o = osctl(&e.config(), &["boots", "-n", &e.addr]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let a = &e.addr;
    let pad = " ".repeat(a.len() - 4);
    assert_eq!(
        text(&o.stdout),
        format!(
            "\
NODE{pad}   BOOT   SLOT   VERSION   KERNEL       STARTED                RAN    ENDING                                OK
{a}   42     A      1.2.3     6.1.0-test   2026-11-29 20:25:35Z   1m5s   running                               yes
{a}   41     B      1.3.0     6.1.0-test   +3.4s                  2.1s   kernel panic: sysrq triggered crash   no
"
        )
    );
    assert_eq!(e.fake.seen.lock().unwrap().boots_limit, Some(16));
    let o = osctl(
        &e.config(),
        &["boots", "--limit", "3", "-n", a, "-o", "json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(e.fake.seen.lock().unwrap().boots_limit, Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let boots = &v[0]["result"]["boots"];
    assert_eq!(v[0]["result"]["held"], 2);
    assert_eq!(boots[0]["running"], true);
    assert_eq!(boots[0]["start_wall_unix_ms"], 1_795_983_935_708u64);
    assert_eq!(boots[1]["number"], 41);
    assert_eq!(boots[1]["ending_kind"], "kernel_panic");
    assert_eq!(boots[1]["start_wall_unix_ms"], serde_json::Value::Null);

    let o = osctl(&e.config(), &["boots", "show", "-1", "-n", a]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "\
NODE{pad}   BOOT   MARK              AT (ms)   STEP (ms)
{a}   41     /init             2210      +2210
{a}   41     stage2            3210      +1000
{a}   41     agent-listening   3520      +310
"
        )
    );
    let o = osctl(&e.config(), &["boots", "show", "41", "-n", a, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["marks"][2]["step_ms"], 310);
    let o = osctl(&e.config(), &["boots", "show", "9", "-n", a]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("{a}: not found: no boot 9 in the history (it holds boots 41 to 42, 2 in all)\n")
    );
}

#[tokio::test]
async fn dmesg_and_logs_of_an_earlier_boot() {
    let e = env("bootlogs").await;
    let a = &e.addr;
    let o = osctl(&e.config(), &["dmesg", "--boot", "-1", "-n", a]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(e.fake.seen.lock().unwrap().dmesg_boot, Some(-1));
    assert_eq!(
        text(&o.stdout),
        "[    0.000000] Linux version 6.1\n\
         [    1.9\n\
         --- crash dump 1 (Panic), kept from pstore after the boot ended ---\n\
         [    2.023838] sysrq: Trigger a crash\n\
         [    2.155872] Kernel panic - not syncing: sysrq triggered crash\n"
    );
    let o = osctl(
        &e.config(),
        &["dmesg", "--boot", "41", "-n", a, "-o", "json"],
    )
    .await;
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["boot"], 41);
    assert_eq!(lines[1]["timestamp_usec"], serde_json::Value::Null);
    assert_eq!(lines[3]["crash_dump"]["reason"], "Panic");
    assert_eq!(lines[3]["timestamp_usec"], 2_155_872);
    assert!(lines[3].get("level").is_none());

    let o = osctl(
        &e.config(),
        &["logs", "containerd", "--boot", "-1", "-n", a],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(e.fake.seen.lock().unwrap().logs_boot, Some(-1));
    assert_eq!(
        text(&o.stdout),
        "0.000007 - starting\n5.120417 2026-11-29T20:25:39.120417Z serving\n"
    );
    let o = osctl(&e.config(), &["logs", "containerd", "-n", a]).await;
    assert_eq!(text(&o.stdout), "one\ntwo\nthree\n");
    assert_eq!(e.fake.seen.lock().unwrap().logs_boot, Some(0));
}

#[tokio::test]
async fn workload_commands() {
    let e = env("workloads").await;
    let o = osctl(&e.config(), &["images", "-n", &e.addr]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("NODE"), "{out}");
    let cells: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        cells[1..],
        [
            "localhost/matic/workload:1",
            "sha256:e8e8e8e8e8e8",
            "597.7",
            "KiB"
        ],
        "{out}"
    );
    let o = osctl(&e.config(), &["images", "-n", &e.addr, "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["images"][0]["size"], 612_000, "{v}");

    let o = osctl(&e.config(), &["containers", "-n", &e.addr]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].contains("pppppppppppp") && rows[1].contains("(pod)"),
        "{out}"
    );
    assert!(
        rows[2].contains("cccccccccccc") && rows[2].contains("EXITED"),
        "{out}"
    );
    assert!(rows[2].trim_end().ends_with('3'), "{out}");

    let o = osctl(&e.config(), &["logs", "--container", "cccc", "-n", &e.addr]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "hello from the pod\n");
    let o = osctl(&e.config(), &["logs", "--container", "zz", "-n", &e.addr]).await;
    assert!(!o.status.success());

    // Import: a real archive is streamed whole after its header; a file
    // that is no archive never reaches the node.
    let archive = e.dir.join("w.tar");
    let spec = matic_oci::ImageSpec {
        name: "localhost/matic/workload:1".into(),
        platform: matic_oci::Platform::host(),
        run: Default::default(),
        files: vec![matic_oci::LayerFile {
            path: "workload".into(),
            mode: 0o755,
            data: vec![1; 300_000],
        }],
        compression: matic_oci::Compression::Uncompressed,
    };
    matic_oci::write_archive(&spec, std::fs::File::create(&archive).unwrap()).unwrap();
    let sent = std::fs::read(&archive).unwrap();
    let o = osctl(
        &e.config(),
        &["image", "import", archive.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("imported localhost/matic/workload:1 (597.7 KiB) (3 new blobs)"),
        "{}",
        text(&o.stdout)
    );
    {
        let seen = e.fake.seen.lock().unwrap();
        assert_eq!(seen.import_size, Some(sent.len() as u64));
        assert!(seen.import_bytes == sent, "the archive arrived changed");
    }
    let junk = e.dir.join("junk.tar");
    std::fs::write(&junk, vec![9u8; 5000]).unwrap();
    e.fake.seen.lock().unwrap().import_size = None;
    let o = osctl(
        &e.config(),
        &["image", "import", junk.to_str().unwrap(), "-n", &e.addr],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not an OCI image archive"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        e.fake.seen.lock().unwrap().import_size,
        None,
        "junk reached the node"
    );
}
