//! The crate's one error type, [`Error`], and the names of the checks it
//! reports. Hand-written (no `thiserror`) because the crate is `no_std`.
//!
//! Never allocates to describe an error (init prints these without an
//! allocator), and decides nothing: callers choose what a variant means.

use core::fmt;

use crate::slot::{Part, Slot};

/// Which of the two GPT headers a check was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The primary header at LBA 1 and its entry array.
    Primary,
    /// The backup header at the last LBA and its entry array.
    Backup,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Primary => "primary",
            Which::Backup => "backup",
        })
    }
}

/// A validation check on a GPT header or its entry array, in the order they
/// are made (the first one that fails is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The header does not start with `EFI PART`.
    Signature,
    /// The revision's major number is not 1.
    Revision,
    /// The header size is below 92 or above the sector size.
    HeaderSize,
    /// The header's CRC32 does not match its contents.
    HeaderCrc,
    /// `my_lba` is not the LBA the header was read from.
    MyLba,
    /// `alternate_lba` does not point at the other header (1 for the backup;
    /// beyond the usable range and on the device for the primary).
    AlternateLba,
    /// The entry size is not 128 × 2ⁿ, or too large for our buffer.
    EntrySize,
    /// The entry count is 0 or the array exceeds [`crate::MAX_ENTRIES_BYTES`].
    EntryCount,
    /// The entry array overlaps a header or the usable range, or is off the device.
    EntriesLocation,
    /// `first_usable_lba`/`last_usable_lba` are reversed or overlap the
    /// metadata areas.
    UsableRange,
    /// The entry array's CRC32 does not match the header's.
    EntriesCrc,
    /// Health only: the backup is valid but not at the device's last LBA
    /// (the image grew), where a reader looks when the primary is bad.
    /// The next `write` moves it there.
    BackupNotAtEnd,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Signature => "signature is not \"EFI PART\"",
            Check::Revision => "unsupported revision",
            Check::HeaderSize => "bad header size",
            Check::HeaderCrc => "header CRC32 mismatch",
            Check::MyLba => "my_lba is not where the header is",
            Check::AlternateLba => "alternate_lba is wrong",
            Check::EntrySize => "unsupported partition entry size",
            Check::EntryCount => "unsupported partition entry count",
            Check::EntriesLocation => "partition entry array misplaced",
            Check::UsableRange => "bad usable LBA range",
            Check::EntriesCrc => "partition entry array CRC32 mismatch",
            Check::BackupNotAtEnd => "backup header is not at the last LBA",
        })
    }
}

/// The block-device operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// `read_at`
    Read,
    /// `write_at`
    Write,
    /// `flush`
    Flush,
    /// `size` or `sector_size`
    Size,
}

/// Everything that can go wrong, generic over the block device's error `E`.
#[derive(Debug)]
pub enum Error<E> {
    /// The block device failed; `offset` is the byte offset (0 for flush/size).
    Io {
        /// What was being done.
        op: IoOp,
        /// Byte offset of the read or write.
        offset: u64,
        /// The device's own error.
        source: E,
    },
    /// The device's logical sector size is not 512 (a GPT for 4096-byte
    /// sectors was found, or the device reported it).
    UnsupportedSectorSize(u32),
    /// The device is too small to hold a GPT (or the requested layout).
    DeviceTooSmall {
        /// Device size in bytes.
        bytes: u64,
    },
    /// Sector 0 holds no protective MBR (0x55AA signature and a type-0xEE entry).
    NoProtectiveMbr,
    /// Neither header is usable; names the first check each one failed.
    NoValidGpt {
        /// Why the primary was rejected.
        primary: Check,
        /// Why the backup was rejected.
        backup: Check,
    },
    /// No partition entry carries this name.
    MissingPartition(Part),
    /// More than one entry carries this name.
    DuplicatePartition(Part),
    /// This partition's LBAs are reversed or outside the usable range.
    PartitionOutOfRange(Part),
    /// A root slot's LBA range overlaps another used partition entry (the
    /// other slot, `MATIC_STATE`, the ESP, anything): writing an image into
    /// it would overwrite that partition, possibly the running slot.
    PartitionsOverlap {
        /// The root slot's partition.
        part: Part,
        /// The 1-based number (GPT entry index + 1) of the partition it overlaps.
        number: u32,
        /// That partition's MaticOS name, when it has one.
        other: Option<Part>,
    },
    /// No slot will boot (`choose_boot_slot`).
    NoBootableSlot,
    /// `begin_update` was asked to invalidate the slot that is running.
    UpdateTargetIsRunning(Slot),
    /// `begin_update` while the running slot (named here) has not been marked
    /// successful: the target may be the only proven slot, and invalidating
    /// it would leave nothing to fall back to if the trial fails.
    RunningSlotOnTrial(Slot),
    /// `begin_update` while the running slot (named here) will not boot
    /// (priority 0): invalidating the target would leave nothing bootable.
    RunningSlotWillNotBoot(Slot),
    /// `rollback` was asked to go to a slot that will not boot.
    RollbackTargetWillNotBoot(Slot),
    /// `cancel_update` would leave no slot that will boot (the other slot
    /// named here will not boot).
    CancelLeavesNoBootableSlot(Slot),
    /// `give_up` would leave no slot that will boot (the other slot named
    /// here will not boot): stage 1 keeps the table as it is and retries.
    GiveUpLeavesNoBootableSlot(Slot),
    /// `mark_successful` on a slot with priority 0 (invalidated or failed):
    /// it must not be resurrected.
    SlotInvalidated(Slot),
    /// A tries or priority value is outside 0–15 (or tries is 0 where at
    /// least one is needed).
    ValueOutOfRange(u8),
    /// `create`: the partitions do not fit on the device.
    LayoutTooLarge {
        /// Bytes the layout needs, including GPT metadata.
        needed: u64,
        /// Bytes the device has.
        available: u64,
    },
}

