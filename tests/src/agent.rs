//! Running the real `matic-agent` as an ordinary process against a sandbox
//! directory: the one place that knows which flags point every path the
//! agent touches (PKI, init's run dir, logs, kernel log, trusted release keys, os-release,
//! command line, containerd socket) into the sandbox. Used by the agent's
//! and osctl's integration tests and the install benchmark.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// The agent at `bin`, listening on a free loopback port, networking off,
/// with every path inside `dir`: `pki/`, `run/`, `log/`, `kmsg`, `release-keys/`,
/// `os-release`, `cmdline`, `containerd.sock`, and the boot history's
/// `boots/`, `pstore/`, `boot_id` and `watchdog-bootstatus` (the history
/// is off while `boot_id` does not exist), the machine configuration's
/// `config/`, the sysctls' `sysctl/` (a stand-in for `/proc/sys`) and
/// `hostname` (the name set, instead of the host's). The caller creates what
/// the test needs there and adds flags (`--no-boot-ok`, ...).
pub fn command(bin: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--no-network"]);
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
        assert_eq!(paths.len(), 15, "{args:?}");
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
