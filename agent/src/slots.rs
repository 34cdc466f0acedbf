//! The A/B slot state on the disk (via `matic-boot`) and the version string
//! recorded for each slot in `<state-dir>/slots/<SLOT>.version`. Every GPT
//! change in the agent goes through here, serialized by one lock, and each
//! is one matic-boot transition staged in memory and written once
//! (`Disk::write`). Each transition is given the slot this boot really runs
//! (from init's boot file), so matic-boot's own checks see it.
//!
//! Never sets slot attribute bits itself (the rules are matic-boot's), and
//! never writes image bytes (that is [`crate::slot_writer`]'s). An install
//! holds the disk open once, as an [`InstallDisk`], from its first GPT step
//! to its last.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use matic_boot::{Disk, Slot, SlotAttrs};
use tonic::Status;

/// Serializes read-modify-write cycles of the GPT within the agent.
static GPT_LOCK: Mutex<()> = Mutex::new(());

/// Errors reading or changing slot state.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("GPT on {path}: {source}")]
    Gpt {
        path: PathBuf,
        source: matic_boot::Error<std::io::Error>,
    },
}

impl SlotError {
    /// The gRPC status: refusals by the slot rules are FAILED_PRECONDITION
    /// with matic-boot's sentence alone (it names the slots; the disk path
    /// adds nothing an operator can act on); anything else is INTERNAL with
    /// the path.
    pub fn into_status(self) -> Status {
        match &self {
            SlotError::Gpt {
                source:
                    e @ (matic_boot::Error::RollbackTargetWillNotBoot(_)
                    | matic_boot::Error::UpdateTargetIsRunning(_)
                    | matic_boot::Error::RunningSlotOnTrial(_)
                    | matic_boot::Error::RunningSlotWillNotBoot(_)
                    | matic_boot::Error::SlotInvalidated(_)
                    | matic_boot::Error::NoBootableSlot),
                ..
            } => Status::failed_precondition(e.to_string()),
            _ => Status::internal(self.to_string()),
        }
    }
}

/// One slot as the table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub attrs: SlotAttrs,
    /// Byte offset of the partition on the disk.
    pub offset: u64,
    /// Partition size in bytes.
    pub len: u64,
}

/// Both slots and what the next boot would choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub a: SlotInfo,
    pub b: SlotInfo,
    pub next: Option<Slot>,
}

impl Table {
    pub fn get(&self, s: Slot) -> SlotInfo {
        match s {
            Slot::A => self.a,
            Slot::B => self.b,
        }
    }
}

fn open_file(path: &Path, write: bool) -> Result<File, SlotError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|source| SlotError::Io {
            path: path.to_owned(),
            op: "opening",
            source,
        })
}

fn table_of<D: matic_boot::BlockDevice>(d: &Disk<D>) -> Table {
    let info = |s: Slot| {
        let p = d.slot_partition(s);
        SlotInfo {
            attrs: d.slot_attrs(s),
            offset: p.start(),
            len: p.size(),
        }
    };
    Table {
        a: info(Slot::A),
        b: info(Slot::B),
        next: d.status().next,
    }
}

/// Reads the table (no writes).
pub fn read_table(path: &Path) -> Result<Table, SlotError> {
    let d = Disk::open(open_file(path, false)?).map_err(|source| SlotError::Gpt {
        path: path.to_owned(),
        source,
    })?;
    Ok(table_of(&d))
}

/// One GPT step on an open descriptor: under [`GPT_LOCK`], reads the table,
/// applies `change` to it in memory, runs `before_write` (only when `change`
/// was allowed: a refusal writes and forgets nothing), writes the table once.
fn step<T>(
    file: &mut File,
    path: &Path,
    change: impl FnOnce(&mut Disk<&mut File>) -> Result<T, matic_boot::Error<std::io::Error>>,
    before_write: impl FnOnce() -> Result<(), SlotError>,
) -> Result<(T, Table), SlotError> {
    let _g = GPT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let gpt = |source| SlotError::Gpt {
        path: path.to_owned(),
        source,
    };
    let mut d = Disk::open(file).map_err(gpt)?;
    let out = change(&mut d).map_err(gpt)?;
    before_write()?;
    d.write().map_err(gpt)?;
    let t = table_of(&d);
    Ok((out, t))
}

/// Opens the disk for one step, applies `change`, writes the table once.
fn modify<T>(
    path: &Path,
    change: impl FnOnce(&mut Disk<&mut File>) -> Result<T, matic_boot::Error<std::io::Error>>,
) -> Result<(T, Table), SlotError> {
    let mut file = open_file(path, true)?;
    step(&mut file, path, change, || Ok(()))
}

/// Sets `slot`'s successful bit (`slot` is the running slot: the agent
/// marks only the boot it runs in).
pub fn mark_successful(path: &Path, slot: Slot) -> Result<(), SlotError> {
    modify(path, |d| d.mark_successful(slot)).map(|_| ())
}

/// Makes the slot that is not `running` the next boot (matic-boot's
/// `rollback(running)`); refused when that slot will not boot. Returns it.
pub fn rollback(path: &Path, running: Slot) -> Result<Slot, SlotError> {
    modify(path, |d| d.rollback(running)).map(|(next, _)| next)
}

