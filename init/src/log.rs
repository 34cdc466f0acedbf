//! Logging to `/dev/kmsg` as `<level>matic-init: …`, one record per line,
//! so messages reach the console and dmesg. Before `/dev` exists (early
//! stage 1) or where it does not (a test root), lines go to stderr instead.
//!
//! A line is a template whose `{}` are filled from `Show` arguments:
//! `info!("slot {} chosen on {}", slot, Printable(dev))`. This keeps
//! `core::fmt` out of PID 1 (see `matic_init::fmtbuf`).

use crate::util::open;
use core::sync::atomic::{AtomicI32, Ordering};
use matic_init::fmtbuf::{Buf, Show, fill};
use rustix::fd::IntoRawFd;
use rustix::fs::{Mode, OFlags};

/// The log target: `/dev/kmsg` once opened, else stderr.
static FD: AtomicI32 = AtomicI32::new(2);

pub const ERR: u8 = 3;
pub const WARN: u8 = 4;
pub const INFO: u8 = 6;

/// Longest record (without its newline); longer lines are cut.
const MAX_LINE: usize = 256;

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

/// Writes one record: `template` with its `{}` filled from `args` (see
/// `matic_init::show!`). Lines longer than the kernel's record limit are cut.
pub fn write(level: u8, template: &str, args: &[&dyn Show]) {
    let mut b = Buf::<{ MAX_LINE + 1 }>::new();
    b.push_bytes(&[b'<', b'0' + level % 10, b'>']);
    b.push_bytes(b"matic-init: ");
    fill(&mut b, template, args);
    b.cut(MAX_LINE);
    // Room for the newline is always left by the cut.
    b.push_bytes(b"\n");
    let _ = crate::sys::write_raw(FD.load(Ordering::Relaxed), b.as_bytes());
}

/// [`write`] at a level; one function per level saves passing the level at
/// each of the ~90 call sites.
#[inline(never)]
pub fn info(template: &str, args: &[&dyn Show]) {
    write(INFO, template, args);
}
#[inline(never)]
pub fn warn(template: &str, args: &[&dyn Show]) {
    write(WARN, template, args);
}
#[inline(never)]
pub fn error(template: &str, args: &[&dyn Show]) {
    write(ERR, template, args);
}

/// The same for the lines with one or two arguments (most of them): the
/// arguments travel in registers and the array is built here once, not at
/// each call site (docs/init.md "Size").
macro_rules! by_arity {
    ($($one:ident, $two:ident => $level:ident;)*) => {$(
        #[inline(never)]
        pub fn $one(template: &str, a: &dyn Show) {
            $level(template, &[a]);
        }
        #[inline(never)]
        pub fn $two(template: &str, a: &dyn Show, b: &dyn Show) {
            $level(template, &[a, b]);
        }
    )*};
}
by_arity! {
    info_1, info_2 => info;
    warn_1, warn_2 => warn;
    error_1, error_2 => error;
}

/// `info!`, `warn!`, `error!`: a record at a level, from a template and
/// `Show` arguments, like `matic_init::show!`.
#[macro_export]
macro_rules! log_line {
    ($level:ident, $t:expr $(, $a:expr)*) => {{
        const _: () = assert!(
            matic_init::fmtbuf::holes($t) == <[&str]>::len(&[$(stringify!($a)),*]),
            "the number of {{}} differs from the number of arguments"
        );
        $crate::log_call!($level, $t $(, $a)*)
    }};
}
/// The call of [`log_line!`]: `info_1`/`info_2` (…) for one or two
/// arguments, the slice form otherwise.
#[macro_export]
macro_rules! log_call {
    (info, $t:expr, $a:expr) => { $crate::log::info_1($t, &$a) };
    (info, $t:expr, $a:expr, $b:expr) => { $crate::log::info_2($t, &$a, &$b) };
    (warn, $t:expr, $a:expr) => { $crate::log::warn_1($t, &$a) };
    (warn, $t:expr, $a:expr, $b:expr) => { $crate::log::warn_2($t, &$a, &$b) };
    (error, $t:expr, $a:expr) => { $crate::log::error_1($t, &$a) };
    (error, $t:expr, $a:expr, $b:expr) => { $crate::log::error_2($t, &$a, &$b) };
    ($level:ident, $t:expr $(, $a:expr)*) => {
        $crate::log::$level($t, &[$(&$a as &dyn matic_init::fmtbuf::Show),*])
    };
}
#[macro_export]
macro_rules! info {
    ($t:literal $(, $a:expr)* $(,)?) => { $crate::log_line!(info, $t $(, $a)*) };
}
#[macro_export]
macro_rules! warn {
    ($t:literal $(, $a:expr)* $(,)?) => { $crate::log_line!(warn, $t $(, $a)*) };
}
#[macro_export]
macro_rules! error {
    ($t:literal $(, $a:expr)* $(,)?) => { $crate::log_line!(error, $t $(, $a)*) };
}
/// Logs a failure that stops the boot, then syncs and reboots (as the panic
/// handler does, but with the whole message: a panic's arguments are not
/// formatted, to keep `core::fmt` out).
#[macro_export]
macro_rules! fatal {
    ($t:literal $(, $a:expr)* $(,)?) => {{
        $crate::log_line!(error, concat!($t, ", rebooting") $(, $a)*);
        $crate::util::reboot_now()
    }};
}
