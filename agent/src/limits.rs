//! Admission control: how many connections, handshakes and log streams the
//! agent serves at once, and the reserve that keeps admins in. Owns the
//! caps (docs/api.md, "Limits under load"), the [`Budget`] type that hands
//! out permits for them, and raising the descriptor limit at start.
//!
//! Must never block: a budget that is spent refuses at once (the caller
//! turns that into `RESOURCE_EXHAUSTED` or a closed connection); nothing
//! here waits for a permit.
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// TCP connections whose TLS handshake is not finished. A new one past the
/// cap closes the oldest: idle sockets cannot keep an admin's fresh
/// connection out (it would have to be outrun by this many newer ones
/// within its own handshake, a few milliseconds).
pub const PENDING_HANDSHAKES: usize = 64;
/// How long a client gets to finish the TLS handshake (one round trip and
/// a signature; seconds even on a slow link).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Authenticated connections open at once, any role.
pub const CONNECTIONS: usize = 256;
/// Further authenticated connections only an `os:admin` certificate gets.
pub const ADMIN_CONNECTIONS: usize = 16;
/// Connections past the caps above that are still answered — every call
/// gets `RESOURCE_EXHAUSTED` with the sentence, so `osctl` can say why —
/// for [`REFUSED_LINGER`] before they are closed. Past this many at once,
/// a connection over the cap is simply closed.
pub const REFUSED_CONNECTIONS: usize = 32;
/// How long a refused connection stays open for its answer.
pub const REFUSED_LINGER: Duration = Duration::from_secs(2);
/// HTTP/2 streams (calls) in flight on one connection; a client that opens
/// more waits for one to end (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const STREAMS_PER_CONNECTION: u32 = 32;
/// `Logs` and `Dmesg` streams open at once, any role (each holds a file).
pub const LOG_STREAMS: usize = 256;
/// Further log streams only an `os:admin` certificate gets.
pub const ADMIN_LOG_STREAMS: usize = 16;
/// Threads of the shared blocking pool (GPT reads, log reads) of the
/// runtime serving readers and operators.
pub const SHARED_BLOCKING_THREADS: usize = 32;
/// Threads of the admin lane's own blocking pool (GPT reads and writes,
/// boot-ok marking, install).
pub const ADMIN_BLOCKING_THREADS: usize = 8;

/// Descriptors the caps above can hold at once, plus a margin for the
/// listener, the runtimes, an install and the files each RPC opens briefly.
pub const DESCRIPTORS_NEEDED: u64 = (PENDING_HANDSHAKES
    + CONNECTIONS
    + ADMIN_CONNECTIONS
    + REFUSED_CONNECTIONS
    + LOG_STREAMS
    + ADMIN_LOG_STREAMS) as u64
    + 128;

/// A number of permits everyone shares plus a reserve only admins draw on
/// once the shared ones are gone.
#[derive(Debug, Clone)]
pub struct Budget {
    /// What is counted, for the refusal ("log streams").
    what: &'static str,
    shared: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    shared_n: usize,
}

/// Held while the counted thing exists; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

/// A refusal: the shared budget is spent (and, for an admin, the reserve).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "already serving {limit} {what}, the most it allows at once; end some (a `logs -f` or `dmesg -f`) and try again"
)]
pub struct Exhausted {
    pub what: &'static str,
    pub limit: usize,
}

impl Exhausted {
    pub fn into_status(self) -> Status {
        Status::resource_exhausted(self.to_string())
    }
}

impl Budget {
    pub fn new(what: &'static str, shared: usize, admin_reserve: usize) -> Budget {
        Budget {
            what,
            shared: Arc::new(Semaphore::new(shared)),
            reserve: Arc::new(Semaphore::new(admin_reserve)),
            shared_n: shared,
        }
    }

    /// A permit from the shared budget, or for an admin from the reserve.
    pub fn try_acquire(&self, admin: bool) -> Result<Permit, Exhausted> {
        let got = self.shared.clone().try_acquire_owned().or_else(|e| {
            if admin {
                self.reserve.clone().try_acquire_owned()
            } else {
                Err(e)
            }
        });
        got.map(Permit).map_err(|_| Exhausted {
            what: self.what,
            limit: self.shared_n,
        })
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (no capability needed):
/// init hands services the kernel's 1024, which the caps above alone come
/// close to. Returns the resulting soft limit, for the log.
pub fn raise_nofile() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        setrlimit(Resource::Nofile, l)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// Nice value of the shared lane's threads: under CPU contention the admin
/// lane (nice 0) gets several times their share (the kernel's weight for
/// nice 5 is about a third of nice 0's).
pub const SHARED_NICE: i32 = 5;

/// Lowers the calling thread's priority to [`SHARED_NICE`] (no capability
/// needed to lower it); a failure only costs the admin lane its head start.
pub fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), SHARED_NICE) {
        eprintln!("matic-agent: lowering a shared-lane thread's priority: {e}");
    }
}

/// A log line that may repeat thousands of times a second under a flood
/// (refused connections): printed at most once per second, with how many
/// were left out since.
#[derive(Debug)]
pub struct Throttled {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    pub const fn new() -> Throttled {
        Throttled {
            state: Mutex::new((None, 0)),
        }
    }

    pub fn log(&self, msg: std::fmt::Arguments<'_>) {
        let Ok(mut s) = self.state.lock() else { return };
        let now = Instant::now();
        match s.0 {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => s.1 += 1,
            _ => {
                if s.1 > 0 {
                    eprintln!("matic-agent: {msg} (and {} more like it)", s.1);
                } else {
                    eprintln!("matic-agent: {msg}");
                }
                *s = (Some(now), 0);
            }
        }
    }
}

impl Default for Throttled {
    fn default() -> Self {
        Throttled::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_draw_on_the_reserve_others_are_refused() {
        let b = Budget::new("log streams", 2, 1);
        let r1 = b.try_acquire(false).unwrap();
        let _r2 = b.try_acquire(false).unwrap();
        let e = b.try_acquire(false).unwrap_err();
        assert_eq!(e.limit, 2);
        assert!(
            e.to_string().starts_with("already serving 2 log streams"),
            "{e}"
        );
        assert_eq!(e.into_status().code(), tonic::Code::ResourceExhausted);
        let a = b.try_acquire(true).unwrap();
        assert!(b.try_acquire(true).is_err(), "the reserve is one");
        drop(r1);
        // A freed shared slot goes to whoever asks next.
        let _r3 = b.try_acquire(false).unwrap();
        drop(a);
        assert!(b.try_acquire(false).is_err(), "the reserve is admins' only");
        assert!(b.try_acquire(true).is_ok());
    }
}