/// The disk as one install holds it: opened once, read-write, when the
/// install begins, and kept until it ends. Each GPT step re-reads the table
/// from this descriptor under [`GPT_LOCK`] (a rollback or the boot check may
/// have changed it in between) and writes it once; the image goes through
/// the same descriptor ([`crate::slot_writer::SlotWriter`] borrows it for
/// the byte range of the target slot).
#[derive(Debug)]
pub struct InstallDisk {
    path: PathBuf,
    file: File,
}

impl InstallDisk {
    /// Opens `path` read-write; reads nothing yet.
    pub fn open(path: &Path) -> Result<Self, SlotError> {
        Ok(Self {
            path: path.to_owned(),
            file: open_file(path, true)?,
        })
    }

    /// The disk's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open descriptor (the image writer's).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Invalidates `target` and writes the table; returns where its bytes go.
    /// `running` is the slot this boot runs (from init's boot file), so that
    /// matic-boot's own checks see it: refused when `target` is the running
    /// slot, or when the running slot is still on trial (the target may be
    /// the only proven slot). A refusal changes nothing, on the disk or in
    /// `state_dir`; otherwise the target's recorded version is forgotten
    /// before the table is written.
    pub fn begin_update(
        &mut self,
        state_dir: &Path,
        target: Slot,
        running: Slot,
    ) -> Result<SlotInfo, SlotError> {
        let ((), t) = step(
            &mut self.file,
            &self.path,
            |d| d.begin_update(target, running),
            || remove_version(state_dir, target),
        )?;
        Ok(t.get(target))
    }

    /// Makes the freshly written `target` the next boot with `tries` tries.
    pub fn finish_update(&mut self, target: Slot, tries: u8) -> Result<(), SlotError> {
        step(
            &mut self.file,
            &self.path,
            |d| d.finish_update(target, tries),
            || Ok(()),
        )
        .map(|_| ())
    }
}

fn version_path(state_dir: &Path, s: Slot) -> PathBuf {
    state_dir.join("slots").join(format!("{s}.version"))
}

/// The recorded version of `s`; empty when none.
pub fn read_version(state_dir: &Path, s: Slot) -> String {
    std::fs::read_to_string(version_path(state_dir, s))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Forgets the version of a slot about to be overwritten.
pub fn remove_version(state_dir: &Path, s: Slot) -> Result<(), SlotError> {
    let p = version_path(state_dir, s);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SlotError::Io {
            path: p,
            op: "removing",
            source,
        }),
    }
}

/// Records `version` for `s` durably: temp file, fsync, rename, then fsync
/// the directory — the rename is an entry in the directory, and until that
/// is on disk a power cut can bring back the old version (or none) next to
/// a slot that holds the new image.
pub fn write_version(state_dir: &Path, s: Slot, version: &str) -> Result<(), SlotError> {
    let p = version_path(state_dir, s);
    let dir = p.parent().unwrap_or(state_dir).to_owned();
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| SlotError::Io { path, op, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let tmp = p.with_extension("version.tmp");
    let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(format!("{}\n", version.trim()).as_bytes())
        .map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(io("renaming into", &p))?;
    sync_dir(&dir)
}

/// fsyncs directory `dir` (a directory opened read-only can be fsynced).
fn sync_dir(dir: &Path) -> Result<(), SlotError> {
    let io = |op| {
        move |source| SlotError::Io {
            path: dir.to_owned(),
            op,
            source,
        }
    };
    File::open(dir)
        .map_err(io("opening"))?
        .sync_all()
        .map_err(io("syncing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rename that publishes a version is made durable: under strace,
    /// `write_version` renames the temp file into place, then opens the
    /// `slots` directory and fsyncs that descriptor. (Run as a child of
    /// this test binary so the trace holds only this call. Needs `strace`,
    /// which `scripts/lib/deps.sh` installs; a missing one fails the test.)
    #[test]
    fn write_version_fsyncs_the_directory_after_the_rename() {
        if let Some(dir) = crate::strace_test::child_dir() {
            write_version(Path::new(&dir), Slot::B, "1.2.3").unwrap();
            return;
        }
        let base = std::env::temp_dir().join(format!("matic-slots-fsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let trace = crate::strace_test::trace_test(
            "slots::tests::write_version_fsyncs_the_directory_after_the_rename",
            "openat,open,rename,renameat,renameat2,fsync,fdatasync",
            &base,
        );
        assert_eq!(read_version(&base, Slot::B), "1.2.3");
        let dir = base.join("slots").display().to_string();
        let lines: Vec<&str> = trace.lines().collect();
        let renamed = lines
            .iter()
            .position(|l| l.contains("rename") && l.contains("B.version.tmp"))
            .unwrap_or_else(|| panic!("no rename of B.version.tmp in:\n{trace}"));
        let fd = lines[renamed..]
            .iter()
            .find_map(|l| {
                let (call, ret) = l.split_once(") = ")?;
                (call.contains("open") && call.contains(&format!("\"{dir}\"")))
                    .then(|| ret.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{dir} not opened after the rename:\n{trace}"));
        assert!(
            lines[renamed..]
                .iter()
                .any(|l| l.contains(&format!("fsync({fd})")) && l.ends_with("= 0")),
            "{dir} (fd {fd}) not fsynced after the rename:\n{trace}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
