//! The services' log lines, handed over by init (docs/init.md, "Logs";
//! `matic_contract::handoff`): init gives the agent the read ends of the
//! other services' log pipes at descriptors 3 on; a thread of this module
//! reads them, splits lines ([`Splitter`]), stamps each with
//! CLOCK_BOOTTIME and the wall clock (`matic_history::stamp`) and appends
//! it to the running boot's `services/<name>.log` through the history
//! writer (fsynced at most a second later: `flush_due`). With no history
//! this boot, the stamped lines go to `/var/log/matic/<name>.log` instead,
//! rotated as init would: a handed pipe must always be read.
//!
//! What init copied raw while the agent was not reading is moved into the
//! history at start by [`super::raw_lines`], through the same line cut.
//!
//! Owns: taking the handed descriptors, the line cut ([`MAX_LINE`]), the
//! stamp's clocks ([`now`]) and the reading thread. Must never: read the agent's own stdout (a full pipe
//! would deadlock it: it is not handed), hold more than one read buffer
//! and one partial line per service (a flooding service costs disk within
//! the history's bounds, never memory), block the async runtime (its own
//! thread), or stop reading a pipe because a write failed (logged once,
//! then the lines are dropped: the service must never block).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use matic_contract::handoff::{FIRST_FD, HANDED};
use matic_history::stamp::{self, At};

use super::facts::{PLAUSIBLE_WALL_MS, boottime_us};
use super::own_log;
use super::recorder::Recorder;

/// The longest line kept whole; the rest of a longer line continues as
/// another line of at most as many bytes (a service writing without
/// newlines costs one such buffer, not its whole output).
pub const MAX_LINE: usize = 4096;
/// Bytes read from a pipe at once.
const READ: usize = 64 << 10;
/// Reads of one pipe per round, so a flooding service cannot starve the
/// others or the once-a-second flush.
const READS_PER_ROUND: usize = 16;
/// How long the reader sleeps in `poll` (and so how often it flushes).
const POLL_MS: i64 = 200;
/// A raw `/var/log/matic/<name>.log` the agent writes (no history) is
/// rotated to `<name>.log.1` at this size, as init does by default.
const FILE_LIMIT: u64 = 4 << 20;

/// Splits a byte stream into lines: at each `\n` (not kept), and after
/// [`MAX_LINE`] bytes without one. A byte-wise state machine, so any
/// chunking of the same bytes gives the same lines.
#[derive(Debug)]
pub struct Splitter {
    pending: Vec<u8>,
    max: usize,
}

impl Default for Splitter {
    fn default() -> Splitter {
        Splitter::new(MAX_LINE)
    }
}

impl Splitter {
    /// Lines cut after `max` bytes (at least 1).
    pub fn new(max: usize) -> Splitter {
        Splitter {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feeds `bytes`; `emit` gets every line completed by them.
    pub fn push<E>(
        &mut self,
        mut bytes: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !bytes.is_empty() {
            let room = self.max - self.pending.len();
            let newline = bytes.iter().take(room + 1).position(|&b| b == b'\n');
            match newline {
                Some(i) => {
                    self.pending.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    let line = std::mem::take(&mut self.pending);
                    emit(&line)?;
                    self.pending = line;
                    self.pending.clear();
                }
                None if bytes.len() <= room => {
                    self.pending.extend_from_slice(bytes);
                    return Ok(());
                }
                None => {
                    // A full line's worth and more, no newline in reach:
                    // cut it here.
                    self.pending.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    let line = std::mem::take(&mut self.pending);
                    emit(&line)?;
                    self.pending = line;
                    self.pending.clear();
                }
            }
        }
        Ok(())
    }

    /// The partial last line, if any (at the end of the stream).
    pub fn finish<E>(&mut self, mut emit: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        emit(&line)
    }

    /// Bytes held for the partial line (at most [`MAX_LINE`]).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The clocks now, as a line is stamped: the wall clock only when it is
/// plausible (`facts::PLAUSIBLE_WALL_MS`).
pub fn now() -> At {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_micros()).ok())
        .filter(|us| *us >= PLAUSIBLE_WALL_MS * 1000);
    At {
        boot_us: boottime_us(),
        wall_unix_us: wall,
    }
}

/// The pipes init handed this process (descriptor [`FIRST_FD`] + k for
/// `HANDED[k]`): each taken when it is an open FIFO, made close-on-exec
/// and non-blocking, and given a 1 MiB buffer (what the agent's start-up may leave unread).
/// Call first thing in `main`, before anything opens a file, so the
/// numbers are still init's.
pub fn take_handed() -> Vec<(&'static str, OwnedFd)> {
    let mut taken = Vec::new();
    for (k, name) in HANDED.iter().enumerate() {
        let Some(fd) = crate::sys::take_inherited_fifo(FIRST_FD + k as i32) else {
            continue;
        };
        let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
        // init's end is non-blocking already (the flag is the pipe's,
        // shared); anything else handing a pipe gets the same.
        let _ = rustix::io::ioctl_fionbio(&fd, true);
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, 1 << 20);
        taken.push((*name, fd));
    }
    taken
}

