//! Stage 2's fork and exec of a service: the child gets a clean process
//! (default signal dispositions, nothing blocked, its own session, `/` as
//! its directory, stdin on `/dev/null`, stdout and stderr on its log pipe;
//! for the agent, the other services' pipes from descriptor 3 on) and the
//! table's environment and descriptor limit.
//!
//! The child must never return into init's loop: a failed `execve` ends it
//! with status 127.

use crate::{error, sys, warn};
use core::ffi::{CStr, c_char};
use matic_contract::handoff::FIRST_FD;
use matic_init::argv::MAX_ARGS;
use matic_init::fmtbuf::Printable;
use matic_init::table::{SERVICE_ENV, SERVICE_NOFILE};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;

/// Forks and execs `path` with `args` (`matic_init::argv`: `path` first,
/// each with its NUL) in the child; the child's pid. `handed[k]`
/// becomes the child's descriptor `FIRST_FD + k` (the agent's log
/// handoff, `matic_contract::handoff`; empty for every other service).
pub fn spawn(
    path: &CStr,
    args: &[&[u8]],
    out: Option<&OwnedFd>,
    devnull: Option<&OwnedFd>,
    handed: &[Option<&OwnedFd>],
) -> Result<i32, Errno> {
    match sys::fork()? {
        0 => child(path, args, out, devnull, handed),
        pid => Ok(pid),
    }
}

/// In the forked child: a clean process for the service, then exec.
fn child(
    path: &CStr,
    args: &[&[u8]],
    out: Option<&OwnedFd>,
    devnull: Option<&OwnedFd>,
    handed: &[Option<&OwnedFd>],
) -> ! {
    sys::reset_signals();
    let _ = rustix::process::setsid();
    let _ = rustix::process::chdir(c"/");
    if let Some(n) = devnull {
        let _ = rustix::stdio::dup2_stdin(n.as_fd());
    }
    if let Some(o) = out.or(devnull) {
        let _ = rustix::stdio::dup2_stdout(o.as_fd());
        let _ = rustix::stdio::dup2_stderr(o.as_fd());
    }
    let top = FIRST_FD + handed.len() as i32;
    for (k, fd) in handed.iter().enumerate() {
        // Through a copy above every target: a pipe may sit on a number
        // still to be filled (the copies close at exec).
        if let Some(high) = fd.and_then(|f| rustix::io::fcntl_dupfd_cloexec(f, top).ok()) {
            let _ = sys::dup2_raw(&high, FIRST_FD + k as i32);
        }
    }
    // Null-terminated: one slot more than the most arguments.
    let mut argv = [core::ptr::null::<c_char>(); MAX_ARGS + 1];
    for (slot, a) in argv.iter_mut().zip(args) {
        *slot = a.as_ptr().cast();
    }
    let mut envp = [core::ptr::null::<c_char>(); 4];
    for (slot, e) in envp.iter_mut().zip(SERVICE_ENV) {
        *slot = e.as_ptr();
    }
    let e = sys::execve(path, &argv, &envp);
    error!("exec {} failed: {}", Printable(path.to_bytes()), e);
    sys::exit_group(127)
}

/// Sets init's `RLIMIT_NOFILE` to [`SERVICE_NOFILE`] (soft and hard), which
/// every service inherits; init itself never `select`s, so a high soft limit
/// costs it nothing. Raising the hard limit needs `CAP_SYS_RESOURCE` and
/// `fs.nr_open` ≥ the figure; failing that, the soft limit is raised to the
/// hard one (logged).
pub fn raise_nofile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = Rlimit {
        current: Some(SERVICE_NOFILE),
        maximum: Some(SERVICE_NOFILE),
    };
    if let Err(e) = setrlimit(Resource::Nofile, want) {
        let mut l = getrlimit(Resource::Nofile);
        l.current = l.maximum;
        // Raising the soft limit up to the hard one is always allowed.
        let _ = setrlimit(Resource::Nofile, l);
        warn!(
            "RLIMIT_NOFILE {}: {}; services get the hard limit, {}",
            SERVICE_NOFILE,
            e,
            l.maximum.unwrap_or(u64::MAX)
        );
    }
}
