//! Running the real `matic-agent` as an ordinary process against a sandbox
//! directory: the one place that knows which flags point every path the
//! agent touches (PKI, init's run dir, logs, kernel log, trusted release keys, os-release,
//! command line, containerd socket) into the sandbox. Used by the agent's
//! and osctl's integration tests and the install benchmark.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The agent binary a test runs: `$MATIC_AGENT_BIN`, else `matic-agent` in
/// the target dir beside the running test binary (`cargo test --workspace`
/// builds it). Panics (fails the test) when there is none, saying how to
/// build it: a suite that skips itself would pass without testing anything.
pub fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("MATIC_AGENT_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "MATIC_AGENT_BIN={} does not exist", p.display());
        return p;
    }
    // <target>/<profile>/deps/<test> -> <target>/<profile>/matic-agent
    let exe = std::env::current_exe().expect("the test binary's path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in <target>/<profile>/deps")
        .join("matic-agent");
    assert!(
        p.exists(),
        "matic-agent binary not found at {}: build it first (`cargo build -p matic-agent`; \
         `cargo test --workspace` does) or set MATIC_AGENT_BIN",
        p.display()
    );
    p
}

/// The agent at `bin`, listening on a free loopback port, networking off,
/// with every path inside `dir`: `pki/`, `run/`, `log/`, `kmsg`, `release-keys/`,
/// `os-release`, `cmdline`, `containerd.sock`, and the boot history's
/// `boots/`, `pstore/`, `boot_id` and `watchdog-bootstatus` (the history
/// is off while `boot_id` does not exist), the machine configuration's
/// `config/`, the sysctls' `sysctl/` (a stand-in for `/proc/sys`) and
/// `hostname` (the name set, instead of the host's), the rendered files'
/// `containerd/`, `var/lib/kubelet/` and `etc/kubernetes/`, `clock` (the
/// SNTP client's corrections, never the host's clock), and the image
/// import's spool `import/` and pause archive `pause.tar`. The caller creates what
/// the test needs there and adds flags (`--no-boot-ok`, ...).
pub fn command(bin: &Path, dir: &Path) -> Command {
    command_on(bin, dir, SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// [`command`], listening on `listen` (a sandboxed node's agent restarted
/// on the address it had: [`crate::node`]).
pub fn command_on(bin: &Path, dir: &Path, listen: SocketAddr) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--listen")
        .arg(listen.to_string())
        .arg("--no-network");
    for (flag, path) in [
        ("--pki-dir", "pki"),
        ("--run-dir", "run"),
        ("--log-dir", "log"),
        ("--kmsg", "kmsg"),
        ("--release-keys", "release-keys"),
        ("--os-release", "os-release"),
        ("--cmdline", "cmdline"),
        ("--containerd-socket", "containerd.sock"),
        ("--history-dir", "boots"),
        ("--pstore-dir", "pstore"),
        ("--boot-id", "boot_id"),
        ("--watchdog-status", "watchdog-bootstatus"),
        ("--config-dir", "config"),
        ("--sysctl-dir", "sysctl"),
        ("--hostname-file", "hostname"),
        ("--containerd-dir", "containerd"),
        ("--kubelet-dir", "var/lib/kubelet"),
        ("--kubernetes-dir", "etc/kubernetes"),
        ("--clock-file", "clock"),
        ("--import-dir", "import"),
        ("--pause-archive", "pause.tar"),
    ] {
        cmd.arg(flag).arg(dir.join(path));
    }
    cmd
}

/// The address in the agent's `listening on ADDR ...` log line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.split("listening on ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_inside_the_sandbox() {
        let cmd = command(Path::new("/bin/agent"), Path::new("/sandbox"));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--no-network".to_owned()));
        let paths: Vec<&String> = args.iter().filter(|a| a.starts_with('/')).collect();
        assert_eq!(paths.len(), 21, "{args:?}");
        assert!(paths.iter().all(|p| p.starts_with("/sandbox/")), "{args:?}");
    }

    #[test]
    fn address_from_the_log_line() {
        assert_eq!(
            listening_addr(
                "matic-agent 0.1.0 listening on 127.0.0.1:4321 (disk None, running slot None)"
            ),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(listening_addr("matic-agent: net: lo up"), None);
    }
}
