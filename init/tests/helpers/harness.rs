//! Test-root harness shared by matic-init's namespace tests and the
//! benchmark: builds a root directory with init at `/sbin/init` and the
//! helper at the service paths, and runs init as PID 1 of a new PID + mount
//! namespace (`unshare --pid --fork --mount --root`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Fails the calling test with a clear message unless running as root.
pub fn require_root() {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "matic-init namespace tests need root (PID and mount namespaces, chroot); run them as root like CI does"
    );
}

/// A prepared root directory.
pub struct TestRoot {
    pub dir: PathBuf,
    /// Pin the namespace to this CPU (benchmark only).
    pub cpu: Option<u32>,
}

impl TestRoot {
    /// Creates `base/name` afresh with init, the given `(service, mode)`
    /// helpers and, if given, `/run/matic/boot`.
    pub fn new(
        base: &Path,
        name: &str,
        init: &Path,
        helper: &Path,
        services: &[(&str, &str)],
        boot: Option<&str>,
    ) -> TestRoot {
        let dir = base.join(name);
        let _ = fs::remove_dir_all(&dir);
        for d in [
            "sbin",
            "usr/bin",
            "etc/testsvc",
            "run/matic",
            "var/log/matic",
            "tmp",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        copy_exec(init, &dir.join("sbin/init"));
        for (svc, mode) in services {
            copy_exec(helper, &dir.join("usr/bin").join(svc));
            fs::write(dir.join("etc/testsvc").join(svc), mode).unwrap();
            if *svc == "kubelet" {
                // Init starts kubelet only while its flags file exists
                // (matic_contract::kubelet); an empty one adds no flag.
                let flags = dir.join("var/lib/kubelet/matic-flags");
                fs::create_dir_all(flags.parent().unwrap()).unwrap();
                fs::write(flags, "").unwrap();
            }
        }
        if let Some(b) = boot {
            fs::write(dir.join("run/matic/boot"), b).unwrap();
        }
        copy_libs(helper, &dir);
        TestRoot { dir, cpu: None }
    }

    /// Path of something inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }

    /// The service's captured output (empty if none yet).
    pub fn log(&self, svc: &str) -> String {
        fs::read_to_string(self.path(&format!("var/log/matic/{svc}.log"))).unwrap_or_default()
    }

    /// The status file (empty if not written yet).
    pub fn status(&self) -> String {
        fs::read_to_string(self.path("run/matic/services")).unwrap_or_default()
    }

    /// The status line of one service, split in fields.
    pub fn status_of(&self, svc: &str) -> Vec<String> {
        self.status()
            .lines()
            .find(|l| l.split(' ').next() == Some(svc))
            .map(|l| l.split(' ').map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Init's stderr (its log, as there is no /dev/kmsg in a test root).
    pub fn init_log(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.with_extension("stderr")
    }

    /// Starts `/sbin/init args…` as PID 1 of a new PID and mount namespace
    /// chrooted into the root.
    pub fn start(&self, args: &[&str]) -> Running {
        self.start_program("/sbin/init", args)
    }

    /// Starts `program args…` (a path inside the root) as PID 1 of a new PID
    /// and mount namespace chrooted into the root.
    pub fn start_program(&self, program: &str, args: &[&str]) -> Running {
        let err = fs::File::create(self.stderr_path()).unwrap();
        let mut cmd = match self.cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", &c.to_string(), "unshare"]);
                t
            }
            None => Command::new("unshare"),
        };
        let child = cmd
            .args(["--pid", "--fork", "--mount", "--propagation", "private"])
            .arg(format!("--root={}", self.dir.display()))
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            .spawn()
            .expect("running unshare (util-linux)");
        // With taskset in front, unshare is the same process (taskset execs).
        let unshare = child.id() as i32;
        let init_pid = wait_until(Duration::from_secs(10), || {
            let c = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
            c.split_whitespace().next()?.parse::<i32>().ok()
        })
        .expect("init did not start under unshare");
        Running {
            child,
            init_pid,
            exited: None,
        }
    }
}

/// A running namespace whose PID 1 is matic-init.
pub struct Running {
    child: Child,
    /// Init's pid as seen from the host.
    pub init_pid: i32,
    exited: Option<ExitStatus>,
}

impl Running {
    /// Sends a signal to init (from the parent namespace).
    pub fn signal(&self, sig: i32) {
        let r = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.init_pid.to_string())
            .status()
            .unwrap();
        assert!(r.success(), "kill -{sig} {}", self.init_pid);
    }

    /// Waits for the namespace to end; returns unshare's status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let st = wait_until(timeout, || self.child.try_wait().ok().flatten());
        self.exited = st;
        st
    }

    /// Pids (host view) of init's direct children, zombies included.
    pub fn children(&self) -> Vec<i32> {
        let p = self.init_pid;
        fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// Init's anonymous memory in kB (`Anonymous:` of smaps_rollup).
    pub fn anon_kb(&self) -> Option<u64> {
        let s = fs::read_to_string(format!("/proc/{}/smaps_rollup", self.init_pid)).ok()?;
        let l = s.lines().find(|l| l.starts_with("Anonymous:"))?;
        l.split_whitespace().nth(1)?.parse().ok()
    }

    /// Processes of the namespace other than init: (host pid, state, comm).
    pub fn ns_processes(&self) -> Vec<(i32, char, String)> {
        let Ok(ns) = fs::read_link(format!("/proc/{}/ns/pid", self.init_pid)) else {
            return vec![];
        };
        let mut v = vec![];
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == self.init_pid
                || fs::read_link(e.path().join("ns/pid")).ok().as_ref() != Some(&ns)
            {
                continue;
            }
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat[open + 1..close].to_string();
            let state = stat[close + 2..].chars().next().unwrap_or('?');
            v.push((pid, state, comm));
        }
        v
    }

    /// Writes to the control FIFO like the agent does.
    pub fn control(&self, root: &TestRoot, data: &[u8]) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK: fails if init is not listening
            .open(root.path("run/matic/control"))
            .expect("open the control FIFO");
        f.write_all(data).unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.init_pid.to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 5 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `(event, ns)` pairs from a helper's log lines `<event> <ns>`.
pub fn events(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let ev = w.next()?.to_string();
            let t = w.next()?.parse().ok()?;
            Some((ev, t))
        })
        .collect()
}

/// Copies an executable into the root, with its shared libraries.
pub fn install(root: &Path, from: &Path, to_rel: &str) {
    let to = root.join(to_rel.trim_start_matches('/'));
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    copy_exec(from, &to);
    copy_libs(from, root);
}

fn copy_exec(from: &Path, to: &Path) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Copies the shared libraries `bin` needs (per `ldd`) to the same paths
/// under `root`.
fn copy_libs(bin: &Path, root: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    // A static binary: ldd says "not a dynamic executable" and exits 1.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            let dest = root.join(p.trim_start_matches('/'));
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(p, &dest).unwrap_or_else(|e| panic!("copy {p}: {e}"));
        }
    }
}
