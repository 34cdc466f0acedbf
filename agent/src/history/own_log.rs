//! The agent's own lines (its stdout and stderr) into the running boot's
//! record, as service `matic-agent`, stamped like the other services'
//! (docs/history.md, "Service lines").
//!
//! Init reads the agent's pipe itself (it is never handed over: the agent
//! would read its own output) and writes it raw to
//! `/var/log/matic/matic-agent.log`. So that the agent's lines are in the
//! record too, [`capture`] puts a pipe of the agent's own in front of
//! init's: descriptors 1 and 2 become its write end, and a thread reads it,
//! copies every byte on to init's pipe unchanged (init's raw file stays
//! whole, also when there is no history), stamps each line and offers it
//! to [`service_logs`](super::service_logs)' reader through a bounded
//! queue. The reader writes them with the others' lines, under the same
//! fsync policy.
//!
//! Must never: block the agent (the queue is offered, never waited on: a
//! full queue drops lines from the record, counted, never from init's raw
//! file), lose a panic message (the panic hook writes to init's pipe
//! directly: with `panic = "abort"` the thread would not get to it), or
//! write anything of its own to descriptor 2 (it reads that pipe).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use matic_history::stamp::At;

use super::service_logs::{Splitter, now};

/// The service name the agent's lines are recorded under.
pub const NAME: &str = "matic-agent";
/// Lines waiting for the record: what the start-up writes before the
/// history opens fits (the agent prints a few dozen lines by then).
const QUEUE: usize = 1024;
/// How often the thread looks at its stop flag while the pipe is quiet.
const POLL_MS: i32 = 100;

/// One stamped line for the record.
pub type Line = (At, Vec<u8>);

/// The capture, shared by `main` and the serving code: whichever ends
/// first finishes it ([`finish_shared`]).
pub type Shared = std::sync::Arc<std::sync::Mutex<Option<OwnLog>>>;

/// Finishes the shared capture if nobody has yet ([`OwnLog::finish`]),
/// and says how many lines the record's queue dropped (to init only).
pub fn finish_shared(own: &Shared) {
    let taken = own.lock().ok().and_then(|mut o| o.take());
    if let Some(own) = taken {
        let dropped = own.dropped();
        own.finish();
        if dropped > 0 {
            eprintln!(
                "matic-agent: {dropped} of its own lines did not fit the record's queue (init's log has them)"
            );
        }
    }
}

/// The capture: the pipe, then the thread and what it offers.
pub struct OwnLog {
    upstream: Arc<OwnedFd>,
    /// The pipe's read end and the queue's sender until [`OwnLog::start`].
    unstarted: Option<(OwnedFd, SyncSender<Line>)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    lines: Option<Receiver<Line>>,
    dropped: Arc<AtomicU64>,
}

/// Puts a pipe between the agent's descriptors 1 and 2 and init's pipe
/// (see the module doc), and a panic hook that writes straight to init's
/// pipe. What is printed waits in the pipe (64 KiB) until
/// [`OwnLog::start`]: call this first in `main`, `start` once the
/// capabilities are dropped (they are per thread; no thread may keep them).
pub fn capture() -> io::Result<OwnLog> {
    let upstream = Arc::new(rustix::io::fcntl_dupfd_cloexec(io::stderr().as_fd(), 3)?);
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (tx, rx) = sync_channel(QUEUE);
    rustix::stdio::dup2_stdout(&write)?;
    rustix::stdio::dup2_stderr(&write)?;
    drop(write);
    let hook_fd = upstream.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The process aborts after the hook: the message must not wait in
        // our pipe for a thread that will not run again.
        let _ = rustix::stdio::dup2_stderr(&*hook_fd);
        default(info);
    }));
    Ok(OwnLog {
        upstream,
        unstarted: Some((read, tx)),
        stop: Arc::new(AtomicBool::new(false)),
        thread: None,
        lines: Some(rx),
        dropped: Arc::new(AtomicU64::new(0)),
    })
}