impl<E> Error<E> {
    /// Helper for block-device results.
    pub(crate) fn io(op: IoOp, offset: u64) -> impl FnOnce(E) -> Error<E> {
        move |source| Error::Io { op, offset, source }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, offset, source } => {
                let what = match op {
                    IoOp::Read => "read",
                    IoOp::Write => "write",
                    IoOp::Flush => "flush",
                    IoOp::Size => "size query",
                };
                write!(f, "block device {what} at byte {offset} failed: {source}")
            }
            Error::UnsupportedSectorSize(n) => {
                write!(f, "{n}-byte sectors are not supported (only 512)")
            }
            Error::DeviceTooSmall { bytes } => write!(f, "device too small ({bytes} bytes)"),
            Error::NoProtectiveMbr => f.write_str("no protective MBR in sector 0"),
            Error::NoValidGpt { primary, backup } => write!(
                f,
                "no valid GPT: primary header: {primary}; backup header: {backup}"
            ),
            Error::MissingPartition(p) => write!(f, "no partition named {}", p.name()),
            Error::DuplicatePartition(p) => write!(f, "more than one partition named {}", p.name()),
            Error::PartitionOutOfRange(p) => {
                write!(f, "partition {} lies outside the usable range", p.name())
            }
            Error::PartitionsOverlap {
                part,
                number,
                other,
            } => {
                write!(f, "partition {} overlaps partition {number}", part.name())?;
                match other {
                    Some(o) => write!(f, " ({})", o.name()),
                    None => Ok(()),
                }
            }
            Error::NoBootableSlot => f.write_str("no slot will boot"),
            Error::UpdateTargetIsRunning(s) => {
                write!(f, "refusing to update slot {s}: it is the running slot")
            }
            Error::RunningSlotOnTrial(s) => write!(
                f,
                "slot {s} is still on trial; wait until it is marked successful, or roll back"
            ),
            Error::RunningSlotWillNotBoot(s) => write!(
                f,
                "refusing to update: the running slot {s} will not boot (priority 0), nothing would"
            ),
            Error::RollbackTargetWillNotBoot(s) => {
                write!(f, "refusing to roll back to slot {s}: it will not boot")
            }
            Error::CancelLeavesNoBootableSlot(s) => write!(
                f,
                "refusing to cancel: the other slot {s} will not boot, nothing would"
            ),
            Error::GiveUpLeavesNoBootableSlot(s) => write!(
                f,
                "refusing to give up the slot: the other slot {s} will not boot either"
            ),
            Error::SlotInvalidated(s) => write!(
                f,
                "refusing to mark slot {s} successful: its priority is 0 (invalidated)"
            ),
            Error::ValueOutOfRange(v) => write!(f, "value {v} out of range"),
            Error::LayoutTooLarge { needed, available } => write!(
                f,
                "layout needs {needed} bytes but the device has {available}"
            ),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
