//! Stage 2: supervise the service table for the life of the machine.
//!
//! One thread, one `poll` loop over a signalfd (SIGCHLD, SIGTERM, SIGINT,
//! SIGUSR2), the control FIFO and one log pipe per service (but the pipes
//! handed to a running agent). Each iteration
//! reaps every child, starts what is due, kills what overstayed a stop,
//! copies service output into the size-bounded log files, pets the
//! watchdog, rewrites the status file if anything changed, and holds the
//! boot deadline. This file owns that loop, signal and command dispatch,
//! reaping and the status file; the parts live in `fifo`, `spawn`,
//! `svclog`, `watchdog` and `shutdown`. It must never return, and never
//! block but in its one `poll`. (About 420 lines: the loop's handlers
//! share the `Runtime`'s fields, and splitting them further would spread
//! one state across files.)

use crate::fifo::ControlFifo;
use crate::shutdown::{self, Down, Machine};
use crate::spawn;
use crate::svclog::ServiceLog;
use crate::sys::{self, sigbit};
use crate::util::{self, now_ms, open, signal};
use crate::watchdog::Watchdog;
use crate::{error, fatal, info, warn};
use core::ffi::CStr;
use linux_raw_sys::general as g;
use matic_contract::boot::BootFile;
use matic_contract::paths::{
    BOOT_PATH as BOOT_FILE, RUN_DIR, SERVICES_PATH as STATUS, SERVICES_TMP_PATH as STATUS_TMP,
};
use matic_init::argv::{self, Args, FileBuf};
use matic_init::cmdline::Settings;
use matic_init::control::Command;
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::status;
use matic_init::supervisor::{Exit, RestartOutcome, Supervisor};
use matic_init::table::{AGENT, SERVICES, ServiceSpec};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Signal, WaitOptions};
use rustix::system::RebootCommand;

const N: usize = SERVICES.len();

struct Runtime {
    sup: Supervisor<'static, N>,
    settings: Settings,
    sigfd: OwnedFd,
    fifo: ControlFifo,
    logs: [ServiceLog; N],
    devnull: Option<OwnedFd>,
    watchdog: Watchdog,
    boot_deadline_ms: Option<u64>,
    status_dirty: bool,
    status_failed: bool,
    down: Option<Down>,
}

/// Entry of stage 2.
pub fn run(args: &[&'static CStr]) -> ! {
    info!("stage 2: supervising {} services", N);
    let handled = sigbit(g::SIGCHLD) | sigbit(g::SIGTERM) | sigbit(g::SIGINT) | sigbit(g::SIGUSR2);
    if let Err(e) = sys::set_sigmask(handled) {
        error!("blocking signals failed: {}", e);
    }
    let sigfd = match sys::signalfd(handled) {
        Ok(fd) => fd,
        Err(e) => fatal!("signalfd failed: {}", e),
    };
    // Ctrl-Alt-Del now arrives as SIGINT instead of an instant reset. In a
    // PID namespace the kernel refuses this (EINVAL): nothing to do there.
    let _ = rustix::system::reboot(RebootCommand::CadOff);

    spawn::raise_nofile();
    let mut cmdline = [0u8; 1024];
    let cmdline = util::read_file(c"/proc/cmdline", &mut cmdline).unwrap_or(&[]);
    let settings = Settings::load(cmdline, args.iter().skip(1).map(|a| a.to_bytes()));
    let now = now_ms();
    let sup = Supervisor::new(
        &SERVICES,
        |s| rustix::fs::access(s.path, rustix::fs::Access::EXEC_OK).is_ok(),
        settings.backoff,
        now,
    );
    for (i, s) in SERVICES.iter().enumerate() {
        if sup.svc(i).state == matic_init::supervisor::State::Skipped {
            info!(
                "{}: {} absent, skipped",
                s.name,
                Printable(s.path.to_bytes())
            );
        }
    }
    let _ = util::mkdir(c"/run", 0o755);
    let _ = util::mkdir(RUN_DIR, 0o755);
    let mut rt = Runtime {
        sup,
        settings,
        sigfd,
        fifo: ControlFifo::open(),
        logs: [const { ServiceLog::new() }; N],
        devnull: open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).ok(),
        watchdog: Watchdog::open(),
        boot_deadline_ms: boot_deadline(now, &settings),
        status_dirty: true,
        status_failed: false,
        down: None,
    };
    rt.main_loop()
}

