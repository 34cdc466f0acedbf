//! The `/run/matic/services` format (docs/interfaces.md).

use crate::fmtbuf::{Show, Sink};
use crate::show;
use crate::supervisor::{Exit, Supervisor};

/// First line of the file.
pub const HEADER: &str = "# matic-init services v1\n";

/// Enough for the header and one ~80-byte line per service of a small table.
pub const MAX_LEN: usize = 1024;

/// `-`, `exit:N` or `signal:N`.
impl Show for Exit {
    fn show(&self, out: &mut dyn Sink) {
        match self {
            Exit::None => out.put(b"-"),
            Exit::Code(c) => show!(out, "exit:{}", c),
            Exit::Signal(s) => show!(out, "signal:{}", s),
            // Reported like exec failure by a shell: the service never ran.
            Exit::SpawnFailed => out.put(b"exit:127"),
        }
    }
}

/// Writes the whole file: header, then `name state pid restarts last_exit
/// since` per service in table order (`since` in whole seconds since boot).
/// A file that does not fit shows as a truncated `Buf`.
pub fn render<const N: usize>(sup: &Supervisor<'_, N>, out: &mut dyn Sink) {
    out.put(HEADER.as_bytes());
    for (i, spec) in sup.table().iter().enumerate() {
        let s = sup.svc(i);
        show!(
            out,
            "{} {} {} {} {} {}\n",
            spec.name,
            s.state.as_str(),
            s.pid.max(0),
            s.restarts,
            s.last_exit,
            s.since_ms / 1000
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::fmtbuf::Buf;
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
