//! [`BootWriter`]: appends the current boot's events, kernel log and
//! service logs, keeps each within its bound and the store within its cap.
//!
//! Durability: an event is written and fsynced at once (events are rare
//! and the ending must survive a power cut). Log lines are buffered and
//! written and fsynced by [`BootWriter::flush_due`] at most once a second,
//! so a caller that calls it every second loses at most the last second of
//! logs to a power cut. A file is created with `O_APPEND` and its directory
//! fsynced; a file that is replaced (a log losing its oldest half) is
//! written beside it, fsynced and renamed over it. Dropping a writer
//! without [`BootWriter::close`] loses its unflushed lines, as a crash would.
//!
//! Must never: delete its own boot, write a partial record after a failed
//! write (it truncates back), or let one service's name escape `services/`.

use crate::error::{Error, Result};
use crate::journal::{self, Event};
use crate::stamp::{self, At};
use crate::store::{self, BLOCK, Store, charge, sync_dir};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Log bytes buffered before they are handed to the kernel without fsync.
const BUFFER: usize = 64 << 10;
/// The longest service name (it becomes a file name).
pub const MAX_SERVICE_NAME: usize = 64;
/// Microseconds between two fsyncs of the logs.
const FLUSH_EVERY_US: u64 = 1_000_000;

/// The writer of the current boot. See the module doc for durability.
#[derive(Debug)]
pub struct BootWriter {
    store: Store,
    number: u64,
    dir: PathBuf,
    events: File,
    events_path: PathBuf,
    events_len: u64,
    kmsg: Log,
    services: BTreeMap<String, Log>,
    last_flush_us: Option<u64>,
    /// Bytes appended since the store was last measured.
    since_measure: u64,
    /// The rest of the store at the last measurement (`None`: not yet).
    others: Option<u64>,
}

