//! The crate's one error type, [`Error`], and the names of the checks it
//! reports. Hand-written (no `thiserror`) because the crate is `no_std`.
//!
//! The words of every message live in one place, [`Error::describe`], which
//! hands a message out as [`Piece`]s (text, numbers, the device's error):
//! `Display` writes them through `core::fmt`, and matic-init, which cannot
//! afford `core::fmt`, writes the same pieces with its own formatter.
//!
//! Must never: allocate, word a message anywhere but `describe`, or decide
//! anything (callers choose what a variant means).

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

impl Check {
    /// What failed, in words.
    pub fn as_str(self) -> &'static str {
        match self {
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
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// A piece of an error's message, as [`Error::describe`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a, E> {
    /// Words, as they are.
    Text(&'static str),
    /// A number, in decimal.
    Number(u64),
    /// The block device's own error, in its own words.
    Source(&'a E),
}

impl<E> Error<E> {
    /// Hands out the message, piece by piece, in order: the one source of
    /// the words `Display` and matic-init print.
    pub fn describe<'a>(&'a self, out: &mut dyn FnMut(Piece<'_, E>)) {
        use Piece::{Number as N, Text as T};
        // One template per message rather than a call per piece: 720 bytes
        // less code in matic-init, whose size is budgeted (docs/init.md
        // "Size").
        let mut say = |template, args: &[Piece<'a, E>]| say(out, template, args);
        match self {
            Error::Io { op, offset, source } => say(
                "block device {} at byte {} failed: {}",
                &[
                    T(match op {
                        IoOp::Read => "read",
                        IoOp::Write => "write",
                        IoOp::Flush => "flush",
                        IoOp::Size => "size query",
                    }),
                    N(*offset),
                    Piece::Source(source),
                ],
            ),
            Error::UnsupportedSectorSize(n) => say(
                "{}-byte sectors are not supported (only 512)",
                &[N(u64::from(*n))],
            ),
            Error::DeviceTooSmall { bytes } => say("device too small ({} bytes)", &[N(*bytes)]),
            Error::NoProtectiveMbr => say("no protective MBR in sector 0", &[]),
            Error::NoValidGpt { primary, backup } => say(
                "no valid GPT: primary header: {}; backup header: {}",
                &[T(primary.as_str()), T(backup.as_str())],
            ),
            Error::MissingPartition(p) => say("no partition named {}", &[T(p.name())]),
            Error::DuplicatePartition(p) => {
                say("more than one partition named {}", &[T(p.name())]);
            }
            Error::PartitionOutOfRange(p) => {
                say("partition {} lies outside the usable range", &[T(p.name())]);
            }
            Error::PartitionsOverlap {
                part,
                number,
                other,
            } => {
                say(
                    "partition {} overlaps partition {}",
                    &[T(part.name()), N(u64::from(*number))],
                );
                if let Some(o) = other {
                    say(" ({})", &[T(o.name())]);
                }
            }
            Error::NoBootableSlot => say("no slot will boot", &[]),
            Error::UpdateTargetIsRunning(s) => say(
                "refusing to update slot {}: it is the running slot",
                &[T(s.as_str())],
            ),
            Error::RunningSlotOnTrial(s) => say(
                "slot {} is still on trial; wait until it is marked successful, or roll back",
                &[T(s.as_str())],
            ),
            Error::RunningSlotWillNotBoot(s) => say(
                "refusing to update: the running slot {} will not boot (priority 0), nothing would",
                &[T(s.as_str())],
            ),
            Error::RollbackTargetWillNotBoot(s) => say(
                "refusing to roll back to slot {}: it will not boot",
                &[T(s.as_str())],
            ),
            Error::CancelLeavesNoBootableSlot(s) => say(
                "refusing to cancel: the other slot {} will not boot, nothing would",
                &[T(s.as_str())],
            ),
            Error::GiveUpLeavesNoBootableSlot(s) => say(
                "refusing to give up the slot: the other slot {} will not boot either",
                &[T(s.as_str())],
            ),
            Error::SlotInvalidated(s) => say(
                "refusing to mark slot {} successful: its priority is 0 (invalidated)",
                &[T(s.as_str())],
            ),
            Error::ValueOutOfRange(v) => say("value {} out of range", &[N(u64::from(*v))]),
            Error::LayoutTooLarge { needed, available } => say(
                "layout needs {} bytes but the device has {}",
                &[N(*needed), N(*available)],
            ),
        }
    }
}

/// Hands out `template` as [`Piece::Text`]s with each `{}` replaced by the
/// next of `args`, in order; empty texts are left out, so the pieces are
/// the same as if each had been handed out by hand.
fn say<'a, E>(out: &mut dyn FnMut(Piece<'_, E>), template: &'static str, args: &[Piece<'a, E>]) {
    let mut rest = template;
    let mut args = args.iter();
    loop {
        let hole = rest.as_bytes().windows(2).position(|w| w == b"{}");
        let text = rest.get(..hole.unwrap_or(rest.len())).unwrap_or(rest);
        if !text.is_empty() {
            out(Piece::Text(text));
        }
        let Some(tail) = hole.and_then(|i| rest.get(i + 2..)) else {
            return;
        };
        // `Piece` is `Copy` only when `E` is; its fields always are.
        match args.next() {
            Some(Piece::Text(t)) => out(Piece::Text(t)),
            Some(Piece::Number(n)) => out(Piece::Number(*n)),
            Some(Piece::Source(e)) => out(Piece::Source(e)),
            None => {}
        }
        rest = tail;
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut r = Ok(());
        self.describe(&mut |p| {
            if r.is_ok() {
                r = match p {
                    Piece::Text(t) => f.write_str(t),
                    Piece::Number(n) => write!(f, "{n}"),
                    Piece::Source(s) => write!(f, "{s}"),
                };
            }
        });
        r
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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    /// Every message, word for word: `describe` is the only place they are
    /// written, so this pins what the agent, osctl and init print.
    #[test]
    fn every_message_in_its_words() {
        type E = Error<&'static str>;
        let cases: [(E, &str); 22] = [
            (
                Error::Io {
                    op: IoOp::Read,
                    offset: 512,
                    source: "EIO",
                },
                "block device read at byte 512 failed: EIO",
            ),
            (
                Error::Io {
                    op: IoOp::Size,
                    offset: 0,
                    source: "x",
                },
                "block device size query at byte 0 failed: x",
            ),
            (
                Error::Io {
                    op: IoOp::Flush,
                    offset: 0,
                    source: "y",
                },
                "block device flush at byte 0 failed: y",
            ),
            (
                Error::Io {
                    op: IoOp::Write,
                    offset: u64::MAX,
                    source: "z",
                },
                "block device write at byte 18446744073709551615 failed: z",
            ),
            (
                Error::UnsupportedSectorSize(4096),
                "4096-byte sectors are not supported (only 512)",
            ),
            (
                Error::DeviceTooSmall { bytes: 1024 },
                "device too small (1024 bytes)",
            ),
            (Error::NoProtectiveMbr, "no protective MBR in sector 0"),
            (
                Error::NoValidGpt {
                    primary: Check::HeaderCrc,
                    backup: Check::Signature,
                },
                "no valid GPT: primary header: header CRC32 mismatch; backup header: signature is not \"EFI PART\"",
            ),
            (
                Error::MissingPartition(Part::State),
                "no partition named MATIC_STATE",
            ),
            (
                Error::DuplicatePartition(Part::RootA),
                "more than one partition named MATIC_ROOT_A",
            ),
            (
                Error::PartitionOutOfRange(Part::RootB),
                "partition MATIC_ROOT_B lies outside the usable range",
            ),
            (
                Error::PartitionsOverlap {
                    part: Part::RootA,
                    number: 3,
                    other: Some(Part::RootB),
                },
                "partition MATIC_ROOT_A overlaps partition 3 (MATIC_ROOT_B)",
            ),
            (
                Error::PartitionsOverlap {
                    part: Part::RootB,
                    number: 5,
                    other: None,
                },
                "partition MATIC_ROOT_B overlaps partition 5",
            ),
            (Error::NoBootableSlot, "no slot will boot"),
            (
                Error::UpdateTargetIsRunning(Slot::A),
                "refusing to update slot A: it is the running slot",
            ),
            (
                Error::RunningSlotOnTrial(Slot::B),
                "slot B is still on trial; wait until it is marked successful, or roll back",
            ),
            (
                Error::RunningSlotWillNotBoot(Slot::A),
                "refusing to update: the running slot A will not boot (priority 0), nothing would",
            ),
            (
                Error::RollbackTargetWillNotBoot(Slot::B),
                "refusing to roll back to slot B: it will not boot",
            ),
            (
                Error::CancelLeavesNoBootableSlot(Slot::A),
                "refusing to cancel: the other slot A will not boot, nothing would",
            ),
            (
                Error::GiveUpLeavesNoBootableSlot(Slot::B),
                "refusing to give up the slot: the other slot B will not boot either",
            ),
            (
                Error::SlotInvalidated(Slot::A),
                "refusing to mark slot A successful: its priority is 0 (invalidated)",
            ),
            (
                Error::LayoutTooLarge {
                    needed: 10,
                    available: 9,
                },
                "layout needs 10 bytes but the device has 9",
            ),
        ];
        for (e, want) in &cases {
            assert_eq!(e.to_string(), *want);
            // The pieces, joined by hand, are the same text.
            let mut joined = String::new();
            e.describe(&mut |p| match p {
                Piece::Text(t) => joined.push_str(t),
                Piece::Number(n) => joined.push_str(&n.to_string()),
                Piece::Source(s) => joined.push_str(s),
            });
            assert_eq!(joined, *want);
        }
        assert_eq!(
            Error::<&str>::ValueOutOfRange(16).to_string(),
            "value 16 out of range"
        );
        let checks: Vec<String> = [Check::MyLba, Check::BackupNotAtEnd]
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            checks,
            [
                "my_lba is not where the header is",
                "backup header is not at the last LBA"
            ]
        );
    }

    /// The templates hand out the same pieces as writing each by hand
    /// would: texts between the holes (none empty), then each argument as
    /// itself (a number stays a number, the device's error its own piece).
    #[test]
    fn templates_hand_out_pieces_in_order() {
        use Piece::{Number as N, Source as S, Text as T};
        // Compared as their `Debug`: the pieces borrow from `describe`'s
        // call and cannot be kept.
        let pieces = |e: &Error<&str>| {
            let mut v = Vec::new();
            e.describe(&mut |p| v.push(std::format!("{p:?}")));
            v
        };
        let want =
            |v: &[Piece<'_, &str>]| v.iter().map(|p| std::format!("{p:?}")).collect::<Vec<_>>();
        assert_eq!(
            pieces(&Error::UnsupportedSectorSize(4096)),
            want(&[N(4096), T("-byte sectors are not supported (only 512)")])
        );
        assert_eq!(
            pieces(&Error::Io {
                op: IoOp::Write,
                offset: 512,
                source: "EIO",
            }),
            want(&[
                T("block device "),
                T("write"),
                T(" at byte "),
                N(512),
                T(" failed: "),
                S(&"EIO"),
            ])
        );
        assert_eq!(
            pieces(&Error::NoBootableSlot),
            want(&[T("no slot will boot")])
        );
    }
}
