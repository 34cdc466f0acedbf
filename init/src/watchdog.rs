//! Stage 2's hardware watchdog: `/dev/watchdog` opened with a
//! [`TIMEOUT_S`] timeout (the `ioctl` is `sys::watchdog_set_timeout`) and
//! petted every [`PET_MS`] while init's loop turns.
//!
//! It must never close the device with the magic 'V' (that would disarm
//! it): a PID 1 that stops petting must get the machine reset.

use crate::util::open;
use crate::{info, sys, warn};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};

/// The watchdog timeout init asks for.
const TIMEOUT_S: i32 = 30;
/// How often init pets it.
pub const PET_MS: u64 = 5_000;

/// The watchdog, if the machine has one, and when it is due a pet.
pub struct Watchdog {
    fd: Option<OwnedFd>,
    next_pet_ms: u64,
}

impl Watchdog {
    /// Opens and arms `/dev/watchdog`; without one, petting does nothing.
    pub fn open() -> Watchdog {
        let fd = open(
            c"/dev/watchdog",
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        if let Some(fd) = &fd {
            match sys::watchdog_set_timeout(fd, TIMEOUT_S) {
                Ok(t) => info!("watchdog armed, timeout {} s", t),
                Err(e) => warn!(
                    "watchdog: setting the timeout failed ({}); petting every {} s",
                    e,
                    PET_MS / 1000
                ),
            }
        }
        Watchdog { fd, next_pet_ms: 0 }
    }

    /// When the next pet is due (a wake-up deadline of the loop).
    pub fn next_pet_ms(&self) -> u64 {
        self.next_pet_ms
    }

    /// Pets the watchdog if a pet is due at `now`.
    pub fn pet(&mut self, now: u64) {
        if now < self.next_pet_ms {
            return;
        }
        self.next_pet_ms = now + PET_MS;
        if let Some(fd) = &self.fd {
            // Any byte but 'V' is a keepalive; 'V' would arm a magic close.
            let _ = rustix::io::write(fd, b"\0");
        }
    }
}
