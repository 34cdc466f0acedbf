//! Writing an image stream into a slot's byte range of the disk, through
//! the install's one open descriptor ([`InstallDisk`]).
//!
//! Direct I/O (`O_DIRECT`, set on that descriptor for the image and cleared
//! again before it goes back to GPT work) in aligned 1 MiB blocks when the
//! disk and the slot offset allow it: the image is not copied through the
//! page cache, the node's cached working set is not evicted for an image it
//! will only read after the reboot, and no gigabyte of dirty pages waits for
//! the final `fsync`. Otherwise (a file system that refuses `O_DIRECT`, an
//! offset that is not 4 KiB-aligned) positioned buffered writes, with
//! writeback started per write and waited for a bounded distance behind,
//! and the written range dropped from the cache. Either way
//! [`SlotWriter::finish`] makes the bytes durable.
//!
//! Never opens the disk (the install did, once), never touches the GPT, and
//! never writes outside the consecutive range it was started at.
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::OFlags;

use crate::slots::{InstallDisk, SlotError};
use crate::sys;

/// Alignment O_DIRECT needs of buffer address, file offset and length: the
/// largest logical block size in use (4Kn disks); 512-byte disks accept it.
const DIRECT_ALIGN: usize = 4096;
/// Bytes per direct write.
const DIRECT_BLOCK: usize = 1 << 20;
/// Buffered mode: written bytes allowed to stay dirty before the writer
/// waits for older ones, so memory and the final `fsync` stay bounded.
const WRITEBACK_LAG: u64 = 32 << 20;

/// Streams bytes to consecutive offsets of one file or block device.
pub struct SlotWriter {
    disk: InstallDisk,
    /// `Some` while `O_DIRECT` is set on the descriptor: the block being
    /// filled.
    direct: Option<AlignedBlock>,
    /// Disk offset of the next byte to write (direct mode: of the start of
    /// the block being filled).
    pos: u64,
    /// Buffered writes: everything before it is on the device and uncached.
    settled: u64,
    lag: u64,
}

/// A [`DIRECT_BLOCK`]-sized buffer at a [`DIRECT_ALIGN`]ed address, carved
/// out of a slightly larger `Vec` (no allocator tricks, no `unsafe`).
struct AlignedBlock {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBlock {
    fn new() -> Option<Self> {
        let storage = vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        // align_offset may decline (usize::MAX); then there is no direct mode.
        (start <= DIRECT_ALIGN).then_some(Self {
            storage,
            start,
            len: 0,
        })
    }
    /// Copies as much of `data` as fits; returns how much.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = (DIRECT_BLOCK - self.len).min(data.len());
        let at = self.start + self.len;
        self.storage[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

/// Sets or clears `O_DIRECT` on the install's descriptor.
fn set_direct(disk: &InstallDisk, on: bool) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(disk.file())?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(disk.file(), flags)?;
    Ok(())
}

impl SlotWriter {
    /// Writes through `disk` from `offset`, with direct I/O when the file
    /// system and the offset allow it.
    pub fn new(disk: InstallDisk, offset: u64) -> Self {
        let mut w = Self::buffered(disk, offset, WRITEBACK_LAG);
        if offset.is_multiple_of(DIRECT_ALIGN as u64)
            && let Some(block) = AlignedBlock::new()
        {
            match set_direct(&w.disk, true) {
                Ok(()) => w.direct = Some(block),
                Err(e) => eprintln!(
                    "matic-agent: install: {} refuses O_DIRECT ({e}); writing through the page cache",
                    w.disk.path().display()
                ),
            }
        }
        w
    }

    /// Writes through `disk` from `offset`, buffered, keeping at most `lag`
    /// written bytes dirty.
    pub fn buffered(disk: InstallDisk, offset: u64, lag: u64) -> Self {
        Self {
            disk,
            direct: None,
            pos: offset,
            settled: offset,
            lag,
        }
    }

    /// The file or device written.
    pub fn path(&self) -> &Path {
        self.disk.path()
    }

    /// Whether writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Appends `data` at the current position.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), SlotError> {
        let Some(block) = self.direct.as_mut() else {
            return self.write_buffered(data);
        };
        while !data.is_empty() {
            data = &data[block.fill(data)..];
            if block.len == DIRECT_BLOCK {
                write_direct(&self.disk, block, &mut self.pos)?;
            }
        }
        Ok(())
    }

    /// Writes the last partial block (its aligned part direct, the rest
    /// buffered, `O_DIRECT` cleared again), syncs, drops what went through
    /// the cache, and hands the descriptor back for the install's last GPT
    /// step.
    pub fn finish(mut self) -> Result<InstallDisk, SlotError> {
        if let Some(mut block) = self.direct.take() {
            let filled = block.len;
            let aligned = filled / DIRECT_ALIGN * DIRECT_ALIGN;
            block.len = aligned;
            write_direct(&self.disk, &mut block, &mut self.pos)?;
            set_direct(&self.disk, false)
                .map_err(|e| io(self.disk.path(), "clearing O_DIRECT on", e))?;
            // Everything before the tail is on the device, not in the cache.
            self.settled = self.pos;
            let at = block.start + aligned;
            self.write_buffered(&block.storage[at..block.start + filled])?;
        }
        self.disk
            .file()
            .sync_all()
            .map_err(|e| io(self.disk.path(), "syncing", e))?;
        self.drop_cached(self.settled, self.pos - self.settled);
        Ok(self.disk)
    }