fn boot_deadline(now: u64, s: &Settings) -> Option<u64> {
    let mut buf = [0u8; 256];
    let info = match util::read_file(BOOT_FILE, &mut buf) {
        Ok(t) => match BootFile::parse(t) {
            Ok(b) => b,
            Err(e) => {
                warn!(
                    "/run/matic/boot unreadable ({}): no boot deadline",
                    e.as_str()
                );
                return None;
            }
        },
        Err(e) => {
            warn!("/run/matic/boot: {}: no boot deadline", e);
            return None;
        }
    };
    if info.successful {
        info!("slot {} already successful: no boot deadline", info.slot);
        None
    } else if s.boot_timeout_ms == 0 {
        warn!(
            "slot {} on trial but matic.boot_timeout=0: no boot deadline",
            info.slot
        );
        None
    } else {
        info!(
            "slot {} on trial: must be marked successful within {} ms",
            info.slot, s.boot_timeout_ms
        );
        Some(now.saturating_add(s.boot_timeout_ms))
    }
}

impl Runtime {
    fn main_loop(&mut self) -> ! {
        loop {
            let now = now_ms();
            while let Some(i) = self.sup.due(now) {
                self.spawn(i, now);
            }
            while let Some(pid) = self.sup.overdue_kill(now, self.settings.stop_timeout_ms) {
                warn!(
                    "pid {} ignored SIGTERM for {} ms: SIGKILL",
                    pid, self.settings.stop_timeout_ms
                );
                signal(pid, Signal::KILL);
            }
            self.write_status();
            self.watchdog.pet(now);
            if let Some(d) = self.boot_deadline_ms
                && now >= d
            {
                error!("boot deadline: slot not marked successful in time, rebooting");
                self.down = Some(Down::Reboot);
            }
            if let Some(down) = self.down {
                let settings = self.settings;
                shutdown::run(self, &settings, down);
            }
            let mut wake = self.watchdog.next_pet_ms();
            if let Some(t) = self.sup.next_deadline(self.settings.stop_timeout_ms) {
                wake = wake.min(t);
            }
            if let Some(d) = self.boot_deadline_ms {
                wake = wake.min(d);
            }
            self.wait(wake.saturating_sub(now), true);
        }
    }

    /// Sleeps in `poll` until an event or `timeout_ms`, then handles what
    /// arrived: signals, reaping, service output and (if `control`) the FIFO.
    fn wait(&mut self, timeout_ms: u64, control: bool) {
        let mut fds = heapless::Vec::<PollFd<'_>, { N + 2 }>::new();
        let _ = fds.push(PollFd::new(&self.sigfd, PollFlags::IN));
        let mut have_fifo = false;
        if let (true, Some(r)) = (control, self.fifo.reader()) {
            let _ = fds.push(PollFd::new(r, PollFlags::IN));
            have_fifo = true;
        }
        let handed = self.agent_reads();
        for (j, l) in self.logs.iter().enumerate() {
            if let (false, Some(r)) = (handed && j != AGENT, l.reader()) {
                let _ = fds.push(PollFd::new(r, PollFlags::IN));
            }
        }
        let ts = util::timespec_ms(timeout_ms);
        let ready = poll(&mut fds, Some(&ts)).unwrap_or_default();
        let fifo_ready = have_fifo && !fds[1].revents().is_empty();
        drop(fds);
        if ready > 0 {
            self.read_signals();
            if fifo_ready {
                self.read_control();
            }
        }
        // Cheap when nothing exited; also covers SIGCHLDs merged or missed.
        self.reap();
        self.drain_logs();
    }

    fn read_signals(&mut self) {
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
        let mut buf = [0u8; 128 * 4];
        loop {
            let n = match rustix::io::read(&self.sigfd, &mut buf) {
                Ok(n) if n >= 128 => n,
                _ => return,
            };
            for rec in buf[..n].chunks_exact(128) {
                let signo = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
                let down = match signo {
                    g::SIGTERM => Some(("SIGTERM", Down::Reboot)),
                    g::SIGINT => Some(("SIGINT (Ctrl-Alt-Del)", Down::Reboot)),
                    g::SIGUSR2 => Some(("SIGUSR2", Down::Poweroff)),
                    _ => None, // SIGCHLD: reaping follows every wakeup.
                };
                if let Some((name, down)) = down {
                    if self.sup.is_shutting_down() {
                        info!("{} during shutdown: ignored", name);
                    } else if self.down.is_none() {
                        info!("{}: {}", name, down.as_str());
                        self.down = Some(down);
                    }
                }
            }
        }
    }

