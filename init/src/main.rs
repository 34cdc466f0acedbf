//! `matic-init`, MaticOS's PID 1: no libc, no allocator, a static executable.
//!
//! One program, two stages. Run as `/init` from the initramfs (stage 1) it
//! mounts the basics, loads modules, picks the A/B slot and switches root to
//! the slot's image, where it runs again as `/sbin/init` (stage 2) and
//! supervises the service table for the life of the machine. See
//! docs/init.md.
//!
//! This file owns the entry point (`_start`, from `sys::entry!`), the choice
//! of stage and the panic handler; it must never do a stage's work itself.
//! Modules import only downwards (`stage*` → their parts → `log`, `util` →
//! `sys`); `sys.rs` imports none of them and is the only place `unsafe` is
//! allowed.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod blockdev;
mod fifo;
mod log;
mod modules;
mod mounts;
mod rootdev;
mod shutdown;
mod slotkernel;
mod spawn;
mod stage1;
mod stage2;
mod svclog;
#[allow(unsafe_code)]
mod sys;
mod util;
mod watchdog;

sys::entry!(main);

use core::ffi::CStr;

/// Called from `_start` (`sys::entry!`) with the process arguments.
fn main(args: &[&'static CStr]) -> ! {
    // Stage 2 (and a test root) has /dev; in stage 1 this finds none yet
    // and is repeated once /dev is mounted.
    util::ensure_std_fds();
    log::init();
    if rustix::process::getpid() != rustix::process::Pid::INIT {
        // Not a PID 1 (a person ran it by hand): supervising from here would
        // start a second copy of the services. The only exit of init.
        error!("must run as PID 1 (of the machine or of a PID namespace)");
        sys::exit_group(1);
    }
    if stage1::applies() {
        stage1::run(args)
    } else {
        stage2::run(args)
    }
}

/// PID 1 must never exit: log the panic, sync, reboot.
///
/// `PanicInfo` is not read at all, neither the location nor the message:
/// reading any of it keeps every panic site's location, message and
/// `core::fmt` in the binary (about 7 KB). The line names the return
/// addresses on the stack instead (`matic_init::panictrace`), which the
/// unstripped build of the same source turns into function names. Init's
/// own fatal errors go through `fatal!`, which logs them in full; what is
/// left to panic are bugs (an index out of bounds…).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    use matic_init::panictrace::{self, MAX_ADDRS, SCAN_WORDS, Trace};
    let mut stack = [0; SCAN_WORDS];
    sys::stack_words(&mut stack);
    let mut at = [0; MAX_ADDRS];
    let n = panictrace::code_addresses(&stack, sys::code_range(), &mut at);
    error!("panic, return addresses{}; rebooting", Trace(&at[..n]));
    util::reboot_now()
}
