//! Test devices and helpers shared by the integration tests: a sparse
//! in-memory disk (so gigabyte-sized layouts cost only their metadata), a
//! device that is cut off after N bytes, and one with a volatile write
//! cache that loses an arbitrary subset of unflushed sectors.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;

use matic_boot::{BlockDevice, Disk, Guid, Layout, Slot, SlotAttrs};

pub const MIB: u64 = 1 << 20;
pub const SECTOR: u64 = 512;

/// A disk of any size that stores only the sectors ever written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sparse {
    pub size: u64,
    pub sectors: BTreeMap<u64, [u8; 512]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevError {
    OutOfRange {
        offset: u64,
        len: usize,
    },
    /// The fault injector stopped the device.
    Cut,
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DevError {}

impl Sparse {
    pub fn new(size: u64) -> Sparse {
        Sparse {
            size,
            sectors: BTreeMap::new(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Sparse {
        let mut s = Sparse::new(bytes.len() as u64);
        s.write_at(0, bytes).unwrap();
        s
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), DevError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DevError::OutOfRange { offset, len }),
        }
    }

    pub fn sector(&self, lba: u64) -> [u8; 512] {
        self.sectors.get(&lba).copied().unwrap_or([0; 512])
    }

    pub fn put_sector(&mut self, lba: u64, data: [u8; 512]) {
        self.sectors.insert(lba, data);
    }

    /// XORs `mask` into the byte at `offset`.
    pub fn flip(&mut self, offset: u64, mask: u8) {
        let mut s = self.sector(offset / SECTOR);
        s[(offset % SECTOR) as usize] ^= mask;
        self.put_sector(offset / SECTOR, s);
    }

    pub fn last_lba(&self) -> u64 {
        self.size / SECTOR - 1
    }
}

impl BlockDevice for Sparse {
    type Error = DevError;

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.check(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let o = offset + done as u64;
            let within = (o % SECTOR) as usize;
            let n = (512 - within).min(buf.len() - done);
            match self.sectors.get(&(o / SECTOR)) {
                Some(s) => buf[done..done + n].copy_from_slice(&s[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DevError> {
        self.check(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let o = offset + done as u64;
            let within = (o % SECTOR) as usize;
            let n = (512 - within).min(buf.len() - done);
            self.sectors.entry(o / SECTOR).or_insert([0; 512])[within..within + n]
                .copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DevError> {
        Ok(())
    }

    fn size(&mut self) -> Result<u64, DevError> {
        Ok(self.size)
    }
}

/// Lets `budget` bytes of writes through (the last write partially), then
/// fails every write and flush, like a machine losing power mid-write on a
/// disk that completes writes in order.
pub struct Cutoff<'a> {
    pub inner: &'a mut Sparse,
    pub budget: u64,
    pub written: u64,
    pub cut: bool,
}

impl<'a> Cutoff<'a> {
    pub fn new(inner: &'a mut Sparse, budget: u64) -> Self {
        Cutoff {
            inner,
            budget,
            written: 0,
            cut: false,
        }
    }
}

impl BlockDevice for Cutoff<'_> {
    type Error = DevError;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DevError> {
        let left = self.budget - self.written;
        if buf.len() as u64 <= left {
            self.written += buf.len() as u64;
            return self.inner.write_at(offset, buf);
        }
        self.inner.write_at(offset, &buf[..left as usize])?;
        self.written = self.budget;
        self.cut = true;
        Err(DevError::Cut)
    }
    fn flush(&mut self) -> Result<(), DevError> {
        if self.cut { Err(DevError::Cut) } else { Ok(()) }
    }
    fn size(&mut self) -> Result<u64, DevError> {
        self.inner.size()
    }
}

/// Counts the bytes a `write()` puts on the device.
pub struct Counter<'a> {
    pub inner: &'a mut Sparse,
    pub written: u64,
    pub flushes: usize,
}

impl BlockDevice for Counter<'_> {
    type Error = DevError;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DevError> {
        self.written += buf.len() as u64;
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DevError> {
        self.flushes += 1;
        Ok(())
    }
    fn size(&mut self) -> Result<u64, DevError> {
        self.inner.size()
    }
}

/// A disk with a volatile write cache: writes are whole 512-byte sectors
/// held in a cache until `flush`. Power fails at flush number `crash_at`
/// (0-based): only the sectors selected by `keep` (one bit per cached
/// sector write, in write order, cycling) reach the medium.
pub struct Cached<'a> {
    pub medium: &'a mut Sparse,
    pub pending: Vec<(u64, [u8; 512])>,
    pub crash_at: usize,
    pub flushes: usize,
    pub keep: Vec<bool>,
    pub crashed: bool,
}

impl BlockDevice for Cached<'_> {
    type Error = DevError;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.medium.read_at(offset, buf)?;
        for (lba, data) in &self.pending {
            for (i, b) in buf.iter_mut().enumerate() {
                let o = offset + i as u64;
                if o / SECTOR == *lba {
                    *b = data[(o % SECTOR) as usize];
                }
            }
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DevError> {
        if self.crashed {
            return Err(DevError::Cut);
        }
        self.medium.check(offset, buf.len())?;
        // Read-modify-write of whole sectors into the cache.
        let first = offset / SECTOR;
        let last = (offset + buf.len() as u64 - 1) / SECTOR;
        for lba in first..=last {
            let mut s = [0u8; 512];
            self.read_at(lba * SECTOR, &mut s)?;
            for (i, b) in s.iter_mut().enumerate() {
                let o = lba * SECTOR + i as u64;
                if o >= offset && o < offset + buf.len() as u64 {
                    *b = buf[(o - offset) as usize];
                }
            }
            self.pending.push((lba, s));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DevError> {
        if self.crashed {
            return Err(DevError::Cut);
        }
        let n = self.flushes;
        self.flushes += 1;
        let pending = std::mem::take(&mut self.pending);
        if n == self.crash_at {
            self.crashed = true;
            for (i, (lba, s)) in pending.into_iter().enumerate() {
                if self.keep.is_empty() || self.keep[i % self.keep.len()] {
                    self.medium.put_sector(lba, s);
                }
            }
            return Err(DevError::Cut);
        }
        for (lba, s) in pending {
            self.medium.put_sector(lba, s);
        }
        Ok(())
    }
    fn size(&mut self) -> Result<u64, DevError> {
        self.medium.size()
    }
}

/// A small layout (1 MiB ESP, 2 MiB slots) for tests.
pub fn small_layout() -> Layout {
    Layout {
        esp_bytes: MIB,
        slot_bytes: 2 * MIB,
        state_bytes: None,
        disk_guid: Guid::parse("6B1E4C2A-9D3F-4E8B-A1C5-0F2D3E4A5B6C").unwrap(),
    }
}

/// A freshly created 16 MiB disk in memory.
pub fn fresh() -> Sparse {
    let mut s = Sparse::new(16 * MIB);
    Disk::create(&mut s, &small_layout()).unwrap();
    s
}

/// A disk where slot A is installed, booted and successful; B is empty.
pub fn running_a() -> Sparse {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    d.finish_update(Slot::A, 3).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    d.mark_successful(Slot::A).unwrap();
    d.write().unwrap();
    s
}

pub fn attrs(p: u8, t: u8, ok: bool) -> SlotAttrs {
    SlotAttrs::new(p, t, ok).unwrap()
}

/// Everything `open` exposes about the table, to compare states exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub disk_guid: Guid,
    pub entries: Vec<matic_boot::gpt::entry::Entry>,
}

pub fn snapshot<D: BlockDevice>(d: &Disk<D>) -> Snapshot {
    Snapshot {
        disk_guid: d.disk_guid(),
        entries: (0..d.entry_count()).map(|i| d.entry(i).unwrap()).collect(),
    }
}

/// Opens `dev`, panicking with the error if it fails.
pub fn read_snapshot(dev: &mut Sparse) -> Snapshot {
    match Disk::open(dev) {
        Ok(d) => snapshot(&d),
        Err(e) => panic!("open failed: {e}"),
    }
}

impl Sparse {
    pub fn read_at_test(&mut self, offset: u64, buf: &mut [u8]) {
        self.read_at(offset, buf).unwrap()
    }
    pub fn write_at_test(&mut self, offset: u64, buf: &[u8]) {
        self.write_at(offset, buf).unwrap()
    }
}

/// Recomputes both headers' entry-array and header CRCs in place, so a
/// deliberate edit of the metadata passes the CRC checks.
pub fn fix_crcs(s: &mut Sparse) {
    for lba in [1, s.last_lba()] {
        let mut h = s.sector(lba);
        let entries_lba = u64::from_le_bytes(h[72..80].try_into().unwrap());
        let n = u32::from_le_bytes(h[80..84].try_into().unwrap()) as usize
            * u32::from_le_bytes(h[84..88].try_into().unwrap()) as usize;
        let mut e = vec![0u8; n];
        s.read_at_test(entries_lba * SECTOR, &mut e);
        h[88..92].copy_from_slice(&crc32fast::hash(&e).to_le_bytes());
        recrc_header(&mut h);
        s.put_sector(lba, h);
    }
}

/// Recomputes a header sector's own CRC32.
pub fn recrc_header(h: &mut [u8; 512]) {
    let size = u32::from_le_bytes(h[12..16].try_into().unwrap()).clamp(92, 512) as usize;
    h[16..20].fill(0);
    let crc = crc32fast::hash(&h[..size]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// Byte offset of entry `index` in the primary array (LBA 2) or the backup
/// array (the 32 sectors before the last LBA), for 128 entries of 128 bytes.
pub fn entry_offset(s: &Sparse, backup: bool, index: u64) -> u64 {
    let base = if backup {
        (s.last_lba() - 32) * SECTOR
    } else {
        2 * SECTOR
    };
    base + index * 128
}

/// Sets entry `index`'s LBA range in both arrays and fixes the CRCs.
pub fn set_entry_range(s: &mut Sparse, index: u64, first: u64, last: u64) {
    for backup in [false, true] {
        let off = entry_offset(s, backup, index) + 32;
        s.write_at_test(off, &first.to_le_bytes());
        s.write_at_test(off + 8, &last.to_le_bytes());
    }
    fix_crcs(s);
}
