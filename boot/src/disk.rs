//! [`Disk`]: a block device plus its GPT, held in memory.
//!
//! `open` reads and validates the table (primary first, the backup when the
//! primary fails); the slot transitions change only the in-memory copy;
//! `write` puts it back, backup first, so a write torn at any point leaves
//! either the old or the new table readable.

use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::error::{Check, Error, IoOp, Which};
use crate::gpt::MAX_ENTRIES_BYTES;
use crate::gpt::entry::Entry;
use crate::gpt::header::{self, Header};
use crate::gpt::mbr;
use crate::guid::Guid;
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

/// Reads the header at `lba` and its entry array. With `buf`, the array is
/// kept there; without, it is streamed through the CRC (to check the other
/// copy without a second 16 KiB buffer). The outer error is I/O, the inner
/// the failed check.
fn load<D: BlockDevice>(
    dev: &mut D,
    which: Which,
    lba: u64,
    last_lba: u64,
    buf: Option<&mut [u8; MAX_ENTRIES_BYTES]>,
) -> Res<Result<Header, Check>, D> {
    let mut sector = [0u8; 512];
    let off = lba * SECTOR_SIZE;
    dev.read_at(off, &mut sector)
        .map_err(Error::io(IoOp::Read, off))?;
    let hdr = match Header::parse(&sector, which, lba, last_lba) {
        Ok(h) => h,
        Err(c) => return Ok(Err(c)),
    };
    let n = hdr.entries_bytes();
    let off = hdr.entries_lba * SECTOR_SIZE;
    let crc = match buf {
        Some(buf) => {
            dev.read_at(off, &mut buf[..n])
                .map_err(Error::io(IoOp::Read, off))?;
            buf[n..].fill(0);
            crate::crc32::hash(&buf[..n])
        }
        None => {
            let mut h = crate::crc32::Hasher::new();
            let mut done = 0;
            while done < n {
                let len = (n - done).min(512);
                let o = off + done as u64;
                dev.read_at(o, &mut sector[..len])
                    .map_err(Error::io(IoOp::Read, o))?;
                h.update(&sector[..len]);
                done += len;
            }
            h.finalize()
        }
    };
    if crc != hdr.entries_crc {
        return Ok(Err(Check::EntriesCrc));
    }
    Ok(Ok(hdr))
}

