//! The A/B slot state on the disk (via `matic-boot`). Every GPT
//! change in the agent goes through here, serialized by one lock, and each
//! is one matic-boot transition staged in memory and written once
//! (`Disk::write`). Each transition is given the slot this boot really runs
//! (from init's boot file), so matic-boot's own checks see it.
//!
//! Never sets slot attribute bits itself (the rules are matic-boot's), and
//! never writes image bytes (that is [`crate::slot_writer`]'s) or a slot's
//! manifest block ([`crate::release`]'s). An install
//! holds the disk open once, as an [`InstallDisk`], from its first GPT step
//! to its last.
use std::fs::{File, OpenOptions};
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
    open_table(path).map(|(_, t)| t)
}

/// Opens the disk read-only and reads the table; the descriptor is for
/// reading the slots' manifest blocks ([`crate::release`]).
pub fn open_table(path: &Path) -> Result<(File, Table), SlotError> {
    let mut file = open_file(path, false)?;
    let d = Disk::open(&mut file).map_err(|source| SlotError::Gpt {
        path: path.to_owned(),
        source,
    })?;
    let t = table_of(&d);
    Ok((file, t))
}

/// One GPT step on an open descriptor: under [`GPT_LOCK`], reads the table,
/// applies `change` to it in memory (a refusal writes nothing), writes the
/// table once.
fn step<T>(
    file: &mut File,
    path: &Path,
    change: impl FnOnce(&mut Disk<&mut File>) -> Result<T, matic_boot::Error<std::io::Error>>,
) -> Result<(T, Table), SlotError> {
    let _g = GPT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let gpt = |source| SlotError::Gpt {
        path: path.to_owned(),
        source,
    };
    let mut d = Disk::open(file).map_err(gpt)?;
    let out = change(&mut d).map_err(gpt)?;
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
    step(&mut file, path, change)
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

    /// The table as it is now (read under [`GPT_LOCK`], nothing written):
    /// where the slots are, before the install decides to touch one.
    pub fn table(&mut self) -> Result<Table, SlotError> {
        let _g = GPT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let d = Disk::open(&mut self.file).map_err(|source| SlotError::Gpt {
            path: self.path.clone(),
            source,
        })?;
        Ok(table_of(&d))
    }

    /// Invalidates `target` and writes the table; returns where its bytes go.
    /// `running` is the slot this boot runs (from init's boot file), so that
    /// matic-boot's own checks see it: refused when `target` is the running
    /// slot, or when the running slot is still on trial (the target may be
    /// the only proven slot). A refusal changes nothing on the disk.
    pub fn begin_update(&mut self, target: Slot, running: Slot) -> Result<SlotInfo, SlotError> {
        let ((), t) = step(&mut self.file, &self.path, |d| {
            d.begin_update(target, running)
        })?;
        Ok(t.get(target))
    }

    /// Makes the freshly written `target` the next boot with `tries` tries.
    pub fn finish_update(&mut self, target: Slot, tries: u8) -> Result<(), SlotError> {
        step(&mut self.file, &self.path, |d| {
            d.finish_update(target, tries)
        })
        .map(|_| ())
    }
}
