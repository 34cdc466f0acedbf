//! The stand-in against Debian's real containerd (the one the node runs),
//! started as an ordinary process in a temporary directory: the `cri`
//! check alone, then every check over a node tree laid out as the agent
//! renders it. Skipped, with a printed reason, only when
//! `/usr/bin/containerd` is absent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use matic_contract::kubelet as contract;
use matic_kubelet_standin::{Node, run, runtime};

const CONTAINERD: &str = "/usr/bin/containerd";
const CA: &str = include_str!("../testdata/ca.crt");

/// containerd on `<dir>/run/containerd/containerd.sock`; killed on drop.
struct Containerd {
    child: Child,
    dir: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Option<Containerd> {
        if !Path::new(CONTAINERD).exists() {
            println!("skipped: {CONTAINERD} is absent (apt-get install containerd)");
            return None;
        }
        std::fs::create_dir_all(dir.join("run/containerd")).unwrap();
        std::fs::write(dir.join("config.toml"), "version = 2\n").unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(dir.join("run/containerd/containerd.sock"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Some(Containerd {
            child,
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("standin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The runtime check asks the real containerd, started at the same time
/// (the retry covers its start), and reads its name and version.
#[tokio::test]
async fn cri_version_from_debians_containerd() {
    let dir = tmp("cri");
    let Some(ctd) = Containerd::start(&dir) else {
        return;
    };
    let socket = ctd.dir.join("run/containerd/containerd.sock");
    let v = runtime::check(&socket, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\ncontainerd's log:\n{}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            )
        });
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
    assert!(!v.runtime_version.is_empty());
}

/// No runtime on the socket: the check fails after the wait, naming it.
#[tokio::test]
async fn cri_absent_runtime_fails_after_the_wait() {
    let dir = tmp("cri-none");
    let socket = dir.join("none.sock");
    let t = std::time::Instant::now();
    let e = runtime::check(&socket, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(t.elapsed() >= Duration::from_secs(2), "gave up early");
    assert!(
        e.contains("none.sock") && e.contains("no answer in 2 s"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `path` (absolute on the node) under `root`.
fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A node tree as the agent renders it, and every check over it with the
/// real containerd on the configured socket: all pass; then one broken
/// file at a time fails its own check and no `all checks passed`.
#[tokio::test]
async fn every_check_over_a_rendered_node() {
    let dir = tmp("node");
    let Some(_ctd) = Containerd::start(&dir) else {
        return;
    };
    let node = Node { root: dir.clone() };
    let config = r#"{
  "apiVersion": "kubelet.config.k8s.io/v1beta1",
  "kind": "KubeletConfiguration",
  "cgroupDriver": "cgroupfs",
  "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
  "authentication": { "x509": { "clientCAFile": "/etc/kubernetes/pki/ca.crt" } }
}"#;
    let kubeconfig = r#"{ "apiVersion": "v1", "kind": "Config",
  "clusters": [{ "name": "cluster", "cluster": { "server": "https://10.0.0.1:6443",
      "certificate-authority": "/etc/kubernetes/pki/ca.crt" } }],
  "users": [{ "name": "kubelet-bootstrap", "user": { "token": "abcdef.0123456789abcdef" } }],
  "contexts": [{ "name": "bootstrap", "context": { "cluster": "cluster", "user": "kubelet-bootstrap" } }],
  "current-context": "bootstrap" }"#;
    put(&dir, contract::CONFIG_PATH, config);
    put(&dir, contract::BOOTSTRAP_KUBECONFIG_PATH, kubeconfig);
    put(&dir, "/etc/kubernetes/pki/ca.crt", CA);
    put(
        &dir,
        &contract::FLAGS_PATH.to_string_lossy(),
        "--max-pods=50\n",
    );
    let mut args: Vec<std::ffi::OsString> = contract::FIXED_FLAGS
        .iter()
        .map(|f| f.to_str().unwrap().into())
        .collect();
    args.push("--max-pods=50".into());

    let report = async |args: &[std::ffi::OsString]| {
        let mut lines = Vec::new();
        let ok = run(&node, args, Duration::from_secs(60), &mut |l| {
            lines.push(l.to_owned())
        })
        .await;
        (ok, lines)
    };
    let (ok, lines) = report(&args).await;
    assert!(ok, "{lines:#?}");
    for name in ["argv", "config", "kubeconfig", "token", "ca", "cri"] {
        assert!(
            lines.contains(&format!("check {name}: ok")),
            "{name}: {lines:#?}"
        );
    }
    assert_eq!(lines.last().unwrap(), "all checks passed");
    assert!(
        lines.iter().any(|l| l.starts_with("runtime: containerd ")),
        "{lines:#?}"
    );

    // One thing wrong at a time: its check fails, the report says so.
    let failed = |lines: &[String], name: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("check {name}: FAILED: ")))
            && !lines.iter().any(|l| l == "all checks passed")
    };
    let (ok, lines) = report(&args[..4]).await;
    assert!(!ok && failed(&lines, "argv"), "{lines:#?}");
    put(
        &dir,
        "/etc/kubernetes/pki/ca.crt",
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    );
    let (ok, lines) = report(&args).await;
    assert!(!ok && failed(&lines, "ca"), "{lines:#?}");
    put(&dir, "/etc/kubernetes/pki/ca.crt", CA);
    put(
        &dir,
        contract::CONFIG_PATH,
        &config.replace("/run/containerd/", "/run/none/"),
    );
    let (ok, lines) = {
        let mut lines = Vec::new();
        let ok = run(&node, &args, Duration::from_secs(1), &mut |l| {
            lines.push(l.to_owned())
        })
        .await;
        (ok, lines)
    };
    assert!(!ok && failed(&lines, "cri"), "{lines:#?}");
    put(
        &dir,
        contract::CONFIG_PATH,
        &config.replace("cgroupfs", "systemd"),
    );
    let (ok, lines) = report(&args).await;
    assert!(
        !ok && failed(&lines, "config") && failed(&lines, "cri"),
        "{lines:#?}"
    );
    put(&dir, contract::CONFIG_PATH, config);
    put(
        &dir,
        contract::BOOTSTRAP_KUBECONFIG_PATH,
        &kubeconfig.replace("abcdef.", "ABCDEF."),
    );
    let (ok, lines) = report(&args).await;
    assert!(!ok && failed(&lines, "token"), "{lines:#?}");
    assert!(
        lines.iter().all(|l| !l.contains("0123456789abcdef")),
        "token shown: {lines:#?}"
    );
}

/// The binary on a machine that is not a configured node (no flags file,
/// no files): every check fails, it exits 1 at once and never says
/// `all checks passed`.
#[test]
fn the_binary_exits_1_when_a_check_fails() {
    if Path::new(&*contract::FLAGS_PATH.to_string_lossy()).exists() {
        println!("skipped: this machine has a kubelet flags file");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_matic-kubelet-standin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("check argv: FAILED: "), "{text}");
    assert!(text.contains("check cri: FAILED: "), "{text}");
    assert!(!text.contains("all checks passed"), "{text}");
}
