//! The compiled-in service table (docs/init.md, "Service table"): which
//! services init runs, in which order, and which may be absent.
//!
//! The table and its own checks (`validate`, `find`) only: it must never
//! start, stop or order anything at run time; the supervisor does.

use core::ffi::CStr;
use matic_contract::kubelet;

/// One supervised service.
#[derive(Debug)]
pub struct ServiceSpec {
    /// Name used in `/run/matic/services`, `restart NAME` and the log file name.
    pub name: &'static str,
    /// Absolute path of the executable; it is also passed as `argv[0]`.
    pub path: &'static CStr,
    /// Services that must be running before this one is first started.
    pub after: &'static [&'static str],
    /// Skipped (state `skipped`) when the binary is absent, instead of being
    /// retried with backoff forever.
    pub optional: bool,
    /// Held at boot (state `held`) until the agent sends `listening` on
    /// the control FIFO, at most
    /// [`matic_contract::services::HELD_LIMIT_MS`]. Only the first start
    /// waits: a restart after a crash never does.
    pub held: bool,
    /// Upper bound of this service's restart delay, below the policy's cap
    /// ([`crate::backoff::Backoff`]); `u64::MAX` for none.
    pub backoff_cap_ms: u64,
    /// Arguments after `argv[0]`, before the lines of `args_file`.
    pub args: &'static [&'static CStr],
    /// Started only while this file exists and passes
    /// `matic_contract::kubelet::check`; its lines are the last arguments
    /// ([`crate::argv`]). Without it (or with a refused one) the service is
    /// `waiting` until `restart NAME` finds it.
    pub args_file: Option<&'static CStr>,
}

/// The services of a MaticOS node, in start order. Shutdown stops them in the
/// reverse order.
pub const SERVICES: [ServiceSpec; 3] = [
    ServiceSpec {
        name: "matic-agent",
        path: c"/usr/bin/matic-agent",
        after: &[],
        optional: false,
        held: false,
        // The agent is the only way into the node: a crash loop must never
        // keep the API away for a minute, and its restart is cheap.
        backoff_cap_ms: 5_000,
        args: &[],
        args_file: None,
    },
    ServiceSpec {
        name: "containerd",
        path: c"/usr/bin/containerd",
        after: &[],
        optional: false,
        // Its start is the agent's largest competitor for the CPUs on the
        // way to the API answering (docs/image.md, "Boot timing"). kubelet
        // (after containerd) waits with it.
        held: true,
        backoff_cap_ms: u64::MAX,
        args: &[],
        args_file: None,
    },
    ServiceSpec {
        name: "kubelet",
        path: c"/usr/bin/kubelet",
        after: &["containerd"],
        optional: true,
        held: false,
        backoff_cap_ms: u64::MAX,
        args: &kubelet::FIXED_FLAGS,
        args_file: Some(kubelet::FLAGS_PATH),
    },
];

/// Index of `matic-agent` in [`SERVICES`]: it gets the read ends of every
/// other service's log pipe, descriptor `FIRST_FD + j - 1` for entry `j`
/// (`matic_contract::handoff`, whose layout the tests check against this
/// table). It is the first entry so that the others' pipes follow it in
/// table order.
pub const AGENT: usize = 0;

/// The environment every service starts with: nothing of init's own.
pub const SERVICE_ENV: &[&CStr] = &[c"PATH=/usr/bin:/usr/sbin"];

/// `RLIMIT_NOFILE` (soft and hard) every service starts with: 1,048,576,
/// the kernel's default `fs.nr_open` (the most a hard limit may be) and
/// what containerd's own systemd unit asks for (`LimitNOFILE=infinity`).
/// The kernel's default for PID 1, 1024 soft / 4096 hard, starves
/// containerd (a descriptor or more per container, shim and log) and
/// kubelet (watches, sockets) on a busy node.
pub const SERVICE_NOFILE: u64 = 1 << 20;

