//! Init's side of `/run/matic/services`: its supervisor's state turned
//! into the contract's lines (`matic_contract::services` owns the format).
//!
//! Must never: write the file (stage 2 does, through a rename) or format a
//! field itself.

use matic_contract::services::{HEADER, LastExit, ServiceLine};

use crate::fmtbuf::{Show, Sink};
use crate::supervisor::{Exit, Supervisor};

/// Enough for the header and one ~80-byte line per service of a small table.
pub const MAX_LEN: usize = 1024;

impl From<Exit> for LastExit {
    fn from(e: Exit) -> LastExit {
        match e {
            Exit::None => LastExit::None,
            Exit::Code(c) => LastExit::Code(c),
            Exit::Signal(s) => LastExit::Signal(s),
            // Reported like exec failure by a shell: the service never ran.
            Exit::SpawnFailed => LastExit::Code(127),
        }
    }
}

/// `-`, `exit:N` or `signal:N`, as in the file.
impl Show for Exit {
    fn show(&self, out: &mut dyn Sink) {
        LastExit::from(*self).render(out);
    }
}

/// Writes the whole file: header, then one line per service in table order
/// (`since` in whole seconds since boot). A file that does not fit shows as
/// a truncated `Buf`.
pub fn render<const N: usize>(sup: &Supervisor<'_, N>, out: &mut dyn Sink) {
    out.put(HEADER.as_bytes());
    for (i, spec) in sup.table().iter().enumerate() {
        let s = sup.svc(i);
        ServiceLine {
            name: spec.name,
            state: s.state,
            pid: u32::try_from(s.pid).unwrap_or(0),
            restarts: s.restarts,
            last_exit: s.last_exit.into(),
            since: s.since_ms / 1000,
        }
        .render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::fmtbuf::Buf;
    use crate::show;
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
        let mut out = Buf::<MAX_LEN>::new();
        render(&s, &mut out);
        assert!(!out.truncated());
        assert_eq!(
            std::str::from_utf8(out.as_bytes()).unwrap(),
            "# matic-init services v1\n\
             matic-agent running 123 0 - 5\n\
             containerd backoff 0 2 exit:1 17\n\
             kubelet skipped 0 0 - 3\n"
        );
    }

    #[test]
    fn exit_forms() {
        let show = |e: Exit| {
            let mut b = Buf::<32>::new();
            show!(&mut b, "{}", e);
            String::from_utf8(b.as_bytes().to_vec()).unwrap()
        };
        assert_eq!(show(Exit::Signal(9)), "signal:9");
        assert_eq!(show(Exit::Code(-1)), "exit:-1");
        assert_eq!(show(Exit::SpawnFailed), "exit:127");
        assert_eq!(show(Exit::None), "-");
    }

    /// What init renders, the agent's parser (the contract's) reads back.
    #[test]
    fn the_contract_parses_what_init_writes() {
        use matic_contract::services::State;
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| false, Backoff::RELEASE, 0);
        s.spawned(0, 42, 1_000);
        s.reaped(42, Exit::Signal(9), 2_500);
        s.spawn_failed(1, 3_000);
        let mut out = Buf::<MAX_LEN>::new();
        render(&s, &mut out);
        let text = std::str::from_utf8(out.as_bytes()).unwrap();
        let lines: Vec<_> = text
            .lines()
            .filter_map(|l| ServiceLine::parse(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            (
                lines[0].name,
                lines[0].state,
                lines[0].last_exit,
                lines[0].since
            ),
            ("matic-agent", State::Backoff, LastExit::Signal(9), 2)
        );
        assert_eq!(lines[1].last_exit, LastExit::Code(127));
        assert_eq!(lines[2].state, State::Skipped);
    }

    #[test]
    fn worst_case_fits() {
        let p = Backoff::RELEASE;
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, p, u64::MAX);
        for i in 0..3 {
            s.spawned(i, i32::MAX, u64::MAX);
        }
        let mut out = Buf::<MAX_LEN>::new();
        render(&s, &mut out);
        assert!(!out.truncated());
        assert!(
            out.as_bytes().len() < MAX_LEN / 2,
            "{}",
            out.as_bytes().len()
        );
        // A buffer too small for the file says so.
        let mut small = Buf::<64>::new();
        render(&s, &mut small);
        assert!(small.truncated());
    }
}
