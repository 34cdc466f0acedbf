//! Stage 2's way down: stop the services one at a time in reverse order
//! within the stop timeout (SIGKILL for what is left), then SIGTERM and
//! SIGKILL to every remaining process with a budget of their own, flush the
//! logs and the status file, release `/var` (`mounts::release_var`), sync,
//! and reboot or power off.
//!
//! It drives stage 2's loop through [`Machine`] and never returns; it must
//! never start a service, nor skip releasing `/var` (an open ext4 journal
//! costs the next boot a recovery).

use crate::util::{self, now_ms, signal};
use crate::{error, info, mounts, warn, watchdog};
use matic_init::cmdline::Settings;
use matic_init::supervisor::{ShutdownStep, Supervisor};
use matic_init::table::SERVICES;
use rustix::process::{Pid, Signal, kill_process_group};
use rustix::system::RebootCommand;

/// After SIGKILL to everything, how long to wait for the last exits.
const KILL_REAP_MS: u64 = 3_000;

/// How the machine goes down.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Down {
    Reboot,
    Poweroff,
}

impl Down {
    pub fn as_str(self) -> &'static str {
        match self {
            Down::Reboot => "reboot",
            Down::Poweroff => "poweroff",
        }
    }
}

/// What the way down needs of stage 2's loop.
pub trait Machine {
    fn sup(&mut self) -> &mut Supervisor<'static, { SERVICES.len() }>;
    /// The services' states changed: the status file is to be rewritten.
    fn status_changed(&mut self);
    /// Rewrites the status file if it changed.
    fn write_status(&mut self);
    fn pet_watchdog(&mut self, now: u64);
    /// Waits up to `timeout_ms` for signals, exits and service output
    /// (never the control FIFO).
    fn wait(&mut self, timeout_ms: u64);
    /// Has any child left (`waitpid` would not fail with ECHILD)?
    fn has_children(&mut self) -> bool;
    /// Copies the services' last output, writes the last status file and
    /// closes the log files.
    fn flush(&mut self);
}

/// Stops everything and reboots or powers off. Never returns.
pub fn run(m: &mut impl Machine, settings: &Settings, down: Down) -> ! {
    let what = down.as_str();
    let start = now_ms();
    let deadline = start + settings.stop_timeout_ms;
    info!(
        "shutdown for {}: stopping services in reverse order (up to {} ms)",
        what, settings.stop_timeout_ms
    );
    m.sup().begin_shutdown(start);
    m.status_changed();
    // Services one at a time, in reverse dependency order, within
    // the stop timeout; those still there at its end are SIGKILLed.
    loop {
        let now = now_ms();
        match m.sup().shutdown_step(now) {
            ShutdownStep::Terminate(i, pid) => {
                info!("{}: SIGTERM to {}", SERVICES[i].name, pid);
                signal(pid, Signal::TERM);
                continue;
            }
            ShutdownStep::Done => break,
            ShutdownStep::Wait => {}
        }
        if now >= deadline {
            for pid in m.sup().live_pids() {
                warn!("pid {} still running at the stop timeout: SIGKILL", pid);
                signal(pid, Signal::KILL);
            }
            break;
        }
        m.write_status();
        m.pet_watchdog(now);
        m.wait((deadline - now).min(watchdog::PET_MS));
    }
    // Whatever else is left (containers' processes, containerd's
    // shims): SIGTERM, and a budget of their own to exit.
    if m.has_children() {
        let end = now_ms() + settings.container_stop_ms;
        info!(
            "services stopped; SIGTERM to all remaining processes (up to {} ms)",
            settings.container_stop_ms
        );
        let _ = kill_process_group(Pid::INIT, Signal::TERM);
        wait_children(m, end, watchdog::PET_MS);
    }
    if m.has_children() {
        warn!("SIGKILL to all remaining processes");
        let _ = kill_process_group(Pid::INIT, Signal::KILL);
        wait_children(m, now_ms() + KILL_REAP_MS, u64::MAX);
    }
    m.flush();
    rustix::fs::sync();
    mounts::release_var();
    rustix::fs::sync();
    info!("{} now", what);
    let cmd = match down {
        Down::Reboot => RebootCommand::Restart,
        Down::Poweroff => RebootCommand::PowerOff,
    };
    // Still here: no CAP_SYS_BOOT. Stop petting so a watchdog resets us.
    if let Err(e) = rustix::system::reboot(cmd) {
        error!("reboot(2) failed: {}; waiting for the watchdog", e);
    }
    util::sleep_forever()
}

/// Until `end` or the last child is gone, petting the watchdog and waking
/// at least every `step_ms`.
fn wait_children(m: &mut impl Machine, end: u64, step_ms: u64) {
    loop {
        let now = now_ms();
        if now >= end || !m.has_children() {
            return;
        }
        m.pet_watchdog(now);
        m.wait((end - now).min(step_ms));
    }
}
