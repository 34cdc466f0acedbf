//! Stage 2's control FIFO, `/run/matic/control`: created (a stale
//! non-FIFO there is replaced) and held open for reading and writing, so it
//! never reports end-of-file between writers; its bytes framed into
//! commands by `matic_init::control`, whose dropped lines are logged here.
//!
//! It hands commands to stage 2 and must never act on one itself.

use crate::util::{now_ms, open};
use crate::{error, warn};
use matic_contract::paths::CONTROL_PATH as CONTROL;
use matic_init::control::{Command, LineError, LineReader};
use matic_init::fmtbuf::Printable;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// The FIFO's read end and a write end init holds, and the partial line.
pub struct ControlFifo {
    fds: Option<(OwnedFd, OwnedFd)>,
    lines: LineReader,
}

impl ControlFifo {
    /// Creates and opens the FIFO; without one (logged), init runs on with
    /// no control channel.
    pub fn open() -> ControlFifo {
        ControlFifo {
            fds: open_fifo(),
            lines: LineReader::new(),
        }
    }

    /// The read end, for init's `poll`.
    pub fn reader(&self) -> Option<&OwnedFd> {
        self.fds.as_ref().map(|(r, _)| r)
    }

    /// Reads what is there and calls `on` with each complete command and the
    /// time it arrived; malformed, over-long and stale lines are logged and
    /// dropped.
    pub fn read(&mut self, mut on: impl FnMut(Command<'_>, u64)) {
        let Some((r, _)) = &self.fds else { return };
        let mut buf = [0u8; 256];
        loop {
            let n = match rustix::io::read(r, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = now_ms();
            self.lines.push(&buf[..n], now, |line| match line {
                Ok(command) => on(command, now),
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
