//! `/run/matic/services`: init's status of every service, rewritten whole
//! (through a temporary file and a rename) whenever a state changes; read
//! by the agent for `ServiceList` and `Health`.
//!
//! The form is [`HEADER`], then one line per service in table order:
//! `name state pid restarts last_exit since`, single spaces, `since` in
//! whole CLOCK_BOOTTIME seconds. Parsing skips blank lines and lines that
//! start with `#` (the header, and any comment a later init adds) and
//! refuses any other line that is not exactly that form.
//!
//! Must never: allocate, or accept a state outside [`State`] (the agent
//! would report a word no client knows).

use crate::{Sink, parse_i32, parse_u64, put_decimal};

/// First line of the file.
pub const HEADER: &str = "# matic-init services v1\n";

/// A service's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not yet started: waiting for its dependencies, or about to be spawned.
    Starting,
    /// Spawned and not yet reaped.
    Running,
    /// Exited; waiting for its backoff delay before the next start.
    Backoff,
    /// Sent SIGTERM (restart request or shutdown); waiting for it to exit.
    Stopping,
    /// Stopped for good (shutdown).
    Stopped,
    /// Optional service whose binary is absent.
    Skipped,
    /// A service started only while a file exists (kubelet: its flags file,
    /// [`crate::kubelet::FLAGS_PATH`]) whose file is absent or refused; it
    /// stays so until `restart NAME` finds the file.
    Waiting,
    /// Not started yet on purpose: held at boot until the agent tells init
    /// it listens (the `listening` control command) or a time limit
    /// passes, so that it does not compete with the agent's start
    /// (containerd; docs/init.md, "Held until the agent listens").
    Held,
}

/// The longest init holds a `held` service waiting for the agent's
/// `listening` (docs/init.md, "Held until the agent listens"): a node whose
/// agent never listens (a crash loop, bad certificates) still runs
/// containerd and its pods. 10 s is several times the agent's start under
/// emulation on a loaded host (spawn to listening 0.9-2.6 s).
pub const HELD_LIMIT_MS: u64 = 10_000;

impl State {
    /// Every state, in the order of the lifecycle.
    pub const ALL: [State; 8] = [
        State::Starting,
        State::Running,
        State::Backoff,
        State::Stopping,
        State::Stopped,
        State::Skipped,
        State::Waiting,
        State::Held,
    ];

    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Skipped => "skipped",
            State::Waiting => "waiting",
            State::Held => "held",
        }
    }

    /// The state a word names.
    pub fn parse(word: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

/// How a service's last run ended: `-`, `exit:N` or `signal:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastExit {
    /// It has not exited yet.
    None,
    /// `exit(N)` (a service init could not spawn shows as `exit:127`, as a
    /// shell reports an exec failure).
    Code(i32),
    /// Killed by signal N.
    Signal(i32),
}

impl LastExit {
    /// Writes `-`, `exit:N` or `signal:N`.
    pub fn render(&self, out: &mut dyn Sink) {
        let (word, n): (&[u8], i32) = match *self {
            LastExit::None => return out.put(b"-"),
            LastExit::Code(c) => (b"exit:", c),
            LastExit::Signal(s) => (b"signal:", s),
        };
        out.put(word);
        put_decimal(out, n < 0, u64::from(n.unsigned_abs()));
    }

    /// Parses what [`LastExit::render`] writes.
    pub fn parse(word: &str) -> Option<LastExit> {
        if word == "-" {
            return Some(LastExit::None);
        }
        if let Some(n) = word.strip_prefix("exit:") {
            return parse_i32(n.as_bytes()).map(LastExit::Code);
        }
        let n = word.strip_prefix("signal:")?;
        parse_i32(n.as_bytes()).map(LastExit::Signal)
    }
}

