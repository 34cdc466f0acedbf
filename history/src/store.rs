//! The history directory (on a node `/var/lib/matic/boots/`): one
//! subdirectory per boot, named by its number zero-padded to 10 digits,
//! and the retention rule that keeps the whole under a cap.
//!
//! ```text
//! 0000000041/events.jsonl        the boot's events (journal.rs)
//! 0000000041/kmsg.log            its kernel log
//! 0000000041/services/<name>.log its stamped service lines (stamp.rs)
//! 0000000041/pstore/             crash dumps that belong to it (pstore.rs)
//! 0000000041/watchdog-reset      present when the watchdog ended it
//! ```
//!
//! Size is counted as the disk would: every file's length rounded up to a
//! 4 KiB block, every directory one block (a boot loop of tiny boots must
//! not fill the disk with directories the cap does not see). Retention
//! deletes whole boots, oldest (lowest number) first, until the total is
//! one step (cap / 64) under the cap; the current boot is never deleted:
//! its own files are bounded instead ([`Limits`]), so it alone always fits.
//!
//! Owns: boot numbering, the layout, measuring and retention.
//!
//! Must never: delete the current boot, delete or count an entry whose
//! name is not exactly 10 digits (a stray `lost+found` or a newer tool's
//! file is not ours), or block anything but its caller (it is the
//! agent's, never PID 1's).

use crate::error::{Error, Result};
use crate::journal::{self, Event, Started};
use crate::writer::BootWriter;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The default cap on the whole history (issue 14).
pub const DEFAULT_CAP: u64 = 64 << 20;
/// The smallest cap accepted: the current boot's bounds (9/16 of the cap
/// plus a few blocks) must leave room for at least one step.
pub const MIN_CAP: u64 = 1 << 20;
/// The block every file is rounded up to, and every directory costs.
pub const BLOCK: u64 = 4096;

/// The file of a boot's events.
pub const EVENTS: &str = "events.jsonl";
/// The file of a boot's kernel log.
pub const KMSG: &str = "kmsg.log";
/// The directory of a boot's service logs.
pub const SERVICES: &str = "services";
/// The directory of a boot's crash dumps.
pub const PSTORE: &str = "pstore";
/// The marker of a boot the watchdog ended.
pub const WATCHDOG: &str = "watchdog-reset";

/// The bounds derived from the cap. The current boot's files together stay
/// under `events + kmsg + services` (9/16 of the cap) plus a few blocks,
/// so deleting every older boot always brings the total under the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole history.
    pub cap: u64,
    /// `events.jsonl` of the current boot (cap / 16: about 40,000 events at
    /// 64 MiB; a boot writes a few dozen). An event past it is refused.
    pub events: u64,
    /// `kmsg.log` of the current boot (cap / 4). Past it, its oldest half
    /// is dropped.
    pub kmsg: u64,
    /// All of the current boot's `services/*.log` together, counted in
    /// blocks (cap / 4). Past it, the largest file loses its oldest half.
    pub services: u64,
    /// Bytes appended between two measurements of the store (cap / 64),
    /// and the headroom retention leaves under the cap.
    pub step: u64,
}

impl Limits {
    /// The bounds for `cap`.
    pub fn new(cap: u64) -> Result<Limits> {
        if cap < MIN_CAP {
            return Err(Error::CapTooSmall { cap, min: MIN_CAP });
        }
        Ok(Limits {
            cap,
            events: cap / 16,
            kmsg: cap / 4,
            services: cap / 4,
            step: cap / 64,
        })
    }
}

/// A file's length as the store counts it.
pub fn charge(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// What one retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforced {
    /// The store's total after the pass.
    pub total: u64,
    /// The current boot's share of `total`.
    pub current: u64,
    /// The boots deleted, oldest first.
    pub deleted: Vec<u64>,
}

/// The history directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    limits: Limits,
}

impl Store {
    /// The store in `dir` (created if missing) with a total cap in bytes.
    pub fn open(dir: impl Into<PathBuf>, cap: u64) -> Result<Store> {
        let dir = dir.into();
        let limits = Limits::new(cap)?;
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        Ok(Store { dir, limits })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The directory of boot `number` (whether or not it exists).
    pub fn boot_dir(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:010}"))
    }

