//! The block-device abstraction: byte-offset reads and writes, flush, size.
//!
//! Implemented here for `[u8]` (an in-memory disk, in `no_std` too), for
//! `&mut T`, and, with the `std` feature, for [`std::fs::File`]. Init can
//! implement it over rustix in a few lines.
//!
//! Knows nothing of GPTs or slots, and never returns a short transfer: an
//! implementation moves all of a buffer or fails.

use core::fmt;

/// The only logical sector size this crate reads and writes.
pub const SECTOR_SIZE: u64 = 512;

/// A disk addressed in bytes. Reads and writes are whole (no short transfers).
pub trait BlockDevice {
    /// The device's own error.
    type Error: core::fmt::Debug;

    /// Fills `buf` from byte `offset`; fails rather than returning short.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Writes all of `buf` at byte `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), Self::Error>;

    /// Makes every completed write durable (fsync for files and block devices).
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// The device's size in bytes.
    fn size(&mut self) -> Result<u64, Self::Error>;

    /// The device's logical sector size. Defaults to 512; a block-device
    /// implementation should return the kernel's `BLKSSZGET` value so that
    /// 4096-byte-sector disks are refused clearly.
    fn sector_size(&mut self) -> Result<u32, Self::Error> {
        Ok(SECTOR_SIZE as u32)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    type Error = T::Error;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), Self::Error> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush()
    }
    fn size(&mut self) -> Result<u64, Self::Error> {
        (**self).size()
    }
    fn sector_size(&mut self) -> Result<u32, Self::Error> {
        (**self).sector_size()
    }
}

/// An access beyond the end of an in-memory (`[u8]`) device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Byte offset of the access.
    pub offset: u64,
    /// Its length.
    pub len: usize,
    /// The device's size.
    pub size: u64,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {} is beyond the end of a {}-byte device",
            self.len, self.offset, self.size
        )
    }
}

impl core::error::Error for OutOfBounds {}

impl BlockDevice for [u8] {
    type Error = OutOfBounds;

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        let r = slice_range(self.len(), offset, buf.len())?;
        buf.copy_from_slice(&self[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), OutOfBounds> {
        let r = slice_range(self.len(), offset, buf.len())?;
        self[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutOfBounds> {
        Ok(())
    }

    fn size(&mut self) -> Result<u64, OutOfBounds> {
        Ok(self.len() as u64)
    }
}

fn slice_range(
    size: usize,
    offset: u64,
    len: usize,
) -> Result<core::ops::Range<usize>, OutOfBounds> {
    let err = OutOfBounds {
        offset,
        len,
        size: size as u64,
    };
    let start = usize::try_from(offset).map_err(|_| err)?;
    let end = start.checked_add(len).ok_or(err)?;
    if end > size {
        return Err(err);
    }
    Ok(start..end)
}

#[cfg(feature = "std")]
mod file {
    use super::BlockDevice;
    use std::fs::File;
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;

    /// A regular file (disk image) or a block device node. `size` seeks to
    /// the end because `metadata().len()` is 0 for block devices.
    impl BlockDevice for File {
        type Error = std::io::Error;

        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.read_exact_at(buf, offset)
        }

        fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
            self.write_all_at(buf, offset)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.sync_all()
        }

        fn size(&mut self) -> std::io::Result<u64> {
            self.seek(SeekFrom::End(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_device_bounds() {
        let mut mem = [0u8; 1024];
        let dev: &mut [u8] = &mut mem;
        dev.write_at(1000, &[1; 24]).unwrap();
        let mut buf = [0u8; 24];
        dev.read_at(1000, &mut buf).unwrap();
        assert_eq!(buf, [1; 24]);
        assert_eq!(
            dev.write_at(1001, &[1; 24]),
            Err(OutOfBounds {
                offset: 1001,
                len: 24,
                size: 1024
            })
        );
        assert!(dev.read_at(u64::MAX, &mut buf).is_err());
        assert_eq!(dev.size(), Ok(1024));
    }
}