fn check_sector_size<D: BlockDevice>(dev: &mut D) -> Res<u64, D> {
    let ss = dev.sector_size().map_err(Error::io(IoOp::Size, 0))?;
    if u64::from(ss) != SECTOR_SIZE {
        return Err(Error::UnsupportedSectorSize(ss));
    }
    let size = dev.size().map_err(Error::io(IoOp::Size, 0))?;
    // MBR, two headers and one sector of entries each at the very least.
    if size < 5 * SECTOR_SIZE {
        return Err(Error::DeviceTooSmall { bytes: size });
    }
    Ok(size)
}

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

    /// Sets the slot's boot attributes, keeping the entry's other attribute bits.
    pub fn set_slot_attrs(&mut self, slot: Slot, attrs: SlotAttrs) {
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

    /// Picks the slot to boot now, as stage 1 of init does on every boot:
    /// first a not-yet-successful slot with no tries left is given up for
    /// good (priority 0); then the bootable slot with the highest priority
    /// (A on a tie) is chosen, and if it has not yet succeeded one of its
    /// tries is spent. Nothing changes when no slot will boot.
    pub fn choose_boot_slot(&mut self) -> Res<Slot, D> {
        let give_up = |s: SlotAttrs| {
            if !s.successful() && s.tries() == 0 {
                s.with_priority(0)
            } else {
                s
            }
        };
        let a = give_up(self.slot_attrs(Slot::A));
        let b = give_up(self.slot_attrs(Slot::B));
        let chosen = slot::pick(a, b).ok_or(Error::NoBootableSlot)?;
        self.set_slot_attrs(Slot::A, a);
        self.set_slot_attrs(Slot::B, b);
        let c = self.slot_attrs(chosen);
        if !c.successful() {
            self.set_slot_attrs(chosen, c.with_tries(c.tries() - 1));
        }
        Ok(chosen)
    }

    /// Sets `slot`'s successful bit (idempotent). Refused for a slot with
    /// priority 0: an invalidated or given-up slot is never resurrected.
    pub fn mark_successful(&mut self, slot: Slot) -> Res<(), D> {
        let s = self.slot_attrs(slot);
        if s.priority() == 0 {
            return Err(Error::SlotInvalidated(slot));
        }
        self.set_slot_attrs(slot, s.with_successful(true));
        Ok(())
    }

    /// Invalidates `target` (P=0, T=0, S=0) before a new image is written to
    /// it. Refused when `target == running`, and when the running slot is not
    /// proven (marked successful and bootable): during a trial boot the
    /// target is the only slot known to work, and invalidating it would leave
    /// nothing to fall back to if the trial fails.
    pub fn begin_update(&mut self, target: Slot, running: Slot) -> Res<(), D> {
        if target == running {
            return Err(Error::UpdateTargetIsRunning(target));
        }
        let r = self.slot_attrs(running);
        if !r.successful() {
            return Err(Error::RunningSlotOnTrial(running));
        }
        if !r.will_boot() {
            return Err(Error::RunningSlotWillNotBoot(running));
        }
        self.set_slot_attrs(target, SlotAttrs::INVALID);
        Ok(())
    }

    /// Makes the freshly written `target` the next boot: P=2, T=`tries`,
    /// S=0; the other slot drops to P=1 so it stays the fallback (an other
    /// slot already at priority 0 stays there). `tries` must be 1–15.
    pub fn finish_update(&mut self, target: Slot, tries: u8) -> Res<(), D> {
        if tries == 0 || tries > SlotAttrs::MAX {
            return Err(Error::ValueOutOfRange(tries));
        }
        let other = self.slot_attrs(!target);
        if other.priority() > 0 {
            self.set_slot_attrs(!target, other.with_priority(1));
        }
        let t = SlotAttrs::new(2, tries, false).expect("checked range");
        self.set_slot_attrs(target, t);
        Ok(())
    }

    /// Abandons an update of `target`: it is invalidated (P=0, T=0, S=0)
    /// whatever stage the update reached. Refused when the other slot will
    /// not boot, since nothing would.
    pub fn cancel_update(&mut self, target: Slot) -> Res<(), D> {
        if !self.slot_attrs(!target).will_boot() {
            return Err(Error::CancelLeavesNoBootableSlot(!target));
        }
        self.set_slot_attrs(target, SlotAttrs::INVALID);
        Ok(())
    }

    /// Stage 1 found `slot`'s *image* unbootable (bad superblock, no
    /// `/sbin/init`): it is invalidated (P=0, T=0, S=0), successful or not,
    /// so the next boot picks the other slot. Refused when the other slot
    /// will not boot: giving up would leave nothing to boot, so the caller
    /// keeps the table as it is and retries instead.
    pub fn give_up(&mut self, slot: Slot) -> Res<(), D> {
        if !self.slot_attrs(!slot).will_boot() {
            return Err(Error::GiveUpLeavesNoBootableSlot(!slot));
        }
        self.set_slot_attrs(slot, SlotAttrs::INVALID);
        Ok(())
    }

    /// Makes the slot that is not `running` the next boot (P=2, the running
    /// slot drops to P=1 if it had a priority, remaining the fallback).
    /// Refused when that slot will not boot. Returns the new next slot.
    pub fn rollback(&mut self, running: Slot) -> Res<Slot, D> {
        let target = !running;
        let t = self.slot_attrs(target);
        if !t.will_boot() {
            return Err(Error::RollbackTargetWillNotBoot(target));
        }
        let r = self.slot_attrs(running);
        self.set_slot_attrs(running, r.with_priority(r.priority().min(1)));
        self.set_slot_attrs(target, t.with_priority(2));
        Ok(target)
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
