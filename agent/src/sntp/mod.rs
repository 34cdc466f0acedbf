//! The node's clock keeper: an SNTP client (RFC 4330) asking the servers of
//! the configuration's `time.ntp`, one request per server per round, and
//! correcting the wall clock from the best reply (the one with the smallest
//! round-trip delay, RFC 4330 §5's advice): stepped when it is off by
//! [`STEP_THRESHOLD_NS`] or more, slewed by the kernel (`adjtime`) below.
//! Its last result is what `osctl time` shows ([`Sntp::status`]).
//!
//! Must never: correct the clock from a reply that failed a check
//! ([`packet::parse_reply`]), ask a server more than once a round, or
//! touch the clock in tests (`--clock-file` records the correction
//! instead).

pub mod packet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use packet::{Nanos, Sample};

/// At or above this offset the clock is stepped; below, slewed (ntpd's
/// threshold: a slew of 128 ms at the kernel's 500 ppm takes ~4 min).
pub const STEP_THRESHOLD_NS: i64 = 128_000_000;
/// How long a server has to answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds start 64 s apart and double while they succeed, to 1024 s
/// (NTP's default poll range); a round without any good reply waits 16 s.
pub const POLL_MIN: Duration = Duration::from_secs(64);
pub const POLL_MAX: Duration = Duration::from_secs(1024);
pub const RETRY: Duration = Duration::from_secs(16);

/// What was done with the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stepped,
    Slewed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stepped => "stepped",
            Action::Slewed => "slewed",
        }
    }
}

/// The last good round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSync {
    pub server: String,
    pub sample: Sample,
    pub action: Action,
    /// Wall clock (Unix s) after the correction.
    pub at_unix: u64,
}

/// What `osctl time` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub servers: Vec<String>,
    pub last: Option<LastSync>,
    /// Unix s of the last round, good or not.
    pub last_attempt_unix: u64,
    /// The last round's failures: server and why.
    pub errors: Vec<(String, String)>,
}

/// Where corrections go.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The node's wall clock (`clock_settime`, `adjtime`).
    System,
    /// Tests: one `step OFFSET_NS` or `slew OFFSET_NS` line appended per
    /// correction.
    File(PathBuf),
}

impl Clock {
    fn correct(&self, offset_ns: i64) -> std::io::Result<Action> {
        let action = if offset_ns.abs() >= STEP_THRESHOLD_NS {
            Action::Stepped
        } else {
            Action::Slewed
        };
        match self {
            Clock::System => match action {
                Action::Stepped => {
                    let now = wall_ns() + offset_ns;
                    rustix::time::clock_settime(
                        rustix::time::ClockId::Realtime,
                        rustix::time::Timespec {
                            tv_sec: now.div_euclid(1_000_000_000),
                            tv_nsec: now.rem_euclid(1_000_000_000) as _,
                        },
                    )?
                }
                Action::Slewed => crate::sys::adjtime(offset_ns / 1000)?,
            },
            Clock::File(path) => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                writeln!(
                    f,
                    "{} {offset_ns}",
                    if action == Action::Stepped {
                        "step"
                    } else {
                        "slew"
                    }
                )?;
            }
        }
        Ok(action)
    }
}