/// Where the stamped lines go.
pub enum Sink {
    /// The running boot's record.
    Record(Recorder),
    /// No history this boot: `<dir>/<name>.log`, rotated at 4 MiB.
    Files(PathBuf),
}

/// The reading thread; [`Reader::stop`] drains what is left and ends it.
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reader {
    /// Starts reading `pipes` into `sink`, and the agent's own stamped
    /// lines from `own` ([`super::own_log`]).
    pub fn spawn(
        pipes: Vec<(&'static str, OwnedFd)>,
        sink: Sink,
        own: Option<Receiver<own_log::Line>>,
    ) -> std::io::Result<Reader> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("matic-svc-logs".into())
            .spawn(move || run(pipes, sink, own, &stopping))?;
        Ok(Reader { stop, thread })
    }

    /// Reads what the pipes hold now, writes the partial last lines and
    /// everything buffered, and ends the thread (the agent is stopping;
    /// init reads the pipes again once it is gone).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

struct Pipe {
    name: &'static str,
    fd: Option<OwnedFd>,
    lines: Splitter,
}

fn run(
    pipes: Vec<(&'static str, OwnedFd)>,
    mut sink: Sink,
    own: Option<Receiver<own_log::Line>>,
    stop: &AtomicBool,
) {
    let mut pipes: Vec<Pipe> = pipes
        .into_iter()
        .map(|(name, fd)| Pipe {
            name,
            fd: Some(fd),
            lines: Splitter::default(),
        })
        .collect();
    let mut out = Out::new();
    let mut buf = vec![0u8; READ];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            wait(&pipes);
        }
        for p in &mut pipes {
            for _ in 0..READS_PER_ROUND {
                let Some(fd) = &p.fd else { break };
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) => {
                        // Every writer gone (init keeps one: only in tests).
                        p.fd = None;
                        let name = p.name;
                        let _ = p.lines.finish(|l| out.line(&mut sink, name, now(), l));
                    }
                    Ok(n) => {
                        let (name, at) = (p.name, now());
                        let _ = p
                            .lines
                            .push(&buf[..n], |l| out.line(&mut sink, name, at, l));
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => break, // EAGAIN: drained for now.
                }
            }
        }
        // The agent's own lines, stamped when they were written.
        for (at, line) in own.iter().flat_map(|rx| rx.try_iter()) {
            let _ = out.line(&mut sink, own_log::NAME, at, &line);
        }
        if stopping {
            for p in &mut pipes {
                let name = p.name;
                let _ = p.lines.finish(|l| out.line(&mut sink, name, now(), l));
            }
            out.sync(&mut sink);
            return;
        }
        out.flush_due(&mut sink);
    }
}

/// Sleeps until a pipe has bytes, or [`POLL_MS`].
fn wait(pipes: &[Pipe]) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds: Vec<PollFd<'_>> = pipes
        .iter()
        .filter_map(|p| p.fd.as_ref())
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    if fds.is_empty() {
        std::thread::sleep(Duration::from_millis(POLL_MS as u64));
        return;
    }
    let ts = Timespec {
        tv_sec: 0,
        tv_nsec: POLL_MS * 1_000_000,
    };
    let _ = poll(&mut fds, Some(&ts));
}

/// The writing side: the sink's files and the one-time error report.
struct Out {
    files: std::collections::BTreeMap<&'static str, (File, u64)>,
    reported: bool,
}

impl Out {
    fn new() -> Out {
        Out {
            files: Default::default(),
            reported: false,
        }
    }

    fn report(&mut self, what: &str) {
        if !self.reported {
            eprintln!("matic-agent: service logs: {what}; dropping lines until it works again");
            self.reported = true;
        }
    }

