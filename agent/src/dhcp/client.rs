//! The RFC 2131 client state machine ([`Client`]): time and replies in,
//! [`Action`]s out, and the [`Lease`] a server grants. No I/O, so every
//! timer is unit-tested.
//!
//! Must never touch a socket, netlink or a file, nor read the clock: the
//! driver (`super::run`) passes the time in.
//!
//! A little over 400 lines, kept in one file: every state's transitions and
//! timers are read against the others (RFC 2131 §4.4), and about a third of
//! it is the comments that tie each rule to the RFC.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::MessageType;

/// First retransmission of a DISCOVER or selecting REQUEST (RFC 2131
/// §4.1: 4 s, doubled each time up to [`MAX_RETRANSMIT`], ±1 s).
pub const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
/// Cap of the DISCOVER retransmission interval (RFC 2131 §4.1).
pub const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
/// REQUESTs sent for an OFFER before starting over (4 s + 8 s + 16 s +
/// 32 s without an answer).
pub const REQUEST_TRIES: u32 = 4;
/// Least wait between REQUESTs while RENEWING or REBINDING (RFC 2131
/// §4.4.5), shortened to an eighth of the lease for leases under 8 min so
/// that a short lease still gets several tries before it expires.
pub const RENEW_MIN_RETRY: Duration = Duration::from_secs(60);
/// Backoff before INIT after a failure (NAK, unanswered REQUEST, expiry, a
/// lease that could not be applied): 2 s, doubled per consecutive failure,
/// capped here; reset by a lease.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// A retry is never sooner than this, whatever a server's lease says.
const MIN_RETRY: Duration = Duration::from_secs(1);

/// What a server's OFFER or ACK gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 12, as the server sent it (validated when applied).
    pub hostname: Option<String>,
    /// The server identifier (option 54), where RENEWING REQUESTs go.
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    /// Options 58 and 59, when the server sent them.
    pub t1_secs: Option<u32>,
    pub t2_secs: Option<u32>,
}

impl Lease {
    /// The lease's length.
    pub fn length(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_secs))
    }
    /// T2, from the lease start: option 59 when it falls inside the
    /// lease, else 7/8 of it.
    pub fn t2(&self) -> Duration {
        match self.t2_secs.map(|s| Duration::from_secs(u64::from(s))) {
            Some(t) if t < self.length() => t,
            _ => self.length() * 7 / 8,
        }
    }
    /// T1, from the lease start: option 58 when it comes before T2, else
    /// half the lease (or T2, if sooner).
    pub fn t1(&self) -> Duration {
        match self.t1_secs.map(|s| Duration::from_secs(u64::from(s))) {
            Some(t) if t < self.t2() => t,
            _ => (self.length() / 2).min(self.t2()),
        }
    }
    /// Least wait between REQUESTs while RENEWING or REBINDING.
    pub fn min_retry(&self) -> Duration {
        RENEW_MIN_RETRY.min(self.length() / 8).max(MIN_RETRY)
    }
    /// Whether `router` is outside `addr/prefix` (a /32 lease, say), so
    /// it needs an on-link route before it can be a gateway.
    pub fn router_off_subnet(&self) -> Option<Ipv4Addr> {
        let r = self.router?;
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        (u32::from(r) & mask != u32::from(self.addr) & mask).then_some(r)
    }
}

/// The message a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// SELECTING: who offers an address?
    Discover,
    /// REQUESTING: the offer of `addr` from `server` (options 50 and 54).
    Select { addr: Ipv4Addr, server: Ipv4Addr },
    /// RENEWING (unicast to the server) or REBINDING (broadcast): extend
    /// the lease of `ciaddr`.
    Extend { ciaddr: Ipv4Addr },
}

/// A packet to send: what, with which transaction id, and to whom
/// ([`Ipv4Addr::BROADCAST`] or the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub xid: u32,
    pub msg: Message,
    pub to: Ipv4Addr,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Outgoing),
    /// Configure (or refresh, on a renewal) this lease on the interface.
    Apply(Lease),
    /// Take this lease's address (and routes) off the interface.
    Remove(Lease),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Init,
    Selecting {
        xid: u32,
        interval: Duration,
    },
    Requesting {
        xid: u32,
        offer: Lease,
        tries: u32,
        sent: Duration,
    },
    /// `start` is when the REQUEST that got the ACK was sent (RFC 2131
    /// §4.4.1: timers run from then, not from the ACK).
    Bound {
        lease: Lease,
        start: Duration,
    },
    Renewing {
        xid: u32,
        lease: Lease,
        start: Duration,
        sent: Duration,
    },
    Rebinding {
        xid: u32,
        lease: Lease,
        start: Duration,
        sent: Duration,
    },
}

