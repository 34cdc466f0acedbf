//! Creating a fresh MaticOS disk: protective MBR and a GPT with `ESP`,
//! `MATIC_ROOT_A`, `MATIC_ROOT_B` and `MATIC_STATE`, in that order, each
//! aligned to 1 MiB, so neither the image builder nor the tests need an
//! external partitioner.
//!
//! Never touches an existing table's slot state: `create` overwrites the
//! whole table, and is for image builders and tests, never a running node.

use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::disk::Disk;
use crate::error::{Error, IoOp};
use crate::gpt::MAX_ENTRIES_BYTES;
use crate::gpt::entry::{ENTRY_SIZE, Entry};
use crate::gpt::header::Header;
use crate::gpt::mbr;
use crate::guid::Guid;
use crate::slot::{Part, SlotAttrs};

/// 1 MiB, the alignment of every partition's start and size.
pub const ALIGN: u64 = 1 << 20;
const ALIGN_SECTORS: u64 = ALIGN / SECTOR_SIZE;
/// Entries in the array `create` writes (16 KiB, the UEFI minimum).
pub const ENTRY_COUNT: u32 = 128;

/// Partition sizes and the disk GUID for [`Disk::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// ESP size in bytes (rounded up to 1 MiB, at least 1 MiB).
    pub esp_bytes: u64,
    /// Size of each root slot in bytes (rounded up to 1 MiB, at least 1 MiB).
    pub slot_bytes: u64,
    /// `MATIC_STATE` size; `None` for the rest of the device.
    pub state_bytes: Option<u64>,
    /// The disk GUID. Partition GUIDs are derived from it with
    /// [`Guid::derive`] (index = partition number), because `no_std` has no
    /// RNG: pass random bytes for a unique disk, or fixed bytes for a
    /// reproducible image.
    pub disk_guid: Guid,
}

impl Layout {
    /// Default ESP size: 64 MiB. It holds the loader, a unified kernel
    /// image of ~9.2 MiB, on FAT32, which needs at least 33 MiB.
    pub const DEFAULT_ESP_BYTES: u64 = 64 << 20;
    /// Default root slot size: 256 MiB.
    pub const DEFAULT_SLOT_BYTES: u64 = 256 << 20;

    /// The default sizes (ESP 64 MiB, slots 256 MiB, state the rest).
    pub fn new(disk_guid: Guid) -> Layout {
        Layout {
            esp_bytes: Self::DEFAULT_ESP_BYTES,
            slot_bytes: Self::DEFAULT_SLOT_BYTES,
            state_bytes: None,
            disk_guid,
        }
    }
}

/// Bytes rounded up to whole MiB, in sectors, at least one MiB.
fn aligned_sectors(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGN).max(1).saturating_mul(ALIGN_SECTORS)
}

impl<D: BlockDevice> Disk<D> {
    /// Writes a protective MBR and a fresh GPT with the MaticOS layout to
    /// `dev`, whatever it held, and returns it opened. Both slots start
    /// invalid (P=0, T=0, S=0): the image builder marks slot A bootable once
    /// it has written the image. Refused when the partitions do not fit.
    pub fn create(mut dev: D, layout: &Layout) -> Result<Self, Error<D::Error>> {
        let ss = dev.sector_size().map_err(Error::io(IoOp::Size, 0))?;
        if u64::from(ss) != SECTOR_SIZE {
            return Err(Error::UnsupportedSectorSize(ss));
        }
        let size = dev.size().map_err(Error::io(IoOp::Size, 0))?;
        let total = size / SECTOR_SIZE;
        let entry_sectors = (u64::from(ENTRY_COUNT) * ENTRY_SIZE as u64) / SECTOR_SIZE;
        // MBR + header + entries at the start, entries + header at the end.
        let metadata_end = 2 + entry_sectors;
        if total < metadata_end * 2 {
            return Err(Error::DeviceTooSmall { bytes: size });
        }
        let last_lba = total - 1;
        let last_usable = last_lba - 1 - entry_sectors;

        let esp = aligned_sectors(layout.esp_bytes);
        let slot = aligned_sectors(layout.slot_bytes);
        let state_min = match layout.state_bytes {
            Some(b) => aligned_sectors(b),
            None => ALIGN_SECTORS,
        };
        let mut starts = [0u64; 4];
        let mut lens = [esp, slot, slot, state_min];
        let mut at = ALIGN_SECTORS;
        for (s, l) in starts.iter_mut().zip(lens) {
            *s = at;
            at = at.saturating_add(l);
        }
        // `at` is now one past the state partition at its minimum size.
        let needed_sectors = at.saturating_add(1 + entry_sectors);
        if needed_sectors > total {
            return Err(Error::LayoutTooLarge {
                needed: needed_sectors.saturating_mul(SECTOR_SIZE),
                available: size,
            });
        }
        if layout.state_bytes.is_none() {
            // The rest, ending on a 1 MiB boundary too (partitioning tools
            // warn about unaligned ends; the slack is under 1 MiB).
            let end = (last_usable + 1) / ALIGN_SECTORS * ALIGN_SECTORS;
            lens[3] = end - starts[3];
        }

        let mut entries = [0u8; MAX_ENTRIES_BYTES];
        for (i, part) in Part::ALL.iter().enumerate() {
            let e = Entry {
                type_guid: part.type_guid(),
                unique_guid: Guid::derive(&layout.disk_guid, i as u8 + 1),
                first_lba: starts[i],
                last_lba: starts[i] + lens[i] - 1,
                attributes: SlotAttrs::INVALID.apply_to(0),
                name: Entry::encode_name(part.name()).expect("names are short"),
            };
            e.write(&mut entries[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE]);
        }
        let shape = Header {
            my_lba: 1,
            alternate_lba: last_lba,
            first_usable_lba: metadata_end,
            last_usable_lba: last_usable,
            disk_guid: layout.disk_guid,
            entries_lba: 2,
            entry_count: ENTRY_COUNT,
            entry_size: ENTRY_SIZE as u32,
            entries_crc: 0,
        };

        dev.write_at(0, &mbr::protective(total))
            .map_err(Error::io(IoOp::Write, 0))?;
        let mut disk = Disk::from_parts(dev, shape, last_lba, entries)?;
        disk.write()?;
        Ok(disk)
    }
}