impl BootWriter {
    /// A writer for the new, empty boot directory `dir`.
    pub(crate) fn create(store: Store, number: u64, dir: PathBuf) -> Result<BootWriter> {
        let events_path = dir.join(store::EVENTS);
        let events = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&events_path)
            .map_err(Error::io("create", &events_path))?;
        sync_dir(&dir)?;
        Ok(Self::with(store, number, dir, events, events_path, 0))
    }

    /// A writer continuing boot `number` (the agent restarted within it).
    pub(crate) fn reopen(store: Store, number: u64, dir: PathBuf) -> Result<BootWriter> {
        let events_path = dir.join(store::EVENTS);
        let (events, events_len) = open_append(&events_path)?;
        let mut writer = Self::with(store, number, dir, events, events_path, events_len);
        writer.kmsg.open_existing()?;
        Ok(writer)
    }

    fn with(
        store: Store,
        number: u64,
        dir: PathBuf,
        events: File,
        events_path: PathBuf,
        events_len: u64,
    ) -> BootWriter {
        BootWriter {
            kmsg: Log::new(dir.join(store::KMSG)),
            store,
            number,
            dir,
            events,
            events_path,
            events_len,
            services: BTreeMap::new(),
            last_flush_us: None,
            since_measure: 0,
            others: None,
        }
    }

    /// This boot's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// This boot's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an event and fsyncs it before returning. An event that would
    /// take `events.jsonl` past its bound is refused ([`Error::JournalFull`]).
    pub fn event(&mut self, event: &Event) -> Result<()> {
        let line = journal::encode(event);
        let len = line.len() as u64;
        let bound = self.store.limits().events;
        if self.events_len + len > bound {
            return Err(Error::JournalFull {
                path: self.events_path.clone(),
                bound,
            });
        }
        let path = &self.events_path;
        if let Err(e) = self.events.write_all(&line) {
            // Never leave half a record for the next one to be glued to.
            let _ = self.events.set_len(self.events_len);
            return Err(Error::io("write", path)(e));
        }
        self.events.sync_data().map_err(Error::io("fsync", path))?;
        self.events_len += len;
        self.account(len)
    }

    /// Appends kernel log lines (`line` is split at newlines; one trailing
    /// newline is dropped). Buffered: see [`BootWriter::flush_due`].
    pub fn kmsg_line(&mut self, line: impl AsRef<[u8]>) -> Result<()> {
        let mut added = 0;
        for piece in pieces(line.as_ref()) {
            added += self.kmsg.push(&[piece, b"\n"])?;
        }
        let bound = self.store.limits().kmsg;
        if self.kmsg.len() > bound {
            self.kmsg.trim(bound / 2)?;
        }
        self.account(added)
    }

    /// Appends lines of service `name`, each stamped with `at` (`line` is
    /// split at newlines; one trailing newline is dropped). Buffered.
    pub fn service_line(&mut self, name: &str, at: At, line: impl AsRef<[u8]>) -> Result<()> {
        if !valid_service_name(name) {
            return Err(Error::BadServiceName {
                name: name.to_owned(),
            });
        }
        if !self.services.contains_key(name) {
            let dir = self.dir.join(store::SERVICES);
            if !dir.is_dir() {
                fs::create_dir(&dir).map_err(Error::io("create", &dir))?;
                sync_dir(&self.dir)?;
            }
            let mut log = Log::new(dir.join(format!("{name}.log")));
            log.open_existing()?;
            self.services.insert(name.to_owned(), log);
        }
        let prefix = stamp::prefix(at);
        let log = self.services.get_mut(name).expect("inserted above");
        let mut added = 0;
        for piece in pieces(line.as_ref()) {
            added += log.push(&[prefix.as_bytes(), piece, b"\n"])?;
        }
        self.bound_services()?;
        self.account(added)
    }

    /// Writes and fsyncs the buffered log lines if a second has passed since
    /// the last time (`now_us`: CLOCK_BOOTTIME in µs). Returns whether it
    /// did. Call it at least once a second while lines come in.
    pub fn flush_due(&mut self, now_us: u64) -> Result<bool> {
        let dirty = self.kmsg.dirty() || self.services.values().any(Log::dirty);
        let due = self
            .last_flush_us
            .is_none_or(|last| now_us.saturating_sub(last) >= FLUSH_EVERY_US);
        if !(dirty && due) {
            return Ok(false);
        }
        self.sync_logs()?;
        self.last_flush_us = Some(now_us);
        Ok(true)
    }

    /// Writes and fsyncs the buffered log lines now (lines moved in at
    /// once, or a reader that stops), whatever [`BootWriter::flush_due`]'s
    /// clock says; it does not count as that clock's flush.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_logs()
    }

    /// Writes and fsyncs everything buffered and ends the writer.
    pub fn close(mut self) -> Result<()> {
        self.sync_logs()
    }

    fn sync_logs(&mut self) -> Result<()> {
        self.kmsg.sync()?;
        for log in self.services.values_mut() {
            log.sync()?;
        }
        Ok(())
    }

    /// While the services' logs together pass their bound, the largest
    /// loses its oldest half (a chatty service pays, quiet ones keep theirs).
    fn bound_services(&mut self) -> Result<()> {
        let bound = self.store.limits().services;
        while self.services.values().map(|l| charge(l.len())).sum::<u64>() > bound {
            let largest = self
                .services
                .values_mut()
                .max_by_key(|l| l.len())
                .expect("over a bound, so not empty");
            let keep = largest.len() / 2;
            largest.trim(keep)?;
        }
        Ok(())
    }

    /// The current boot's size by the store's count, buffered bytes included.
    fn own_size(&self) -> u64 {
        let services_dir = if self.services.is_empty() { 0 } else { BLOCK };
        BLOCK
            + charge(self.events_len)
            + charge(self.kmsg.len())
            + services_dir
            + self.services.values().map(|l| charge(l.len())).sum::<u64>()
    }

    /// Counts appended bytes; every step, or as soon as the store might
    /// pass its cap, measures it and deletes the oldest boots.
    fn account(&mut self, added: u64) -> Result<()> {
        self.since_measure += added;
        let limits = self.store.limits();
        let over = self
            .others
            .is_none_or(|others| others + self.own_size() > limits.cap);
        if over || self.since_measure >= limits.step {
            let done = self.store.enforce_current(self.number, self.own_size())?;
            self.others = Some(done.total - done.current);
            self.since_measure = 0;
        }
        Ok(())
    }
}

