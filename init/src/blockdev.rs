//! Stage 1's block devices: a raw descriptor as `matic-boot`'s
//! [`BlockDevice`], the bounded wait for the MaticOS disk (which one it is
//! is `matic_init::diskpick`'s decision), and a partition's `/dev` node once
//! the kernel has created it.
//!
//! It opens and reads devices and returns what it found or a
//! [`Stage1Error`]; it must never mount, change a slot, or decide what a
//! failure means for the boot (`stage1.rs` does, through
//! [`Stage1Error::then`]).

use crate::util::{self, open, read_file};
use crate::warn;
use matic_boot::{BlockDevice, Disk, Guid};
use matic_init::cmdline;
use matic_init::diskpick::{Name, Picker, Scan, Verdict};
use matic_init::fmtbuf::{BootError, Buf, Printable};
use matic_init::rootfs;
use matic_init::show;
use matic_init::stage1_error::Stage1Error;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, RawDir};
use rustix::io::Errno;

/// How long to wait for the disk to show up (drivers probe asynchronously).
const DISK_WAIT_MS: u64 = 30_000;

/// A block device over a raw fd, for `matic-boot`.
pub struct BlockFd(OwnedFd);

impl BlockDevice for BlockFd {
    type Error = Errno;
    fn read_at(&mut self, mut off: u64, mut buf: &mut [u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            match rustix::io::pread(&self.0, &mut *buf, off) {
                Ok(0) => return Err(Errno::IO),
                Ok(n) => {
                    buf = &mut buf[n..];
                    off += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn write_at(&mut self, mut off: u64, mut buf: &[u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            match rustix::io::pwrite(&self.0, buf, off) {
                Ok(0) => return Err(Errno::IO),
                Ok(n) => {
                    buf = &buf[n..];
                    off += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Errno> {
        rustix::fs::fsync(&self.0)
    }
    fn size(&mut self) -> Result<u64, Errno> {
        rustix::fs::seek(&self.0, rustix::fs::SeekFrom::End(0))
    }
    fn sector_size(&mut self) -> Result<u32, Errno> {
        rustix::fs::ioctl_blksszget(&self.0)
    }
}

/// Waits (bounded) for the MaticOS disk: the one `matic.disk=` names, else
/// every whole disk of `/sys/block` in name order. Among those whose GPT
/// `matic-boot` opens, the one with `guid` (`matic.disk_guid=`) wins, or
/// without a GUID the only one. When none shows up in time, or several
/// would do, it hands the failure to `fail` (stage 1's decision).
pub fn find_disk(
    want: &[u8],
    guid: Option<Guid>,
    with_loop: bool,
    fail: fn(Stage1Error<'_>) -> !,
) -> (Disk<BlockFd>, Name) {
    let want = want.strip_prefix(b"/dev/").unwrap_or(want);
    let end = util::now_ms() + DISK_WAIT_MS;
    let mut last_err = Buf::<128>::new();
    loop {
        let mut pick = Picker::new(guid);
        if !want.is_empty() {
            if let Some(d) = open_disk(want, &mut last_err) {
                pick.offer(want, d.disk_guid());
            }
        } else {
            let mut scan = Scan::new(with_loop);
            while let Some(name) = next_disk(&mut scan) {
                if let Some(d) = open_disk(name, &mut last_err) {
                    pick.offer(name, d.disk_guid());
                }
            }
        }
        match pick.verdict() {
            Verdict::Use(name) => {
                if let Some(d) = open_disk(name, &mut last_err) {
                    let mut n = Name::new();
                    n.push_bytes(name);
                    return (d, n);
                }
            }
            Verdict::Ambiguous(a, b, n) => fail(Stage1Error::AmbiguousDisk { n, a, b }),
            Verdict::Wait => {}
        }
        if util::now_ms() >= end {
            let waited_s = DISK_WAIT_MS / 1000;
            if let (Some(want), Some(other)) = (guid, pick.other()) {
                fail(Stage1Error::NoDiskWithGuid {
                    want,
                    waited_s,
                    other,
                });
            }
            fail(Stage1Error::NoDisk {
                waited_s,
                last: last_err.as_bytes(),
            });
        }
        util::sleep_ms(100);
    }
}

/// One pass over `/sys/block` (whole disks only: partitions are not
/// there); the next candidate in name order.
fn next_disk(scan: &mut Scan) -> Option<&[u8]> {
    if let Ok(dir) = open(
        c"/sys/block",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 2048];
        let mut it = RawDir::new(&dir, &mut buf);
        while let Some(Ok(e)) = it.next() {
            scan.offer(e.file_name().to_bytes());
        }
    }
    scan.end_pass()
}

/// Opens `/dev/NAME` and its MaticOS GPT; why not, into `last_err`.
fn open_disk(name: &[u8], last_err: &mut Buf<128>) -> Option<Disk<BlockFd>> {
    let mut path = Buf::<64>::new();
    show!(&mut path, "/dev/{}", Printable(name));
    let r = match path.as_cstr() {
        Some(p) => open(p, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()),
        None => Err(Errno::NAMETOOLONG),
    };
    last_err.clear();
    match r.map(|fd| Disk::open(BlockFd(fd))) {
        Ok(Ok(d)) => return Some(d),
        Ok(Err(e)) => show!(last_err, "/dev/{}: {}", Printable(name), BootError(&e)),
        Err(e) => show!(last_err, "/dev/{}: {}", Printable(name), e),
    }
    None
}

/// `/dev/<partition>` for partition `number` of `disk`, once the kernel has
/// created it (checked against `/sys/class/block/<name>/partition`; after
/// 5 s it is used unconfirmed, logged).
pub fn partition_dev(disk: &[u8], number: u32) -> Buf<64> {
    let mut name = Buf::<32>::new();
    rootfs::partition_name(disk, number, &mut name);
    let mut sys = Buf::<96>::new();
    show!(
        &mut sys,
        "/sys/class/block/{}/partition",
        Printable(name.as_bytes())
    );
    let end = util::now_ms() + 5_000;
    loop {
        let mut t = [0u8; 16];
        let ok = sys
            .as_cstr()
            .and_then(|p| read_file(p, &mut t).ok())
            .and_then(|t| cmdline::parse_u64(t.strip_suffix(b"\n").unwrap_or(t)))
            == Some(u64::from(number));
        if ok || util::now_ms() >= end {
            if !ok {
                warn!(
                    "{}: not confirmed as partition {} by sysfs",
                    Printable(name.as_bytes()),
                    number
                );
            }
            let mut dev = Buf::<64>::new();
            show!(&mut dev, "/dev/{}", Printable(name.as_bytes()));
            return dev;
        }
        util::sleep_ms(50);
    }
}