/// One service's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceLine<'a> {
    /// The service's name from init's table (no blanks).
    pub name: &'a str,
    pub state: State,
    /// 0 when not running.
    pub pid: u32,
    /// Times it was started again after exiting.
    pub restarts: u32,
    pub last_exit: LastExit,
    /// CLOCK_BOOTTIME second at which the service entered `state`.
    pub since: u64,
}

/// Why a line of the file was refused (the reader adds path and line number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicesError<'a> {
    /// Not 6 fields; carries the count.
    FieldCount(usize),
    /// A state word that is not one of [`State`].
    UnknownState(&'a str),
    /// A number field (named) that is not a decimal in range.
    BadNumber(&'static str, &'a str),
    /// A `last_exit` that is not `-`, `exit:N` or `signal:N`.
    BadLastExit(&'a str),
}

impl core::fmt::Display for ServicesError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServicesError::FieldCount(n) => write!(f, "expected 6 fields, found {n}"),
            ServicesError::UnknownState(s) => write!(f, "unknown state {s:?}"),
            ServicesError::BadNumber(what, s) => write!(f, "bad {what} {s:?}"),
            ServicesError::BadLastExit(s) => write!(f, "bad last_exit {s:?}"),
        }
    }
}

impl<'a> ServiceLine<'a> {
    /// Writes the line, newline included.
    pub fn render(&self, out: &mut dyn Sink) {
        out.put(self.name.as_bytes());
        out.put(b" ");
        out.put(self.state.as_str().as_bytes());
        for n in [u64::from(self.pid), u64::from(self.restarts)] {
            out.put(b" ");
            put_decimal(out, false, n);
        }
        out.put(b" ");
        self.last_exit.render(out);
        out.put(b" ");
        put_decimal(out, false, self.since);
        out.put(b"\n");
    }

