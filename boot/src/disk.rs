//! [`Disk`]: a block device plus its GPT, held in memory.
//!
//! `open` reads and validates the table (primary first, the backup when the
//! primary fails; one copy is read by [`crate::load`]); the lookups read the
//! in-memory copy; `write` puts it back, backup first, so a write torn at
//! any point leaves either the old or the new table readable. `write` is
//! the only code in the crate (besides `create`) that writes to the device.
//!
//! Never decides a slot's state: the transitions are in
//! [`crate::transitions`], and the raw attribute setter they use is
//! crate-private.

use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::error::{Check, Error, IoOp, Which};
use crate::gpt::MAX_ENTRIES_BYTES;
use crate::gpt::entry::Entry;
use crate::gpt::header::{self, Header};
use crate::gpt::mbr;
use crate::guid::Guid;
use crate::load::{check_sector_size, load};
use crate::slot::{self, BootStatus, Part, Slot, SlotAttrs};

/// One partition's place on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1-based GPT entry number: the `N` of `/dev/vdaN`.
    pub number: u32,
    /// First LBA (inclusive, 512-byte sectors).
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID (`PARTUUID`).
    pub unique_guid: Guid,
    /// The raw 64-bit attribute field.
    pub attributes: u64,
}

impl Partition {
    /// Byte offset of the first byte.
    pub fn start(&self) -> u64 {
        self.first_lba * SECTOR_SIZE
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        (self.last_lba - self.first_lba + 1) * SECTOR_SIZE
    }

    /// Byte offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.start() + self.size()
    }
}

/// What `open` found for each header: `Ok` or the first check it failed.
/// After a successful `write` both are `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The primary header and its entries.
    pub primary: Result<(), Check>,
    /// The backup header and its entries.
    pub backup: Result<(), Check>,
}

/// A MaticOS disk: the device and its partition table, staged in memory.
///
/// Holds one 16 KiB entry array; nothing allocates.
pub struct Disk<D: BlockDevice> {
    dev: D,
    /// Fields shared by both headers (disk GUID, usable range, entry geometry).
    shape: Header,
    backup_lba: u64,
    primary_entries_lba: u64,
    backup_entries_lba: u64,
    entries: [u8; MAX_ENTRIES_BYTES],
    roots: [usize; 2],
    health: Health,
}

type Res<T, D> = Result<T, Error<<D as BlockDevice>::Error>>;

impl<D: BlockDevice> Disk<D> {
    /// Reads and validates the GPT of `dev`: the primary header and entries,
    /// falling back to the backup at the last LBA when the primary fails any
    /// check; then the protective MBR; then that `MATIC_ROOT_A` and
    /// `MATIC_ROOT_B` each exist exactly once within the usable range.
    /// (`ESP` and `MATIC_STATE` are checked when asked for.)
    pub fn open(mut dev: D) -> Res<Self, D> {
        let size = check_sector_size(&mut dev)?;
        let last_lba = size / SECTOR_SIZE - 1;

        let mut entries = [0u8; MAX_ENTRIES_BYTES];
        let primary = load(&mut dev, Which::Primary, 1, last_lba, Some(&mut entries))?;
        let (shape, health, backup_lba, primary_entries_lba, backup_entries_lba) = match primary {
            Ok(p) => {
                let backup = load(&mut dev, Which::Backup, p.alternate_lba, last_lba, None)?;
                // The backup is always (re)written at the last LBA, where a
                // reader looks when the primary is bad (on a grown image
                // `write` moves it there from `alternate_lba`), with its
                // entries right before it: the primary's geometry rules, and
                // the old backup's may differ from it.
                let backup_entries_lba = last_lba - p.entries_sectors();
                let health = Health {
                    primary: Ok(()),
                    backup: match backup {
                        Ok(_) if p.alternate_lba != last_lba => Err(Check::BackupNotAtEnd),
                        b => b.map(|_| ()),
                    },
                };
                (p, health, last_lba, p.entries_lba, backup_entries_lba)
            }
            Err(pc) => {
                // A 4096-byte-sector GPT has its header at byte 4096, not 512.
                if pc == Check::Signature && size >= 2 * 4096 {
                    let mut sig = [0u8; 8];
                    dev.read_at(4096, &mut sig)
                        .map_err(Error::io(IoOp::Read, 4096))?;
                    if sig == header::SIGNATURE {
                        return Err(Error::UnsupportedSectorSize(4096));
                    }
                }
                let backup = load(
                    &mut dev,
                    Which::Backup,
                    last_lba,
                    last_lba,
                    Some(&mut entries),
                )?;
                match backup {
                    Ok(b) => {
                        let health = Health {
                            primary: Err(pc),
                            backup: Ok(()),
                        };
                        (b, health, last_lba, 2, b.entries_lba)
                    }
                    Err(bc) => {
                        return Err(Error::NoValidGpt {
                            primary: pc,
                            backup: bc,
                        });
                    }
                }
            }
        };

        let mut mbr = [0u8; 512];
        dev.read_at(0, &mut mbr).map_err(Error::io(IoOp::Read, 0))?;
        if !mbr::is_protective(&mbr) {
            return Err(Error::NoProtectiveMbr);
        }

        let mut disk = Disk {
            dev,
            shape,
            backup_lba,
            primary_entries_lba,
            backup_entries_lba,
            entries,
            roots: [0, 0],
            health,
        };
        disk.roots = [disk.find(Part::RootA)?.0, disk.find(Part::RootB)?.0];
        disk.check_roots_do_not_overlap()?;
        Ok(disk)
    }

