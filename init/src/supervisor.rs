//! The supervisor state machine: which service to start, restart, stop or
//! kill, and when. Pure logic over a service table; the runtime feeds it
//! events (spawned, reaped, commands, time) and performs the actions it
//! returns.

use crate::backoff::Backoff;
use crate::table::ServiceSpec;

/// A service's state: the contract's, as written to `/run/matic/services`.
pub use matic_contract::services::State;

/// How a service's last run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It has not exited yet.
    None,
    /// `exit(N)`.
    Code(i32),
    /// Killed by signal N.
    Signal(i32),
    /// `fork` failed, so it never ran.
    SpawnFailed,
}

/// Runtime state of one service.
#[derive(Clone, Copy, Debug)]
pub struct Svc {
    pub state: State,
    /// 0 when not running.
    pub pid: i32,
    /// Number of times it was started again after exiting.
    pub restarts: u32,
    pub last_exit: Exit,
    /// When it entered `state` (ms since boot).
    pub since_ms: u64,
    crashes: u32,
    started_ms: u64,
    next_start_ms: u64,
    restart_requested: bool,
    term_sent_ms: Option<u64>,
    killed: bool,
}

impl Svc {
    const fn new(state: State, now: u64) -> Self {
        Svc {
            state,
            pid: 0,
            restarts: 0,
            last_exit: Exit::None,
            since_ms: now,
            crashes: 0,
            started_ms: 0,
            next_start_ms: now,
            restart_requested: false,
            term_sent_ms: None,
            killed: false,
        }
    }

    fn set(&mut self, state: State, now: u64) {
        self.state = state;
        self.since_ms = now;
    }
}

/// What `restart NAME` led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartOutcome {
    /// No such service.
    Unknown,
    /// The service is skipped, or init is shutting down.
    Refused,
    /// Send SIGTERM to this pid; it is started again as soon as it exits
    /// (a gated service: only if its file is there then, else `waiting`).
    Terminate(i32),
    /// It was not running (or was `waiting` for its file); it is due for
    /// an immediate start, at which its file is read again.
    StartNow,
    /// A stop is already under way; it restarts when that ends.
    AlreadyStopping,
}

/// What the shutdown sequence needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownStep {
    /// Send SIGTERM to this service (index, pid).
    Terminate(usize, i32),
    /// Wait for the service being stopped to exit.
    Wait,
    /// Every service has exited.
    Done,
}

/// The supervisor over a table of `N` services.
pub struct Supervisor<'t, const N: usize> {
    table: &'t [ServiceSpec; N],
    svcs: [Svc; N],
    policy: Backoff,
    shutting_down: bool,
}

impl<'t, const N: usize> Supervisor<'t, N> {
    /// A supervisor where optional services for which `present` is false
    /// are skipped for the whole boot.
    pub fn new(
        table: &'t [ServiceSpec; N],
        present: impl Fn(&ServiceSpec) -> bool,
        policy: Backoff,
        now: u64,
    ) -> Self {
        let svcs = core::array::from_fn(|i| {
            let s = &table[i];
            if s.optional && !present(s) {
                Svc::new(State::Skipped, now)
            } else if s.held {
                // Due at the hold's limit unless `listening` comes first.
                let mut svc = Svc::new(State::Held, now);
                svc.next_start_ms = now.saturating_add(matic_contract::services::HELD_LIMIT_MS);
                svc
            } else {
                Svc::new(State::Starting, now)
            }
        });
        Supervisor {
            table,
            svcs,
            policy,
            shutting_down: false,
        }
    }

