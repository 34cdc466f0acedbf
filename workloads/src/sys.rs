//! The system calls the two programs need and nothing else, made directly
//! (x86-64 `syscall`, no libc): blocking signals and waiting for one
//! synchronously (no handler runs, so nothing async-signal-unsafe can
//! happen), reaping any child, writing to stderr, exiting; and the process
//! entry `_start` ([`entry!`](crate::entry)) for `matic-pause`, which is
//! `no_std` and links no C runtime (a few KiB instead of glibc's static
//! 1.1 MB; docs/image.md, "Workload images").
//!
//! Every `unsafe` of the package is here, each with a `// SAFETY:` note.
//! Must never: leave a signal it blocked undelivered to its caller, or use
//! `std` (the pause binary has none).

use core::arch::asm;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("matic-workloads' raw syscall layer is written for x86_64 only (as matic-init's)");

/// The signals a pod's sandbox or a workload waits for.
pub const SIGTERM: i32 = 15;
/// Ctrl-C, or `kill -INT`.
pub const SIGINT: i32 = 2;
/// A child ended.
pub const SIGCHLD: i32 = 17;

// x86-64 syscall numbers (asm/unistd_64.h) and flags.
const NR_WRITE: usize = 1;
const NR_RT_SIGPROCMASK: usize = 14;
const NR_WAIT4: usize = 61;
const NR_RT_SIGTIMEDWAIT: usize = 128;
const NR_EXIT_GROUP: usize = 231;
const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;
/// The kernel's `sigset_t` is 64 bits on x86-64.
const SIGSET_SIZE: usize = 8;
const EINVAL: i32 = 22;

/// A failed system call's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

#[inline(always)]
fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: every caller below passes arguments valid for `nr` (pointers
    // to memory it owns for the call's duration, or null where the call
    // allows it); `syscall` clobbers only rcx and r11 besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// A set of blocked signals to wait on.
pub struct Blocked(u64);

/// Blocks `signals` in this thread (call before spawning threads, so they
/// inherit the mask; rt_sigprocmask(2)) and returns the set to
/// [`Blocked::wait`] on. A number outside 1..=64 is `EINVAL`.
pub fn block(signals: &[i32]) -> Result<Blocked, Errno> {
    let mut set = 0u64;
    for &s in signals {
        if !(1..=64).contains(&s) {
            return Err(Errno(EINVAL));
        }
        set |= 1 << (s - 1);
    }
    check(syscall4(
        NR_RT_SIGPROCMASK,
        SIG_BLOCK,
        (&raw const set) as usize,
        0,
        SIGSET_SIZE,
    ))?;
    Ok(Blocked(set))
}

impl Blocked {
    /// Waits for one of the blocked signals and returns its number
    /// (sigwaitinfo(2): rt_sigtimedwait without info or timeout).
    pub fn wait(&self) -> i32 {
        loop {
            let r = syscall4(
                NR_RT_SIGTIMEDWAIT,
                (&raw const self.0) as usize,
                0,
                0,
                SIGSET_SIZE,
            );
            if let Ok(s) = check(r) {
                return s as i32;
            }
            // EINTR (a stop/continue), the only error a valid set and
            // size leave (EAGAIN needs a timeout, EFAULT a bad pointer):
            // wait again.
        }
    }
}

/// Reaps every child that has ended, without blocking (wait4(2), no status
/// kept); returns how many.
pub fn reap_all() -> usize {
    let mut n = 0;
    while let Ok(pid) = check(syscall4(NR_WAIT4, -1isize as usize, 0, WNOHANG, 0)) {
        if pid == 0 {
            break;
        }
        n += 1;
    }
    n
}

/// Writes `msg` to stderr (fd 2), best effort (write(2)).
pub fn stderr(msg: &[u8]) {
    let _ = syscall4(NR_WRITE, 2, msg.as_ptr() as usize, msg.len(), 0);
}

/// Ends the process with `code` (exit_group(2)).
pub fn exit(code: i32) -> ! {
    syscall4(NR_EXIT_GROUP, code as usize, 0, 0, 0);
    // exit_group does not return; should it, spin rather than run on.
    loop {
        core::hint::spin_loop();
    }
}

/// Defines the process entry point `_start` in the invoking crate, which
/// calls `$main()` (a `fn() -> !`) with the stack aligned as the SysV ABI
/// expects at a call. For `no_std`, `no_main` binaries linked with
/// `-nostartfiles` (build.rs); the arguments are not read.
#[macro_export]
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
                "and rsp, -16",
                "call {entry}",
                "ud2",
                entry = sym start_rust,
            )
        }

        extern "C" fn start_rust() -> ! {
            $main()
        }

        /// Referenced by the precompiled `core` (built for unwinding) in
        /// builds without LTO. With `panic = "abort"` no unwinding ever
        /// starts, so it is never called (as in matic-init's sys.rs).
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn rust_eh_personality() {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_number_out_of_range_is_einval() {
        for s in [0, -1, 65] {
            assert_eq!(block(&[s]).err(), Some(Errno(EINVAL)), "{s}");
        }
    }

    #[test]
    fn reaps_an_ended_child_then_none() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Reaped here, not by `Child::wait`: forget the handle.
        drop(child);
        // Until it has ended (a loaded machine may take a while to run
        // `true`): reap_all never blocks, so poll.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut reaped = 0;
        while reaped == 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
            reaped = reap_all();
        }
        assert!(reaped >= 1, "child {pid} not reaped in 30 s");
        assert_eq!(reap_all(), 0);
    }
}
