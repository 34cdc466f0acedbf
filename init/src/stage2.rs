//! Stage 2: supervise the service table for the life of the machine.
//!
//! One thread, one `poll` loop over a signalfd (SIGCHLD, SIGTERM, SIGINT,
//! SIGUSR2), the control FIFO and one log pipe per service. Each iteration
//! reaps every child, starts what is due, kills what overstayed a stop,
//! copies service output into the size-bounded log files, pets the
//! watchdog, rewrites the status file if anything changed, and holds the
//! boot deadline.

use crate::sys::{self, sigbit};
use crate::util::{self, now_ms, open};
use crate::{error, fatal, info, warn};
use core::ffi::{CStr, c_char};
use linux_raw_sys::general as g;
use matic_contract::boot::BootFile;
use matic_contract::paths::{
    BOOT_PATH as BOOT_FILE, CONTROL_PATH as CONTROL, RUN_DIR, SERVICES_PATH as STATUS,
    SERVICES_TMP_PATH as STATUS_TMP,
};
use matic_init::cmdline::Settings;
use matic_init::control::{Command, LineError, LineReader};
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::rootfs::BINDS;
use matic_init::show;
use matic_init::status;
use matic_init::supervisor::{Exit, RestartOutcome, ShutdownStep, Supervisor};
use matic_init::table::{SERVICE_ENV, SERVICE_NOFILE, SERVICES};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use rustix::process::{Pid, Signal, WaitOptions, kill_process, kill_process_group};
use rustix::system::RebootCommand;

const N: usize = SERVICES.len();
const LOG_DIR: &str = "/var/log/matic";
/// The watchdog timeout init asks for, and how often it pets.
const WATCHDOG_TIMEOUT_S: i32 = 30;
const WATCHDOG_PET_MS: u64 = 5_000;
/// After SIGKILL to everything, how long to wait for the last exits.
const KILL_REAP_MS: u64 = 3_000;

/// How the machine goes down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    Reboot,
    Poweroff,
}

/// One service's output: a pipe shared by all its runs, copied by init into
/// `<name>.log`, which is rotated to `<name>.log.1` at the size limit.
struct ServiceLog {
    pipe: Option<(OwnedFd, OwnedFd)>,
    file: Option<OwnedFd>,
    size: u64,
    write_failed: bool,
}

struct Runtime {
    sup: Supervisor<'static, N>,
    settings: Settings,
    sigfd: OwnedFd,
    /// Control FIFO read end, plus a write end init holds so the FIFO never
    /// reports end-of-file between writers.
    fifo: Option<(OwnedFd, OwnedFd)>,
    lines: LineReader,
    logs: [ServiceLog; N],
    devnull: Option<OwnedFd>,
    watchdog: Option<OwnedFd>,
    next_pet_ms: u64,
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

    raise_nofile();
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
        fifo: open_fifo(),
        lines: LineReader::new(),
        logs: core::array::from_fn(|_| ServiceLog {
            pipe: None,
            file: None,
            size: 0,
            write_failed: false,
        }),
        devnull: open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).ok(),
        watchdog: open_watchdog(),
        next_pet_ms: 0,
        boot_deadline_ms: boot_deadline(now, &settings),
        status_dirty: true,
        status_failed: false,
        down: None,
    };
    rt.main_loop()
}

/// Sets init's `RLIMIT_NOFILE` to [`SERVICE_NOFILE`] (soft and hard), which
/// every service inherits; init itself never `select`s, so a high soft limit
/// costs it nothing. Raising the hard limit needs `CAP_SYS_RESOURCE` and
/// `fs.nr_open` ≥ the figure; failing that, the soft limit is raised to the
/// hard one (logged).
fn raise_nofile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = Rlimit {
        current: Some(SERVICE_NOFILE),
        maximum: Some(SERVICE_NOFILE),
    };
    if let Err(e) = setrlimit(Resource::Nofile, want) {
        let mut l = getrlimit(Resource::Nofile);
        l.current = l.maximum;
        // Raising the soft limit up to the hard one is always allowed.
        let _ = setrlimit(Resource::Nofile, l);
        warn!(
            "RLIMIT_NOFILE {}: {}; services get the hard limit, {}",
            SERVICE_NOFILE,
            e,
            l.maximum.unwrap_or(u64::MAX)
        );
    }
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