/// Checks that a table is usable: unique, log-safe names, absolute paths,
/// at most [`crate::argv::MAX_FIXED`] fixed arguments, and
/// dependencies that name an *earlier* entry (so table order is a valid start
/// order and its reverse a valid stop order). Returns the offending name.
pub fn validate(table: &[ServiceSpec]) -> Result<(), &'static str> {
    for (i, s) in table.iter().enumerate() {
        let name_ok = !s.name.is_empty()
            && s.name.len() <= 32
            && s.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let args_ok = s.args.len() <= crate::argv::MAX_FIXED;
        if !name_ok || !args_ok || !s.path.to_bytes().starts_with(b"/") {
            return Err(s.name);
        }
        if table[..i].iter().any(|o| o.name == s.name) {
            return Err(s.name);
        }
        for dep in s.after {
            if !table[..i].iter().any(|o| o.name == *dep) {
                return Err(s.name);
            }
        }
    }
    Ok(())
}

/// Index of the service called `name`.
pub fn find(table: &[ServiceSpec], name: &[u8]) -> Option<usize> {
    table.iter().position(|s| s.name.as_bytes() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_table_is_valid_and_ordered() {
        assert_eq!(validate(&SERVICES), Ok(()));
        let names: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
        assert_eq!(names, ["matic-agent", "containerd", "kubelet"]);
        let k = &SERVICES[find(&SERVICES, b"kubelet").unwrap()];
        assert_eq!(k.after, ["containerd"]);
        assert!(k.optional);
        // Gated on the flags file, with the contract's fixed flags first.
        assert_eq!(k.args_file, Some(kubelet::FLAGS_PATH));
        assert_eq!(k.args, kubelet::FIXED_FLAGS);
        assert!(SERVICES[..2].iter().all(|s| s.args_file.is_none()));
        assert!(!SERVICES[0].optional && !SERVICES[1].optional);
        assert_eq!(SERVICES[0].backoff_cap_ms, 5_000);
        assert_eq!(SERVICES[1].backoff_cap_ms, u64::MAX);
        // Only containerd is held; kubelet waits for it through `after`.
        let held: Vec<_> = SERVICES.iter().map(|s| s.held).collect();
        assert_eq!(held, [false, true, false]);
    }

    #[test]
    fn rejects_forward_dependency_and_duplicates() {
        const FWD: [ServiceSpec; 2] = [
            ServiceSpec {
                name: "a",
                path: c"/a",
                after: &["b"],
                optional: false,
                held: false,
                backoff_cap_ms: u64::MAX,
                args: &[],
                args_file: None,
            },
            ServiceSpec {
                name: "b",
                path: c"/b",
                after: &[],
                optional: false,
                held: false,
                backoff_cap_ms: u64::MAX,
                args: &[],
                args_file: None,
            },
        ];
        assert_eq!(validate(&FWD), Err("a"));
        const DUP: [ServiceSpec; 2] = [
            ServiceSpec {
                name: "a",
                path: c"/a",
                after: &[],
                optional: false,
                held: false,
                backoff_cap_ms: u64::MAX,
                args: &[],
                args_file: None,
            },
            ServiceSpec {
                name: "a",
                path: c"/b",
                after: &[],
                optional: false,
                held: false,
                backoff_cap_ms: u64::MAX,
                args: &[],
                args_file: None,
            },
        ];
        assert_eq!(validate(&DUP), Err("a"));
        const BADNAME: [ServiceSpec; 1] = [ServiceSpec {
            name: "../x",
            path: c"/a",
            after: &[],
            optional: false,
            held: false,
            backoff_cap_ms: u64::MAX,
            args: &[],
            args_file: None,
        }];
        assert_eq!(validate(&BADNAME), Err("../x"));
    }

    #[test]
    fn the_handoff_layout_is_the_table_without_the_agent() {
        use matic_contract::handoff;
        assert_eq!(SERVICES[AGENT].name, handoff::AGENT);
        let others: Vec<_> = SERVICES
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != AGENT)
            .collect();
        assert_eq!(others.len(), handoff::HANDED.len());
        for (k, (j, s)) in others.into_iter().enumerate() {
            assert_eq!(s.name, handoff::HANDED[k]);
            // init's rule (stage2: descriptor FIRST_FD + j - 1) is the contract's.
            assert_eq!(
                handoff::fd_of(s.name),
                Some(handoff::FIRST_FD + j as i32 - 1)
            );
        }
    }

    #[test]
    fn env_is_minimal() {
        assert_eq!(SERVICE_ENV.len(), 1);
        assert_eq!(SERVICE_ENV[0].to_bytes(), b"PATH=/usr/bin:/usr/sbin");
    }
}
