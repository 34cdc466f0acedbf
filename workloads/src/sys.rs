//! The system calls std lacks: blocking signals and waiting for one
//! synchronously (no handler runs, so nothing async-signal-unsafe can
//! happen), and reaping any child.
//!
//! Must never: leave a signal it blocked undelivered to its caller.

/// The signals a pod's sandbox or a workload waits for.
pub const SIGTERM: i32 = libc::SIGTERM;
/// Ctrl-C, or `kill -INT`.
pub const SIGINT: i32 = libc::SIGINT;
/// A child ended.
pub const SIGCHLD: i32 = libc::SIGCHLD;

/// A set of blocked signals to wait on.
pub struct Blocked(libc::sigset_t);

/// Blocks `signals` in this thread (call before spawning threads, so they
/// inherit the mask) and returns the set to [`Blocked::wait`] on.
pub fn block(signals: &[i32]) -> std::io::Result<Blocked> {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `set` is a valid, owned sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: `set` is initialised; an invalid signal number is an error return.
        if unsafe { libc::sigaddset(&mut set, s) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(Blocked(set))
}

impl Blocked {
    /// Waits for one of the blocked signals and returns its number.
    pub fn wait(&self) -> i32 {
        loop {
            // SAFETY: the set is initialised; a null siginfo is allowed.
            let s = unsafe { libc::sigwaitinfo(&self.0, std::ptr::null_mut()) };
            if s > 0 {
                return s;
            }
            // EINTR (a stop/continue): wait again.
        }
    }
}

/// Reaps every child that has ended, without blocking; returns how many.
pub fn reap_all() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, which we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}