fn open_fifo() -> Option<(OwnedFd, OwnedFd)> {
    match rustix::fs::lstat(CONTROL) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Fifo => {}
        Ok(_) => {
            let _ = rustix::fs::unlink(CONTROL);
        }
        Err(_) => {}
    }
    match rustix::fs::mkfifoat(rustix::fs::CWD, CONTROL, Mode::from_raw_mode(0o600)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => {
            error!("mkfifo /run/matic/control: {}: no control FIFO", e);
            return None;
        }
    }
    let flags = OFlags::NONBLOCK | OFlags::CLOEXEC;
    let r = open(CONTROL, OFlags::RDONLY | flags, Mode::empty());
    let w = open(CONTROL, OFlags::WRONLY | flags, Mode::empty());
    match (r, w) {
        (Ok(r), Ok(w)) => Some((r, w)),
        (Err(e), _) | (_, Err(e)) => {
            error!("open /run/matic/control: {}: no control FIFO", e);
            None
        }
    }
}

fn open_watchdog() -> Option<OwnedFd> {
    let fd = open(
        c"/dev/watchdog",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut timeout: i32 = WATCHDOG_TIMEOUT_S;
    // WDIOC_SETTIMEOUT = _IOWR('W', 6, int).
    const SETTIMEOUT: rustix::ioctl::Opcode = rustix::ioctl::opcode::read_write::<i32>(b'W', 6);
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one int, which the Updater
    // points at; the fd is the watchdog device opened above.
    let r = unsafe {
        rustix::ioctl::ioctl(
            &fd,
            rustix::ioctl::Updater::<SETTIMEOUT, i32>::new(&mut timeout),
        )
    };
    match r {
        Ok(()) => info!("watchdog armed, timeout {} s", timeout),
        Err(e) => warn!(
            "watchdog: setting the timeout failed ({}); petting every {} s",
            e,
            WATCHDOG_PET_MS / 1000
        ),
    }
    Some(fd)
}

fn log_path(name: &str, rotated: bool) -> Buf<64> {
    let mut b = Buf::<64>::new();
    show!(
        &mut b,
        "{}/{}{}",
        LOG_DIR,
        name,
        if rotated { ".log.1" } else { ".log" }
    );
    b
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
            self.pet_watchdog(now);
            if let Some(d) = self.boot_deadline_ms
                && now >= d
            {
                error!("boot deadline: slot not marked successful in time, rebooting");
                self.down = Some(Down::Reboot);
            }
            if let Some(down) = self.down {
                self.shutdown(down);
            }
            let mut wake = self.next_pet_ms;
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
        if let (true, Some((r, _))) = (control, &self.fifo) {
            let _ = fds.push(PollFd::new(r, PollFlags::IN));
            have_fifo = true;
        }
        for l in &self.logs {
            if let Some((r, _)) = &l.pipe {
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
                        info!(
                            "{}: {}",
                            name,
                            if down == Down::Reboot {
                                "reboot"
                            } else {
                                "poweroff"
                            }
                        );
                        self.down = Some(down);
                    }
                }
            }
        }
    }

    fn read_control(&mut self) {
        let Some((r, _)) = &self.fifo else { return };
        let mut buf = [0u8; 256];
        loop {
            let n = match rustix::io::read(r, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = now_ms();
            let (sup, down, deadline, dirty) = (
                &mut self.sup,
                &mut self.down,
                &mut self.boot_deadline_ms,
                &mut self.status_dirty,
            );
            self.lines.push(&buf[..n], now, |line| match line {
                Ok(Command::Reboot) => {
                    info!("control: reboot");
                    down.get_or_insert(Down::Reboot);
                }
                Ok(Command::Poweroff) => {
                    info!("control: poweroff");
                    down.get_or_insert(Down::Poweroff);
                }
                Ok(Command::BootOk) => {
                    if deadline.take().is_some() {
                        info!("control: boot-ok, boot deadline cleared");
                    } else {
                        info!("control: boot-ok (no deadline was held)");
                    }
                }
                Ok(Command::Restart(name)) => {
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
                Err(LineError::TooLong(start)) => {
                    warn!(
                        "control: line over {} bytes dropped: {}...",
                        matic_init::control::MAX_LINE,
                        Printable(start.get(..16).unwrap_or(start))
                    )
                }
                Err(LineError::Unknown(l)) => {
                    warn!("control: unknown command dropped: {}", Printable(l))
                }
                Err(LineError::Stale(l)) => {
                    warn!(
                        "control: partial line without newline for {} ms dropped: {}",
                        matic_init::control::STALE_MS,
                        Printable(l)
                    )
                }
            });
        }
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
        self.prepare_log(i);
        let out = self.logs[i].pipe.as_ref().map(|(_, w)| w);
        match sys::fork() {
            Ok(0) => child(spec.path, out, self.devnull.as_ref()),
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

    /// Makes sure service `i` has its output pipe and an open log file,
    /// rotating the file first if it reached the limit.
    fn prepare_log(&mut self, i: usize) {
        let name = SERVICES[i].name;
        let l = &mut self.logs[i];
        if l.pipe.is_none() {
            match pipe_with(PipeFlags::CLOEXEC) {
                Ok((r, w)) => {
                    let _ = rustix::io::ioctl_fionbio(&r, true);
                    l.pipe = Some((r, w));
                }
                Err(e) => error!("{}: pipe: {}: output goes to /dev/null", name, e),
            }
        }
        if l.file.is_some() && l.size < self.settings.log_limit_bytes {
            return;
        }
        if l.file.is_some() {
            rotate(name, l);
            return;
        }
        let _ = util::mkdir(c"/var/log", 0o755);
        let _ = util::mkdir(c"/var/log/matic", 0o750);
        open_log(name, l);
        if l.file.is_some() && l.size >= self.settings.log_limit_bytes {
            rotate(name, l);
        }
    }

    /// Copies whatever the services wrote into their log files, rotating at
    /// the limit. Output is dropped (never blocked on) when there is no file.
    fn drain_logs(&mut self) {
        let limit = self.settings.log_limit_bytes;
        for (i, l) in self.logs.iter_mut().enumerate() {
            while drain_one(l, limit) {
                rotate(SERVICES[i].name, l);
            }
        }
    }

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

    fn pet_watchdog(&mut self, now: u64) {
        if now < self.next_pet_ms {
            return;
        }
        self.next_pet_ms = now + WATCHDOG_PET_MS;
        if let Some(fd) = &self.watchdog {
            // Any byte but 'V' is a keepalive; 'V' would arm a magic close.
            let _ = rustix::io::write(fd, b"\0");
        }
    }

    /// Stops everything and reboots or powers off. Never returns.
    fn shutdown(&mut self, down: Down) -> ! {
        let what = if down == Down::Reboot {
            "reboot"
        } else {
            "poweroff"
        };
        let start = now_ms();
        let deadline = start + self.settings.stop_timeout_ms;
        info!(
            "shutdown for {}: stopping services in reverse order (up to {} ms)",
            what, self.settings.stop_timeout_ms
        );
        self.sup.begin_shutdown(start);
        self.status_dirty = true;
        // Services one at a time, in reverse dependency order, within
        // the stop timeout; those still there at its end are SIGKILLed.
        loop {
            let now = now_ms();
            match self.sup.shutdown_step(now) {
                ShutdownStep::Terminate(i, pid) => {
                    info!("{}: SIGTERM to {}", SERVICES[i].name, pid);
                    signal(pid, Signal::TERM);
                    continue;
                }
                ShutdownStep::Done => break,
                ShutdownStep::Wait => {}
            }
            if now >= deadline {
                for pid in self.sup.live_pids() {
                    warn!("pid {} still running at the stop timeout: SIGKILL", pid);
                    signal(pid, Signal::KILL);
                }
                break;
            }
            self.write_status();
            self.pet_watchdog(now);
            self.wait((deadline - now).min(WATCHDOG_PET_MS), false);
        }
        // Whatever else is left (containers' processes, containerd's
        // shims): SIGTERM, and a budget of their own to exit.
        if self.has_children() {
            let end = now_ms() + self.settings.container_stop_ms;
            info!(
                "services stopped; SIGTERM to all remaining processes (up to {} ms)",
                self.settings.container_stop_ms
            );
            let _ = kill_process_group(Pid::INIT, Signal::TERM);
            loop {
                let now = now_ms();
                if now >= end || !self.has_children() {
                    break;
                }
                self.pet_watchdog(now);
                self.wait((end - now).min(WATCHDOG_PET_MS), false);
            }
        }
        if self.has_children() {
            warn!("SIGKILL to all remaining processes");
            let _ = kill_process_group(Pid::INIT, Signal::KILL);
            let end = now_ms() + KILL_REAP_MS;
            loop {
                let now = now_ms();
                if now >= end || !self.has_children() {
                    break;
                }
                self.pet_watchdog(now);
                self.wait(end - now, false);
            }
        }
        self.drain_logs();
        self.status_dirty = true;
        self.write_status();
        for l in &mut self.logs {
            l.file = None;
        }
        rustix::fs::sync();
        release_var();
        rustix::fs::sync();
        info!("{} now", what);
        let cmd = if down == Down::Reboot {
            RebootCommand::Restart
        } else {
            RebootCommand::PowerOff
        };
        // Still here: no CAP_SYS_BOOT. Stop petting so a watchdog resets us.
        if let Err(e) = rustix::system::reboot(cmd) {
            error!("reboot(2) failed: {}; waiting for the watchdog", e);
        }
        util::sleep_forever()
    }
}

/// Copies one service's pending output; returns true when its log file
/// reached `limit` and must be rotated before copying more.
fn drain_one(l: &mut ServiceLog, limit: u64) -> bool {
    let Some((r, _)) = &l.pipe else { return false };
    loop {
        if let Some(f) = &l.file {
            let room = limit.saturating_sub(l.size).clamp(1, 1 << 16) as usize;
            match splice(
                r,
                None,
                f,
                None,
                room,
                SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
            ) {
                Ok(0) | Err(Errno::AGAIN) => return false,
                Ok(n) => {
                    l.size += n as u64;
                    if l.size >= limit {
                        return true;
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    if !l.write_failed {
                        error!("writing a service log failed ({}): dropping its output", e);
                        l.write_failed = true;
                    }
                    l.file = None;
                }
            }
        } else {
            let mut sink = [0u8; 512];
            match rustix::io::read(r, &mut sink) {
                Ok(0) | Err(Errno::AGAIN) => return false,
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }
}

fn open_log(name: &str, l: &mut ServiceLog) {
    let mut path = log_path(name, false);
    let Some(p) = path.as_cstr() else { return };
    match open(
        p,
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    ) {
        Ok(fd) => {
            l.size = rustix::fs::seek(&fd, SeekFrom::End(0)).unwrap_or(0);
            l.file = Some(fd);
        }
        Err(e) => {
            if !l.write_failed {
                warn!(
                    "{}: cannot open {}/{}.log ({}): dropping output",
                    name, LOG_DIR, name, e
                );
                l.write_failed = true;
            }
        }
    }
}

/// `<name>.log` becomes `<name>.log.1` (replacing it) and a new, empty
/// `<name>.log` is started.
fn rotate(name: &str, l: &mut ServiceLog) {
    let mut from = log_path(name, false);
    let mut to = log_path(name, true);
    if let (Some(f), Some(t)) = (from.as_cstr(), to.as_cstr()) {
        if let Err(e) = rustix::fs::rename(f, t) {
            warn!("{}: rotating its log: {}", name, e);
        }
        l.file = None;
        if let Ok(fd) = open(
            f,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o640),
        ) {
            l.file = Some(fd);
        }
        l.size = 0;
    }
}

fn signal(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = kill_process(p, sig);
    }
}

/// In the forked child: a clean process for the service, then exec.
fn child(path: &CStr, out: Option<&OwnedFd>, devnull: Option<&OwnedFd>) -> ! {
    sys::reset_signals();
    let _ = rustix::process::setsid();
    let _ = rustix::process::chdir(c"/");
    if let Some(n) = devnull {
        let _ = rustix::stdio::dup2_stdin(n.as_fd());
    }
    if let Some(o) = out.or(devnull) {
        let _ = rustix::stdio::dup2_stdout(o.as_fd());
        let _ = rustix::stdio::dup2_stderr(o.as_fd());
    }
    let argv = [path.as_ptr(), core::ptr::null()];
    let mut envp = [core::ptr::null::<c_char>(); 4];
    for (slot, e) in envp.iter_mut().zip(SERVICE_ENV) {
        *slot = e.as_ptr();
    }
    let e = sys::execve(path, &argv, &envp);
    error!("exec {} failed: {}", Printable(path.to_bytes()), e);
    sys::exit_group(127)
}

/// Closes `MATIC_STATE` cleanly before the power goes. The bind mounts that
/// stage 1 made from `/var` ([`BINDS`]) hold the same ext4 superblock: while
/// they exist, unmounting `/var` only detaches one mount point and the
/// journal stays open (the next boot needs a recovery). So: unmount the binds
/// (newest first), remount the superblock read-only (which closes the journal
/// even if something still holds it), then unmount `/var`.
fn release_var() {
    for (_, target) in BINDS.iter().rev() {
        let mut t = Buf::<64>::new();
        t.push_bytes(target.as_bytes());
        if let Some(t) = t.as_cstr() {
            // Absent in a test root: nothing to undo.
            let _ = rustix::mount::unmount(t, rustix::mount::UnmountFlags::empty());
        }
    }
    let ro = rustix::mount::mount_remount(c"/var", rustix::mount::MountFlags::RDONLY, c"");
    match (
        ro,
        rustix::mount::unmount(c"/var", rustix::mount::UnmountFlags::empty()),
    ) {
        (_, Ok(())) => info!("/var unmounted"),
        (Ok(()), Err(e)) => info!("/var busy ({}): left read-only", e),
        (Err(e1), Err(e2)) => warn!("/var: remount read-only {}, unmount {}", e1, e2),
    }
}
