//! How a previous boot that recorded no ending ended, inferred from the
//! end of its kernel log and the watchdog's boot status. The result is
//! written as that boot's `ended` event, so its listing never changes
//! afterwards.
//!
//! Owns: which log lines mean what, and their precedence. Must never: read
//! a file (callers pass the text and the status), or be asked about a
//! boot that recorded its ending or left a panic (those win: crashes.rs
//! and the reboot handlers record them).

use matic_history::Ending;

/// `WDIOF_CARDRESET` (linux/watchdog.h): the card reset the machine. The
/// i6300esb driver (QEMU's watchdog) sets it in `bootstatus` when its
/// timeout bit survived the reset (`esb_initdevice`, upstream
/// drivers/watchdog/i6300esb.c).
pub const WDIOF_CARDRESET: u32 = 0x0020;

/// How many lines from the end of the log are looked at: init's shutdown
/// lines are followed by at most the services' SIGTERM lines and a few
/// kernel lines, never by thousands.
pub const TAIL_LINES: usize = 200;

/// Whether a watchdog `bootstatus` file's text says it reset the machine.
pub fn watchdog_fired(bootstatus: &str) -> bool {
    bootstatus
        .trim()
        .parse::<u32>()
        .is_ok_and(|bits| bits & WDIOF_CARDRESET != 0)
}

/// The ending of a boot whose kernel log ends with `kmsg_tail` (any
/// number of lines; only the last [`TAIL_LINES`] are looked at). In order:
/// init's boot deadline (it is followed by init's own shutdown lines, so
/// it must win over them); stage 1 giving up on the root; init's shutdown
/// for a reboot or power-off; the watchdog; else a power loss or hard reset.
pub fn infer(kmsg_tail: &str, watchdog: bool) -> Ending {
    let lines: Vec<&str> = kmsg_tail.lines().collect();
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    let said = |words: &str| tail.iter().any(|l| l.contains(words));
    if said("matic-init: boot deadline:") {
        return Ending::BootDeadline;
    }
    if tail.iter().any(|l| unmountable_root(l)) {
        return Ending::UnmountableRoot;
    }
    // The last shutdown line wins (a reboot requested during a power-off
    // never happens: init keeps the first, but the log says which ran).
    for line in tail.iter().rev() {
        if line.contains("matic-init: shutdown for reboot")
            || line.contains("matic-init: reboot now")
        {
            return Ending::Reboot { by: "init".into() };
        }
        if line.contains("matic-init: shutdown for poweroff")
            || line.contains("matic-init: poweroff now")
        {
            return Ending::Poweroff { by: "init".into() };
        }
    }
    if watchdog {
        return Ending::Watchdog;
    }
    Ending::PowerLossOrReset
}

/// Stage 1's lines when it could not mount a slot's root and rebooted:
/// the slot given up (`slot A: its image cannot boot; slot given up,
/// rebooting`), kept for a retry (`slot A: partition table kept; rebooting
/// in N ms`), or a mount that failed outright (`cannot mount`).
fn unmountable_root(line: &str) -> bool {
    line.contains("matic-init: ")
        && (line.contains("; slot given up")
            || line.contains(": partition table kept; rebooting in")
            || line.contains("cannot mount"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EARLY: &str = "[    0.000000] Linux version 6.1.0-57-amd64\n\
        [    3.200000] Run /init as init process\n\
        [    3.210000] matic-init: stage 1: from the initramfs\n\
        [    4.100000] matic-init: stage 2: supervising 3 services\n\
        [    4.200000] matic-init: containerd: started, pid 312\n";

    #[test]
    fn the_deadline_wins_over_the_shutdown_that_follows_it() {
        let log = format!(
            "{EARLY}[   64.100000] matic-init: boot deadline: slot not marked successful in time, rebooting\n\
             [   64.100100] matic-init: shutdown for reboot: stopping services in reverse order (up to 10000 ms)\n\
             [   64.300000] matic-init: containerd: SIGTERM to 312\n\
             [   65.000000] matic-init: reboot now\n"
        );
        assert_eq!(infer(&log, false), Ending::BootDeadline);
        assert_eq!(infer(&log, true), Ending::BootDeadline);
    }

    #[test]
    fn init_shutdown_lines_are_a_reboot_or_poweroff_by_init() {
        let reboot = format!(
            "{EARLY}[   30.000000] matic-init: control: reboot\n\
             [   30.100000] matic-init: shutdown for reboot: stopping services in reverse order (up to 10000 ms)\n"
        );
        assert_eq!(infer(&reboot, false), Ending::Reboot { by: "init".into() });
        let off = format!("{EARLY}[   30.100000] matic-init: poweroff now\n");
        assert_eq!(infer(&off, true), Ending::Poweroff { by: "init".into() });
    }

    #[test]
    fn stage_one_giving_up_is_an_unmountable_root() {
        for line in [
            "matic-init: slot B: its image cannot boot; slot given up, rebooting",
            "matic-init: slot A: partition table kept; rebooting in 5000 ms",
            "matic-init: cannot mount the root of slot A",
        ] {
            let log = format!("[    0.000000] Linux version 6.1.0\n[    3.500000] {line}\n");
            assert_eq!(infer(&log, false), Ending::UnmountableRoot, "{line}");
        }
        // Someone else's words are not init's.
        assert_eq!(
            infer("[    5.000000] containerd: cannot mount overlay\n", false),
            Ending::PowerLossOrReset
        );
    }

    #[test]
    fn nothing_said_is_the_watchdog_or_a_power_loss() {
        assert_eq!(infer(EARLY, true), Ending::Watchdog);
        assert_eq!(infer(EARLY, false), Ending::PowerLossOrReset);
        assert_eq!(infer("", false), Ending::PowerLossOrReset);
    }

    #[test]
    fn only_the_tail_counts() {
        let mut log = String::from("[    1.000000] matic-init: boot deadline: slot not marked\n");
        for i in 0..TAIL_LINES {
            log.push_str(&format!("[ {i}.5] filler\n"));
        }
        assert_eq!(infer(&log, false), Ending::PowerLossOrReset);
    }

    #[test]
    fn watchdog_status_bits() {
        assert!(watchdog_fired("32\n"));
        assert!(watchdog_fired("33"));
        assert!(!watchdog_fired("0\n"));
        assert!(!watchdog_fired("1"));
        assert!(!watchdog_fired(""));
        assert!(!watchdog_fired("garbage"));
    }
}
