//! The wait after a reboot (`osctl upgrade`, `reboot --wait`, `rollback
//! --wait`): what "the node passed" means, judged one observation at a
//! time by [`Waiter`], pure logic the unit tests drive with made-up
//! observations. A node passes when, continuously for `healthy_for`:
//!
//! 1. it answers from a new boot: the running boot's number in the boot
//!    history differs from the one before the reboot (a node whose history
//!    is off must have been seen unreachable since instead);
//! 2. it runs from the expected slot (another slot: it rolled back, which
//!    is final: fail at once) and, when one is expected, the expected
//!    release (its manifest's root hash);
//! 3. that slot is marked successful;
//! 4. every health check passes.
//!
//! Any observation short of that restarts the `healthy_for` window. When
//! the deadline passes first, the failure is the last thing that was
//! short (an unhealthy check is named over "not marked": the agent marks
//! a boot only once it is healthy).
//!
//! Must never call a node or sleep itself: the driver ([`super::node`])
//! observes and hands each observation in.

use std::time::{Duration, Instant};

use super::failure::{Check, Failure};

/// A node's state as one poll saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// The running boot's number in the boot history (None: history off).
    pub boot: Option<u64>,
    /// The slot it runs from ("A", "B"; empty when unknown).
    pub slot: String,
    /// The running slot's release (version, root hash), when it verifies.
    pub version: Option<String>,
    pub root_hash: Option<String>,
    /// The running slot's successful bit.
    pub marked: bool,
    /// Health checks that failed: (name, detail).
    pub failing: Vec<(String, String)>,
}

/// What the node must show to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The boot the node ran before the reboot; None when it did not
    /// reboot (a node found on trial) or its history is off.
    pub boot_before: Option<u64>,
    /// Whether a new boot is required at all.
    pub new_boot: bool,
    /// The slot it must run from.
    pub slot: String,
    /// The release it must run: (version, root hash); None: any.
    pub release: Option<(String, String)>,
}

/// Where a wait stands after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not yet: what is awaited, in words for the live line.
    Pending(String),
    Passed,
    Failed(Failure),
}

/// Judges the observations of one wait.
#[derive(Debug)]
pub struct Waiter {
    expect: Expect,
    healthy_for: Duration,
    deadline: Instant,
    went_down: bool,
    healthy_since: Option<Instant>,
    /// What kept the node from passing at the last observation.
    short: Failure,
}

impl Waiter {
    pub fn new(expect: Expect, healthy_for: Duration, start: Instant, timeout: Duration) -> Self {
        Waiter {
            expect,
            healthy_for,
            deadline: start + timeout,
            went_down: false,
            healthy_since: None,
            short: Failure::new(Check::Unreachable, "no answer yet"),
        }
    }

    /// The node did not answer at `now` (`why`: the client's sentence).
    pub fn down(&mut self, now: Instant, why: String) -> Step {
        self.went_down = true;
        self.healthy_since = None;
        self.short = Failure::new(Check::Unreachable, why);
        self.timed(now, "answer".into())
    }

