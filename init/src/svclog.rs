//! Stage 2's service logs: one pipe per service, shared by all its runs,
//! that init copies (`splice`) into `/var/log/matic/<name>.log`, rotated to
//! `<name>.log.1` when it reaches the size limit (`matic.log_limit=`).
//!
//! While `matic-agent` runs, the other services' pipes are its to read
//! (stage2 neither polls nor drains them; their files are closed, and
//! opened again at the first drain after it is gone).
//!
//! Output is dropped, never blocked on, when there is no file: this module
//! must never make init (or a service writing its pipe) wait on a disk.

use crate::util::{self, open};
use crate::{error, warn};
use matic_init::fmtbuf::Buf;
use matic_init::show;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};

const LOG_DIR: &str = "/var/log/matic";

/// One service's output: a pipe shared by all its runs, copied by init into
/// `<name>.log`, which is rotated to `<name>.log.1` at the size limit.
pub struct ServiceLog {
    pipe: Option<(OwnedFd, OwnedFd)>,
    file: Option<OwnedFd>,
    size: u64,
    write_failed: bool,
}

impl ServiceLog {
    pub const fn new() -> ServiceLog {
        ServiceLog {
            pipe: None,
            file: None,
            size: 0,
            write_failed: false,
        }
    }

    /// The pipe's read end, for init's `poll`.
    pub fn reader(&self) -> Option<&OwnedFd> {
        self.pipe.as_ref().map(|(r, _)| r)
    }

    /// The pipe's write end, the service's stdout and stderr.
    pub fn writer(&self) -> Option<&OwnedFd> {
        self.pipe.as_ref().map(|(_, w)| w)
    }

    /// Closes the log file (at shutdown, before `/var` is released).
    pub fn close_file(&mut self) {
        self.file = None;
    }

    /// Makes sure service `name` has its output pipe and an open log file,
    /// rotating the file first if it reached `limit`.
    pub fn prepare(&mut self, name: &str, limit: u64) {
        if self.pipe.is_none() {
            match pipe_with(PipeFlags::CLOEXEC) {
                Ok((r, w)) => {
                    let _ = rustix::io::ioctl_fionbio(&r, true);
                    self.pipe = Some((r, w));
                }
                Err(e) => error!("{}: pipe: {}: output goes to /dev/null", name, e),
            }
        }
        if self.file.is_some() && self.size < limit {
            return;
        }
        if self.file.is_some() {
            self.rotate(name);
            return;
        }
        let _ = util::mkdir(c"/var/log", 0o755);
        let _ = util::mkdir(c"/var/log/matic", 0o750);
        self.open_file(name);
        if self.file.is_some() && self.size >= limit {
            self.rotate(name);
        }
    }

    /// Copies whatever service `name` wrote into its log file, rotating at
    /// `limit`.
    pub fn drain(&mut self, name: &str, limit: u64) {
        // Closed while the agent read the pipe (docs/init.md, "Logs").
        if self.file.is_none() && self.pipe.is_some() && !self.write_failed {
            self.open_file(name);
        }
        while self.drain_one(limit) {
            self.rotate(name);
        }
    }

    /// Copies pending output; returns true when the log file reached
    /// `limit` and must be rotated before copying more.
    fn drain_one(&mut self, limit: u64) -> bool {
        let Some((r, _)) = &self.pipe else {
            return false;
        };
        loop {
            if let Some(f) = &self.file {
                let room = limit.saturating_sub(self.size).clamp(1, 1 << 16) as usize;
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
                        self.size += n as u64;
                        if self.size >= limit {
                            return true;
                        }
                    }
                    Err(Errno::INTR) => {}
                    Err(e) => {
                        if !self.write_failed {
                            error!("writing a service log failed ({}): dropping its output", e);
                            self.write_failed = true;
                        }
                        self.file = None;
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

    fn open_file(&mut self, name: &str) {
        let mut path = log_path(name, false);
        let Some(p) = path.as_cstr() else { return };
        match open(
            p,
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o640),
        ) {
            Ok(fd) => {
                self.size = rustix::fs::seek(&fd, SeekFrom::End(0)).unwrap_or(0);
                self.file = Some(fd);
            }
            Err(e) => {
                if !self.write_failed {
                    warn!(
                        "{}: cannot open {}/{}.log ({}): dropping output",
                        name, LOG_DIR, name, e
                    );
                    self.write_failed = true;
                }
            }
        }
    }

    /// `<name>.log` becomes `<name>.log.1` (replacing it) and a new, empty
    /// `<name>.log` is started.
    fn rotate(&mut self, name: &str) {
        let mut from = log_path(name, false);
        let mut to = log_path(name, true);
        if let (Some(f), Some(t)) = (from.as_cstr(), to.as_cstr()) {
            if let Err(e) = rustix::fs::rename(f, t) {
                warn!("{}: rotating its log: {}", name, e);
            }
            self.file = None;
            if let Ok(fd) = open(
                f,
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o640),
            ) {
                self.file = Some(fd);
            }
            self.size = 0;
        }
    }
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
