//! The raw system interface of `matic-init`: the process entry point's
//! code (`entry!`, expanded by `main.rs`), the `mem*` functions a libc would
//! provide, the few syscalls rustix 1.x does not expose (fork, execve, the
//! signal mask and dispositions, signalfd, exit_group, a write to a raw fd
//! for the logger, `dup2` onto a raw fd number, `kexec_file_load`), `clock_gettime` without rustix's
//! vDSO lookup, and the watchdog's `ioctl`.
//!
//! Every `unsafe` of the binary lives here (the rest of init is
//! `#![deny(unsafe_code)]`), each with a `// SAFETY:` note; each wrapper
//! names its man page and hands back a safe, typed result. This module must
//! never log, allocate, or call back into the rest of init (it imports no
//! other module of the binary: `main.rs` passes its entry function to
//! `entry!`). (Over 400 lines because every `unsafe` must be here: the
//! syscalls, the entry and the six `mem*` functions belong together.)

use core::arch::asm;
use core::ffi::{CStr, c_char};
use linux_raw_sys::general as g;
use rustix::fd::{AsFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("matic-init's raw syscall layer is written for x86_64 only");

/// Most arguments init looks at (the rest are ignored).
pub const MAX_ARGS: usize = 16;

/// Defines the process entry point `_start` in the invoking module (the
/// crate root), which calls `$main(&args)` with up to [`MAX_ARGS`]
/// arguments. `_start` hands the initial stack pointer (argc, argv, envp,
/// auxv) to Rust with the stack aligned as the SysV ABI expects at a call.
macro_rules! entry {
    ($main:path) => {
        /// Process entry (the kernel jumps here): see `sys::entry!`.
        ///
        /// # Safety
        /// Only the kernel may call it, once, as the process entry.
        #[allow(unsafe_code)]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn _start() -> ! {
            core::arch::naked_asm!(
                "xor ebp, ebp",
                "mov rdi, rsp",
                "and rsp, -16",
                "call {entry}",
                "ud2",
                entry = sym start_rust,
            )
        }

        #[allow(unsafe_code)]
        unsafe extern "C" fn start_rust(sp: *const usize) -> ! {
            // SAFETY: `sp` is the stack pointer the kernel started the
            // process with, passed on unchanged by `_start`.
            let args = unsafe { $crate::sys::args_from_stack(sp) };
            $main(&args)
        }
    };
}
pub(crate) use entry;

/// The process arguments (at most [`MAX_ARGS`]) from the initial stack.
///
/// # Safety
/// `sp` must be the stack pointer the kernel started the process with.
#[inline]
pub unsafe fn args_from_stack(sp: *const usize) -> heapless::Vec<&'static CStr, MAX_ARGS> {
    let mut args = heapless::Vec::new();
    // SAFETY: the kernel starts a process with `argc` at the stack pointer,
    // followed by `argc` pointers to NUL-terminated strings that live (on
    // that same stack, never unwound) for the life of the process.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const c_char;
        for i in 0..argc.min(MAX_ARGS) {
            let p = *argv.add(i);
            if !p.is_null() {
                let _ = args.push(CStr::from_ptr(p));
            }
        }
    }
    args
}

/// Fills `out` with the words on the stack above `out` itself (nearest
/// first), for the panic handler (`matic_init::panictrace`): `out` lives in
/// the caller's frame, and what lies above it is the rest of that frame,
/// then the return addresses and frames of the panic's call chain.
#[inline(never)]
pub fn stack_words(out: &mut [usize; 64]) {
    let sp: usize;
    // SAFETY: reads the stack pointer into a register; no memory touched.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let from = (out.as_ptr_range().end as usize).max(sp) as *const usize;
    for (k, w) in out.iter_mut().enumerate() {
        // SAFETY: the 512 bytes above any frame of init are mapped stack:
        // its callers' frames, then `_start`'s, above which the kernel put
        // argc, the argv and envp pointers, the auxiliary vector (over 300
        // bytes alone) and the strings. Reading words there is harmless
        // (they may be stale; the caller only compares them to the code's
        // range).
        *w = unsafe { core::ptr::read_volatile(from.add(k)) };
    }
}

