//! Reading one copy of the GPT off a device: its header and entry array,
//! checked (every header check, then the entries' CRC), and the device's
//! sector size and minimum size.
//!
//! Owns the I/O of *reading* only; choosing between the primary and the
//! backup, and everything about the table's content, is [`crate::disk`]'s.
//! Never writes to the device.

use crate::device::{BlockDevice, SECTOR_SIZE};
use crate::error::{Check, Error, IoOp, Which};
use crate::gpt::MAX_ENTRIES_BYTES;
use crate::gpt::header::Header;

type Res<T, D> = Result<T, Error<<D as BlockDevice>::Error>>;

/// Reads the header at `lba` and its entry array. With `buf`, the array is
/// kept there; without, it is streamed through the CRC (to check the other
/// copy without a second 16 KiB buffer). The outer error is I/O, the inner
/// the failed check.
pub(crate) fn load<D: BlockDevice>(
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
            // `Header::parse` bounds the array by the buffer (`EntryCount`);
            // checked again without a panic path, which would cost PID 1
            // this file's name in its binary.
            let Some((entries, rest)) = buf.split_at_mut_checked(n) else {
                return Ok(Err(Check::EntryCount));
            };
            dev.read_at(off, entries)
                .map_err(Error::io(IoOp::Read, off))?;
            rest.fill(0);
            crate::crc32::hash(entries)
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

/// The device's size in bytes, once its logical sector size is known to be
/// 512 and it holds at least the MBR, two headers and two entry sectors.
pub(crate) fn check_sector_size<D: BlockDevice>(dev: &mut D) -> Res<u64, D> {
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
