//! Debian's containerd (and runc) run as an ordinary process for a test:
//! its root, state, socket and CNI directories inside the test's own
//! directory, the CRI plugin on with our pause image as `sandbox_image`,
//! its streaming server on loopback only; and the node's two static
//! programs (`matic-pause`, `matic-workload`) built for its containers
//! and packed as the node's two images ([`image_archives`]).
//!
//! Test support only. Must never: touch the host's containerd (its socket,
//! root or state), or leave a containerd running after its [`Containerd`]
//! is dropped.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The containerd binary the tests run.
pub const CONTAINERD: &str = "/usr/bin/containerd";

/// A running containerd, killed when dropped.
pub struct Containerd {
    child: Child,
    /// Its gRPC socket (containerd's API and the CRI).
    pub socket: PathBuf,
    /// Its directory (root, state, config, log).
    pub dir: PathBuf,
}

/// What a test needs on the host, or a sentence saying what is missing:
/// root, containerd, runc and its shim.
pub fn missing() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some("containers need root (run the tests as root)".into());
    }
    for bin in [CONTAINERD, "/usr/bin/containerd-shim-runc-v2"] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} missing: apt-get install containerd (scripts/lib/deps.sh)"
            ));
        }
    }
    if !Path::new("/usr/sbin/runc").exists() && !Path::new("/usr/bin/runc").exists() {
        return Some("runc missing: apt-get install runc (scripts/lib/deps.sh)".into());
    }
    None
}

impl Containerd {
    /// Starts containerd with everything under `dir`, its socket at
    /// `socket`, and `pause_image` as the CRI's sandbox image; waits until
    /// the socket exists.
    pub fn start(dir: &Path, socket: &Path, pause_image: &str) -> Containerd {
        if let Some(why) = missing() {
            panic!("{why}");
        }
        std::fs::create_dir_all(dir).unwrap();
        for d in ["root", "state", "cni/bin", "cni/conf", "opt"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let p = |s: &str| dir.join(s).display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause_image}"
    # The CRI gives a pod's pause process oom_score_adj -998, and lowering
    # it needs CAP_SYS_RESOURCE, which a test host in a container may lack
    # (this one does: runc's nsexec then dies with "failed to update
    # /proc/self/oom_score_adj: Permission denied"). Clamped to
    # containerd's own score instead; the node's containerd has the cap.
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{cni_bin}"
      conf_dir = "{cni_conf}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{opt}"
"#,
            root = p("root"),
            state = p("state"),
            socket = socket.display(),
            cni_bin = p("cni/bin"),
            cni_conf = p("cni/conf"),
            opt = p("opt"),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let c = Containerd {
            child,
            socket: socket.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not create {} in 30 s; its log:\n{}",
                socket.display(),
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The static `matic-pause` and `matic-workload`, built for the tests the
/// way the image build does (`-C target-feature=+crt-static`, an explicit
/// `--target` so a plain build never replaces them), in the target
/// directory of the running test. `$MATIC_WORKLOADS_BIN` (a directory
/// holding both) skips the build.
pub fn static_programs() -> (PathBuf, PathBuf) {
    if let Ok(dir) = std::env::var("MATIC_WORKLOADS_BIN") {
        let d = PathBuf::from(dir);
        return (d.join("matic-pause"), d.join("matic-workload"));
    }
    // <target>/<profile>/deps/<test> -> <target>
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps")
        .to_path_buf();
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for bin in ["matic-pause", "matic-workload"] {
        let st = Command::new(&cargo)
            .args([
                "rustc",
                "--quiet",
                "--locked",
                "-p",
                "matic-workloads",
                "--bin",
                bin,
            ])
            .args(["--target", &triple, "--target-dir"])
            .arg(&target_dir)
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--", "-C", "target-feature=+crt-static"])
            // no_std programs: no unwinder, whatever the test build uses
            // (scripts/test builds the tests with CARGO_PROFILE_DEV_PANIC=unwind).
            .env("CARGO_PROFILE_DEV_PANIC", "abort")
            .status()
            .expect("running cargo");
        assert!(st.success(), "building {bin} static failed");
    }
    let out = target_dir.join(triple).join("debug");
    (out.join("matic-pause"), out.join("matic-workload"))
}

/// The node's two image names.
pub use matic_contract::workloads::{PAUSE_IMAGE, WORKLOAD_IMAGE};

/// The OCI image archive `name` as build-rootfs writes it: one gzip layer
/// holding the static program `bin` as `/entry`, its entrypoint; and what
/// was written (digests, sizes).
pub fn image_archive(name: &str, entry: &str, bin: &Path) -> (Vec<u8>, matic_oci::Written) {
    let spec = matic_oci::ImageSpec {
        name: name.into(),
        platform: matic_oci::Platform::host(),
        run: matic_oci::layout::RunConfig {
            entrypoint: vec![format!("/{entry}")],
            ..Default::default()
        },
        files: vec![matic_oci::LayerFile {
            path: entry.into(),
            mode: 0o755,
            data: std::fs::read(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
        }],
        compression: matic_oci::Compression::Gzip,
    };
    let mut tar = Vec::new();
    let written = matic_oci::write_archive(&spec, &mut tar).unwrap();
    (tar, written)
}

/// `pause.tar` and `workload.tar` in `dir`: the static programs of
/// [`static_programs`] as OCI image archives, as build-rootfs writes them
/// (one gzip layer holding `/pause` or `/workload`, its entrypoint).
pub fn image_archives(dir: &Path) -> (PathBuf, PathBuf) {
    let (pause, workload) = static_programs();
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, entry: &str, bin: &Path| {
        let out = dir.join(format!("{entry}.tar"));
        std::fs::write(&out, image_archive(name, entry, bin).0).unwrap();
        out
    };
    (
        write(PAUSE_IMAGE, "pause", &pause),
        write(WORKLOAD_IMAGE, "workload", &workload),
    )
}
