//! Stage 1 as the loader, once the chosen slot's verified root is mounted
//! at `/newroot`: which kernel boots it. When the slot's kernel-id differs
//! from the running initramfs's, kexec into the slot's own kernel and
//! initramfs, with the running command line plus `matic.slot=<slot>
//! lockdown=integrity`; otherwise the running kernel boots it, and lockdown
//! is raised to `integrity` before anything of the slot runs.
//!
//! The decisions are `matic_init::loader`'s and `matic_init::lockdown`'s;
//! this module only reads, opens and calls. Failures are returned or handed
//! to the caller's `report` as a [`Stage1Error`]: it must never decide what
//! one means for the boot (`stage1.rs` does), touch the partition table, or
//! be asked to kexec when `matic.slot=` gave the slot (no loops).

use crate::mounts::{self, Report};
use crate::util::{self, open, read_file};
use crate::{info, sys, warn};
use core::ffi::CStr;
use matic_boot::Slot;
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::loader::{self, CMDLINE_MAX, Kernel};
use matic_init::lockdown;
use matic_init::stage1_error::Stage1Error;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// The lockdown level's file. The tests' build (feature `test-no-dm`)
/// reads and writes `/lockdown` of its test initramfs instead: the
/// level is the whole machine's, and a test must never lock down its host.
const LOCKDOWN: &CStr = if cfg!(feature = "test-no-dm") {
    c"/lockdown"
} else {
    c"/sys/kernel/security/lockdown"
};

/// Kexecs into the slot's kernel when it is not the running one; returns
/// when the running kernel boots the slot (same kernel-id, or the slot has
/// none), or with the failure when the kexec did not happen.
pub fn kexec_if_needed(
    slot: Slot,
    proc_cmdline: &[u8],
    started_ms: u64,
) -> Result<(), Stage1Error<'static>> {
    kexec(slot, proc_cmdline, started_ms).map_err(|(what, errno)| Stage1Error::Kexec {
        slot,
        what,
        errno,
    })
}

/// [`kexec_if_needed`], failing with what failed (a file or a call) and
/// the errno.
#[inline(never)]
fn kexec(slot: Slot, proc_cmdline: &[u8], started_ms: u64) -> Result<(), (&'static CStr, Errno)> {
    // One buffer for both ids: one zeroing. Each holds the longest id
    // `KernelId::parse` accepts (a shorter buffer would cut a long one and
    // give a good slot up as unreadable).
    let mut ids = [0u8; 2 * loader::KERNEL_ID_MAX];
    let (own, theirs) = ids.split_at_mut(loader::KERNEL_ID_MAX);
    let theirs = match read_file(loader::SLOT_KERNEL_ID, theirs) {
        Ok(t) => Some(t),
        Err(Errno::NOENT) => None,
        Err(e) => return Err((loader::SLOT_KERNEL_ID, e)),
    };
    let own = read_file(loader::OWN_KERNEL_ID, own).ok();
    let release = match loader::decide(own, theirs) {
        Kernel::Same => return Ok(()),
        Kernel::NoId => {
            info!(
                "slot {}: no /boot/kernel-id: the running kernel boots it",
                slot
            );
            return Ok(());
        }
        Kernel::BadId => return Err((loader::SLOT_KERNEL_ID, Errno::BADMSG)),
        Kernel::Kexec { release } => release,
    };
    // First: the end-to-end tests wait for this line.
    info!("kexec into slot {}'s kernel {}", slot, Printable(release));
    let ro =
        |path| open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| (path, e));
    let kernel = ro(loader::SLOT_KERNEL)?;
    let initrd = ro(loader::SLOT_INITRD)?;
    let mut line = Buf::<CMDLINE_MAX>::new();
    let cmdline = c"the command line: over 1023 bytes";
    // (`/proc/cmdline` holds no NUL: `as_cstr` cannot fail on one.)
    // Read once the files are open: what is left is the syscalls.
    let marks = [started_ms, util::now_ms()];
    let line = loader::kexec_cmdline(proc_cmdline, slot, marks, &mut line)
        .and_then(|()| line.as_cstr())
        .ok_or((cmdline, Errno::TOOBIG))?;
    if cfg!(feature = "test-no-dm") {
        // A test must never load a kernel into its host.
        warn!("TEST BUILD: kexec_file_load not called");
        return Err((c"kexec_file_load", Errno::NOSYS));
    }
    sys::kexec_file_load(&kernel, &initrd, line).map_err(|e| (c"kexec_file_load", e))?;
    // The table that spent this boot's try is on the disk already
    // (`Disk::write` fsyncs the device); nothing else was written.
    rustix::fs::sync();
    let e = rustix::system::reboot(rustix::system::RebootCommand::Kexec).err();
    Err((c"reboot(KEXEC)", e.unwrap_or(Errno::INVAL)))
}

/// Raises the kernel's lockdown to `integrity` unless it is there or above
/// (the loader's command line has none: docs/security.md). A failure is
/// reported, and the boot goes on without it.
#[inline(never)]
pub fn raise_lockdown(report: Report<'_>) {
    if !cfg!(feature = "test-no-dm") {
        // Nothing in the initramfs mounted securityfs; a failure shows below.
        let _ = mounts::securityfs();
    }
    let mut buf = [0u8; 64];
    let r = read_file(LOCKDOWN, &mut buf)
        .and_then(|t| lockdown::must_raise(t).ok_or(Errno::BADMSG))
        .and_then(|raise| {
            if raise {
                let fd = open(LOCKDOWN, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
                util::write_all(&fd, lockdown::WANT)?;
            }
            Ok(raise)
        });
    match r {
        Ok(true) => info!("lockdown raised to integrity"),
        Ok(false) => info!("lockdown already at integrity or above"),
        Err(errno) => report(Stage1Error::Lockdown {
            path: LOCKDOWN,
            errno,
        }),
    }
}