unsafe extern "C" {
    /// Start and end of `.text`, defined by `init/link-no-unwind.ld`.
    static __matic_text_start: u8;
    static __matic_text_end: u8;
}

/// The executable's code, `start..end` (its `.text`).
pub fn code_range() -> (usize, usize) {
    (
        (&raw const __matic_text_start) as usize,
        (&raw const __matic_text_end) as usize,
    )
}

#[inline(always)]
unsafe fn syscall6(nr: u32, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments are valid for syscall `nr`;
    // the syscall instruction clobbers only rcx and r11 besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// Bit for signal `sig` in a kernel `sigset_t` (64 signals on x86_64).
pub const fn sigbit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

/// `clock_gettime(CLOCK_BOOTTIME)` (clock_gettime(2)) as a plain syscall,
/// in milliseconds.
/// rustix's `clock_gettime` goes through the vDSO, and finding the vDSO
/// without a libc (reading the auxiliary vector from `/proc/self/auxv`,
/// then the vDSO's ELF symbol table) costs PID 1 about 2.5 KB of its
/// 64 KiB; init reads the clock a few times per wakeup, where the
/// syscall's extra fraction of a microsecond does not matter.
#[inline]
pub fn boottime_ms() -> u64 {
    let mut ts = g::__kernel_timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one struct __kernel_timespec (the x86_64
    // timespec) to the valid, writable local it is given.
    let r = unsafe {
        syscall6(
            g::__NR_clock_gettime,
            [
                g::CLOCK_BOOTTIME as usize,
                &mut ts as *mut g::__kernel_timespec as usize,
                0,
                0,
                0,
                0,
            ],
        )
    };
    // CLOCK_BOOTTIME with a valid pointer cannot fail; 0 if it ever did.
    if check(r).is_err() {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1000) + (ts.tv_nsec as u64) / 1_000_000
}

/// `fork()` as `clone(SIGCHLD)` (fork(2), clone(2)): `Ok(0)` in the
/// child, the child's pid in the parent.
#[inline]
pub fn fork() -> Result<i32, Errno> {
    // SAFETY: clone with only SIGCHLD and no new stack is fork(2): the child
    // gets a copy of this single-threaded address space, so every Rust
    // invariant holds in both processes; no pointers are passed.
    let r = unsafe { syscall6(g::__NR_clone, [g::SIGCHLD as usize, 0, 0, 0, 0, 0]) };
    check(r).map(|pid| pid as i32)
}

/// `execve(path, argv, envp)` (execve(2)); returns only on failure. `argv` and `envp`
/// must end with a null pointer.
#[inline]
pub fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::INVAL;
    }
    // SAFETY: `path` is NUL-terminated; `argv` and `envp` are null-terminated
    // arrays (checked above) of pointers to NUL-terminated strings that the
    // caller keeps alive; on success the address space is replaced anyway.
    let r = unsafe {
        syscall6(
            g::__NR_execve,
            [
                path.as_ptr() as usize,
                argv.as_ptr() as usize,
                envp.as_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    };
    match check(r) {
        Err(e) => e,
        Ok(_) => Errno::INVAL,
    }
}

/// Replaces the blocked-signal mask with `mask` (rt_sigprocmask(2)).
#[inline]
pub fn set_sigmask(mask: u64) -> Result<(), Errno> {
    // SAFETY: rt_sigprocmask reads 8 bytes from a valid local and writes
    // nothing (old set pointer is null).
    let r = unsafe {
        syscall6(
            g::__NR_rt_sigprocmask,
            [
                g::SIG_SETMASK as usize,
                &mask as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    };
    check(r).map(drop)
}

/// A non-blocking, close-on-exec signalfd for the signals in `mask` (which
/// must also be blocked): signalfd4 (signalfd(2)).
#[inline]
pub fn signalfd(mask: u64) -> Result<OwnedFd, Errno> {
    // SFD_CLOEXEC and SFD_NONBLOCK are defined as O_CLOEXEC and O_NONBLOCK.
    let flags = (g::O_CLOEXEC | g::O_NONBLOCK) as usize;
    // SAFETY: signalfd4(-1, …) reads an 8-byte set from a valid local and
    // returns a new descriptor, which only we own from here on.
    unsafe {
        let r = syscall6(
            g::__NR_signalfd4,
            [
                -1isize as usize,
                &mask as *const u64 as usize,
                8,
                flags,
                0,
                0,
            ],
        );
        check(r).map(|fd| OwnedFd::from_raw_fd(fd as i32))
    }
}

/// Kernel `struct sigaction` layout on x86_64.
#[repr(C)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// For a freshly forked child, before `execve`: unblock every signal and put
/// every catchable signal back to its default action, so no blocked mask or
/// ignored signal of init leaks into a service (sigprocmask(2),
/// sigaction(2)).
#[inline]
pub fn reset_signals() {
    let _ = set_sigmask(0);
    let dfl = KSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64u32 {
        if sig == g::SIGKILL || sig == g::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a valid, fully initialised kernel
        // sigaction from a local; SIG_DFL installs no handler code.
        unsafe {
            syscall6(
                g::__NR_rt_sigaction,
                [sig as usize, &dfl as *const KSigaction as usize, 0, 8, 0, 0],
            );
        }
    }
}

/// Ends this process (exit_group(2); used by a child whose `execve` failed).
#[inline]
pub fn exit_group(code: i32) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe {
        syscall6(g::__NR_exit_group, [code as usize, 0, 0, 0, 0, 0]);
    }
    loop {
        core::hint::spin_loop();
    }
}

/// `write(2)` to a raw descriptor number that may or may not be open (the
/// logger's target). Errors are returned, never fatal.
#[inline]
pub fn write_raw(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads `buf.len()` bytes from a valid slice; a
    // closed or foreign fd number yields EBADF, not memory unsafety.
    let r = unsafe {
        syscall6(
            g::__NR_write,
            [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        )
    };
    check(r)
}

/// `dup2(fd, target)` (dup2(2)) onto a raw descriptor number, which
/// rustix only offers onto an `OwnedFd`: a service's child gives the agent
/// the log pipes at fixed numbers before `execve`. The copy is not
/// close-on-exec (unless `fd` is `target`).
#[inline]
pub fn dup2_raw(fd: impl AsFd, target: i32) -> Result<(), Errno> {
    use rustix::fd::AsRawFd;
    // SAFETY: dup2 only changes the descriptor table; `fd` is open for the
    // call (borrowed), and whatever `target` named is closed by the kernel,
    // which no Rust object of the child (about to exec) relies on: the
    // caller passes numbers it keeps for the handoff.
    let r = unsafe {
        syscall6(
            g::__NR_dup2,
            [fd.as_fd().as_raw_fd() as usize, target as usize, 0, 0, 0, 0],
        )
    };
    check(r).map(drop)
}

/// Whether descriptor number `fd` is open (`fcntl(fd, F_GETFD)` succeeds;
/// fcntl(2)).
#[inline]
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor table; a closed number
    // yields EBADF.
    let r = unsafe {
        syscall6(
            g::__NR_fcntl,
            [fd as usize, g::F_GETFD as usize, 0, 0, 0, 0],
        )
    };
    check(r).is_ok()
}

/// `kexec_file_load(kernel, initrd, cmdline)` (kexec_file_load(2)): loads
/// the kernel image and initramfs from the open files, with `cmdline`, for
/// a later `reboot(LINUX_REBOOT_CMD_KEXEC)`. rustix has no wrapper.
#[inline]
pub fn kexec_file_load(kernel: impl AsFd, initrd: impl AsFd, cmdline: &CStr) -> Result<(), Errno> {
    use rustix::fd::AsRawFd;
    // The kernel wants the length with the NUL, and the NUL last.
    let len = cmdline.to_bytes_with_nul().len();
    // SAFETY: both descriptors are open for the call (borrowed); the kernel
    // copies `len` bytes from `cmdline`, which holds exactly that many
    // (its text and the NUL) and outlives the call; flags 0. It writes no
    // memory of ours.
    let r = unsafe {
        syscall6(
            g::__NR_kexec_file_load,
            [
                kernel.as_fd().as_raw_fd() as usize,
                initrd.as_fd().as_raw_fd() as usize,
                len,
                cmdline.as_ptr() as usize,
                0,
                0,
            ],
        )
    };
    check(r).map(drop)
}

/// `ioctl(fd, WDIOC_SETTIMEOUT, &secs)` on a watchdog device (Linux's
/// Documentation/watchdog/watchdog-api.rst; ioctl(2)): asks for a timeout of
/// `secs` seconds and returns the one the driver set.
#[inline]
pub fn watchdog_set_timeout(fd: impl AsFd, secs: i32) -> Result<i32, Errno> {
    let mut timeout = secs;
    // WDIOC_SETTIMEOUT = _IOWR('W', 6, int).
    const SETTIMEOUT: rustix::ioctl::Opcode = rustix::ioctl::opcode::read_write::<i32>(b'W', 6);
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one int, which the Updater
    // points at (a local that outlives the call); on any other device the
    // opcode fails with ENOTTY.
    unsafe {
        rustix::ioctl::ioctl(
            fd,
            rustix::ioctl::Updater::<SETTIMEOUT, i32>::new(&mut timeout),
        )
    }?;
    Ok(timeout)
}

/// A device-mapper ioctl (`DM_DEV_CREATE`, `DM_TABLE_LOAD`,
/// `DM_DEV_SUSPEND`: `linux_raw_sys::ioctl`) on `/dev/mapper/control`
/// (`<linux/dm-ioctl.h>`, ioctl(2)); the kernel reads the request from `buf`
/// and writes its answer (device number, flags) back into it.
#[inline]
pub fn dm_ioctl(
    control: impl AsFd,
    opcode: u32,
    buf: &mut matic_init::dm::IoctlBuf,
) -> Result<(), Errno> {
    use rustix::fd::AsRawFd;
    // SAFETY: every DM opcode is `_IOWR(0xfd, n, struct dm_ioctl)`: the
    // kernel copies `data_size` bytes in from `buf` and at most as many back.
    // `IoctlBuf::header` sets `data_size` to the buffer's whole length
    // (`BUF_LEN`) and aligns it to 8 bytes, and `buf` is a valid, exclusive
    // borrow for the call. On any other device the opcode fails with ENOTTY.
    let r = unsafe {
        syscall6(
            g::__NR_ioctl,
            [
                control.as_fd().as_raw_fd() as usize,
                opcode as usize,
                buf.0.as_mut_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    };
    check(r).map(drop)
}

// ---- The memory functions that compiler-generated code calls. ----------
// Without libc nothing provides them; `rep movsb`/`rep stosb` are small and
// fast on every x86_64 since Ivy Bridge (ERMSB), and asm cannot be turned
// back into a call to itself by the optimiser.

/// # Safety
/// Standard `memcpy` contract: valid, non-overlapping regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller passes valid, non-overlapping regions of n bytes.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// Standard `memmove` contract: valid regions of `n` bytes, may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // Destination below the source or disjoint: copying forwards is safe.
        // SAFETY: valid regions per the caller; forward copy never reads a
        // byte after overwriting it in this case.
        unsafe {
            asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                 options(nostack, preserves_flags));
        }
    } else {
        // Destination overlaps above the source: copy backwards, then restore
        // the direction flag the ABI requires to be clear.
        // SAFETY: as above; n > 0 here since dst - src < n.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _,
                 inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dst
}

/// # Safety
/// Standard `memset` contract: a valid region of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller passes a valid region of n bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// Standard `memcmp` contract: two valid regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and both regions are valid for n bytes. Volatile
        // reads keep the optimiser from turning this loop into a memcmp call.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// Standard `bcmp` contract: two valid regions of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// Standard `strlen` contract: `s` points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const c_char) -> usize {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to and including
    // the NUL is readable. Volatile keeps this from becoming a strlen call.
    while unsafe { (s.add(n) as *const u8).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// Referenced by the precompiled `core` (built for unwinding) in builds
/// without LTO. With `panic = "abort"` no unwinding ever starts, so it is
/// never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
