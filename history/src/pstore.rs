//! Crash dumps from pstore (`/sys/fs/pstore/`, on QEMU and servers with
//! ACPI ERST: `dmesg-erst-<id>`). The store holds only a few dumps and
//! then drops new ones silently, so every boot moves them out: copy,
//! fsync, and only then unlink the original.
//!
//! A panic dump is split in parts, one file each: `Panic#1 Part1` on the
//! first line, then kernel log lines in the `/dev/kmsg`-like form
//! `<6>[    0.573162] message`. Part1 is the newest chunk (it ends with the
//! `Kernel panic - not syncing: ...` line and the trace after it), Part2
//! the one before it, and so on.
//!
//! Owns: moving dumps and reading them back into text and a panic line.
//! Must never: unlink an original whose copy is not on disk, overwrite an
//! earlier copy (ramoops reuses its names), or fail on bytes it does not
//! understand (a dump it cannot parse is still copied, just not read).

use crate::error::{Error, Result};
use crate::journal::PANIC_PREFIX;
use crate::store::sync_dir;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a panic dump says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicReport {
    /// The first `Kernel panic - not syncing: ...` line, level and time
    /// stamp stripped.
    pub first_line: String,
    /// The whole dump, oldest part first, level prefixes stripped.
    pub text: String,
}

/// One dump (all its parts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// Why the kernel dumped: `Panic`, `Oops`, `Emergency`, ...
    pub reason: String,
    /// Its log, oldest part first, level prefixes stripped.
    pub text: String,
}

/// Moves every regular file of `pstore_dir` into `dest_dir` (created if
/// missing): copy to a temporary name, fsync, rename, fsync the directory,
/// and only then unlink the original. Stops at the first failure, which
/// leaves that original (and every later one) in place. Returns the copies.
pub fn collect(pstore_dir: &Path, dest_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(pstore_dir).map_err(Error::io("list", pstore_dir))? {
        let entry = entry.map_err(Error::io("list", pstore_dir))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push(entry.file_name());
        }
    }
    names.sort();
    let mut copies = Vec::new();
    if names.is_empty() {
        return Ok(copies);
    }
    if !dest_dir.is_dir() {
        fs::create_dir_all(dest_dir).map_err(Error::io("create", dest_dir))?;
        if let Some(parent) = dest_dir.parent() {
            sync_dir(parent)?;
        }
    }
    for name in names {
        let from = pstore_dir.join(&name);
        let bytes = fs::read(&from).map_err(Error::io("read", &from))?;
        let to = free_name(dest_dir, &name.to_string_lossy());
        let tmp = dest_dir.join(".collect.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = File::create(&tmp)?;
            out.write_all(&bytes)?;
            out.sync_all()
        };
        write().map_err(Error::io("write", &tmp))?;
        fs::rename(&tmp, &to).map_err(Error::io("rename", &tmp))?;
        sync_dir(dest_dir)?;
        fs::remove_file(&from).map_err(Error::io("unlink", &from))?;
        copies.push(to);
    }
    Ok(copies)
}

/// `dir/name`, or `dir/name.1`, `.2`, ... if taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut path = dir.join(name);
    let mut n = 0;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{name}.{n}"));
    }
    path
}

/// The kernel log dumps among `files` (others are ignored: `console-*`,
/// `pmsg-*`, a dump the kernel could not decompress), oldest first.
///
/// Files are ordered by their record id (the number after the last `-`;
/// backends number records in the order they write them, Part1 first).
/// A `Part1` starts a dump; `PartN` continues it when N follows the last
/// part and names the same `Reason#count`; otherwise it stands alone.
pub fn dumps(files: &[PathBuf]) -> Vec<Dump> {
    dumps_with_files(files)
        .into_iter()
        .map(|(dump, _)| dump)
        .collect()
}

