//! Small helpers shared by both stages: the clock, whole-file reads into
//! fixed buffers, directory creation, signalling, sleeping, rebooting.
//!
//! Leaf helpers over rustix and `sys`: this module must never log or import
//! another module of init (every module may import it).

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::{Errno, read};
use rustix::time::Timespec;

/// Milliseconds since boot (CLOCK_BOOTTIME, as `/proc/uptime`).
pub fn now_ms() -> u64 {
    crate::sys::boottime_ms()
}

/// A poll timeout for `ms` milliseconds.
pub fn timespec_ms(ms: u64) -> Timespec {
    Timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    }
}

/// `open(2)`, out of line: rustix's is inlined at every call, each time with
/// its own check of the returned descriptor, about 50 bytes apiece.
#[inline(never)]
pub fn open(path: &core::ffi::CStr, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::open(path, flags, mode)
}

/// Reads up to `buf.len()` bytes of a file; returns the filled prefix.
pub fn read_file<'b>(path: &core::ffi::CStr, buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
    let fd = open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut n = 0;
    while n < buf.len() {
        match read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(&buf[..n])
}

/// `mkdir` that accepts an existing directory.
pub fn mkdir(path: &core::ffi::CStr, mode: u32) -> Result<(), Errno> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes all of `data`, retrying short writes.
pub fn write_all(fd: impl rustix::fd::AsFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes sure descriptors 0, 1 and 2 are open (on the console, else
/// `/dev/null`). The kernel leaves them closed when the initramfs has no
/// `/dev/console`; a closed 0–2 would otherwise be reused by the next
/// `open`, and `dup2` onto a descriptor that already has that number keeps
/// its close-on-exec flag, leaving a service without stdout or stderr.
pub fn ensure_std_fds() {
    use rustix::fd::IntoRawFd;
    for fd in 0..=2 {
        if crate::sys::fd_is_open(fd) {
            continue;
        }
        // `open` returns the lowest free number: `fd`, as 0..fd are open.
        let f = open(
            c"/dev/console",
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        )
        .or_else(|_| open(c"/dev/null", OFlags::RDWR, Mode::empty()));
        match f {
            Ok(f) => {
                // Lives as PID 1's standard descriptor for good.
                let _ = f.into_raw_fd();
            }
            Err(_) => return,
        }
    }
}

/// Sends `sig` to process `pid` (errors ignored: it may have just exited).
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let _ = rustix::thread::nanosleep(&timespec_ms(ms));
}

/// Syncs and reboots after a failure that stops the boot (a panic, or a
/// stage 1 that cannot go on). Never returns.
///
/// First it asks the kernel to dump its log to pstore on this restart too
/// (`printk.always_kmsg_dump`; by default only panics are dumped), so the
/// next boot's agent learns why this one ended even when it never ran here
/// (docs/history.md). Only on this path: a dump per ordinary reboot would
/// wear the firmware's store. Without sysfs it is skipped.
pub fn reboot_now() -> ! {
    if let Ok(fd) = open(
        c"/sys/module/printk/parameters/always_kmsg_dump",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = write_all(&fd, b"Y");
    }
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    // Only reachable without CAP_SYS_BOOT; keep PID 1 alive (and, on real
    // hardware, let the unpetted watchdog reset the machine).
    sleep_forever()
}

/// Parks PID 1 for good (after a failed reboot).
pub fn sleep_forever() -> ! {
    loop {
        sleep_ms(3_600_000);
    }
}