impl OwnLog {
    /// Starts the thread that empties the pipe. On failure descriptors 1
    /// and 2 go back to init's pipe (what waited in ours is lost with the
    /// thread that could not start; the error says why).
    pub fn start(mut self) -> Result<OwnLog, io::Error> {
        let Some((read, tx)) = self.unstarted.take() else {
            return Ok(self);
        };
        let (upstream, stop, dropped) = (
            self.upstream.clone(),
            self.stop.clone(),
            self.dropped.clone(),
        );
        match std::thread::Builder::new()
            .name("matic-own-log".into())
            .spawn(move || forward(&read, &upstream, &tx, &stop, &dropped))
        {
            Ok(t) => {
                self.thread = Some(t);
                Ok(self)
            }
            Err(e) => {
                // The pipe's read end is gone with the closure: restore
                // first, so nothing else is written into it.
                self.finish();
                Err(e)
            }
        }
    }

    /// The stamped lines, for the service log reader (once; `None` after).
    /// Dropping the receiver unread is fine: the lines still reach init.
    pub fn take_lines(&mut self) -> Option<Receiver<Line>> {
        self.lines.take()
    }

    /// Lines the record lost because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Descriptors 1 and 2 back to init's pipe, and the thread drained and
    /// ended: what was printed before this reaches both init and the
    /// queue. Call before the service log reader's last drain.
    pub fn finish(mut self) {
        let _ = rustix::stdio::dup2_stdout(&*self.upstream);
        let _ = rustix::stdio::dup2_stderr(&*self.upstream);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        } else if let Some((read, tx)) = self.unstarted.take() {
            // Never started: what waits in the pipe still goes on to init.
            forward(&read, &self.upstream, &tx, &self.stop, &self.dropped);
        }
    }
}

/// The thread: `read` → `upstream` byte for byte, and each line stamped
/// into `tx`. Ends when every write end is closed, or on `stop` once the
/// pipe is drained.
fn forward(
    read: &OwnedFd,
    upstream: &OwnedFd,
    tx: &SyncSender<Line>,
    stop: &AtomicBool,
    dropped: &AtomicU64,
) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut buf = vec![0u8; 16 << 10];
    let mut lines = Splitter::default();
    let mut offer = |line: &[u8]| -> Result<(), ()> {
        match tx.try_send((now(), line.to_vec())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut fds = [PollFd::new(read, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(if stopping { 0 } else { POLL_MS }) * 1_000_000,
        };
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) if stopping => break,
            Ok(0) | Err(_) => continue,
            Ok(_) => {}
        }
        match rustix::io::read(read, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                write_all(upstream, &buf[..n]);
                let _ = lines.push(&buf[..n], &mut offer);
            }
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
            Err(_) => break,
        }
    }
    let _ = lines.finish(&mut offer);
}

/// Writes all of `bytes` to init's pipe; on an error they are gone (there
/// is nowhere else to say so).
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What goes into the pipe comes out upstream byte for byte, and as
    /// stamped lines in the queue (the partial last one at the end); a full
    /// queue drops lines from the record only, and counts them.
    #[test]
    fn forwards_every_byte_and_offers_lines() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let (up_read, up_write) = rustix::pipe::pipe().unwrap();
        let (tx, rx) = sync_channel(2);
        let stop = AtomicBool::new(false);
        let dropped = AtomicU64::new(0);
        let text = b"one\ntwo\nthree\nfour\npartial";
        std::thread::scope(|s| {
            let t = s.spawn(|| forward(&read, &up_write, &tx, &stop, &dropped));
            rustix::io::write(&write, text).unwrap();
            drop(write);
            t.join().unwrap();
        });
        drop(up_write);
        let mut upstream = Vec::new();
        std::fs::File::from(up_read)
            .read_to_end(&mut upstream)
            .unwrap();
        assert_eq!(upstream, text);
        let got: Vec<Vec<u8>> = rx.try_iter().map(|(_, l)| l).collect();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
    }

    /// `stop` ends a thread whose pipe still has a writer, after draining.
    #[test]
    fn stop_drains_and_ends() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let (_up_read, up_write) = rustix::pipe::pipe().unwrap();
        let (tx, rx) = sync_channel(8);
        let stop = AtomicBool::new(false);
        let dropped = AtomicU64::new(0);
        rustix::io::write(&write, b"last words\n").unwrap();
        stop.store(true, Ordering::Relaxed);
        forward(&read, &up_write, &tx, &stop, &dropped);
        let got: Vec<Vec<u8>> = rx.try_iter().map(|(_, l)| l).collect();
        assert_eq!(got, [b"last words".to_vec()]);
        drop(write);
    }
}
