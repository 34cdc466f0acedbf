//! What `matic-probe` reports from inside a node: TCP listeners parsed from
//! the kernel's `/proc/net/tcp{,6}` tables and the state of the root mount.
//! Kept in the library so the parsers are unit-tested on the host.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The `st` column value of a listening socket in `/proc/net/tcp*`.
const TCP_LISTEN: &str = "0A";

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `tcp` or `tcp6`.
    pub family: &'static str,
    /// The local address as text (`0.0.0.0`, `::`, `127.0.0.1`, ...).
    pub addr: String,
    /// The local port.
    pub port: u16,
}

/// Parses a `/proc/net/tcp` (`family = "tcp"`) or `/proc/net/tcp6` table and
/// returns its listening sockets. Lines that do not parse are skipped: the
/// kernel's format is fixed, and a probe must report, not fail.
pub fn parse_listeners(table: &str, family: &'static str) -> Vec<Listener> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let _slot = cols.next()?;
            let local = cols.next()?;
            let _remote = cols.next()?;
            let state = cols.next()?;
            if state != TCP_LISTEN {
                return None;
            }
            let (addr_hex, port_hex) = local.split_once(':')?;
            let port = u16::from_str_radix(port_hex, 16).ok()?;
            let addr = parse_addr(addr_hex)?;
            Some(Listener { family, addr, port })
        })
        .collect()
}

/// The kernel prints addresses as host-order (little-endian on x86) 32-bit
/// words in hex: one word for IPv4, four for IPv6.
fn parse_addr(hex: &str) -> Option<String> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let words = words?;
    match (hex.len(), words.as_slice()) {
        (8, [w]) => Some(Ipv4Addr::from(w.to_le_bytes()).to_string()),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Some(Ipv6Addr::from(bytes).to_string())
        }
        _ => None,
    }
}

/// The root mount as `/proc/self/mountinfo` shows it: the last entry whose
/// mount point is `/` is the one processes see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMount {
    /// File system type (`squashfs` on a MaticOS node).
    pub fstype: String,
    /// Per-mount options (`ro,relatime`, ...).
    pub options: String,
}

/// Finds the visible root mount in a `mountinfo` table (searching from the
/// end: later mounts stack on top of earlier ones).
pub fn parse_root_mount(mountinfo: &str) -> Option<RootMount> {
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        // Field 4 is the mount point, 5 the per-mount options; after the
        // optional fields and a lone "-" come fstype and source.
        let dash = fields.iter().position(|f| *f == "-")?;
        if fields.get(4)? != &"/" {
            return None;
        }
        Some(RootMount {
            fstype: (*fields.get(dash + 1)?).to_owned(),
            options: (*fields.get(5)?).to_owned(),
        })
    })
}

/// The `nameserver` addresses of a resolv.conf, space-separated.
pub fn nameservers(resolv: &str) -> String {
    resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds one report: `listen`, `root-mount`, `root-write`, `resolver` and
/// `hostname` lines, then `end`. `root` is the directory the write test tries to
/// create a file in; `resolv` the resolver file (`/etc/resolv.conf`).
pub fn report(root: &Path, resolv: &Path) -> String {
    let mut out = String::new();
    for (path, family) in [("/proc/net/tcp", "tcp"), ("/proc/net/tcp6", "tcp6")] {
        match std::fs::read_to_string(path) {
            Ok(table) => {
                for l in parse_listeners(&table, family) {
                    let _ = writeln!(
                        out,
                        "matic-probe: listen {} {} {}",
                        l.family, l.addr, l.port
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "matic-probe: error reading {path}: {e}");
            }
        }
    }
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => match parse_root_mount(&info) {
            Some(m) => {
                let _ = writeln!(out, "matic-probe: root-mount {} {}", m.fstype, m.options);
            }
            None => {
                let _ = writeln!(out, "matic-probe: root-mount none");
            }
        },
        Err(e) => {
            let _ = writeln!(out, "matic-probe: error reading /proc/self/mountinfo: {e}");
        }
    }
    // Actually try to write: a read-only flag could be shadowed by a later
    // writable mount on top, but a write that fails with EROFS cannot lie.
    let target = root.join(".matic-probe-write-test");
    let result = match std::fs::File::create(&target) {
        Ok(_) => {
            let _ = std::fs::remove_file(&target);
            "writable".to_owned()
        }
        Err(e) if e.raw_os_error() == Some(30) => "EROFS".to_owned(),
        Err(e) => format!("error {e}"),
    };
    let _ = writeln!(out, "matic-probe: root-write {result}");
    // Through the image's /etc/resolv.conf symlink: what the node's
    // programs (containerd pulling images) resolve with.
    match std::fs::read_to_string(resolv) {
        Ok(text) => {
            let _ = writeln!(out, "matic-probe: resolver {}", nameservers(&text));
        }
        Err(e) => {
            let _ = writeln!(out, "matic-probe: resolver error {e}");
        }
    }
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(name) => {
            let _ = writeln!(out, "matic-probe: hostname {}", name.trim());
        }
        Err(e) => {
            let _ = writeln!(out, "matic-probe: hostname error {e}");
        }
    }
    out.push_str("matic-probe: end\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:C383 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0
   1: 0100007F:9C41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0 100 0 0 10 0
   2: 0F02000A:C383 0202000A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:C383 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98 1 0 100 0 0 10 0
";

    #[test]
    fn tcp_listeners_only_listen_state_decoded() {
        let l = parse_listeners(TCP, "tcp");
        assert_eq!(
            l,
            vec![
                Listener {
                    family: "tcp",
                    addr: "0.0.0.0".into(),
                    port: 50051
                },
                Listener {
                    family: "tcp",
                    addr: "127.0.0.1".into(),
                    port: 40001
                },
            ]
        );
    }

    #[test]
    fn tcp6_listeners_decoded() {
        let l = parse_listeners(TCP6, "tcp6");
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].addr.as_str(), l[0].port), ("::", 50051));
        assert_eq!((l[1].addr.as_str(), l[1].port), ("::1", 80));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let t = "header\nnot a line\n 0: zz:zz 0:0 0A\n";
        assert!(parse_listeners(t, "tcp").is_empty());
    }

    #[test]
    fn root_mount_is_the_last_entry_for_slash() {
        let info = "1 0 0:2 / / rw - rootfs rootfs rw
22 1 254:2 / / ro,relatime - squashfs /dev/vda2 ro
23 22 254:4 / /var rw,relatime shared:1 - ext4 /dev/vda4 rw
";
        assert_eq!(
            parse_root_mount(info),
            Some(RootMount {
                fstype: "squashfs".into(),
                options: "ro,relatime".into()
            })
        );
    }

    #[test]
    fn report_says_writable_for_a_writable_dir() {
        let dir = std::env::temp_dir().join(format!("matic-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            "# test\nnameserver 10.0.2.3\nnameserver  1.1.1.1\n",
        )
        .unwrap();
        let r = report(&dir, &resolv);
        assert!(r.contains("matic-probe: root-write writable\n"), "{r}");
        assert!(
            r.contains("matic-probe: resolver 10.0.2.3 1.1.1.1\n"),
            "{r}"
        );
        assert!(r.contains("matic-probe: hostname "), "{r}");
        assert!(r.ends_with("matic-probe: end\n"));
        assert!(!dir.join(".matic-probe-write-test").exists());
        std::fs::remove_file(&resolv).unwrap();
        let r = report(&dir, &resolv);
        assert!(r.contains("matic-probe: resolver error "), "{r}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
