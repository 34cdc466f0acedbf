//! Reading the history back: the list of boots with how each ended, one
//! boot's timeline, its kernel log, its service logs and crash dumps.
//!
//! Owns: what a summary says about a boot, and reading damaged boots as
//! far as they go. Must never: fail a whole listing because of one boot
//! (a boot whose events cannot be read lists with its ending unknown),
//! write or delete anything.

use crate::ending::classify;
use crate::error::{Error, Result};
use crate::journal::{self, Ending, Event, Journal};
use crate::pstore::{self, Dump, PanicReport};
use crate::stamp::{self, At};
use crate::store::{self, Store};
use crate::writer::valid_service_name;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One line of `osctl boots`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSummary {
    /// The boot's number (its directory name).
    pub number: u64,
    /// From its `Started` event (`None` if that did not read).
    pub slot: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    /// The kernel's boot id.
    pub boot_id: Option<String>,
    /// Wall clock (Unix ms) when the kernel started, if it was known at
    /// `Started` (that wall clock minus the uptime then).
    pub start_wall_unix_ms: Option<u64>,
    /// Uptime (ms) at `Started`: the start to show when the wall clock
    /// was unknown.
    pub started_uptime_ms: Option<u64>,
    /// Kernel start to its last event (ms): how long it ran, at least.
    pub duration_ms: Option<u64>,
    /// How it ended.
    pub ending: Outcome,
    /// Whether it was marked successful.
    pub successful: bool,
    /// Journal lines that did not read (damaged or torn).
    pub skipped_lines: usize,
}

/// How a listed boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It is the boot running now.
    Running,
    /// It ended so ([`classify`]).
    Ended(Ending),
    /// Its events file is missing or holds no whole record.
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Running => f.write_str("running"),
            Outcome::Ended(ending) => ending.fmt(f),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}

/// A timeline point: a mark, ms after the kernel started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub name: String,
    pub at_ms: u64,
}

/// A service log line read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLine {
    /// Its stamp (`None`: the line was not in the stamped form).
    pub at: Option<At>,
    /// The service's text (invalid UTF-8 replaced).
    pub text: String,
}

impl Store {
    /// The newest `limit` boots, newest first. `running` is the number of
    /// the boot running now (its ending is [`Outcome::Running`]).
    pub fn boots(&self, limit: usize, running: Option<u64>) -> Result<Vec<BootSummary>> {
        let numbers = self.numbers()?;
        Ok(numbers
            .iter()
            .rev()
            .take(limit)
            .map(|&n| summarize(n, &self.boot_dir(n), running == Some(n)))
            .collect())
    }

    /// Boot `number`'s marks by time (marks written at the same ms keep
    /// their order). The written order is not the time order: the agent
    /// marks `agent-listening` as it happens, while init's marks reach the
    /// record when the kernel log copy gets to them, which can be later.
    pub fn timeline(&self, number: u64) -> Result<Vec<Mark>> {
        let dir = self.existing_boot(number)?;
        let journal = read_journal(&dir.join(store::EVENTS))?.unwrap_or_default();
        let mut marks: Vec<Mark> = journal
            .events
            .into_iter()
            .filter_map(|event| match event {
                Event::Mark { name, at_ms } => Some(Mark { name, at_ms }),
                _ => None,
            })
            .collect();
        marks.sort_by_key(|m| m.at_ms);
        Ok(marks)
    }

    /// Boot `number`'s kernel log (empty if it wrote none).
    pub fn kmsg(&self, number: u64) -> Result<String> {
        let dir = self.existing_boot(number)?;
        Ok(read_text(&dir.join(store::KMSG))?.unwrap_or_default())
    }

