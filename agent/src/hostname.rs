//! The node's hostname, which kubelet takes as the node name: so it must be
//! set (the kernel's default is "(none)"), distinct per machine and a valid
//! lowercase DNS name. In order of precedence: `matic.hostname=` on the
//! kernel command line, the DHCP lease's host name (option 12), else
//! `maticos-` and the last three bytes of the first Ethernet MAC (stable
//! across reboots, distinct on a LAN), or `maticos` with no Ethernet.
//!
//! Once a machine configuration names the node ([`set_configured`]), it
//! wins over all of those: they are remembered as the default (what the
//! node goes back to when the configuration stops naming it) but not set.
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The name used when there is nothing to tell this node apart.
pub const FALLBACK: &str = "maticos";
/// The kernel's limit (`__NEW_UTS_LEN` is 64 including the NUL).
const MAX_LEN: usize = 63;

/// Errors naming and setting the hostname.
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    #[error(
        "bad host name {0:?} from {1}: use lowercase letters, digits, '-' and '.', at most {MAX_LEN} characters"
    )]
    Invalid(String, &'static str),
    #[error("sethostname({0:?}): {1}")]
    Set(String, std::io::Error),
}

/// Lowercases `name` and checks it is a DNS name the kernel and Kubernetes
/// accept: dot-separated labels of `[a-z0-9-]`, none empty or starting or
/// ending with `-`, at most 63 characters in all.
pub fn normalize(name: &str, source: &'static str) -> Result<String, HostnameError> {
    let n = name.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if n.len() <= MAX_LEN && n.split('.').all(label_ok) {
        Ok(n)
    } else {
        Err(HostnameError::Invalid(name.to_owned(), source))
    }
}

/// `matic.hostname=` from a kernel command line: None when absent.
pub fn from_cmdline(cmdline: &str) -> Option<Result<String, HostnameError>> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("matic.hostname="))
        .map(|n| normalize(n, "matic.hostname"))
}

/// `maticos-` and the last three bytes of `mac` in hex; [`FALLBACK`] for a
/// MAC shorter than three bytes.
pub fn from_mac(mac: &[u8]) -> String {
    let Some(tail) = mac.len().checked_sub(3).map(|at| &mac[at..]) else {
        return FALLBACK.to_owned();
    };
    let mut name = format!("{FALLBACK}-");
    for b in tail {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// Who names the node: the process-wide state behind [`set`] and
/// [`set_configured`] (the hostname is the node's, one per process).
struct Naming {
    /// The machine configuration's name, which wins.
    configured: Option<String>,
    /// The last name from the command line, DHCP or the MAC.
    default: Option<(String, String)>,
    /// Tests: write the name to this file instead of `sethostname(2)`.
    file: Option<PathBuf>,
}

static NAMING: Mutex<Naming> = Mutex::new(Naming {
    configured: None,
    default: None,
    file: None,
});

fn naming() -> std::sync::MutexGuard<'static, Naming> {
    NAMING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tests (`--hostname-file`): names go to `path`, the host's name is left alone.
pub fn write_to_file(path: PathBuf) {
    naming().file = Some(path);
}

fn apply(n: &Naming, name: &str, source: &str) -> Result<(), HostnameError> {
    match &n.file {
        Some(f) => std::fs::write(f, format!("{name}\n"))
            .map_err(|e| HostnameError::Set(name.to_owned(), e))?,
        None => rustix::system::sethostname(name.as_bytes())
            .map_err(|e| HostnameError::Set(name.to_owned(), e.into()))?,
    }
    eprintln!("matic-agent: hostname {name} ({source})");
    Ok(())
}

/// Sets the hostname (of the agent's UTS namespace: the node's) and logs
/// where it came from, unless the machine configuration names the node:
/// then `name` is only remembered as the default.
pub fn set(name: &str, source: &str) -> Result<(), HostnameError> {
    let mut n = naming();
    n.default = Some((name.to_owned(), source.to_owned()));
    if let Some(c) = &n.configured {
        eprintln!("matic-agent: hostname stays {c} (machine configuration), not {name} ({source})");
        return Ok(());
    }
    apply(&n, name, source)
}

/// The machine configuration's name (None: it names the node no more, so
/// the default comes back when one is known).
pub fn set_configured(name: Option<&str>) -> Result<(), HostnameError> {
    let mut n = naming();
    n.configured = name.map(str::to_owned);
    match (name, n.default.clone()) {
        (Some(name), _) => apply(&n, name, "machine configuration"),
        (None, Some((d, source))) => apply(&n, &d, &source),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize("Node-A.example", "t").unwrap(), "node-a.example");
        assert_eq!(normalize("worker7", "t").unwrap(), "worker7");
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "under_score",
            "space d",
            "(none)",
            &"x".repeat(64),
        ] {
            assert!(normalize(bad, "t").is_err(), "{bad:?}");
        }
        assert_eq!(normalize(&"x".repeat(63), "t").unwrap().len(), 63);
    }

    #[test]
    fn cmdline() {
        assert!(from_cmdline("console=ttyS0 quiet").is_none());
        assert_eq!(
            from_cmdline("ro matic.hostname=Edge-1 quiet")
                .unwrap()
                .unwrap(),
            "edge-1"
        );
        assert!(from_cmdline("matic.hostname=no_good").unwrap().is_err());
    }

    /// The only test touching the process-wide naming (it writes to a file).
    #[test]
    fn the_configured_name_wins_until_it_is_removed() {
        let f = std::env::temp_dir().join(format!("matic-hostname-{}", std::process::id()));
        write_to_file(f.clone());
        let read = || std::fs::read_to_string(&f).unwrap().trim().to_owned();
        set("from-cmdline", "matic.hostname").unwrap();
        assert_eq!(read(), "from-cmdline");
        set_configured(Some("from-config")).unwrap();
        assert_eq!(read(), "from-config");
        // A DHCP lease later does not rename a configured node ...
        set("from-dhcp", "DHCP").unwrap();
        assert_eq!(read(), "from-config");
        // ... but is what it goes back to when the config stops naming it.
        set_configured(None).unwrap();
        assert_eq!(read(), "from-dhcp");
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn mac_names() {
        assert_eq!(
            from_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "maticos-123456"
        );
        assert_eq!(from_mac(&[0xab, 0xcd]), "maticos");
        assert!(normalize(&from_mac(&[0xde, 0xad, 0xbe, 0xef, 0, 1]), "t").is_ok());
    }
}
