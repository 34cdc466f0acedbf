//! The stand-in kubelet of MaticOS's test images (docs/config.md, "The
//! stand-in kubelet"): no kubelet binary can be had from the archives these
//! machines reach, so the tests put this one at `/usr/bin/kubelet`. It
//! checks exactly what a real kubelet needs from the node and prints one
//! line per check, `check NAME: ok` or `check NAME: FAILED: why`:
//!
//! - `argv`: init's argv, the contract's fixed flags then the flags file's
//!   lines, nothing else ([`argv`]);
//! - `config`: the KubeletConfiguration parses as YAML with the kind,
//!   apiVersion, cgroup driver and runtime endpoint the node needs
//!   ([`config`]);
//! - `kubeconfig`, `token`: the bootstrap kubeconfig parses as YAML, its
//!   current context names a cluster with an `https://` server and a user
//!   with a bootstrap token ([`kubeconfig`]);
//! - `ca`: each CA file named (the kubeconfig's, the configuration's client
//!   CA) exists and holds PEM certificates that parse ([`ca`]);
//! - `cri`: the container runtime answers the CRI `Version` call on the
//!   configured socket ([`runtime`]), retried while containerd starts.
//!
//! Then, as kubelet would, it runs pods through the CRI ([`pods`]: the
//! binary's [`run_pods`]): once the test workload image is in containerd,
//! two host-network pods (exit 0 and exit 3), and the pod-start benchmark
//! when `--matic-bench-pods=N` is given.
//!
//! This module owns the order of the checks, the pods after them, and the
//! report; each check is its own module. Must never: change anything on
//! the node but its own labelled pods and their log directories, or say
//! `all checks passed` when one failed.

pub mod argv;
pub mod ca;
pub mod config;
pub mod kubeconfig;
pub mod pods;
pub mod runtime;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file system the checks read: `/` on a node, a directory in tests.
/// Every path the contract or a file names is absolute on the node and
/// taken under this root.
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
}

impl Node {
    /// The node itself.
    pub fn real() -> Node {
        Node {
            root: PathBuf::from("/"),
        }
    }

    /// `path` (absolute on the node) under the root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// A file's content, the error naming the node's path.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, String> {
        let p = path.as_ref();
        std::fs::read(self.path(p)).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// A file's content as text.
    pub fn read_text(&self, path: impl AsRef<Path>) -> Result<String, String> {
        let p = path.as_ref();
        String::from_utf8(self.read(p)?).map_err(|_| format!("{}: not UTF-8", p.display()))
    }
}

/// The report's line for one check.
pub fn line(name: &str, r: &Result<(), String>) -> String {
    match r {
        Ok(()) => format!("check {name}: ok"),
        Err(why) => format!("check {name}: FAILED: {why}"),
    }
}

/// Runs every check against `node` for the arguments `args` (without
/// argv[0]), handing each report line to `out` as it is known; true when
/// all passed (the last line is then `all checks passed`). The runtime is
/// asked for `runtime_wait` at most.
pub async fn run(
    node: &Node,
    args: &[OsString],
    runtime_wait: Duration,
    out: &mut dyn FnMut(&str),
) -> bool {
    let mut all = true;
    let mut report = |out: &mut dyn FnMut(&str), name: &str, r: Result<(), String>| {
        all &= r.is_ok();
        out(&line(name, &r));
    };
    report(out, "argv", argv::check(node, args));
    let config = config::check(node);
    report(
        out,
        "config",
        config.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let config = config.ok();
    let bootstrap = kubeconfig::check(node);
    report(
        out,
        "kubeconfig",
        bootstrap.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let bootstrap = bootstrap.ok();
    let token = match &bootstrap {
        Some(b) => kubeconfig::check_token(&b.token),
        None => Err("no kubeconfig to read it from".into()),
    };
    report(out, "token", token);
    // Every CA file the two files name: kubelet loads each at start.
    let cas: Vec<&String> = bootstrap
        .iter()
        .map(|b| &b.certificate_authority)
        .chain(config.iter().filter_map(|c| c.client_ca_file.as_ref()))
        .collect();
    let r = if cas.is_empty() {
        Err("no CA file named (neither file passed)".into())
    } else {
        cas.iter().try_for_each(|f| ca::check(node, f).map(|_| ()))
    };
    report(out, "ca", r);
    let r = match &config {
        Some(c) => runtime::check(&node.path(&c.runtime_socket), runtime_wait)
            .await
            .map(|v| {
                out(&format!(
                    "runtime: {} {} (CRI {})",
                    v.runtime_name, v.runtime_version, v.runtime_api_version
                ))
            }),
        None => Err("no runtime endpoint (the KubeletConfiguration did not pass)".into()),
    };
    report(out, "cri", r);
    if all {
        out("all checks passed");
    }
    all
}

/// How often the stand-in asks whether the workload image is there.
pub const IMAGE_POLL: Duration = Duration::from_secs(2);

/// After the checks passed: waits (without end: the caller stops it on
/// SIGTERM) until containerd holds [`pods::WORKLOAD_IMAGE`], then runs the
/// two test pods once per node and, with `--matic-bench-pods=N` in `args`,
/// the benchmark. Every outcome is a line to `out`: `pods: FAILED: why` on
/// an error (kubelet stays up and so does the stand-in).
pub async fn run_pods(node: &Node, args: &[OsString], out: &mut dyn FnMut(&str)) -> bool {
    match pods_inner(node, args, out).await {
        Ok(()) => true,
        Err(e) => {
            out(&format!("pods: FAILED: {e}"));
            false
        }
    }
}

async fn pods_inner(
    node: &Node,
    args: &[OsString],
    out: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let bench = pods::bench_count(args)?;
    let socket = node.path(config::check(node)?.runtime_socket);
    let ch = matic_cri::connect(&socket, Duration::from_secs(30))
        .await
        .map_err(|e| format!("{e}: {}", e.source))?;
    out(&format!(
        "pods: waiting for {} in the runtime",
        pods::WORKLOAD_IMAGE
    ));
    pods::wait_for_image(&ch, pods::WORKLOAD_IMAGE, IMAGE_POLL, None).await?;
    out(&format!(
        "pods: {} is there, running the test pods",
        pods::WORKLOAD_IMAGE
    ));
    let log_root = node.path(pods::NODE_LOG_ROOT);
    if let Some(runs) = pods::run_test_pods(&ch, &log_root, out).await? {
        let codes: Vec<String> = runs.iter().map(|r| r.exit_code.to_string()).collect();
        out(&format!(
            "pods: test pods done, exit codes {}",
            codes.join(" ")
        ));
    }
    if let Some(n) = bench {
        out(&format!("pods: benchmark of {n} pods"));
        let s = pods::bench(&ch, n, &log_root, out).await?;
        out(&s.line());
    }
    Ok(())
}
