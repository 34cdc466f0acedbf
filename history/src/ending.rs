//! How a boot ended, decided from what is known after it: the ending it
//! recorded itself, a kernel panic found in its crash dumps, whether the
//! watchdog reset the machine. Nothing known means a power loss or a
//! hard reset.
//!
//! Owns: the order of precedence. Must never: read a file (callers
//! gather the evidence), or return anything for a boot that is still
//! running (the reader says `running` instead of asking).

use crate::journal::Ending;
use crate::pstore::PanicReport;

/// The ending of a finished boot. A recorded ending wins (a requested
/// reboot that panicked on the way down is still the reboot the operator
/// asked for); else a panic found in pstore; else the watchdog; else
/// [`Ending::PowerLossOrReset`].
pub fn classify(
    recorded: Option<&Ending>,
    panic: Option<&PanicReport>,
    watchdog_fired: bool,
) -> Ending {
    if let Some(ending) = recorded {
        return ending.clone();
    }
    if let Some(panic) = panic {
        return Ending::KernelPanic {
            first_line: panic.first_line.clone(),
        };
    }
    if watchdog_fired {
        return Ending::Watchdog;
    }
    Ending::PowerLossOrReset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic() -> PanicReport {
        PanicReport {
            first_line: "Kernel panic - not syncing: VFS: Unable to mount root fs".into(),
            text: "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n".into(),
        }
    }

    #[test]
    fn a_recorded_ending_wins_over_everything() {
        let reboot = Ending::Reboot {
            by: "api:admin".into(),
        };
        assert_eq!(classify(Some(&reboot), Some(&panic()), true), reboot);
        assert_eq!(
            classify(Some(&Ending::BootDeadline), None, false),
            Ending::BootDeadline
        );
    }

    #[test]
    fn a_panic_wins_over_the_watchdog() {
        assert_eq!(
            classify(None, Some(&panic()), true),
            Ending::KernelPanic {
                first_line: "Kernel panic - not syncing: VFS: Unable to mount root fs".into()
            }
        );
    }

    #[test]
    fn the_watchdog_when_nothing_else() {
        assert_eq!(classify(None, None, true), Ending::Watchdog);
    }

    #[test]
    fn nothing_known_is_power_loss_or_reset() {
        assert_eq!(classify(None, None, false), Ending::PowerLossOrReset);
    }
}