    fn write_buffered(&mut self, data: &[u8]) -> Result<(), SlotError> {
        if data.is_empty() {
            return Ok(());
        }
        let len = data.len() as u64;
        let (file, path) = (self.disk.file(), self.disk.path());
        file.write_all_at(data, self.pos)
            .map_err(|e| io(path, "writing image", e))?;
        sys::start_writeback(file, self.pos, len).map_err(|e| io(path, "starting writeback", e))?;
        self.pos += len;
        if self.pos - self.settled >= 2 * self.lag {
            let upto = self.pos - self.lag;
            sys::wait_writeback(file, self.settled, upto - self.settled)
                .map_err(|e| io(path, "writing back image", e))?;
            self.drop_cached(self.settled, upto - self.settled);
            self.settled = upto;
        }
        Ok(())
    }

    /// Drops written-back pages from the page cache: the running system's
    /// cache is worth more than an image it next reads at boot. Advice only,
    /// so a failure is not an install failure.
    fn drop_cached(&self, offset: u64, len: u64) {
        if let Some(len) = NonZeroU64::new(len) {
            let _ = rustix::fs::fadvise(
                self.disk.file(),
                offset,
                Some(len),
                rustix::fs::Advice::DontNeed,
            );
        }
    }
}

/// Writes `block` at `*pos` through `disk` (`O_DIRECT` set) and advances
/// `*pos` past it.
fn write_direct(
    disk: &InstallDisk,
    block: &mut AlignedBlock,
    pos: &mut u64,
) -> Result<(), SlotError> {
    disk.file()
        .write_all_at(block.filled(), *pos)
        .map_err(|e| io(disk.path(), "writing image", e))?;
    *pos += block.len as u64;
    block.len = 0;
    Ok(())
}

fn io(path: &Path, op: &'static str, source: std::io::Error) -> SlotError {
    SlotError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::path::PathBuf;

    struct Scratch(PathBuf);
    impl Scratch {
        /// A zero-filled disk file under `dir`.
        fn new(dir: &Path, name: &str, len: u64) -> Self {
            let d = dir.join(format!("matic-slot-writer-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            let p = d.join("disk");
            let f = File::create(&p).unwrap();
            f.set_len(len).unwrap();
            Self(p)
        }
        fn read(&self, offset: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0u8; len];
            File::open(&self.0)
                .unwrap()
                .read_exact_at(&mut v, offset)
                .unwrap();
            v
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn image(len: usize) -> Vec<u8> {
        (0..len as u32).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// Writes `img` in uneven pieces and checks the bytes around and at
    /// `offset`; returns whether the writer ran direct.
    fn round_trip(w: SlotWriter, disk: &Scratch, offset: u64, img: &[u8], piece: usize) -> bool {
        let mut w = w;
        let direct = w.is_direct();
        for p in img.chunks(piece) {
            w.write(p).unwrap();
        }
        let back = w.finish().unwrap();
        assert!(
            rustix::fs::fcntl_getfl(back.file())
                .unwrap()
                .intersection(OFlags::DIRECT)
                .is_empty(),
            "O_DIRECT still set when the descriptor goes back to GPT work"
        );
        assert!(
            disk.read(offset, img.len()) == img,
            "slot bytes differ from the image"
        );
        let before = disk.read(0, offset as usize);
        assert!(
            before.iter().all(|&b| b == 0),
            "bytes before the slot were touched"
        );
        let after = disk.read(offset + img.len() as u64, 8192);
        assert!(
            after.iter().all(|&b| b == 0),
            "bytes after the image were touched"
        );
        direct
    }

    /// On a disk-backed file system the writer goes direct, including an
    /// image whose length is not a multiple of the block or the alignment.
    #[test]
    fn direct_writes_land_exactly_with_an_unaligned_tail() {
        let dir = Path::new("/var/tmp");
        let on_tmpfs = rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == libc::TMPFS_MAGIC);
        let disk = Scratch::new(dir, "direct", 8 << 20);
        let offset = 1 << 20;
        let img = image(3 * DIRECT_BLOCK + 12_345);
        let w = SlotWriter::new(InstallDisk::open(&disk.0).unwrap(), offset);
        let direct = round_trip(w, &disk, offset, &img, 300_001);
        assert!(
            direct || on_tmpfs,
            "expected O_DIRECT on /var/tmp (not tmpfs)"
        );
    }

    /// An offset O_DIRECT cannot use falls back to buffered writes.
    #[test]
    fn unaligned_offset_writes_buffered() {
        let disk = Scratch::new(&std::env::temp_dir(), "unaligned", 8 << 20);
        let offset = 12_345;
        let w = SlotWriter::new(InstallDisk::open(&disk.0).unwrap(), offset);
        assert!(!w.is_direct());
        round_trip(w, &disk, offset, &image(2_000_000), 65_537);
    }

    /// Buffered mode with a small lag, so waiting for and dropping written
    /// ranges happens many times mid-stream.
    #[test]
    fn buffered_writes_with_bounded_writeback() {
        let disk = Scratch::new(&std::env::temp_dir(), "buffered", 8 << 20);
        let offset = 4096;
        let w = SlotWriter::buffered(InstallDisk::open(&disk.0).unwrap(), offset, 100_000);
        round_trip(w, &disk, offset, &image(3_000_000), 40_001);
    }
}