    /// Refuses a table in which a root slot shares a sector with any other
    /// used entry (the other slot, `MATIC_STATE`, the ESP, any partition
    /// another tool added): an image written into that slot, bounded by its
    /// own range, would overwrite the other partition — possibly the running
    /// slot. Entries with reversed LBAs describe no sectors and are skipped.
    fn check_roots_do_not_overlap(&self) -> Res<(), D> {
        for (slot, &ri) in Slot::ALL.iter().zip(&self.roots) {
            let root = self.entry(ri).expect("validated by find");
            for i in 0..self.entry_count() {
                let e = self.entry(i).expect("index below entry_count");
                if i == ri || !e.is_used() || e.first_lba > e.last_lba {
                    continue;
                }
                if e.first_lba <= root.last_lba && root.first_lba <= e.last_lba {
                    let other = Part::ALL.into_iter().find(|p| e.name_is(p.name()));
                    return Err(Error::PartitionsOverlap {
                        part: slot.part(),
                        number: i as u32 + 1,
                        other,
                    });
                }
            }
        }
        Ok(())
    }

    /// Assembles a `Disk` from a freshly built table (used by `create`).
    pub(crate) fn from_parts(
        dev: D,
        shape: Header,
        last_lba: u64,
        entries: [u8; MAX_ENTRIES_BYTES],
    ) -> Res<Self, D> {
        let sectors = shape.entries_sectors();
        let mut disk = Disk {
            dev,
            shape,
            backup_lba: last_lba,
            primary_entries_lba: 2,
            backup_entries_lba: last_lba - sectors,
            entries,
            roots: [0, 0],
            // Nothing valid is on the device yet; the order does not matter.
            health: Health {
                primary: Ok(()),
                backup: Err(Check::Signature),
            },
        };
        disk.roots = [disk.find(Part::RootA)?.0, disk.find(Part::RootB)?.0];
        Ok(disk)
    }

    /// What `open` found for each header (both `Ok` after a `write`).
    pub fn health(&self) -> Health {
        self.health
    }

    /// The disk GUID.
    pub fn disk_guid(&self) -> Guid {
        self.shape.disk_guid
    }

    /// Number of entries in the partition entry array.
    pub fn entry_count(&self) -> usize {
        self.shape.entry_count as usize
    }

    /// Entry `index` (0-based), used or not; `None` beyond the array.
    pub fn entry(&self, index: usize) -> Option<Entry> {
        if index >= self.entry_count() {
            return None;
        }
        let es = self.shape.entry_size as usize;
        Some(Entry::parse(&self.entries[index * es..(index + 1) * es]))
    }

    fn set_entry_attributes(&mut self, index: usize, attributes: u64) {
        let off = index * self.shape.entry_size as usize + 48;
        self.entries[off..off + 8].copy_from_slice(&attributes.to_le_bytes());
    }

    fn to_partition(index: usize, e: &Entry) -> Partition {
        Partition {
            number: index as u32 + 1,
            first_lba: e.first_lba,
            last_lba: e.last_lba,
            type_guid: e.type_guid,
            unique_guid: e.unique_guid,
            attributes: e.attributes,
        }
    }