    /// Parses one line (without its newline; surrounding blanks ignored):
    /// `Ok(None)` for a blank or `#` line.
    pub fn parse(line: &'a str) -> Result<Option<ServiceLine<'a>>, ServicesError<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let mut f = [""; 6];
        let mut count = 0;
        for (i, w) in line.split(' ').enumerate() {
            if let Some(slot) = f.get_mut(i) {
                *slot = w;
            }
            count += 1;
        }
        if count != 6 {
            return Err(ServicesError::FieldCount(count));
        }
        let state = State::parse(f[1]).ok_or(ServicesError::UnknownState(f[1]))?;
        let num =
            |s: &'a str, what| parse_u64(s.as_bytes()).ok_or(ServicesError::BadNumber(what, s));
        let pid =
            u32::try_from(num(f[2], "pid")?).map_err(|_| ServicesError::BadNumber("pid", f[2]))?;
        // A restart count past u32 (never written by init) saturates.
        let restarts = u32::try_from(num(f[3], "restarts")?).unwrap_or(u32::MAX);
        let last_exit = LastExit::parse(f[4]).ok_or(ServicesError::BadLastExit(f[4]))?;
        Ok(Some(ServiceLine {
            name: f[0],
            state,
            pid,
            restarts,
            last_exit,
            since: num(f[5], "since")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsink::render;
    use proptest::prelude::*;
    use std::string::ToString;

    #[test]
    fn documented_example() {
        let text = "# matic-init services v1\n\
                    matic-agent running 123 0 - 5\n\
                    containerd backoff 0 2 exit:1 17\n";
        let lines: std::vec::Vec<_> = text
            .lines()
            .filter_map(|l| ServiceLine::parse(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                ServiceLine {
                    name: "matic-agent",
                    state: State::Running,
                    pid: 123,
                    restarts: 0,
                    last_exit: LastExit::None,
                    since: 5
                },
                ServiceLine {
                    name: "containerd",
                    state: State::Backoff,
                    pid: 0,
                    restarts: 2,
                    last_exit: LastExit::Code(1),
                    since: 17
                }
            ]
        );
        let again = render(|o| {
            o.put(HEADER.as_bytes());
            lines.iter().for_each(|l| l.render(o));
        });
        assert_eq!(again, text.as_bytes());
    }

    #[test]
    fn refuses_malformed_lines() {
        use ServicesError::*;
        let p = ServiceLine::parse;
        assert_eq!(p("x running 1 0 -"), Err(FieldCount(5)));
        assert_eq!(p("x running 1 0 - 3 4"), Err(FieldCount(7)));
        assert_eq!(p("x  running 1 0 - 3"), Err(FieldCount(7)));
        assert_eq!(p("x dancing 1 0 - 3"), Err(UnknownState("dancing")));
        assert_eq!(p("x running -1 0 - 3"), Err(BadNumber("pid", "-1")));
        assert_eq!(
            p("x running 4294967296 0 - 3"),
            Err(BadNumber("pid", "4294967296"))
        );
        assert_eq!(p("x running 1 0 - +3"), Err(BadNumber("since", "+3")));
        assert_eq!(p("x running 1 0 quit 3"), Err(BadLastExit("quit")));
        assert_eq!(p("x running 1 0 exit: 3"), Err(BadLastExit("exit:")));
        assert_eq!(p("x running 1 0 exit:x 3"), Err(BadLastExit("exit:x")));
        assert_eq!(p("  # comment"), Ok(None));
        assert_eq!(p(""), Ok(None));
        let e = UnknownState("dancing").to_string();
        assert_eq!(e, "unknown state \"dancing\"");
        assert_eq!(FieldCount(5).to_string(), "expected 6 fields, found 5");
        // Restarts past u32 saturate rather than fail.
        assert_eq!(
            p("x running 1 99999999999 - 3").unwrap().unwrap().restarts,
            u32::MAX
        );
    }

    #[test]
    fn last_exit_forms() {
        for (e, s) in [
            (LastExit::None, "-"),
            (LastExit::Code(-1), "exit:-1"),
            (LastExit::Code(127), "exit:127"),
            (LastExit::Signal(9), "signal:9"),
        ] {
            assert_eq!(render(|o| e.render(o)), s.as_bytes());
            assert_eq!(LastExit::parse(s), Some(e));
        }
    }

    #[test]
    fn waiting_is_a_state_of_the_file() {
        let l = ServiceLine::parse("kubelet waiting 0 0 - 12")
            .unwrap()
            .unwrap();
        assert_eq!((l.name, l.state, l.since), ("kubelet", State::Waiting, 12));
        assert_eq!(render(|o| l.render(o)), b"kubelet waiting 0 0 - 12\n");
    }

    #[test]
    fn held_is_a_state_of_the_file() {
        let l = ServiceLine::parse("containerd held 0 0 - 2")
            .unwrap()
            .unwrap();
        assert_eq!((l.name, l.state), ("containerd", State::Held));
        assert_eq!(
            render(|o| l.render(o)),
            b"containerd held 0 0 - 2
"
        );
    }

    #[test]
    fn states_have_distinct_words() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("Running"), None);
    }

    fn last_exit() -> impl Strategy<Value = LastExit> {
        prop_oneof![
            Just(LastExit::None),
            any::<i32>().prop_map(LastExit::Code),
            any::<i32>().prop_map(LastExit::Signal),
        ]
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(
            name in "[a-z][a-z0-9_.-]{0,30}",
            state in proptest::sample::select(&State::ALL[..]),
            pid: u32,
            restarts: u32,
            last_exit in last_exit(),
            since: u64,
        ) {
            let l = ServiceLine { name: &name, state, pid, restarts, last_exit, since };
            let text = std::string::String::from_utf8(render(|o| l.render(o))).unwrap();
            prop_assert!(text.ends_with('\n'));
            prop_assert_eq!(ServiceLine::parse(text.trim_end()), Ok(Some(l)));
        }

        #[test]
        fn parse_never_panics(line in "\\PC{0,80}") {
            let _ = ServiceLine::parse(&line);
        }
    }
}
