//! Capabilities: the agent runs as root under init but keeps only the
//! capabilities its own system calls need ([`needed`]; the table with the
//! calls is in docs/api.md, "Privileges") and drops every other one from the
//! effective, permitted, inheritable, ambient and bounding sets, then sets
//! `no_new_privs`. Uses rustix's safe `capset`/`prctl` wrappers.
//!
//! Must run before any other thread exists: capability sets are per
//! thread, and threads started later inherit the caller's. Must never stop
//! the agent: without the privilege to drop (not root, already reduced),
//! it logs what it has and goes on.
use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, clear_ambient_capability_set,
    remove_capability_from_bounding_set, set_capabilities, set_no_new_privs,
};

use crate::config::Config;

/// What the agent keeps, and why (one system call each):
/// - `CAP_SYSLOG`: `open("/dev/kmsg")` for `Dmesg` when
///   `kernel.dmesg_restrict=1` (Debian's default).
/// - `CAP_NET_ADMIN`: rtnetlink link up, address, route changes.
/// - `CAP_NET_BIND_SERVICE`: the DHCP client's `bind(0.0.0.0:68)`.
/// - `CAP_SYS_ADMIN`: `sethostname`.
/// - `CAP_SYS_TIME`: the SNTP client's `clock_settime` and `adjtime`
///   (not with `--clock-file`, where corrections go to a file).
///
/// The three network ones only without `--no-network`. Everything else
/// the agent does needs none: it is uid 0 and owns what it opens (the disk
/// device, the FIFO, `/var/lib/matic`, the logs), binds port 50051, and
/// only raises its soft descriptor limit up to the hard one.
pub fn needed(cfg: &Config) -> CapabilitySet {
    let mut keep = CapabilitySet::SYSLOG;
    if !cfg.no_network {
        keep |=
            CapabilitySet::NET_ADMIN | CapabilitySet::NET_BIND_SERVICE | CapabilitySet::SYS_ADMIN;
    }
    if cfg.clock_file.is_none() {
        keep |= CapabilitySet::SYS_TIME;
    }
    keep
}

/// The highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// What [`drop_all_but`] achieved, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The effective (= permitted) set now.
    pub kept: CapabilitySet,
    /// Problems met on the way (each already harmless), empty when all went.
    pub notes: Vec<String>,
}

/// Drops every capability not in `keep` from all five sets, then sets
/// `no_new_privs`. Call it before the first thread starts.
pub fn drop_all_but(keep: CapabilitySet) -> Outcome {
    let mut notes = Vec::new();
    // EINVAL: a kernel without ambient capabilities (before 4.3): nothing to clear.
    if let Err(e) = clear_ambient_capability_set()
        && e != rustix::io::Errno::INVAL
    {
        notes.push(format!("clearing the ambient set: {e}"));
    }
    // Bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    for n in 0..=last_cap() {
        let cap = CapabilitySet::from_bits_retain(1 << n);
        if keep.contains(cap) {
            continue;
        }
        match remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            Err(e) => {
                notes.push(format!(
                    "bounding set left as it is: dropping capability {n}: {e}"
                ));
                break;
            }
        }
    }
    let kept = match capabilities(None) {
        Ok(now) => {
            let kept = keep & now.permitted;
            let sets = CapabilitySets {
                effective: kept,
                permitted: kept,
                inheritable: CapabilitySet::empty(),
            };
            if let Err(e) = set_capabilities(None, sets) {
                notes.push(format!("capset: {e}"));
                now.effective
            } else {
                kept
            }
        }
        Err(e) => {
            notes.push(format!("capget: {e}"));
            CapabilitySet::empty()
        }
    };
    // The agent runs no programs; this keeps any it were tricked into
    // running from gaining privileges (setuid bits, file capabilities).
    if let Err(e) = set_no_new_privs(true) {
        notes.push(format!("no_new_privs: {e}"));
    }
    Outcome { kept, notes }
}

/// `cap_syslog,cap_net_admin`-style names for the log.
pub fn names(set: CapabilitySet) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter_names()
        .map(|(n, _)| format!("cap_{}", n.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn no_network_keeps_only_syslog() {
        let cfg = Config::parse_from(["matic-agent", "--no-network", "--clock-file", "/c"]);
        assert_eq!(needed(&cfg), CapabilitySet::SYSLOG);
        let cfg = Config::parse_from(["matic-agent", "--no-network"]);
        assert_eq!(
            needed(&cfg),
            CapabilitySet::SYSLOG | CapabilitySet::SYS_TIME
        );
        let cfg = Config::parse_from(["matic-agent"]);
        let n = needed(&cfg);
        assert!(n.contains(
            CapabilitySet::NET_ADMIN | CapabilitySet::SYS_ADMIN | CapabilitySet::SYS_TIME
        ));
        assert!(!n.contains(CapabilitySet::DAC_OVERRIDE));
        assert!(!n.contains(CapabilitySet::SETPCAP));
        assert_eq!(names(CapabilitySet::SYSLOG), "cap_syslog");
        assert_eq!(names(CapabilitySet::empty()), "none");
    }
}
