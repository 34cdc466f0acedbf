//! The agent's only `unsafe`: system calls that neither std nor rustix
//! exposes, and registering a descriptor with tokio's reactor (an `unsafe`
//! API since tokio 1.53). Each wrapper is safe to call and returns
//! `std::io::Error`.
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers `file` with the current runtime's epoll for readability (a
/// device that supports `poll`, such as `/dev/kmsg`; a regular file is
/// refused with EPERM). Must be called inside the runtime.
pub fn register_readable(file: File) -> io::Result<AsyncFd<File>> {
    // SAFETY: the AsyncFd owns the File, and a File owns its descriptor: it
    // stays open, and `as_raw_fd` keeps returning it, until the AsyncFd
    // (and with it the File) is dropped.
    unsafe { AsyncFd::register_with_interest(file, Interest::READABLE) }.map_err(io::Error::from)
}

/// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: start
/// writeback of the dirty pages in the range and return without waiting.
pub fn start_writeback(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE)
}

/// `sync_file_range` with `WAIT_BEFORE | WRITE | WAIT_AFTER`: return once
/// every page of the range that was dirty at the call is on the device
/// (not a cache flush of the device itself: that is `fsync`'s job).
pub fn wait_writeback(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    sync_file_range(
        fd,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

fn sync_file_range(fd: impl AsFd, offset: u64, len: u64, flags: u32) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: sync_file_range takes no pointers; the descriptor is borrowed
    // for the duration of the call, so it cannot be closed underneath it.
    let r = unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), offset, len, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes descriptor `fd`, inherited from init, if it is open and a FIFO
/// (the service log handoff, `matic_contract::handoff`); `None` otherwise
/// (the agent run by anything but init: the number is closed or someone
/// else's, and is left alone). Call before anything of the process opens
/// a descriptor, so the number cannot be one of its own.
pub fn take_inherited_fifo(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: the borrow lives for the `fstat` alone; on a closed number
    // the kernel answers EBADF, and nothing is read through it.
    let stat = rustix::fs::fstat(unsafe { BorrowedFd::borrow_raw(fd) }).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
        return None;
    }
    // SAFETY: the number is open (fstat succeeded), was inherited across
    // exec, and nothing in this process owns it (the caller runs before
    // any file is opened): the OwnedFd is its one owner from here on.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `adjtime`: has the kernel slew the wall clock by `delta_us`
/// microseconds (at most 500 ppm), replacing any slew in progress.
pub fn adjtime(delta_us: i64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: delta_us.div_euclid(1_000_000) as libc::time_t,
        tv_usec: delta_us.rem_euclid(1_000_000) as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval on our stack for the call; the old
    // value is not asked for (null).
    let r = unsafe { libc::adjtime(&tv, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
