//! The device-mapper ioctl buffer (`<linux/dm-ioctl.h>`): a `struct
//! dm_ioctl` header, and for `DM_TABLE_LOAD` one `struct dm_target_spec`
//! and its parameter string after it, laid out byte by byte at the offsets
//! the header file gives (checked against a `#[repr(C)]` mirror in the
//! tests). The opcodes are `linux_raw_sys::ioctl`'s.
//!
//! Pure bytes: it must never issue the ioctl (the binary's `sys.rs` does)
//! nor decide which table to load (`crate::verity` does).

use crate::fmtbuf::Buf;

/// The interface version init speaks (`DM_VERSION_MAJOR` 4; minor 0 asks
/// for nothing newer than any 4.x kernel has).
pub const VERSION: [u32; 3] = [4, 0, 0];
/// `DM_READONLY_FLAG`: the table (and the device) is read-only.
pub const READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG`: with `DM_DEV_SUSPEND`, suspend; without it, resume.
pub const SUSPEND_FLAG: u32 = 1 << 1;
/// `DM_NAME_LEN`: a device name and its NUL.
pub const NAME_LEN: usize = 128;

/// `sizeof(struct dm_ioctl)`, where the data (the target specs) starts.
pub const HEADER_LEN: usize = 312;
/// `sizeof(struct dm_target_spec)`; its parameters follow it.
pub const SPEC_LEN: usize = 40;
/// The whole buffer: the header, one target and a verity table (about 300
/// bytes with a 64-byte salt) with room to spare.
pub const BUF_LEN: usize = 1024;

// Offsets in `struct dm_ioctl`.
const OFF_VERSION: usize = 0;
const OFF_DATA_SIZE: usize = 12;
const OFF_DATA_START: usize = 16;
const OFF_TARGET_COUNT: usize = 20;
const OFF_FLAGS: usize = 28;
const OFF_DEV: usize = 40;
const OFF_NAME: usize = 48;
// Offsets in `struct dm_target_spec`.
const OFF_SECTOR_START: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_NEXT: usize = 20;
const OFF_TARGET_TYPE: usize = 24;
const TARGET_TYPE_LEN: usize = 16;

/// One ioctl's in-and-out buffer, 8-byte aligned as the kernel's `__u64`
/// fields want it.
#[repr(C, align(8))]
pub struct IoctlBuf(pub [u8; BUF_LEN]);

// Always inlined: with the offsets and the buffer's length known at each
// call, the compiler proves every write in bounds and drops the checks and
// their panics (336 bytes, docs/init.md "Size").
#[inline(always)]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

#[inline(always)]
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

impl IoctlBuf {
    /// A header for device `name` with `flags` and no data (`DM_DEV_CREATE`,
    /// `DM_DEV_SUSPEND`). `None` if the name does not fit [`NAME_LEN`] or
    /// holds a NUL.
    pub fn header(name: &[u8], flags: u32) -> Option<Self> {
        if name.is_empty() || name.len() >= NAME_LEN || crate::has_nul(name) {
            return None;
        }
        let mut b = Self([0; BUF_LEN]);
        for (i, v) in VERSION.iter().enumerate() {
            put32(&mut b.0, OFF_VERSION + 4 * i, *v);
        }
        put32(&mut b.0, OFF_DATA_SIZE, BUF_LEN as u32);
        put32(&mut b.0, OFF_DATA_START, HEADER_LEN as u32);
        put32(&mut b.0, OFF_FLAGS, flags);
        b.0[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name);
        Some(b)
    }

    /// `DM_TABLE_LOAD` for device `name`: one target `target` of `sectors`
    /// sectors from sector 0, with `params`, read-only. `None` if the name
    /// or the target type is too long or the parameters do not fit.
    pub fn table(name: &[u8], sectors: u64, target: &[u8], params: &[u8]) -> Option<Self> {
        let mut b = Self::header(name, READONLY_FLAG)?;
        // The parameters end with a NUL; the next spec would start 8-aligned.
        let spec_end = (SPEC_LEN + params.len() + 1).next_multiple_of(8);
        if target.len() >= TARGET_TYPE_LEN
            || crate::has_nul(target)
            || crate::has_nul(params)
            || HEADER_LEN + spec_end > BUF_LEN
        {
            return None;
        }
        put32(&mut b.0, OFF_TARGET_COUNT, 1);
        let s = &mut b.0[HEADER_LEN..];
        put64(s, OFF_SECTOR_START, 0);
        put64(s, OFF_LENGTH, sectors);
        put32(s, OFF_NEXT, spec_end as u32);
        s[OFF_TARGET_TYPE..OFF_TARGET_TYPE + target.len()].copy_from_slice(target);
        s[SPEC_LEN..SPEC_LEN + params.len()].copy_from_slice(params);
        Some(b)
    }

    /// The flags the kernel handed back.
    pub fn flags(&self) -> u32 {
        u32::from_ne_bytes([
            self.0[OFF_FLAGS],
            self.0[OFF_FLAGS + 1],
            self.0[OFF_FLAGS + 2],
            self.0[OFF_FLAGS + 3],
        ])
    }

    /// The device number the kernel handed back (after `DM_DEV_CREATE`),
    /// as `(major, minor)`: the field holds `huge_encode_dev(dev)`.
    pub fn dev(&self) -> (u32, u32) {
        let mut x = [0u8; 8];
        x.copy_from_slice(&self.0[OFF_DEV..OFF_DEV + 8]);
        decode_dev(u64::from_ne_bytes(x))
    }
}

/// `(major, minor)` of a `huge_encode_dev` (= `new_encode_dev`) number:
/// minor bits 0–7 in bits 0–7, major in bits 8–19, minor bits 8–19 in bits
/// 20–31.
pub fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev & 0xf_ff00) >> 8) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xf_ff00)) as u32;
    (major, minor)
}

/// `/dev/dm-<minor>`: the node devtmpfs makes for a mapped device.
pub fn node_path(minor: u32) -> Buf<64> {
    let mut b = Buf::new();
    crate::show!(&mut b, "/dev/dm-{}", minor);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// `struct dm_ioctl` as `<linux/dm-ioctl.h>` declares it.
    #[repr(C)]
    #[allow(dead_code)]
    struct DmIoctl {
        version: [u32; 3],
        data_size: u32,
        data_start: u32,
        target_count: u32,
        open_count: i32,
        flags: u32,
        event_nr: u32,
        padding: u32,
        dev: u64,
        name: [u8; 128],
        uuid: [u8; 129],
        data: [u8; 7],
    }

    /// `struct dm_target_spec`.
    #[repr(C)]
    #[allow(dead_code)]
    struct DmTargetSpec {
        sector_start: u64,
        length: u64,
        status: i32,
        next: u32,
        target_type: [u8; 16],
    }

    #[test]
    fn offsets_are_the_kernel_header_s() {
        assert_eq!(size_of::<DmIoctl>(), HEADER_LEN);
        assert_eq!(offset_of!(DmIoctl, version), OFF_VERSION);
        assert_eq!(offset_of!(DmIoctl, data_size), OFF_DATA_SIZE);
        assert_eq!(offset_of!(DmIoctl, data_start), OFF_DATA_START);
        assert_eq!(offset_of!(DmIoctl, target_count), OFF_TARGET_COUNT);
        assert_eq!(offset_of!(DmIoctl, flags), OFF_FLAGS);
        assert_eq!(offset_of!(DmIoctl, dev), OFF_DEV);
        assert_eq!(offset_of!(DmIoctl, name), OFF_NAME);
        assert_eq!(size_of::<DmTargetSpec>(), SPEC_LEN);
        assert_eq!(offset_of!(DmTargetSpec, sector_start), OFF_SECTOR_START);
        assert_eq!(offset_of!(DmTargetSpec, length), OFF_LENGTH);
        assert_eq!(offset_of!(DmTargetSpec, next), OFF_NEXT);
        assert_eq!(offset_of!(DmTargetSpec, target_type), OFF_TARGET_TYPE);
        assert_eq!(core::mem::align_of::<IoctlBuf>(), 8);
    }

    #[test]
    fn opcodes_are_dm_s() {
        use linux_raw_sys::ioctl as io;
        // _IOWR(0xfd, nr, struct dm_ioctl): nr 3, 9 and 6.
        let iowr = |nr: u32| (3u32 << 30) | ((HEADER_LEN as u32) << 16) | (0xfd << 8) | nr;
        assert_eq!(io::DM_DEV_CREATE, iowr(3));
        assert_eq!(io::DM_TABLE_LOAD, iowr(9));
        assert_eq!(io::DM_DEV_SUSPEND, iowr(6));
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_table_load_carries_one_read_only_target() {
        let b = IoctlBuf::table(b"matic-root-A", 2400, b"verity", b"1 254:2 254:2").unwrap();
        let b = &b.0;
        assert_eq!(
            [u32_at(b, 0), u32_at(b, 4), u32_at(b, 8)],
            VERSION,
            "version"
        );
        assert_eq!(u32_at(b, OFF_DATA_SIZE), BUF_LEN as u32);
        assert_eq!(u32_at(b, OFF_DATA_START), HEADER_LEN as u32);
        assert_eq!(u32_at(b, OFF_TARGET_COUNT), 1);
        assert_eq!(u32_at(b, OFF_FLAGS), READONLY_FLAG);
        assert_eq!(&b[48..61], b"matic-root-A\0");
        let s = &b[HEADER_LEN..];
        assert_eq!(u64::from_ne_bytes(s[8..16].try_into().unwrap()), 2400);
        assert_eq!(&s[24..31], b"verity\0");
        assert_eq!(&s[40..54], b"1 254:2 254:2\0");
        assert_eq!(u32_at(s, OFF_NEXT), 56, "spec and params, 8-aligned");
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        assert!(IoctlBuf::header(&[b'a'; 127], 0).is_some());
        assert!(
            IoctlBuf::header(&[b'a'; 128], 0).is_none(),
            "no room for NUL"
        );
        assert!(IoctlBuf::header(b"", 0).is_none());
        assert!(IoctlBuf::header(b"a\0b", 0).is_none());
        let params = [b'x'; BUF_LEN - HEADER_LEN - SPEC_LEN - 1];
        assert!(IoctlBuf::table(b"d", 8, b"verity", &params).is_some());
        let params = [b'x'; BUF_LEN - HEADER_LEN - SPEC_LEN];
        assert!(IoctlBuf::table(b"d", 8, b"verity", &params).is_none());
        assert!(IoctlBuf::table(b"d", 8, b"sixteen-letters!", b"").is_none());
    }

    #[test]
    fn device_numbers_decode_as_the_kernel_encodes() {
        // new_encode_dev(MKDEV(major, minor)).
        let enc = |ma: u64, mi: u64| (mi & 0xff) | (ma << 8) | ((mi & !0xff) << 12);
        for (ma, mi) in [(254, 0), (253, 7), (259, 300), (4095, 0xf_ffff)] {
            assert_eq!(decode_dev(enc(ma, mi)), (ma as u32, mi as u32));
        }
        assert_eq!(node_path(3).as_bytes(), b"/dev/dm-3");
    }
}