fn wall_ns() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One request to `server` (a host name or an IP) on `port`.
pub async fn query(server: &str, port: u16) -> Result<Sample, String> {
    let addr: SocketAddr = tokio::net::lookup_host((server, port))
        .await
        .map_err(|e| format!("resolving: {e}"))?
        .next()
        .ok_or("resolving: no address")?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("socket: {e}"))?;
    sock.connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let t1 = wall_ns();
    let sent = packet::to_ntp(t1);
    sock.send(&packet::request(sent))
        .await
        .map_err(|e| format!("{addr}: sending: {e}"))?;
    let mut buf = [0u8; 128];
    let n = tokio::time::timeout(REPLY_TIMEOUT, sock.recv(&mut buf))
        .await
        .map_err(|_| format!("{addr}: no reply within {} s", REPLY_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let t4 = wall_ns();
    packet::parse_reply(&buf[..n], sent, t1, t4).map_err(|e| format!("{addr}: {e}"))
}

/// The client: servers from the configuration, status for the API.
#[derive(Debug)]
pub struct Sntp {
    port: u16,
    clock: Clock,
    status: Mutex<Status>,
}

impl Sntp {
    pub fn new(port: u16, clock: Clock) -> Sntp {
        Sntp {
            port,
            clock,
            status: Mutex::new(Status::default()),
        }
    }

    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// One round: every server asked once; the clock corrected from the
    /// reply with the smallest delay. Whether one reply was good.
    pub async fn round(&self, servers: &[String]) -> bool {
        let mut best: Option<(String, Sample)> = None;
        let mut errors = Vec::new();
        for s in servers {
            match query(s, self.port).await {
                Ok(sample) => {
                    if best
                        .as_ref()
                        .is_none_or(|(_, b)| sample.delay_ns < b.delay_ns)
                    {
                        best = Some((s.clone(), sample));
                    }
                }
                Err(e) => {
                    eprintln!("matic-agent: time: {s}: {e}");
                    errors.push((s.clone(), e));
                }
            }
        }
        let last = match best {
            Some((server, sample)) => match self.clock.correct(sample.offset_ns) {
                Ok(action) => {
                    eprintln!(
                        "matic-agent: time: {server}: offset {} ms, delay {} ms: {}",
                        sample.offset_ns / 1_000_000,
                        sample.delay_ns / 1_000_000,
                        action.as_str()
                    );
                    Some(LastSync {
                        server,
                        sample,
                        action,
                        at_unix: (wall_ns() / 1_000_000_000) as u64,
                    })
                }
                Err(e) => {
                    eprintln!("matic-agent: time: correcting the clock: {e}");
                    errors.push((server, format!("correcting the clock: {e}")));
                    None
                }
            },
            None => None,
        };
        let ok = last.is_some();
        if let Ok(mut st) = self.status.lock() {
            st.servers = servers.to_vec();
            st.last_attempt_unix = (wall_ns() / 1_000_000_000) as u64;
            st.errors = errors;
            if last.is_some() {
                st.last = last;
            }
        }
        ok
    }

    /// Runs for the agent's life: a round whenever the servers change and
    /// at the poll interval.
    pub async fn run(self: std::sync::Arc<Self>, mut servers: watch::Receiver<Vec<String>>) {
        let mut poll = POLL_MIN;
        loop {
            let list = servers.borrow_and_update().clone();
            if let Ok(mut st) = self.status.lock() {
                st.servers = list.clone();
            }
            if list.is_empty() {
                if servers.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let wait = if self.round(&list).await {
                let w = poll;
                poll = (poll * 2).min(POLL_MAX);
                w
            } else {
                poll = POLL_MIN;
                RETRY
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = servers.changed() => if r.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake NTP server on loopback whose clock is `ahead_ns` off ours.
    async fn fake(ahead_ns: i64) -> u16 {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 128];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                if n < packet::LEN {
                    continue;
                }
                let mut req = [0u8; packet::LEN];
                req.copy_from_slice(&buf[..packet::LEN]);
                let t = wall_ns() + ahead_ns;
                let _ = sock.send_to(&packet::reply(&req, t, t), from).await;
            }
        });
        port
    }

    fn clock_file(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("matic-clock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn corrections(p: &PathBuf) -> Vec<(String, i64)> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (a, n) = l.split_once(' ').unwrap();
                (a.to_owned(), n.parse().unwrap())
            })
            .collect()
    }

    #[tokio::test]
    async fn large_offset_steps_small_one_slews() {
        let p = clock_file("step");
        let port = fake(3_600_000_000_000).await;
        let s = Sntp::new(port, Clock::File(p.clone()));
        assert!(s.round(&["127.0.0.1".into()]).await);
        let c = corrections(&p);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "step");
        assert!((c[0].1 - 3_600_000_000_000).abs() < 50_000_000, "{c:?}");
        let st = s.status();
        assert_eq!(st.last.as_ref().unwrap().action, Action::Stepped);
        assert_eq!(st.last.as_ref().unwrap().server, "127.0.0.1");

        let port = fake(-20_000_000).await;
        let s = Sntp::new(port, Clock::File(p.clone()));
        assert!(s.round(&["127.0.0.1".into()]).await);
        let c = corrections(&p);
        assert_eq!(c[1].0, "slew", "{c:?}");
        assert!((c[1].1 + 20_000_000).abs() < 10_000_000, "{c:?}");
        let _ = std::fs::remove_file(&p);
    }

    #[tokio::test]
    async fn silent_or_lying_servers_leave_the_clock_alone() {
        let p = clock_file("silent");
        // A socket that never answers.
        let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = quiet.local_addr().unwrap().port();
        let s = Sntp::new(port, Clock::File(p.clone()));
        assert!(!s.round(&["127.0.0.1".into()]).await);
        let st = s.status();
        assert!(st.last.is_none());
        assert!(st.errors[0].1.contains("no reply"), "{st:?}");
        // A server answering with an unsynchronised clock.
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 128];
            while let Ok((_, from)) = sock.recv_from(&mut buf).await {
                let mut req = [0u8; packet::LEN];
                req.copy_from_slice(&buf[..packet::LEN]);
                let mut r = packet::reply(&req, wall_ns() + 999_000_000_000, wall_ns());
                r[0] |= 3 << 6;
                let _ = sock.send_to(&r, from).await;
            }
        });
        let s = Sntp::new(port, Clock::File(p.clone()));
        assert!(!s.round(&["127.0.0.1".into()]).await);
        assert!(s.status().errors[0].1.contains("not synchronised"));
        assert!(corrections(&p).is_empty());
        drop(quiet);
    }
}