/// [`dumps`], each with the files it was read from (its parts, Part1
/// first), so a caller can move one dump's files as a whole.
pub fn dumps_with_files(files: &[PathBuf]) -> Vec<(Dump, Vec<PathBuf>)> {
    let mut parts: Vec<(u128, PathBuf, Header, String)> = Vec::new();
    for path in files {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !name.starts_with("dmesg-") {
            continue;
        }
        let Ok(bytes) = fs::read(path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let Some(header) = Header::parse(first.trim_end()) else {
            continue;
        };
        let id = name
            .rsplit('-')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(u128::MAX);
        parts.push((id, path.clone(), header, body.to_owned()));
    }
    parts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

    // Each dump's parts as they come: Part1 (newest chunk) first.
    let mut groups: Vec<(Header, Vec<String>, Vec<PathBuf>)> = Vec::new();
    for (_, path, header, body) in parts {
        match groups.last_mut() {
            Some((last, bodies, paths)) if header.continues(last) => {
                *last = header;
                bodies.push(body);
                paths.push(path);
            }
            _ => groups.push((header, vec![body], vec![path])),
        }
    }
    groups
        .into_iter()
        .map(|(header, bodies, paths)| {
            let mut text = String::new();
            for body in bodies.iter().rev() {
                for line in body.lines() {
                    text.push_str(strip_level(line));
                    text.push('\n');
                }
            }
            let dump = Dump {
                reason: header.reason,
                text,
            };
            (dump, paths)
        })
        .collect()
}

/// The newest dump among `files` that holds a `Kernel panic - not
/// syncing:` line: that line (the first one) and the dump's whole text.
pub fn panic_report(files: &[PathBuf]) -> Option<PanicReport> {
    dumps(files).into_iter().rev().find_map(|dump| {
        let first_line = dump
            .text
            .lines()
            .map(crate::kernel_line::text)
            .find(|line| line.starts_with(PANIC_PREFIX))?
            .to_owned();
        Some(PanicReport {
            first_line,
            text: dump.text,
        })
    })
}

/// `Panic#1 Part2`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    reason: String,
    count: u32,
    part: u32,
}

impl Header {
    fn parse(line: &str) -> Option<Header> {
        let (reason, rest) = line.split_once('#')?;
        let (count, part) = rest.split_once(" Part")?;
        if reason.is_empty() || !reason.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        Some(Header {
            reason: reason.to_owned(),
            count: count.parse().ok()?,
            part: part.parse().ok()?,
        })
    }

    /// Whether this part is the next of the dump whose last part is `last`.
    fn continues(&self, last: &Header) -> bool {
        self.part > 1
            && Some(self.part) == last.part.checked_add(1)
            && self.reason == last.reason
            && self.count == last.count
    }
}

/// A log line without its `<N>` level (and facility) prefix.
fn strip_level(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<')
        && let Some((level, text)) = rest.split_once('>')
        && !level.is_empty()
        && level.bytes().all(|b| b.is_ascii_digit())
    {
        return text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = Header::parse("Panic#1 Part2").unwrap();
        assert_eq!((h.reason.as_str(), h.count, h.part), ("Panic", 1, 2));
        assert!(Header::parse("Oops#3 Part1").is_some());
        for bad in [
            "",
            "Panic#1",
            "Panic#x Part1",
            "#1 Part1",
            "<6>[ 0.1] Panic#1 Part1",
        ] {
            assert_eq!(Header::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            strip_level("<0>[    2.155872] Kernel panic"),
            "[    2.155872] Kernel panic"
        );
        assert_eq!(strip_level("<14>x"), "x");
        assert_eq!(strip_level("<a>x"), "<a>x");
        assert_eq!(strip_level("<>x"), "<>x");
        assert_eq!(
            crate::kernel_line::text("[    2.155872] Kernel panic"),
            "Kernel panic"
        );
        assert_eq!(crate::kernel_line::text("Kernel panic"), "Kernel panic");
        assert_eq!(crate::kernel_line::text("[mem 0x0] x"), "[mem 0x0] x");
    }
}