    /// Acts on the commands that arrived on the control FIFO.
    fn read_control(&mut self) {
        let (sup, down, deadline, dirty) = (
            &mut self.sup,
            &mut self.down,
            &mut self.boot_deadline_ms,
            &mut self.status_dirty,
        );
        self.fifo.read(|command, now| match command {
            Command::Reboot => {
                info!("control: reboot");
                down.get_or_insert(Down::Reboot);
            }
            Command::Poweroff => {
                info!("control: poweroff");
                down.get_or_insert(Down::Poweroff);
            }
            Command::Listening => {
                info!("control: listening");
                sup.listening(now);
                *dirty = true;
            }
            Command::BootOk => {
                if deadline.take().is_some() {
                    info!("control: boot-ok, boot deadline cleared");
                } else {
                    info!("control: boot-ok (no deadline was held)");
                }
            }
            Command::Restart(name) => {
                let name = Printable(name);
                match sup.request_restart(name.0, now) {
                    RestartOutcome::Unknown => {
                        warn!("control: restart {}: no such service", name)
                    }
                    RestartOutcome::Refused => {
                        warn!(
                            "control: restart {}: refused (skipped or shutting down)",
                            name
                        )
                    }
                    RestartOutcome::AlreadyStopping => {
                        info!("control: restart {}: already stopping", name)
                    }
                    RestartOutcome::StartNow => {
                        info!("control: restart {}: starting now", name);
                        *dirty = true;
                    }
                    RestartOutcome::Terminate(pid) => {
                        info!("control: restart {}: SIGTERM to {}", name, pid);
                        signal(pid, Signal::TERM);
                        *dirty = true;
                    }
                }
            }
        });
    }

    fn reap(&mut self) {
        // One clock read per wake-up, not per child: a burst of thousands of
        // orphans would otherwise pay a syscall each (the clock is a raw
        // syscall here, no vDSO), and every exit in one burst is "now".
        let now = now_ms();
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, st))) => {
                    let exit = match (st.exit_status(), st.terminating_signal()) {
                        (Some(c), _) => Exit::Code(c),
                        (None, Some(s)) => Exit::Signal(s),
                        _ => continue, // stopped/continued: not an exit
                    };
                    if let Some(i) = self.sup.reaped(pid.as_raw_nonzero().get(), exit, now) {
                        let s = self.sup.svc(i);
                        if self.sup.is_shutting_down() {
                            info!("{}: stopped ({})", SERVICES[i].name, exit);
                        } else {
                            warn!(
                                "{}: exited ({}), restart #{}",
                                SERVICES[i].name, exit, s.restarts
                            );
                        }
                        self.status_dirty = true;
                    }
                }
                Ok(None) | Err(Errno::CHILD) => return,
                Err(Errno::INTR) => {}
                Err(e) => {
                    error!("waitpid: {}", e);
                    return;
                }
            }
        }
    }

    /// Has any child left (`waitpid` would not fail with ECHILD)?
    fn has_children(&mut self) -> bool {
        use rustix::process::{WaitId, WaitIdOptions, waitid};
        let opts = WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT | WaitIdOptions::EXITED;
        !matches!(waitid(WaitId::All, opts), Err(Errno::CHILD))
    }

    fn spawn(&mut self, i: usize, now: u64) {
        let spec = &SERVICES[i];
        let limit = self.settings.log_limit_bytes;
        self.logs[i].prepare(spec.name, limit);
        let mut handed: [Option<&OwnedFd>; N - 1] = [None; N - 1];
        if i == AGENT {
            // The other services' pipes, made now if they are not yet, go
            // to the agent; their files are closed (the agent moves what
            // they hold into the history) and made again when it is gone.
            for (j, s) in SERVICES.iter().enumerate().skip(1) {
                self.logs[j].prepare(s.name, limit);
                self.logs[j].close_file();
            }
            for (h, l) in handed.iter_mut().zip(&self.logs[1..]) {
                *h = l.reader().or(self.devnull.as_ref());
            }
        }
        let out = self.logs[i].writer();
        let handed = if i == AGENT { &handed[..] } else { &[] };
        let mut file: FileBuf = [0; argv::READ_MAX + 1];
        let Some(args) = service_args(spec, &mut file) else {
            self.sup.waiting(i, now);
            self.status_dirty = true;
            return;
        };
        match spawn::spawn(spec.path, &args, out, self.devnull.as_ref(), handed) {
            Ok(pid) => {
                self.sup.spawned(i, pid, now);
                info!("{}: started, pid {}", spec.name, pid);
            }
            Err(e) => {
                error!("{}: fork failed: {}", spec.name, e);
                self.sup.spawn_failed(i, now);
            }
        }
        self.status_dirty = true;
    }

    /// Copies whatever the services wrote into their log files, rotating at
    /// the limit. Output is dropped (never blocked on) when there is no file.
    fn drain_logs(&mut self) {
        let limit = self.settings.log_limit_bytes;
        let handed = self.agent_reads();
        for (j, (l, s)) in self.logs.iter_mut().zip(SERVICES.iter()).enumerate() {
            if !(handed && j != AGENT) {
                l.drain(s.name, limit);
            }
        }
    }

    /// Whether the agent holds the other services' pipes (from its spawn
    /// until it is reaped): init leaves them to it. Otherwise init copies
    /// them raw, so a pipe always has a reader.
    fn agent_reads(&self) -> bool {
        self.sup.svc(AGENT).pid > 0
    }

    /// Rewrites the status file if it changed.
    fn write_status(&mut self) {
        if !self.status_dirty {
            return;
        }
        self.status_dirty = false;
        let mut text = Buf::<{ status::MAX_LEN }>::new();
        status::render(&self.sup, &mut text);
        if text.truncated() {
            error!("status file does not fit {} bytes", status::MAX_LEN);
            return;
        }
        let r = (|| {
            let fd = open(
                STATUS_TMP,
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )?;
            util::write_all(&fd, text.as_bytes())?;
            drop(fd);
            rustix::fs::rename(STATUS_TMP, STATUS)
        })();
        match r {
            Ok(()) => self.status_failed = false,
            Err(e) if !self.status_failed => {
                self.status_failed = true;
                error!("writing /run/matic/services: {}", e);
            }
            Err(_) => {}
        }
    }
}