    /// The node answered at `now` with `o`.
    pub fn up(&mut self, now: Instant, o: &Observation) -> Step {
        let e = &self.expect;
        let rebooted = match (e.boot_before, o.boot) {
            _ if !e.new_boot => true,
            (Some(before), Some(now)) => now != before,
            _ => self.went_down,
        };
        if !rebooted {
            self.healthy_since = None;
            self.short = Failure::new(
                Check::NotRebooted,
                "it still answers from the boot before the reboot",
            );
            return self.timed(now, "reboot".into());
        }
        if o.slot != e.slot {
            return Step::Failed(Failure::new(
                Check::RolledBack,
                format!(
                    "it came back on slot {}, not slot {}: the new slot was given up",
                    or_unknown(&o.slot),
                    e.slot
                ),
            ));
        }
        if let Some((version, hash)) = &e.release
            && o.root_hash.as_ref() != Some(hash)
        {
            return Step::Failed(Failure::new(
                Check::WrongRelease,
                format!(
                    "slot {} runs {}, not release {version}",
                    o.slot,
                    o.version
                        .as_deref()
                        .map_or("no verified release".to_string(), |v| format!(
                            "release {v} (another root hash)"
                        )),
                ),
            ));
        }
        if let Some((name, detail)) = o.failing.first() {
            self.healthy_since = None;
            let more = if o.failing.len() > 1 {
                format!(" (and {} more failing)", o.failing.len() - 1)
            } else {
                String::new()
            };
            self.short = Failure::new(
                Check::Health(name.clone()),
                format!("health check {name} failing: {detail}{more}"),
            );
            return self.timed(now, format!("health check {name}"));
        }
        if !o.marked {
            self.healthy_since = None;
            self.short = Failure::new(
                Check::NotMarked,
                format!(
                    "slot {} was not marked successful (its checks pass)",
                    o.slot
                ),
            );
            return self.timed(now, "boot marked successful".into());
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.duration_since(since) >= self.healthy_for {
            return Step::Passed;
        }
        self.short = Failure::new(
            Check::HealthyFor,
            format!(
                "healthy for only {}s of --healthy-for {}s",
                now.duration_since(since).as_secs(),
                self.healthy_for.as_secs()
            ),
        );
        self.timed(
            now,
            format!("healthy, holding for {}s", self.healthy_for.as_secs()),
        )
    }

    fn timed(&self, now: Instant, waiting_for: String) -> Step {
        if now >= self.deadline {
            let mut f = self.short.clone();
            f.detail = format!("{} (gave up after the --timeout)", f.detail);
            Step::Failed(f)
        } else {
            Step::Pending(waiting_for)
        }
    }

    /// When the wait gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

fn or_unknown(slot: &str) -> &str {
    if slot.is_empty() { "(unknown)" } else { slot }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn expect() -> Expect {
        Expect {
            boot_before: Some(7),
            new_boot: true,
            slot: "B".into(),
            release: Some(("2.0".into(), "cd".repeat(32))),
        }
    }

    /// Boot 8 from slot B with the release, marked, healthy.
    fn good() -> Observation {
        Observation {
            boot: Some(8),
            slot: "B".into(),
            version: Some("2.0".into()),
            root_hash: Some("cd".repeat(32)),
            marked: true,
            failing: vec![],
        }
    }

    fn failing(name: &str) -> Vec<(String, String)> {
        vec![(name.into(), "socket not answering".into())]
    }

    #[test]
    fn passes_only_after_healthy_for_without_a_break() {
        let t0 = Instant::now();
        let mut w = Waiter::new(expect(), 10 * S, t0, 600 * S);
        let old = Observation {
            boot: Some(7),
            slot: "A".into(),
            ..good()
        };
        assert_eq!(w.up(t0, &old), Step::Pending("reboot".into()));
        assert_eq!(
            w.down(t0 + S, "cannot reach n: connection refused".into()),
            Step::Pending("answer".into())
        );
        let unmarked = Observation {
            marked: false,
            failing: failing("containerd"),
            ..good()
        };
        assert_eq!(
            w.up(t0 + 2 * S, &unmarked),
            Step::Pending("health check containerd".into())
        );
        let unmarked = Observation {
            marked: false,
            ..good()
        };
        assert_eq!(
            w.up(t0 + 3 * S, &unmarked),
            Step::Pending("boot marked successful".into())
        );
        assert!(matches!(w.up(t0 + 4 * S, &good()), Step::Pending(_)));
        assert!(matches!(w.up(t0 + 13 * S, &good()), Step::Pending(_)));
        // A check failing inside the window starts it again.
        let flap = Observation {
            failing: failing("init"),
            ..good()
        };
        assert!(matches!(w.up(t0 + 14 * S, &flap), Step::Pending(_)));
        assert!(matches!(w.up(t0 + 15 * S, &good()), Step::Pending(_)));
        // So does an unanswered look.
        assert!(matches!(w.down(t0 + 16 * S, "x".into()), Step::Pending(_)));
        assert!(matches!(w.up(t0 + 17 * S, &good()), Step::Pending(_)));
        assert!(matches!(w.up(t0 + 26 * S, &good()), Step::Pending(_)));
        assert_eq!(w.up(t0 + 27 * S, &good()), Step::Passed);
    }

    #[test]
    fn coming_back_on_the_old_slot_fails_at_once() {
        let t0 = Instant::now();
        let mut w = Waiter::new(expect(), 10 * S, t0, 600 * S);
        let back = Observation {
            slot: "A".into(),
            version: Some("1.0".into()),
            root_hash: Some("ab".repeat(32)),
            ..good()
        };
        let Step::Failed(f) = w.up(t0 + S, &back) else {
            panic!()
        };
        assert_eq!(f.check, Check::RolledBack);
        assert_eq!(
            f.detail,
            "it came back on slot A, not slot B: the new slot was given up"
        );
        let other = Observation {
            root_hash: Some("ef".repeat(32)),
            version: Some("2.0-rc".into()),
            ..good()
        };
        let mut w = Waiter::new(expect(), 10 * S, t0, 600 * S);
        let Step::Failed(f) = w.up(t0 + S, &other) else {
            panic!()
        };
        assert_eq!(f.check, Check::WrongRelease);
        assert_eq!(
            f.detail,
            "slot B runs release 2.0-rc (another root hash), not release 2.0"
        );
    }

    #[test]
    fn at_the_timeout_the_failure_names_what_was_short() {
        let t0 = Instant::now();
        let end = t0 + 60 * S;
        let timed_out = |o: Option<Observation>| {
            let mut w = Waiter::new(expect(), 10 * S, t0, 60 * S);
            match o {
                Some(o) => w.up(end, &o),
                None => w.down(end, "cannot reach n: connection refused".into()),
            }
        };
        let Step::Failed(f) = timed_out(None) else {
            panic!()
        };
        assert_eq!(f.check, Check::Unreachable);
        assert_eq!(
            f.detail,
            "cannot reach n: connection refused (gave up after the --timeout)"
        );
        let sick = Observation {
            marked: false,
            failing: [failing("containerd"), failing("disk")].concat(),
            ..good()
        };
        let Step::Failed(f) = timed_out(Some(sick)) else {
            panic!()
        };
        assert_eq!(f.check, Check::Health("containerd".into()));
        assert_eq!(
            f.detail,
            "health check containerd failing: socket not answering (and 1 more failing) \
             (gave up after the --timeout)"
        );
        let unmarked = Observation {
            marked: false,
            ..good()
        };
        let Step::Failed(f) = timed_out(Some(unmarked)) else {
            panic!()
        };
        assert_eq!(f.check, Check::NotMarked);
        let same_boot = Observation {
            boot: Some(7),
            ..good()
        };
        let Step::Failed(f) = timed_out(Some(same_boot)) else {
            panic!()
        };
        assert_eq!(f.check, Check::NotRebooted);
        // Healthy, but the window was not over when the time was.
        let mut w = Waiter::new(expect(), 10 * S, t0, 60 * S);
        assert!(matches!(w.up(end - 4 * S, &good()), Step::Pending(_)));
        let Step::Failed(f) = w.up(end, &good()) else {
            panic!()
        };
        assert_eq!(f.check, Check::HealthyFor);
        assert!(
            f.detail
                .starts_with("healthy for only 4s of --healthy-for 10s")
        );
    }

    #[test]
    fn without_a_history_the_node_must_have_been_seen_down() {
        let t0 = Instant::now();
        let e = Expect {
            boot_before: None,
            ..expect()
        };
        let no_id = Observation {
            boot: None,
            ..good()
        };
        let mut w = Waiter::new(e, Duration::ZERO, t0, 600 * S);
        assert_eq!(w.up(t0, &no_id), Step::Pending("reboot".into()));
        assert!(matches!(w.down(t0 + S, "refused".into()), Step::Pending(_)));
        assert_eq!(w.up(t0 + 2 * S, &no_id), Step::Passed);
        // A node found on trial with the release is not asked to reboot.
        let e = Expect {
            boot_before: None,
            new_boot: false,
            ..expect()
        };
        let mut w = Waiter::new(e, Duration::ZERO, t0, 600 * S);
        assert_eq!(w.up(t0, &no_id), Step::Passed);
    }
}