/// The RFC 2131 client. Time is a [`Duration`] since any fixed origin;
/// call [`Client::on_timer`] once [`Client::wake_at`] has come, and
/// [`Client::on_reply`] for every server reply.
#[derive(Debug, Clone)]
pub struct Client {
    state: State,
    wake: Duration,
    /// Consecutive failures, for the backoff before INIT.
    failures: u32,
    /// xorshift32 state: transaction ids and the ±1 s jitter.
    rng: u32,
}

impl Client {
    /// A client in INIT that sends its first DISCOVER at `now`; `seed`
    /// seeds transaction ids and jitter (distinct per node, so a rack
    /// powering up together does not retransmit in step).
    pub fn new(now: Duration, seed: u32) -> Client {
        Client {
            state: State::Init,
            wake: now,
            failures: 0,
            rng: seed | 1,
        }
    }

    /// When [`Client::on_timer`] has something to do next.
    pub fn wake_at(&self) -> Duration {
        self.wake
    }

    /// The state's name in RFC 2131.
    pub fn state(&self) -> &'static str {
        match self.state {
            State::Init => "INIT",
            State::Selecting { .. } => "SELECTING",
            State::Requesting { .. } => "REQUESTING",
            State::Bound { .. } => "BOUND",
            State::Renewing { .. } => "RENEWING",
            State::Rebinding { .. } => "REBINDING",
        }
    }

    /// The lease held (in BOUND, RENEWING, REBINDING), and when it ends.
    pub fn lease(&self) -> Option<(&Lease, Duration)> {
        match &self.state {
            State::Bound { lease, start }
            | State::Renewing { lease, start, .. }
            | State::Rebinding { lease, start, .. } => Some((lease, *start + lease.length())),
            _ => None,
        }
    }

    fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// `d` randomized by ±1 s (RFC 2131 §4.1), never under [`MIN_RETRY`].
    fn jitter(&mut self, d: Duration) -> Duration {
        let ms = i64::from(self.random() % 2001) - 1000;
        let d = d.as_millis() as i64 + ms;
        Duration::from_millis(d.max(MIN_RETRY.as_millis() as i64) as u64)
    }

    fn discover(&mut self, now: Duration) -> Vec<Action> {
        let xid = self.random();
        self.state = State::Selecting {
            xid,
            interval: FIRST_RETRANSMIT,
        };
        self.wake = now + self.jitter(FIRST_RETRANSMIT);
        vec![Action::Send(Outgoing {
            xid,
            msg: Message::Discover,
            to: Ipv4Addr::BROADCAST,
        })]
    }

    /// Back to INIT after a failure, with the next DISCOVER delayed by the
    /// backoff.
    fn fail(&mut self, now: Duration, actions: Vec<Action>) -> Vec<Action> {
        self.failures = self.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_BACKOFF);
        self.state = State::Init;
        self.wake = now + self.jitter(backoff);
        actions
    }

    /// Consecutive failures since the last lease (what the backoff grows with).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Timers: retransmissions, T1, T2, expiry, the end of a backoff.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        if now < self.wake {
            return Vec::new();
        }
        match self.state.clone() {
            State::Init => self.discover(now),
            State::Selecting { xid, interval } => {
                let interval = (interval * 2).min(MAX_RETRANSMIT);
                self.state = State::Selecting { xid, interval };
                self.wake = now + self.jitter(interval);
                vec![Action::Send(Outgoing {
                    xid,
                    msg: Message::Discover,
                    to: Ipv4Addr::BROADCAST,
                })]
            }
            State::Requesting { tries, .. } if tries >= REQUEST_TRIES => self.fail(now, Vec::new()),
            State::Requesting {
                xid, offer, tries, ..
            } => {
                let msg = Message::Select {
                    addr: offer.addr,
                    server: offer.server,
                };
                self.state = State::Requesting {
                    xid,
                    offer,
                    tries: tries + 1,
                    sent: now,
                };
                self.wake = now + self.jitter(FIRST_RETRANSMIT * (1 << tries));
                vec![Action::Send(Outgoing {
                    xid,
                    msg,
                    to: Ipv4Addr::BROADCAST,
                })]
            }
            State::Bound { lease, start }
            | State::Renewing { lease, start, .. }
            | State::Rebinding { lease, start, .. } => self.held(now, lease, start),
        }
    }

    /// A held lease's timers: whichever of T1, T2 and expiry `now` has
    /// passed decides the state (so a late wake-up, say after a suspended
    /// VM, goes straight to the right one).
    fn held(&mut self, now: Duration, lease: Lease, start: Duration) -> Vec<Action> {
        let (t1, t2, end) = (
            start + lease.t1(),
            start + lease.t2(),
            start + lease.length(),
        );
        let ciaddr = lease.addr;
        if now >= end {
            // Expired: the address is no longer ours. A failure like any
            // other (no server answered from T1 on), so the DISCOVER waits
            // out the backoff: that also paces a server handing out
            // zero-second leases.
            return self.fail(now, vec![Action::Remove(lease)]);
        }
        let (xid, to, deadline) = match &self.state {
            State::Rebinding { xid, .. } => (*xid, Ipv4Addr::BROADCAST, end),
            _ if now >= t2 => (self.random(), Ipv4Addr::BROADCAST, end),
            State::Renewing { xid, .. } => (*xid, lease.server, t2),
            _ if now >= t1 => (self.random(), lease.server, t2),
            _ => {
                self.wake = t1;
                return Vec::new();
            }
        };
        // Half the time left until the next phase, at least min_retry, but
        // never past the phase change.
        self.wake = (now + ((deadline - now) / 2).max(lease.min_retry())).min(deadline);
        self.state = if to == Ipv4Addr::BROADCAST {
            State::Rebinding {
                xid,
                lease,
                start,
                sent: now,
            }
        } else {
            State::Renewing {
                xid,
                lease,
                start,
                sent: now,
            }
        };
        vec![Action::Send(Outgoing {
            xid,
            msg: Message::Extend { ciaddr },
            to,
        })]
    }

    /// A server's reply (already matched to this client's hardware address
    /// by [`parse_reply`]); replies to other transactions or out of place
    /// are ignored.
    pub fn on_reply(
        &mut self,
        now: Duration,
        xid: u32,
        kind: MessageType,
        lease: Lease,
    ) -> Vec<Action> {
        if lease.addr.is_unspecified() && kind != MessageType::Nak {
            return Vec::new();
        }
        match (self.state.clone(), kind) {
            (State::Selecting { xid: x, .. }, MessageType::Offer) if x == xid => {
                let msg = Message::Select {
                    addr: lease.addr,
                    server: lease.server,
                };
                self.state = State::Requesting {
                    xid,
                    offer: lease,
                    tries: 1,
                    sent: now,
                };
                self.wake = now + self.jitter(FIRST_RETRANSMIT);
                vec![Action::Send(Outgoing {
                    xid,
                    msg,
                    to: Ipv4Addr::BROADCAST,
                })]
            }
            (State::Requesting { xid: x, sent, .. }, MessageType::Ack) if x == xid => {
                self.bind(lease, sent, None)
            }
            (State::Requesting { xid: x, .. }, MessageType::Nak) if x == xid => {
                self.fail(now, Vec::new())
            }
            (
                State::Renewing {
                    xid: x,
                    lease: old,
                    sent,
                    ..
                }
                | State::Rebinding {
                    xid: x,
                    lease: old,
                    sent,
                    ..
                },
                MessageType::Ack,
            ) if x == xid => self.bind(lease, sent, Some(old)),
            (
                State::Renewing {
                    xid: x, lease: old, ..
                }
                | State::Rebinding {
                    xid: x, lease: old, ..
                },
                MessageType::Nak,
            ) if x == xid => self.fail(now, vec![Action::Remove(old)]),
            _ => Vec::new(),
        }
    }

    fn bind(&mut self, lease: Lease, start: Duration, old: Option<Lease>) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(old) = old.filter(|o| (o.addr, o.prefix) != (lease.addr, lease.prefix)) {
            actions.push(Action::Remove(old));
        }
        self.failures = 0;
        self.wake = start + lease.t1();
        self.state = State::Bound {
            lease: lease.clone(),
            start,
        };
        actions.push(Action::Apply(lease));
        actions
    }

    /// The host could not apply the lease just bound: take off whatever
    /// part of it was set and start over after the backoff.
    pub fn on_apply_failed(&mut self, now: Duration) -> Vec<Action> {
        match self.lease() {
            Some((lease, _)) => {
                let lease = lease.clone();
                self.fail(now, vec![Action::Remove(lease)])
            }
            None => Vec::new(),
        }
    }
}