    /// The services that logged in boot `number`, by name.
    pub fn services(&self, number: u64) -> Result<Vec<String>> {
        let dir = self.existing_boot(number)?.join(store::SERVICES);
        let mut names: Vec<String> = regular_files(&dir)?
            .iter()
            .filter_map(|p| {
                p.file_name()?
                    .to_str()?
                    .strip_suffix(".log")
                    .map(str::to_owned)
            })
            .filter(|name| valid_service_name(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Service `name`'s lines in boot `number` (empty if it logged none).
    pub fn service_log(&self, number: u64, name: &str) -> Result<Vec<ServiceLine>> {
        if !valid_service_name(name) {
            return Err(Error::BadServiceName {
                name: name.to_owned(),
            });
        }
        let dir = self.existing_boot(number)?;
        let path = dir.join(store::SERVICES).join(format!("{name}.log"));
        let text = read_text(&path)?.unwrap_or_default();
        Ok(text
            .lines()
            .map(|line| {
                let stamped = stamp::parse(line);
                ServiceLine {
                    at: stamped.at,
                    text: stamped.text.to_owned(),
                }
            })
            .collect())
    }

    /// The kernel log dumps kept with boot `number`, oldest first.
    pub fn crash_dumps(&self, number: u64) -> Result<Vec<Dump>> {
        let dir = self.existing_boot(number)?;
        Ok(pstore::dumps(&regular_files(&dir.join(store::PSTORE))?))
    }

    /// The kernel panic kept with boot `number`, if it panicked.
    pub fn panic(&self, number: u64) -> Result<Option<PanicReport>> {
        let dir = self.existing_boot(number)?;
        Ok(pstore::panic_report(&regular_files(
            &dir.join(store::PSTORE),
        )?))
    }
}

/// A boot's summary; any part that does not read is left out.
fn summarize(number: u64, dir: &Path, running: bool) -> BootSummary {
    let journal = read_journal(&dir.join(store::EVENTS)).ok().flatten();
    let journal = journal.filter(|j| !j.events.is_empty());
    let mut summary = BootSummary {
        number,
        slot: None,
        os_version: None,
        kernel: None,
        boot_id: None,
        start_wall_unix_ms: None,
        started_uptime_ms: None,
        duration_ms: None,
        ending: Outcome::Unknown,
        successful: false,
        skipped_lines: 0,
    };
    let Some(journal) = journal else {
        if running {
            summary.ending = Outcome::Running;
        }
        return summary;
    };
    summary.skipped_lines = journal.skipped;
    let mut recorded = None;
    let mut last_at = 0;
    for event in journal.events {
        match event {
            Event::Started(s) if summary.boot_id.is_none() => {
                summary.start_wall_unix_ms = s.wall_unix_ms.map(|w| w.saturating_sub(s.uptime_ms));
                summary.started_uptime_ms = Some(s.uptime_ms);
                last_at = last_at.max(s.uptime_ms);
                (summary.slot, summary.os_version) = (Some(s.slot), Some(s.os_version));
                (summary.kernel, summary.boot_id) = (Some(s.kernel), Some(s.boot));
            }
            Event::Started(s) => last_at = last_at.max(s.uptime_ms),
            Event::Mark { at_ms, .. } => last_at = last_at.max(at_ms),
            Event::Successful { at_ms } => {
                summary.successful = true;
                last_at = last_at.max(at_ms);
            }
            Event::Ended { ending, at_ms } => {
                recorded = Some(ending);
                last_at = last_at.max(at_ms);
            }
        }
    }
    summary.duration_ms = Some(last_at);
    summary.ending = if running {
        Outcome::Running
    } else {
        let dumps = regular_files(&dir.join(store::PSTORE)).unwrap_or_default();
        let panic = pstore::panic_report(&dumps);
        let watchdog = dir.join(store::WATCHDOG).exists();
        Outcome::Ended(classify(recorded.as_ref(), panic.as_ref(), watchdog))
    };
    summary
}

/// A journal file's contents; `None` if the file does not exist.
/// Boot `n`'s events (`events.jsonl`, a torn last line skipped); `None`
/// if the boot has none.
pub fn events(store: &Store, n: u64) -> Result<Option<Journal>> {
    read_journal(&store.boot_dir(n).join(store::EVENTS))
}

fn read_journal(path: &Path) -> Result<Option<Journal>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(journal::read(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// A text file (invalid UTF-8 replaced); `None` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// The regular files of a directory, sorted; empty if it does not exist.
pub fn regular_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}