    /// One stamped line into the sink. Errors are reported here (once),
    /// never returned: the reader must go on reading.
    fn line(&mut self, sink: &mut Sink, name: &'static str, at: At, text: &[u8]) -> Result<(), ()> {
        let result = match sink {
            Sink::Record(rec) => match rec.with_writer(|w| w.service_line(name, at, text)) {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err("the boot history is closed".into()),
            },
            Sink::Files(dir) => self.file_line(dir, name, at, text),
        };
        match result {
            Ok(()) => self.reported = false,
            Err(e) => self.report(&e),
        }
        Ok(())
    }

    fn file_line(
        &mut self,
        dir: &Path,
        name: &'static str,
        at: At,
        text: &[u8],
    ) -> Result<(), String> {
        let path = dir.join(format!("{name}.log"));
        if self
            .files
            .get(name)
            .is_none_or(|(_, len)| *len >= FILE_LIMIT)
        {
            if self.files.remove(name).is_some() {
                let _ = std::fs::rename(&path, dir.join(format!("{name}.log.1")));
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.files.insert(name, (file, len));
        }
        let (file, len) = self.files.get_mut(name).expect("inserted above");
        let mut line = stamp::prefix(at).into_bytes();
        line.extend_from_slice(text);
        line.push(b'\n');
        file.write_all(&line)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        *len += line.len() as u64;
        Ok(())
    }

    /// The history's once-a-second write and fsync.
    fn flush_due(&mut self, sink: &mut Sink) {
        if let Sink::Record(rec) = sink
            && let Some(Err(e)) = rec.with_writer(|w| w.flush_due(boottime_us()))
        {
            self.report(&e.to_string());
        }
    }

    /// Everything buffered written out, now.
    fn sync(&mut self, sink: &mut Sink) {
        if let Sink::Record(rec) = sink
            && let Some(Err(e)) = rec.with_writer(|w| w.sync())
        {
            self.report(&e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        split_at(MAX_LINE, chunks)
    }

    fn split_at(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut s = Splitter::new(max);
        let mut got = Vec::new();
        for c in chunks {
            s.push(c, |l| {
                got.push(l.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        let pending = s.pending();
        s.finish(|l| {
            got.push(l.to_vec());
            Ok::<(), ()>(())
        })
        .unwrap();
        (got, pending)
    }

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_limit() {
        let (got, pending) = split(&[b"a\nbc", b"d\n\nlast"]);
        assert_eq!(got, [&b"a"[..], b"bcd", b"", b"last"]);
        assert_eq!(pending, 4, "the partial last line is held until the end");
        // Exactly MAX_LINE then a newline: one line, not an extra empty one.
        let exact = [vec![b'x'; MAX_LINE], b"\n".to_vec()].concat();
        assert_eq!(split(&[&exact]).0, [vec![b'x'; MAX_LINE]]);
        // One byte more: the rest continues as another line.
        let over = [vec![b'y'; MAX_LINE + 1], b"\n".to_vec()].concat();
        assert_eq!(split(&[&over]).0, [vec![b'y'; MAX_LINE], vec![b'y']]);
        // A flood without newlines holds at most one line's worth.
        let mut s = Splitter::default();
        let mut lines = 0;
        for _ in 0..100 {
            s.push(&[b'z'; 10_000], |l| {
                assert_eq!(l.len(), MAX_LINE);
                lines += 1;
                Ok::<(), ()>(())
            })
            .unwrap();
            assert!(s.pending() <= MAX_LINE);
        }
        assert_eq!(lines, 1_000_000 / MAX_LINE);
    }

    proptest! {
        /// With short lines (`max` 1 to 8) so the cut is hit often.
        #[test]
        fn any_chunking_gives_the_same_lines(
            max in 1usize..=8,
            bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..64),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let whole = split_at(max, &[&bytes]).0;
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for a in at {
                chunks.push(&bytes[from..a]);
                from = a;
            }
            chunks.push(&bytes[from..]);
            prop_assert_eq!(split_at(max, &chunks).0, whole.clone());
            // Nothing lost: every byte but the newlines is in a line.
            for l in &whole {
                prop_assert!(l.len() <= max && !l.contains(&b'\n'));
            }
            let kept: usize = whole.iter().map(Vec::len).sum();
            prop_assert_eq!(kept, bytes.iter().filter(|&&b| b != b'\n').count());
        }
    }
}