    fn find(&self, part: Part) -> Res<(usize, Partition), D> {
        let mut found = None;
        for i in 0..self.entry_count() {
            let e = self.entry(i).expect("index below entry_count");
            if e.is_used() && e.name_is(part.name()) {
                if found.is_some() {
                    return Err(Error::DuplicatePartition(part));
                }
                found = Some((i, Self::to_partition(i, &e)));
            }
        }
        let (i, p) = found.ok_or(Error::MissingPartition(part))?;
        if p.first_lba > p.last_lba
            || p.first_lba < self.shape.first_usable_lba
            || p.last_lba > self.shape.last_usable_lba
        {
            return Err(Error::PartitionOutOfRange(part));
        }
        Ok((i, p))
    }

    /// The partition named `part.name()`: missing, duplicated or out of the
    /// usable range is an error naming it.
    pub fn partition(&self, part: Part) -> Res<Partition, D> {
        self.find(part).map(|(_, p)| p)
    }

    /// The first used entry named `name` (any name, unchecked range).
    pub fn find_partition(&self, name: &str) -> Option<Partition> {
        (0..self.entry_count()).find_map(|i| {
            let e = self.entry(i)?;
            (e.is_used() && e.name_is(name)).then(|| Self::to_partition(i, &e))
        })
    }

    /// The root partition of `slot` (validated by `open`, so infallible).
    pub fn slot_partition(&self, slot: Slot) -> Partition {
        let i = self.roots[slot as usize];
        Self::to_partition(i, &self.entry(i).expect("validated at open"))
    }

    /// `MATIC_STATE`.
    pub fn state_partition(&self) -> Res<Partition, D> {
        self.partition(Part::State)
    }

    /// `ESP`.
    pub fn esp_partition(&self) -> Res<Partition, D> {
        self.partition(Part::Esp)
    }

    /// The slot's boot attributes.
    pub fn slot_attrs(&self, slot: Slot) -> SlotAttrs {
        SlotAttrs::from_attributes(self.slot_partition(slot).attributes)
    }

    /// Sets the slot's boot attributes, keeping the entry's other attribute
    /// bits. Memory only. Crate-private: every change of slot state is a
    /// transition (`transitions.rs`), so the slot rules cannot be skipped.
    pub(crate) fn set_slot_attrs(&mut self, slot: Slot, attrs: SlotAttrs) {
        let i = self.roots[slot as usize];
        let raw = attrs.apply_to(self.slot_partition(slot).attributes);
        self.set_entry_attributes(i, raw);
    }

    /// Both slots and what the next boot would choose. Changes nothing.
    pub fn status(&self) -> BootStatus {
        let (a, b) = (self.slot_attrs(Slot::A), self.slot_attrs(Slot::B));
        BootStatus {
            a,
            b,
            next: slot::pick(a, b),
        }
    }

    fn header(&self, which: Which, entries_crc: u32) -> Header {
        let (my, alt, ent) = match which {
            Which::Primary => (1, self.backup_lba, self.primary_entries_lba),
            Which::Backup => (self.backup_lba, 1, self.backup_entries_lba),
        };
        Header {
            my_lba: my,
            alternate_lba: alt,
            entries_lba: ent,
            entries_crc,
            ..self.shape
        }
    }

    /// Writes the staged table: the backup entries and header, flush, then
    /// the primary entries and header, flush. A torn write leaves a primary
    /// that is intact (old table) or fails its CRC while the backup is
    /// complete (new table). Also repairs whichever copy `open` found bad.
    ///
    /// When `open` found the primary bad (the table came from the backup),
    /// the order is reversed — primary first — so that the one good old copy
    /// survives until a good new copy exists.
    pub fn write(&mut self) -> Res<(), D> {
        let n = self.shape.entries_bytes();
        let crc = crate::crc32::hash(&self.entries[..n]);
        let order = if self.health.primary.is_ok() {
            [Which::Backup, Which::Primary]
        } else {
            [Which::Primary, Which::Backup]
        };
        for which in order {
            let h = self.header(which, crc);
            let off = h.entries_lba * SECTOR_SIZE;
            self.dev
                .write_at(off, &self.entries[..n])
                .map_err(Error::io(IoOp::Write, off))?;
            let off = h.my_lba * SECTOR_SIZE;
            self.dev
                .write_at(off, &h.serialize())
                .map_err(Error::io(IoOp::Write, off))?;
            self.dev.flush().map_err(Error::io(IoOp::Flush, 0))?;
        }
        self.health = Health {
            primary: Ok(()),
            backup: Ok(()),
        };
        Ok(())
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (e.g. to write an image into a partition).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }
}
