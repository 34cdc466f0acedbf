//! The `/run/matic/services` format (docs/interfaces.md).

use crate::supervisor::{Exit, Supervisor};
use core::fmt::{self, Write};

/// First line of the file.
pub const HEADER: &str = "# matic-init services v1\n";

/// Enough for the header and one ~80-byte line per service of a small table.
pub const MAX_LEN: usize = 1024;

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::None => f.write_str("-"),
            Exit::Code(c) => write!(f, "exit:{c}"),
            Exit::Signal(s) => write!(f, "signal:{s}"),
            // Reported like exec failure by a shell: the service never ran.
            Exit::SpawnFailed => f.write_str("exit:127"),
        }
    }
}

/// Writes the whole file: header, then `name state pid restarts last_exit
/// since` per service in table order (`since` in whole seconds since boot).
pub fn render<const N: usize>(sup: &Supervisor<'_, N>, out: &mut impl Write) -> fmt::Result {
    out.write_str(HEADER)?;
    for (i, spec) in sup.table().iter().enumerate() {
        let s = sup.svc(i);
        writeln!(
            out,
            "{} {} {} {} {} {}",
            spec.name,
            s.state.as_str(),
            s.pid.max(0),
            s.restarts,
            s.last_exit,
            s.since_ms / 1000
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::table::SERVICES;

    #[test]
    fn matches_the_documented_example() {
        let p = Backoff {
            base_ms: 1_000,
            cap_ms: 4_000,
            stable_ms: 60_000,
        };
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| false, p, 3_000);
        s.spawned(0, 123, 5_400);
        s.spawned(1, 200, 5_000);
        s.reaped(200, Exit::Code(1), 6_000);
        s.spawned(1, 201, 6_000);
        s.reaped(201, Exit::Code(1), 17_999);
        let mut out = heapless::String::<MAX_LEN>::new();
        render(&s, &mut out).unwrap();
        assert_eq!(
            out.as_str(),
            "# matic-init services v1\n\
             matic-agent running 123 0 - 5\n\
             containerd backoff 0 2 exit:1 17\n\
             kubelet skipped 0 0 - 3\n"
        );
    }

    #[test]
    fn exit_forms() {
        assert_eq!(format!("{}", Exit::Signal(9)), "signal:9");
        assert_eq!(format!("{}", Exit::Code(-1)), "exit:-1");
        assert_eq!(format!("{}", Exit::SpawnFailed), "exit:127");
    }

    #[test]
    fn worst_case_fits() {
        let p = Backoff::RELEASE;
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, p, u64::MAX);
        for i in 0..3 {
            s.spawned(i, i32::MAX, u64::MAX);
        }
        let mut out = heapless::String::<MAX_LEN>::new();
        render(&s, &mut out).unwrap();
        assert!(out.len() < MAX_LEN / 2, "{}", out.len());
    }
}
