//! Logging to `/dev/kmsg` as `<level>matic-init: …`, one record per line,
//! so messages reach the console and dmesg. Before `/dev` exists (early
//! stage 1) or where it does not (a test root), lines go to stderr instead.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, Ordering};
use matic_init::fmtbuf::Buf;
use rustix::fd::IntoRawFd;
use rustix::fs::{Mode, OFlags, open};

/// The log target: `/dev/kmsg` once opened, else stderr.
static FD: AtomicI32 = AtomicI32::new(2);

pub const ERR: u8 = 3;
pub const WARN: u8 = 4;
pub const INFO: u8 = 6;

/// Opens `/dev/kmsg` if it is not open yet; keeps stderr otherwise.
pub fn init() {
    if FD.load(Ordering::Relaxed) != 2 {
        return;
    }
    if let Ok(fd) = open(
        c"/dev/kmsg",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        // The descriptor lives for the life of the process.
        FD.store(fd.into_raw_fd(), Ordering::Relaxed);
    }
}

/// Writes one record. Lines longer than the kernel's record limit are cut.
pub fn write(level: u8, args: fmt::Arguments<'_>) {
    let mut b = Buf::<256>::new();
    let _ = write!(b, "<{level}>matic-init: {args}");
    if b.truncated() {
        b.clear();
        let _ = write!(b, "<{level}>matic-init: {args}");
    }
    let mut line = Buf::<257>::new();
    line.push_bytes(b.as_bytes());
    line.push_bytes(b"\n");
    let _ = crate::sys::write_raw(FD.load(Ordering::Relaxed), line.as_bytes());
}

#[macro_export]
macro_rules! info {
    ($($a:tt)*) => { $crate::log::write($crate::log::INFO, format_args!($($a)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($a:tt)*) => { $crate::log::write($crate::log::WARN, format_args!($($a)*)) };
}
#[macro_export]
macro_rules! error {
    ($($a:tt)*) => { $crate::log::write($crate::log::ERR, format_args!($($a)*)) };
}