/// The arguments service `spec` starts with (`matic_init::argv`), its
/// flags file read into `file`; `None` (logged once, naming the file and
/// the problem) when that file is absent, unreadable or refused: the
/// service then waits for a `restart NAME`.
// Not inlined into the loop: 144 bytes smaller (measured).
#[inline(never)]
fn service_args<'a>(spec: &'a ServiceSpec, file: &'a mut FileBuf) -> Option<Args<'a>> {
    let mut len = 0;
    if let Some(path) = spec.args_file {
        match util::read_file(path, &mut file[..argv::READ_MAX]) {
            Ok(text) => len = text.len(),
            Err(Errno::NOENT) => {
                info!("{}: waiting for {}", spec.name, Printable(path.to_bytes()));
                return None;
            }
            Err(e) => {
                warn!(
                    "{}: {}: {}: waiting",
                    spec.name,
                    Printable(path.to_bytes()),
                    e
                );
                return None;
            }
        }
    }
    match argv::build(spec.path, spec.args, file, len) {
        Ok(args) => Some(args),
        Err(e) => {
            let path = spec.args_file.map_or(&b""[..], CStr::to_bytes);
            warn!(
                "{}: {} refused ({}): waiting",
                spec.name,
                Printable(path),
                e
            );
            None
        }
    }
}

impl Machine for Runtime {
    fn sup(&mut self) -> &mut Supervisor<'static, N> {
        &mut self.sup
    }
    fn status_changed(&mut self) {
        self.status_dirty = true;
    }
    fn write_status(&mut self) {
        Runtime::write_status(self);
    }
    fn pet_watchdog(&mut self, now: u64) {
        self.watchdog.pet(now);
    }
    fn wait(&mut self, timeout_ms: u64) {
        Runtime::wait(self, timeout_ms, false);
    }
    fn has_children(&mut self) -> bool {
        Runtime::has_children(self)
    }
    fn flush(&mut self) {
        self.drain_logs();
        self.status_dirty = true;
        Runtime::write_status(self);
        for l in &mut self.logs {
            l.close_file();
        }
    }
}