/// A service name is a file name: 1 to 64 of `[A-Za-z0-9._-]`, no leading dot.
pub fn valid_service_name(name: &str) -> bool {
    (1..=MAX_SERVICE_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The lines of `bytes`: split at `\n`, one trailing newline dropped.
fn pieces(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .split(|&b| b == b'\n')
}

/// Opens `path` for appending (creating it), returning its length. A file
/// whose last line has no newline (cut by a crash) gets one first, so the
/// next record does not merge into it.
fn open_append(path: &Path) -> Result<(File, u64)> {
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .read(true)
        .create(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    if !existed {
        sync_dir(path.parent().expect("a file in a boot directory"))?;
    }
    let mut len = file.metadata().map_err(Error::io("stat", path))?.len();
    if len > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::Start(len - 1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(Error::io("read", path))?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(Error::io("write", path))?;
            len += 1;
        }
    }
    Ok((file, len))
}

/// One buffered log file.
#[derive(Debug)]
struct Log {
    path: PathBuf,
    file: Option<File>,
    on_disk: u64,
    buf: Vec<u8>,
    unsynced: bool,
}

impl Log {
    fn new(path: PathBuf) -> Log {
        Log {
            path,
            file: None,
            on_disk: 0,
            buf: Vec::new(),
            unsynced: false,
        }
    }

    /// Picks up the file if it exists already (a reopened boot).
    fn open_existing(&mut self) -> Result<()> {
        if self.path.exists() {
            let (file, len) = open_append(&self.path)?;
            (self.file, self.on_disk) = (Some(file), len);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.on_disk + self.buf.len() as u64
    }

    fn dirty(&self) -> bool {
        self.unsynced || !self.buf.is_empty()
    }

    /// Buffers the concatenation of `parts`; returns the bytes added.
    fn push(&mut self, parts: &[&[u8]]) -> Result<u64> {
        let before = self.buf.len();
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        let added = (self.buf.len() - before) as u64;
        if self.buf.len() >= BUFFER {
            self.write_out()?;
        }
        Ok(added)
    }

    /// Hands the buffer to the kernel (no fsync). On failure the buffer is
    /// kept and the file cut back to its last whole write.
    fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let (file, len) = open_append(&self.path)?;
            (self.file, self.on_disk) = (Some(file), len);
        }
        let file = self.file.as_mut().expect("opened above");
        if let Err(e) = file.write_all(&self.buf) {
            let _ = file.set_len(self.on_disk);
            return Err(Error::io("write", &self.path)(e));
        }
        self.on_disk += self.buf.len() as u64;
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        if let (true, Some(file)) = (self.unsynced, &self.file) {
            file.sync_data().map_err(Error::io("fsync", &self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Keeps only the newest whole lines that fit in `keep` bytes: writes
    /// them to `<file>.tmp`, fsyncs, renames it over the file.
    fn trim(&mut self, keep: u64) -> Result<()> {
        self.write_out()?;
        let path = &self.path;
        let mut tail = Vec::new();
        if let Some(file) = &mut self.file {
            let from = self.on_disk.saturating_sub(keep);
            file.seek(SeekFrom::Start(from))
                .and_then(|_| file.read_to_end(&mut tail))
                .map_err(Error::io("read", path))?;
            if from > 0 {
                // Start at a line boundary: drop the partial first line.
                let start = tail
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(tail.len(), |i| i + 1);
                tail.drain(..start);
            }
        }
        let tmp = path.with_extension("log.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = File::create(&tmp)?;
            out.write_all(&tail)?;
            out.sync_all()
        };
        write().map_err(Error::io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(Error::io("rename", &tmp))?;
        sync_dir(path.parent().expect("a file in a boot directory"))?;
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(path)
            .map_err(Error::io("open", path))?;
        (self.file, self.on_disk, self.unsynced) = (Some(file), tail.len() as u64, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for good in ["containerd", "kubelet", "a", "x.y_z-1", &"n".repeat(64)] {
            assert!(valid_service_name(good), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "../x",
            "a b",
            "a\n",
            &"n".repeat(65),
            "é",
        ] {
            assert!(!valid_service_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn pieces_split_lines() {
        let got: Vec<&[u8]> = pieces(b"a\nb\n").collect();
        assert_eq!(got, [b"a".as_slice(), b"b"]);
        let got: Vec<&[u8]> = pieces(b"").collect();
        assert_eq!(got, [b"".as_slice()]);
        let got: Vec<&[u8]> = pieces(b"a\n\n").collect();
        assert_eq!(got, [b"a".as_slice(), b""]);
    }
}