    /// The directory of an existing boot.
    pub(crate) fn existing_boot(&self, number: u64) -> Result<PathBuf> {
        let path = self.boot_dir(number);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(Error::NoSuchBoot { number, path })
        }
    }

    /// The numbers of the boots present, ascending. Entries whose name is
    /// not exactly 10 digits, or that are not directories, are ignored.
    pub fn numbers(&self) -> Result<Vec<u64>> {
        let entries = fs::read_dir(&self.dir).map_err(Error::io("list", &self.dir))?;
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &self.dir))?;
            let Some(number) = parse_number(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Starts a new boot, numbered one past the highest present (1 on an
    /// empty store), and writes its `Started` event. Older boots are first
    /// deleted as needed so the store, with the new boot, fits the cap.
    pub fn begin(&self, started: Started) -> Result<BootWriter> {
        // Room for the new boot's directory and first event block.
        self.enforce_with(None, 0, 2 * BLOCK)?;
        let mut number = self.numbers()?.last().map_or(1, |n| n + 1);
        let dir = loop {
            let dir = self.boot_dir(number);
            match fs::create_dir(&dir) {
                Ok(()) => break dir,
                // Another writer took it between the listing and now.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => return Err(Error::io("create", &dir)(e)),
            }
        };
        sync_dir(&self.dir)?;
        let mut writer = BootWriter::create(self.clone(), number, dir)?;
        writer.event(&Event::Started(started))?;
        Ok(writer)
    }

    /// The writer for this kernel boot: the newest boot again if its
    /// `Started` names the same kernel boot id (the agent was restarted
    /// within the boot), else a new one ([`Store::begin`]).
    pub fn resume_or_begin(&self, started: Started) -> Result<BootWriter> {
        if let Some(&number) = self.numbers()?.last() {
            let dir = self.boot_dir(number);
            let path = dir.join(EVENTS);
            let first = match fs::read(&path) {
                Ok(bytes) => journal::read(&bytes).events.into_iter().next(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io("read", &path)(e)),
            };
            if matches!(first, Some(Event::Started(s)) if s.boot == started.boot) {
                return BootWriter::reopen(self.clone(), number, dir);
            }
        }
        self.begin(started)
    }

    /// A writer continuing an existing, older boot `number`: to record an
    /// ending learnt after it (a crash dump, an inference) or to fill a
    /// record made from a crash dump. Retention counts `number` as the
    /// current boot while this writer appends.
    pub fn reopen(&self, number: u64) -> Result<BootWriter> {
        let dir = self.existing_boot(number)?;
        BootWriter::reopen(self.clone(), number, dir)
    }

    /// Marks boot `number` as ended by the watchdog (the next boot learns
    /// it from the watchdog device's boot status).
    pub fn note_watchdog_reset(&self, number: u64) -> Result<()> {
        let path = self.existing_boot(number)?.join(WATCHDOG);
        fs::File::create(&path).map_err(Error::io("create", &path))?;
        sync_dir(path.parent().unwrap_or(&self.dir))
    }

    /// Measures the store and deletes the oldest boots (never `current`)
    /// until it is a step under the cap. Call after adding files outside a
    /// writer (e.g. [`crate::pstore::collect`] into an older boot).
    pub fn enforce(&self, current: Option<u64>) -> Result<Enforced> {
        self.enforce_with(current, 0, 0)
    }

    /// [`Store::enforce`] from the writer of `current`, which knows its
    /// boot is `estimate` bytes with what it has buffered.
    pub(crate) fn enforce_current(&self, current: u64, estimate: u64) -> Result<Enforced> {
        self.enforce_with(Some(current), estimate, 0)
    }

    /// The store's total size as counted for the cap.
    pub fn total(&self) -> Result<u64> {
        let mut total = 0;
        for number in self.numbers()? {
            total += measure(&self.boot_dir(number))?;
        }
        Ok(total)
    }

    /// [`Store::enforce`] counting `current` as at least `estimate` and
    /// leaving `room` more bytes free.
    fn enforce_with(&self, current: Option<u64>, estimate: u64, room: u64) -> Result<Enforced> {
        let mut boots = Vec::new();
        for number in self.numbers()? {
            let size = measure(&self.boot_dir(number))?;
            let size = if Some(number) == current {
                size.max(estimate)
            } else {
                size
            };
            boots.push((number, size));
        }
        let mut total: u64 = boots.iter().map(|b| b.1).sum();
        let current_size = boots
            .iter()
            .find(|b| Some(b.0) == current)
            .map_or(0, |b| b.1);
        let mut deleted = Vec::new();
        if total + room > self.limits.cap {
            let target = self.limits.cap.saturating_sub(self.limits.step + room);
            for &(number, size) in &boots {
                if total <= target {
                    break;
                }
                if Some(number) == current {
                    continue;
                }
                let path = self.boot_dir(number);
                fs::remove_dir_all(&path).map_err(|source| Error::Retention { path, source })?;
                total -= size;
                deleted.push(number);
            }
            sync_dir(&self.dir)?;
        }
        Ok(Enforced {
            total,
            current: current_size,
            deleted,
        })
    }
}

/// The boot number a directory name is, if it is exactly 10 digits.
fn parse_number(name: &str) -> Option<u64> {
    if name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// A directory's size as the store counts it (the directory, what is in
/// it, recursively; symbolic links are not followed).
pub(crate) fn measure(path: &Path) -> Result<u64> {
    let mut total = BLOCK;
    let entries = fs::read_dir(path).map_err(Error::io("list", path))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", path))?;
        let child = entry.path();
        let meta = fs::symlink_metadata(&child).map_err(Error::io("stat", &child))?;
        total += if meta.is_dir() {
            measure(&child)?
        } else {
            charge(meta.len())
        };
    }
    Ok(total)
}

/// Makes a directory's entries (a created, renamed or deleted file) durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exactly_ten_digits() {
        assert_eq!(parse_number("0000000041"), Some(41));
        assert_eq!(parse_number("4294967296"), Some(4_294_967_296));
        for bad in [
            "41",
            "00000000041",
            "000000004a",
            "lost+found",
            "+000000041",
            "",
        ] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn charge_rounds_up_to_blocks() {
        assert_eq!(charge(0), 0);
        assert_eq!(charge(1), BLOCK);
        assert_eq!(charge(BLOCK), BLOCK);
        assert_eq!(charge(BLOCK + 1), 2 * BLOCK);
    }

    #[test]
    fn a_cap_below_the_minimum_is_refused() {
        assert!(matches!(
            Limits::new(MIN_CAP - 1),
            Err(Error::CapTooSmall { cap, min: MIN_CAP }) if cap == MIN_CAP - 1
        ));
    }
}