    pub fn table(&self) -> &'t [ServiceSpec; N] {
        self.table
    }

    pub fn svc(&self, i: usize) -> &Svc {
        &self.svcs[i]
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    fn deps_running(&self, i: usize) -> bool {
        self.table[i].after.iter().all(|dep| {
            self.table
                .iter()
                .position(|s| s.name == *dep)
                .is_some_and(|d| self.svcs[d].state == State::Running)
        })
    }

    /// The first service (in table order) that should be spawned now.
    pub fn due(&self, now: u64) -> Option<usize> {
        if self.shutting_down {
            return None;
        }
        (0..N).find(|&i| {
            let s = &self.svcs[i];
            matches!(s.state, State::Starting | State::Backoff | State::Held)
                && s.next_start_ms <= now
                && self.deps_running(i)
        })
    }

    /// Service `i` was spawned as `pid`.
    pub fn spawned(&mut self, i: usize, pid: i32, now: u64) {
        let s = &mut self.svcs[i];
        s.pid = pid;
        s.started_ms = now;
        s.term_sent_ms = None;
        s.killed = false;
        s.set(State::Running, now);
    }

    /// Service `i` was due, but the file it is started from
    /// (`ServiceSpec::args_file`) is absent or refused: it is `waiting`,
    /// and nothing starts it again but `restart NAME` (the agent sends it
    /// after writing or removing the file). Never a crash loop.
    pub fn waiting(&mut self, i: usize, now: u64) {
        self.svcs[i].set(State::Waiting, now);
    }

    /// The agent listens (`listening` on the control FIFO): every `held`
    /// service is due now (once its dependencies run). Nothing else
    /// changes, so a restarted agent saying it again is harmless.
    pub fn listening(&mut self, now: u64) {
        for s in &mut self.svcs {
            if s.state == State::Held {
                s.next_start_ms = now;
                s.set(State::Starting, now);
            }
        }
    }

    /// Spawning service `i` failed (fork error): back off as after a crash.
    pub fn spawn_failed(&mut self, i: usize, now: u64) {
        let s = &mut self.svcs[i];
        s.started_ms = now;
        self.ended(i, Exit::SpawnFailed, now);
    }

    /// A child was reaped. Returns the index of the service it was, if any
    /// (orphans and grandchildren return `None`).
    pub fn reaped(&mut self, pid: i32, exit: Exit, now: u64) -> Option<usize> {
        if pid <= 0 {
            return None;
        }
        let i = self.svcs.iter().position(|s| s.pid == pid)?;
        self.svcs[i].pid = 0;
        self.ended(i, exit, now);
        Some(i)
    }

    fn ended(&mut self, i: usize, exit: Exit, now: u64) {
        let policy = self.policy;
        let shutting_down = self.shutting_down;
        let s = &mut self.svcs[i];
        s.last_exit = exit;
        s.term_sent_ms = None;
        if shutting_down {
            s.set(State::Stopped, now);
            return;
        }
        s.restarts = s.restarts.saturating_add(1);
        if s.restart_requested {
            // An operator restart is not a crash: start again at once.
            s.restart_requested = false;
            s.crashes = 0;
            s.next_start_ms = now;
        } else {
            let ran = now.saturating_sub(s.started_ms);
            s.crashes = policy.next_crash_count(s.crashes, ran);
            let delay = policy.delay_ms(s.crashes).min(self.table[i].backoff_cap_ms);
            s.next_start_ms = now.saturating_add(delay);
        }
        s.set(State::Backoff, now);
    }

    /// Handles `restart NAME`.
    pub fn request_restart(&mut self, name: &[u8], now: u64) -> RestartOutcome {
        let Some(i) = crate::table::find(self.table, name) else {
            return RestartOutcome::Unknown;
        };
        if self.shutting_down {
            return RestartOutcome::Refused;
        }
        let s = &mut self.svcs[i];
        match s.state {
            State::Skipped | State::Stopped => RestartOutcome::Refused,
            State::Running => {
                s.restart_requested = true;
                s.term_sent_ms = Some(now);
                s.set(State::Stopping, now);
                RestartOutcome::Terminate(s.pid)
            }
            State::Starting | State::Backoff | State::Waiting | State::Held => {
                s.crashes = 0;
                s.next_start_ms = now;
                if matches!(s.state, State::Waiting | State::Held) {
                    s.set(State::Starting, now);
                }
                RestartOutcome::StartNow
            }
            State::Stopping => RestartOutcome::AlreadyStopping,
        }
    }

    /// A service that was sent SIGTERM `timeout_ms` ago and is still alive:
    /// returns its pid (once) so the runtime sends SIGKILL.
    pub fn overdue_kill(&mut self, now: u64, timeout_ms: u64) -> Option<i32> {
        self.svcs.iter_mut().find_map(|s| {
            let t = s.term_sent_ms?;
            if s.pid > 0 && !s.killed && now >= t.saturating_add(timeout_ms) {
                s.killed = true;
                Some(s.pid)
            } else {
                None
            }
        })
    }

    /// The next time at which [`Self::due`] or [`Self::overdue_kill`] may
    /// have something to do, if any.
    pub fn next_deadline(&self, timeout_ms: u64) -> Option<u64> {
        let mut best: Option<u64> = None;
        for (i, s) in self.svcs.iter().enumerate() {
            let t = match s.state {
                State::Backoff | State::Starting | State::Held
                    if !self.shutting_down && self.deps_running(i) =>
                {
                    Some(s.next_start_ms)
                }
                State::Stopping if !s.killed => {
                    s.term_sent_ms.map(|t| t.saturating_add(timeout_ms))
                }
                _ => None,
            };
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best
    }

    /// Enters shutdown: nothing starts any more; services not running
    /// (waiting for their file or held included) are `stopped`.
    pub fn begin_shutdown(&mut self, now: u64) {
        self.shutting_down = true;
        for s in &mut self.svcs {
            s.restart_requested = false;
            if matches!(
                s.state,
                State::Starting | State::Backoff | State::Waiting | State::Held
            ) {
                s.set(State::Stopped, now);
            }
        }
    }

    /// The next step of the ordered stop: services are stopped one at a
    /// time in reverse table order, each once the one after it has exited.
    pub fn shutdown_step(&mut self, now: u64) -> ShutdownStep {
        for i in (0..N).rev() {
            let s = &mut self.svcs[i];
            if s.pid <= 0 {
                continue;
            }
            if s.term_sent_ms.is_some() {
                return ShutdownStep::Wait;
            }
            s.term_sent_ms = Some(now);
            s.set(State::Stopping, now);
            return ShutdownStep::Terminate(i, s.pid);
        }
        ShutdownStep::Done
    }

    /// Pids of services still alive.
    pub fn live_pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.svcs.iter().map(|s| s.pid).filter(|&p| p > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::SERVICES;

    const P: Backoff = Backoff {
        base_ms: 100,
        cap_ms: 400,
        stable_ms: 1_000,
    };

    /// Every binary present and the agent listening at once (containerd's
    /// hold is tested on its own below).
    fn all_present() -> Supervisor<'static, 3> {
        let mut s = Supervisor::new(&SERVICES, |_| true, P, 0);
        s.listening(0);
        s
    }

    /// Starts everything due at `now`, handing out pids from `next_pid`.
    fn start_due(s: &mut Supervisor<'_, 3>, now: u64, next_pid: &mut i32) -> Vec<usize> {
        let mut started = vec![];
        while let Some(i) = s.due(now) {
            s.spawned(i, *next_pid, now);
            *next_pid += 1;
            started.push(i);
        }
        started
    }

    #[test]
    fn kubelet_waits_for_containerd() {
        let mut s = all_present();
        assert_eq!(s.due(0), Some(0));
        s.spawned(0, 10, 0);
        assert_eq!(s.due(0), Some(1));
        assert_eq!(s.svc(2).state, State::Starting);
        s.spawned(1, 11, 0);
        assert_eq!(s.due(0), Some(2));
        s.spawned(2, 12, 0);
        assert_eq!(s.due(0), None);
    }

    const CONTAINERD: usize = 1;
    const HOLD: u64 = matic_contract::services::HELD_LIMIT_MS;

    #[test]
    fn containerd_is_held_until_the_agent_listens() {
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, P, 0);
        let mut pid = 100;
        assert_eq!(start_due(&mut s, 0, &mut pid), [0], "the agent alone");
        assert_eq!(s.svc(CONTAINERD).state, State::Held);
        assert_eq!(s.svc(2).state, State::Starting, "kubelet waits for it");
        assert_eq!(s.next_deadline(5_000), Some(HOLD));
        assert!(start_due(&mut s, 1_499, &mut pid).is_empty());
        // The agent's `listening`: containerd now, then kubelet after it.
        s.listening(1_500);
        let c = s.svc(CONTAINERD);
        assert_eq!((c.state, c.since_ms), (State::Starting, 1_500));
        assert_eq!(start_due(&mut s, 1_500, &mut pid), [CONTAINERD, 2]);
        assert_eq!(s.svc(CONTAINERD).restarts, 0, "a first start");
        // Said again (a restarted agent): nothing changes.
        s.listening(2_000);
        assert!((0..3).all(|i| s.svc(i).state == State::Running));
    }

    #[test]
    fn containerd_starts_at_the_hold_limit_without_the_agent() {
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, P, 40);
        let mut pid = 100;
        // The agent crash-loops and never listens.
        for t in [40, 41, 142] {
            assert_eq!(start_due(&mut s, t, &mut pid), [0]);
            s.reaped(pid - 1, Exit::Code(1), t + 1);
        }
        assert_eq!(s.svc(CONTAINERD).state, State::Held);
        assert!(!start_due(&mut s, 40 + HOLD - 1, &mut pid).contains(&CONTAINERD));
        assert_eq!(s.svc(CONTAINERD).state, State::Held);
        assert_eq!(s.due(40 + HOLD), Some(CONTAINERD));
        s.spawned(CONTAINERD, 500, 40 + HOLD);
        assert_eq!(s.svc(CONTAINERD).state, State::Running);
        // Its crash later is an ordinary one: restarted at once, not held.
        s.reaped(500, Exit::Code(1), 50_000);
        assert_eq!(s.svc(CONTAINERD).state, State::Backoff);
        assert_eq!(s.due(50_000), Some(CONTAINERD));
    }

    #[test]
    fn a_held_containerd_restarts_on_request_and_stops_at_shutdown() {
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, P, 0);
        assert_eq!(
            s.request_restart(b"containerd", 10),
            RestartOutcome::StartNow
        );
        assert_eq!(s.svc(CONTAINERD).state, State::Starting);
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, P, 0);
        s.begin_shutdown(20);
        assert_eq!(s.svc(CONTAINERD).state, State::Stopped);
        assert_eq!(s.due(HOLD), None, "never started after shutdown");
        assert_eq!(s.next_deadline(5_000), None);
    }

    #[test]
    fn absent_optional_service_is_skipped() {
        let s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |x| x.name != "kubelet", P, 5);
        assert_eq!(s.svc(2).state, State::Skipped);
        // Absence of a mandatory binary is not a skip: it is retried.
        let s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| false, P, 5);
        assert_eq!(s.svc(0).state, State::Starting);
        assert_eq!(s.svc(2).state, State::Skipped);
    }

    #[test]
    fn crash_loop_follows_backoff_then_resets_after_stable_run() {
        let mut s = all_present();
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        let agent = s.svc(0).pid;
        // First crash: immediate.
        assert_eq!(s.reaped(agent, Exit::Code(1), 10), Some(0));
        assert_eq!(s.svc(0).state, State::Backoff);
        assert_eq!(s.due(10), Some(0));
        let mut now = 10;
        let mut delays = vec![];
        for _ in 0..5 {
            s.spawned(0, pid, now);
            pid += 1;
            s.reaped(pid - 1, Exit::Signal(11), now + 1);
            now += 1;
            let at = s.next_deadline(10_000).unwrap();
            assert_eq!(s.due(at - 1), None);
            assert_eq!(s.due(at), Some(0));
            delays.push(at - now);
            now = at;
        }
        assert_eq!(delays, [100, 200, 400, 400, 400]);
        assert_eq!(s.svc(0).restarts, 6);
        assert_eq!(s.svc(0).last_exit, Exit::Signal(11));
        // A stable run resets the count: the next crash restarts at once.
        s.spawned(0, pid, now);
        s.reaped(pid, Exit::Code(2), now + 1_000);
        assert_eq!(s.due(now + 1_000), Some(0));
    }

    /// Delays of `n` back-to-back crashes of service `i` under `policy`.
    fn crash_delays(policy: Backoff, i: usize, n: usize) -> Vec<u64> {
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| true, policy, 0);
        s.listening(0);
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        let mut now = 0;
        let mut delays = vec![];
        for _ in 0..n {
            let victim = s.svc(i).pid;
            s.reaped(victim, Exit::Signal(6), now + 1);
            now += 1;
            let at = (0..=120_000)
                .map(|t| now + t)
                .find(|&t| s.due(t) == Some(i))
                .unwrap();
            delays.push(at - now);
            s.spawned(i, pid, at);
            pid += 1;
            now = at;
        }
        delays
    }

    #[test]
    fn agent_backoff_has_its_own_lower_cap() {
        // The released policy for containerd; matic-agent stops at 5 s.
        assert_eq!(
            crash_delays(Backoff::RELEASE, 1, 6),
            [0, 1_000, 2_000, 4_000, 8_000, 16_000]
        );
        assert_eq!(
            crash_delays(Backoff::RELEASE, 0, 6),
            [0, 1_000, 2_000, 4_000, 5_000, 5_000]
        );
    }

    #[test]
    fn orphans_are_not_services() {
        let mut s = all_present();
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        assert_eq!(s.reaped(4242, Exit::Code(0), 1), None);
        assert_eq!(s.reaped(0, Exit::Code(0), 1), None);
        assert!((0..3).all(|i| s.svc(i).state == State::Running));
    }

    #[test]
    fn restart_request_terminates_then_starts_at_once() {
        let mut s = all_present();
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        assert_eq!(
            s.request_restart(b"containerd", 50),
            RestartOutcome::Terminate(101)
        );
        assert_eq!(s.svc(1).state, State::Stopping);
        assert_eq!(
            s.request_restart(b"containerd", 51),
            RestartOutcome::AlreadyStopping
        );
        assert_eq!(s.next_deadline(5_000), Some(5_050));
        assert_eq!(s.overdue_kill(5_049, 5_000), None);
        assert_eq!(s.overdue_kill(5_050, 5_000), Some(101));
        assert_eq!(s.overdue_kill(5_060, 5_000), None, "SIGKILL is sent once");
        s.reaped(101, Exit::Signal(9), 5_070);
        assert_eq!(s.due(5_070), Some(1));
        assert_eq!(s.svc(1).restarts, 1);
        assert_eq!(s.request_restart(b"nope", 1), RestartOutcome::Unknown);
    }

    #[test]
    fn restart_request_skips_backoff() {
        let mut s = all_present();
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        for t in [1, 2, 3] {
            let p = s.svc(0).pid;
            s.reaped(p, Exit::Code(1), t);
            if let Some(0) = s.due(t) {
                s.spawned(0, pid, t);
                pid += 1;
            }
        }
        assert_eq!(s.svc(0).state, State::Backoff);
        assert!(s.due(3).is_none());
        assert_eq!(
            s.request_restart(b"matic-agent", 3),
            RestartOutcome::StartNow
        );
        assert_eq!(s.due(3), Some(0));
    }

    #[test]
    fn skipped_service_refuses_restart() {
        let mut s: Supervisor<'_, 3> = Supervisor::new(&SERVICES, |_| false, P, 0);
        assert_eq!(s.request_restart(b"kubelet", 0), RestartOutcome::Refused);
    }

    #[test]
    fn shutdown_stops_in_reverse_order_one_at_a_time() {
        let mut s = all_present();
        let mut pid = 100;
        start_due(&mut s, 0, &mut pid);
        // matic-agent is in backoff at shutdown time: it just becomes stopped.
        s.reaped(100, Exit::Code(1), 1);
        s.begin_shutdown(2);
        assert_eq!(s.svc(0).state, State::Stopped);
        assert_eq!(s.due(1_000_000), None);
        assert_eq!(s.shutdown_step(3), ShutdownStep::Terminate(2, 102));
        assert_eq!(s.shutdown_step(4), ShutdownStep::Wait);
        s.reaped(102, Exit::Code(0), 5);
        assert_eq!(s.svc(2).state, State::Stopped);
        assert_eq!(s.svc(2).restarts, 0, "a shutdown stop is not a restart");
        assert_eq!(s.shutdown_step(6), ShutdownStep::Terminate(1, 101));
        s.reaped(101, Exit::Signal(15), 7);
        assert_eq!(s.shutdown_step(8), ShutdownStep::Done);
        assert_eq!(s.live_pids().count(), 0);
        assert_eq!(s.request_restart(b"containerd", 9), RestartOutcome::Refused);
    }

    const KUBELET: usize = 2;

    /// Starts what is due at `now` as the runtime does: a due kubelet is
    /// spawned if `file` (its flags file is there and accepted), else it
    /// goes `waiting`.
    fn run_due(s: &mut Supervisor<'_, 3>, now: u64, file: bool, pid: &mut i32) {
        while let Some(i) = s.due(now) {
            if i == KUBELET && !file {
                s.waiting(i, now);
            } else {
                s.spawned(i, *pid, now);
                *pid += 1;
            }
        }
    }

    #[test]
    fn kubelet_without_its_file_waits_and_nothing_retries_it() {
        let mut s = all_present();
        let mut pid = 100;
        run_due(&mut s, 0, false, &mut pid);
        assert_eq!(s.svc(KUBELET).state, State::Waiting);
        assert_eq!(s.svc(KUBELET).pid, 0);
        assert_eq!(s.svc(KUBELET).since_ms, 0);
        // No deadline, no start, however long: never a crash loop.
        assert_eq!(s.next_deadline(10_000), None);
        assert_eq!(s.due(u64::MAX), None);
        assert_eq!(s.svc(KUBELET).restarts, 0);
        assert_eq!(s.svc(KUBELET).last_exit, Exit::None);
    }

    #[test]
    fn restart_of_a_waiting_kubelet_reads_its_file_again() {
        let mut s = all_present();
        let mut pid = 100;
        run_due(&mut s, 0, false, &mut pid);
        // Still no file (or a bad one): waiting again, one evaluation each.
        assert_eq!(s.request_restart(b"kubelet", 10), RestartOutcome::StartNow);
        assert_eq!(s.svc(KUBELET).state, State::Starting);
        assert_eq!(s.due(10), Some(KUBELET));
        run_due(&mut s, 10, false, &mut pid);
        assert_eq!(
            (s.svc(KUBELET).state, s.svc(KUBELET).since_ms),
            (State::Waiting, 10)
        );
        assert_eq!(s.due(u64::MAX), None);
        // The file is there now: it starts.
        assert_eq!(s.request_restart(b"kubelet", 20), RestartOutcome::StartNow);
        run_due(&mut s, 20, true, &mut pid);
        assert_eq!(s.svc(KUBELET).state, State::Running);
        assert_eq!(s.svc(KUBELET).pid, 102);
        assert_eq!(s.svc(KUBELET).restarts, 0, "a first start is no restart");
    }

    #[test]
    fn restart_of_a_waiting_kubelet_still_waits_for_containerd() {
        let mut s = all_present();
        let mut pid = 100;
        run_due(&mut s, 0, false, &mut pid);
        let containerd = s.svc(1).pid;
        s.reaped(containerd, Exit::Code(1), 5);
        s.spawn_failed(1, 5);
        assert_eq!(s.svc(1).state, State::Backoff);
        assert_eq!(s.request_restart(b"kubelet", 6), RestartOutcome::StartNow);
        assert_eq!(s.svc(KUBELET).state, State::Starting);
        // containerd is in its backoff (100 ms after a second failure):
        // nothing is due, kubelet included, until it runs again.
        assert_eq!(s.due(6), None);
        assert_eq!(s.due(105), Some(1), "containerd first");
        s.spawned(1, 200, 105);
        assert_eq!(s.due(105), Some(KUBELET));
    }

    #[test]
    fn restart_of_a_running_kubelet_stops_it_then_reads_its_file() {
        for file_still_there in [true, false] {
            let mut s = all_present();
            let mut pid = 100;
            run_due(&mut s, 0, true, &mut pid);
            assert_eq!(s.svc(KUBELET).state, State::Running);
            assert_eq!(
                s.request_restart(b"kubelet", 50),
                RestartOutcome::Terminate(102)
            );
            s.reaped(102, Exit::Signal(15), 60);
            assert_eq!(s.due(60), Some(KUBELET), "due at once, no backoff");
            run_due(&mut s, 60, file_still_there, &mut pid);
            let k = s.svc(KUBELET);
            if file_still_there {
                assert_eq!((k.state, k.pid, k.restarts), (State::Running, 103, 1));
            } else {
                // The files were removed: stopped, and waiting.
                assert_eq!((k.state, k.pid, k.since_ms), (State::Waiting, 0, 60));
                assert_eq!(k.last_exit, Exit::Signal(15));
                assert_eq!(s.due(u64::MAX), None);
            }
        }
    }

    #[test]
    fn a_kubelet_that_crashes_after_its_file_went_waits() {
        let mut s = all_present();
        let mut pid = 100;
        run_due(&mut s, 0, true, &mut pid);
        s.reaped(102, Exit::Code(1), 10);
        assert_eq!(s.svc(KUBELET).state, State::Backoff);
        run_due(&mut s, 10, false, &mut pid);
        assert_eq!(s.svc(KUBELET).state, State::Waiting);
        assert_eq!(s.next_deadline(10_000), None);
    }

    #[test]
    fn a_waiting_kubelet_is_stopped_at_shutdown() {
        let mut s = all_present();
        let mut pid = 100;
        run_due(&mut s, 0, false, &mut pid);
        s.begin_shutdown(30);
        assert_eq!(
            (s.svc(KUBELET).state, s.svc(KUBELET).since_ms),
            (State::Stopped, 30)
        );
        assert_eq!(s.shutdown_step(31), ShutdownStep::Terminate(1, 101));
        assert_eq!(s.request_restart(b"kubelet", 32), RestartOutcome::Refused);
        assert_eq!(s.due(u64::MAX), None);
    }

    #[test]
    fn spawn_failure_backs_off() {
        let mut s = all_present();
        s.spawn_failed(0, 0);
        assert_eq!(s.svc(0).last_exit, Exit::SpawnFailed);
        assert_eq!(s.due(0), Some(0), "first failure retries at once");
        s.spawn_failed(0, 0);
        assert_eq!(s.due(0), Some(1), "agent now waits; containerd is next");
        assert_eq!(s.next_deadline(1), Some(0));
    }
}
