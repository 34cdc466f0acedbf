//! The DHCPv4 client of RFC 2131: the packets (dhcproto), the client state
//! machine ([`Client`]: time and replies in, [`Action`]s out, no I/O, so
//! every timer is unit-tested), and the driver ([`run`]) that feeds it from
//! a UDP socket bound to the interface and a timer.
//!
//! States: INIT → SELECTING (DISCOVER, broadcast) → REQUESTING (REQUEST for
//! the first OFFER, broadcast) → BOUND; at T1 RENEWING (REQUEST unicast to
//! the server that granted the lease), at T2 REBINDING (REQUEST broadcast,
//! any server), at expiry the address is removed and the client starts
//! over in INIT. Expiry, a NAK, a REQUEST nobody answers and a lease the
//! host could not apply all go back to INIT after a backoff.
//!
//! This module must never touch netlink or files (applying and removing a
//! lease is the [`Host`]'s job, in [`crate::net`]) and its driver must
//! never return: every error is logged and retried with backoff, so one
//! lost packet or failed system call cannot leave the node without DHCP.
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

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
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
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

fn mask_to_prefix(m: Ipv4Addr) -> u8 {
    u32::from(m).leading_ones() as u8
}

/// Encodes `out` as a client's BOOTREQUEST from hardware address `mac`.
pub fn build_packet(out: &Outgoing, mac: &[u8]) -> Vec<u8> {
    let mut chaddr = mac.to_vec();
    chaddr.truncate(16);
    let ciaddr = match out.msg {
        Message::Extend { ciaddr } => ciaddr,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let mut msg = v4::Message::new_with_id(
        out.xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &chaddr,
    );
    // Without an address the client cannot take a unicast reply; with
    // one (RENEWING, REBINDING) the reply comes to it (RFC 2131 §4.1).
    if ciaddr.is_unspecified() {
        msg.set_flags(v4::Flags::default().set_broadcast());
    }
    let opts = msg.opts_mut();
    match out.msg {
        Message::Discover => {
            opts.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        Message::Select { addr, server } => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
            opts.insert(DhcpOption::RequestedIpAddress(addr));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        // RFC 2131 §4.3.2: neither option 50 nor 54 when extending.
        Message::Extend { .. } => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
        }
    }
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::Hostname,
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ]));
    msg.to_vec().unwrap_or_default()
}

/// Length of the fixed BOOTP header, then the magic cookie.
const HEADER_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Whether option `code` is one the client reads and `len` a length it
/// may have.
fn option_wanted(code: u8, len: usize) -> bool {
    match code {
        // Subnet mask, lease time, server identifier, T1, T2.
        1 | 51 | 54 | 58 | 59 => len == 4,
        // Routers, name servers: one address or more.
        3 | 6 => len >= 4 && len.is_multiple_of(4),
        // Host name.
        12 => len >= 1,
        // Message type.
        53 => len == 1,
        _ => false,
    }
}

/// The packet with only the options the client reads, each of a valid
/// length (the first of each code); None when the header is short, the
/// cookie is wrong, or an option runs past the end. dhcproto 0.15 panics
/// on some malformed options (debug assertions on lengths, an underflow
/// in option 151), and the agent aborts on a panic: it only ever decodes
/// this.
fn sanitize(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.get(HEADER_LEN..HEADER_LEN + 4)? != MAGIC_COOKIE {
        return None;
    }
    let mut out = buf[..HEADER_LEN + 4].to_vec();
    let mut seen = [false; 256];
    let mut i = HEADER_LEN + 4;
    while let Some(&code) = buf.get(i) {
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let len = usize::from(*buf.get(i + 1)?);
                let body = buf.get(i + 2..i + 2 + len)?;
                if option_wanted(code, len) && !seen[usize::from(code)] {
                    seen[usize::from(code)] = true;
                    out.push(code);
                    out.push(len as u8);
                    out.extend_from_slice(body);
                }
                i += 2 + len;
            }
        }
    }
    out.push(255);
    Some(out)
}

/// Parses a server's reply for hardware address `mac`: its transaction id,
/// message type and lease. None for anything else (junk, requests, replies
/// to another client).
pub fn parse_reply(buf: &[u8], mac: &[u8]) -> Option<(u32, MessageType, Lease)> {
    let clean = sanitize(buf)?;
    let msg = v4::Message::decode(&mut Decoder::new(&clean)).ok()?;
    let n = mac.len().min(16);
    // dhcproto's `chaddr()` slices by the packet's `hlen` and panics past
    // 16: check it first (the agent aborts on a panic).
    if msg.opcode() != v4::Opcode::BootReply
        || usize::from(msg.hlen()) > 16
        || msg.chaddr().get(..n) != Some(&mac[..n])
    {
        return None;
    }
    let opts = msg.opts();
    let kind = opts.msg_type()?;
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => mask_to_prefix(*m),
        _ => 24,
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let hostname = match opts.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => Some(h.clone()),
        _ => None,
    };
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => msg.siaddr(),
    };
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => 3600,
    };
    let t1_secs = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) => Some(*t),
        _ => None,
    };
    let t2_secs = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) => Some(*t),
        _ => None,
    };
    Some((
        msg.xid(),
        kind,
        Lease {
            addr: msg.yiaddr(),
            prefix,
            router,
            dns,
            hostname,
            server,
            lease_secs,
            t1_secs,
            t2_secs,
        },
    ))
}

/// What the driver needs from the system: put a lease on the interface
/// and take it off again.
pub trait Host {
    type Error: std::fmt::Display;
    /// Configures `lease` (address, routes, name servers, host name);
    /// `renewal` when the same address was already applied.
    fn apply(
        &mut self,
        lease: &Lease,
        renewal: bool,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Removes `lease`'s address and routes.
    fn remove(&mut self, lease: &Lease) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A one-line description of a packet for the log.
fn describe(out: &Outgoing) -> String {
    match out.msg {
        Message::Discover => "DISCOVER (broadcast)".to_owned(),
        Message::Select { addr, server } => {
            format!("REQUEST {addr} offered by {server} (broadcast)")
        }
        Message::Extend { ciaddr } if out.to == Ipv4Addr::BROADCAST => {
            format!("REQUEST to extend {ciaddr} (REBINDING, broadcast)")
        }
        Message::Extend { ciaddr } => {
            format!("REQUEST to extend {ciaddr} (RENEWING, to {})", out.to)
        }
    }
}

async fn open_socket(iface: &str) -> std::io::Result<tokio::net::UdpSocket> {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).await?;
    sock.set_broadcast(true)?;
    sock.bind_device(Some(iface.as_bytes()))?;
    Ok(sock)
}

/// Runs the client on `iface` (hardware address `mac`) forever.
pub async fn run<H: Host>(host: &mut H, iface: &str, mac: &[u8]) -> ! {
    let origin = tokio::time::Instant::now();
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ u32::from_le_bytes([
            mac.get(3).copied().unwrap_or(0),
            mac.get(4).copied().unwrap_or(0),
            mac.get(5).copied().unwrap_or(0),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as u8),
        ]);
    let mut client = Client::new(Duration::ZERO, seed);
    let mut sock = None;
    let mut sock_backoff = FIRST_BACKOFF;
    let mut buf = vec![0u8; 1500];
    // The address last applied, to tell a renewal from a new lease.
    let mut applied: Option<Ipv4Addr> = None;
    loop {
        let s = match &sock {
            Some(s) => s,
            None => match open_socket(iface).await {
                Ok(s) => sock.insert(s),
                Err(e) => {
                    eprintln!(
                        "matic-agent: dhcp: {iface}: UDP port 68: {e}; retrying in {sock_backoff:?}"
                    );
                    tokio::time::sleep(sock_backoff).await;
                    sock_backoff = (sock_backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let before = client.state();
        let actions = tokio::select! {
            _ = tokio::time::sleep_until(origin + client.wake_at()) => client.on_timer(origin.elapsed()),
            r = s.recv_from(&mut buf) => match r {
                Ok((n, _)) => match parse_reply(&buf[..n], mac) {
                    Some((xid, kind, lease)) => {
                        sock_backoff = FIRST_BACKOFF;
                        client.on_reply(origin.elapsed(), xid, kind, lease)
                    }
                    None => Vec::new(),
                },
                Err(e) => {
                    eprintln!(
                        "matic-agent: dhcp: {iface}: receiving: {e}; reopening the socket in {sock_backoff:?}"
                    );
                    sock = None;
                    tokio::time::sleep(sock_backoff).await;
                    sock_backoff = (sock_backoff * 2).min(MAX_BACKOFF);
                    Vec::new()
                }
            },
        };
        if client.state() != before {
            eprintln!("matic-agent: dhcp: {iface}: {before} -> {}", client.state());
        }
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(out) => {
                    let Some(s) = &sock else { continue };
                    let packet = build_packet(&out, mac);
                    eprintln!("matic-agent: dhcp: {iface}: {}", describe(&out));
                    // A failed send is retried by the state's own timer.
                    if let Err(e) = s.send_to(&packet, SocketAddr::from((out.to, 67))).await {
                        eprintln!("matic-agent: dhcp: {iface}: sending to {}: {e}", out.to);
                    }
                }
                Action::Apply(lease) => {
                    let renewal = applied == Some(lease.addr);
                    match host.apply(&lease, renewal).await {
                        Ok(()) => applied = Some(lease.addr),
                        Err(e) => {
                            eprintln!("matic-agent: dhcp: {iface}: applying {}: {e}", lease.addr);
                            queue.extend(client.on_apply_failed(origin.elapsed()));
                            eprintln!(
                                "matic-agent: dhcp: {iface}: starting over in {:?}",
                                client.wake_at().saturating_sub(origin.elapsed())
                            );
                        }
                    }
                }
                Action::Remove(lease) => {
                    eprintln!(
                        "matic-agent: dhcp: {iface}: lease of {}/{} from {} ended; removing it",
                        lease.addr, lease.prefix, lease.server
                    );
                    if let Err(e) = host.remove(&lease).await {
                        eprintln!("matic-agent: dhcp: {iface}: removing {}: {e}", lease.addr);
                    }
                    if applied == Some(lease.addr) {
                        applied = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn lease(addr: &str, secs: u32) -> Lease {
        Lease {
            addr: ip(addr),
            prefix: 24,
            router: Some(ip("10.0.0.1")),
            dns: vec![],
            hostname: None,
            server: ip("10.0.0.1"),
            lease_secs: secs,
            t1_secs: None,
            t2_secs: None,
        }
    }

    fn sent(actions: &[Action]) -> Vec<Outgoing> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(o) => Some(*o),
                _ => None,
            })
            .collect()
    }

    /// A client bound to `l` at time `at`, and the xid it used.
    fn bound(l: &Lease, at: Duration) -> Client {
        let mut c = Client::new(at, 7);
        let d = sent(&c.on_timer(at))[0];
        assert_eq!((d.msg, d.to), (Message::Discover, Ipv4Addr::BROADCAST));
        let r = sent(&c.on_reply(at, d.xid, MessageType::Offer, l.clone()))[0];
        assert_eq!(
            r.msg,
            Message::Select {
                addr: l.addr,
                server: l.server
            }
        );
        assert_eq!(
            c.on_reply(at, r.xid, MessageType::Ack, l.clone()),
            [Action::Apply(l.clone())]
        );
        assert_eq!(c.state(), "BOUND");
        c
    }

    #[test]
    fn timers_t1_unicast_t2_broadcast_expiry_removes() {
        let l = lease("10.0.0.9", 1000);
        assert_eq!((l.t1(), l.t2(), l.min_retry()), (500 * S, 875 * S, 60 * S));
        let mut c = bound(&l, 100 * S);
        assert_eq!(c.wake_at(), 600 * S, "T1 counts from the REQUEST");
        assert!(c.on_timer(599 * S).is_empty());
        // T1: RENEWING, unicast to the server, ciaddr set.
        let r = sent(&c.on_timer(600 * S));
        assert_eq!(
            r,
            [Outgoing {
                xid: r[0].xid,
                msg: Message::Extend { ciaddr: l.addr },
                to: l.server
            }]
        );
        assert_eq!(c.state(), "RENEWING");
        // Half the time left to T2 (975 s), at least 60 s, never past T2;
        // the same transaction each time.
        let mut wakes = vec![c.wake_at()];
        while c.state() == "RENEWING" {
            let again = sent(&c.on_timer(c.wake_at()));
            if c.state() == "RENEWING" {
                assert_eq!((again[0].xid, again[0].to), (r[0].xid, l.server));
            }
            wakes.push(c.wake_at());
        }
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(wakes, ms(&[787_500, 881_250, 941_250, 975_000, 1_037_500]));
        // T2: REBINDING, broadcast, a new transaction; then towards expiry.
        assert_eq!(c.state(), "REBINDING");
        let mut wakes = vec![];
        let mut rebinds = vec![];
        while c.state() == "REBINDING" && c.wake_at() < 1100 * S {
            rebinds.extend(sent(&c.on_timer(c.wake_at())));
            wakes.push(c.wake_at());
        }
        assert_eq!(
            wakes,
            ms(&[1_097_500, 1_100_000]),
            "60 s minimum, clamped to expiry"
        );
        for b in &rebinds {
            assert_eq!(
                (b.to, b.msg),
                (Ipv4Addr::BROADCAST, Message::Extend { ciaddr: l.addr })
            );
            assert_ne!(b.xid, r[0].xid);
        }
        // Expiry: the address goes, and a DISCOVER follows the backoff.
        assert_eq!(c.on_timer(1100 * S), [Action::Remove(l.clone())]);
        assert_eq!((c.state(), c.failures()), ("INIT", 1));
        assert!(c.lease().is_none());
        let wait = c.wake_at() - 1100 * S;
        assert!(wait >= S && wait <= 3 * S, "{wait:?}");
        assert_eq!(sent(&c.on_timer(c.wake_at()))[0].msg, Message::Discover);
    }

    #[test]
    fn renewal_extends_and_rebinding_ack_from_another_server_is_taken() {
        let l = lease("10.0.0.9", 40);
        assert_eq!(l.min_retry(), 5 * S, "an eighth of a short lease");
        let mut c = bound(&l, Duration::ZERO);
        let r = sent(&c.on_timer(20 * S))[0];
        // The server answers at 21 s: the new lease runs from 20 s.
        assert_eq!(
            c.on_reply(21 * S, r.xid, MessageType::Ack, l.clone()),
            [Action::Apply(l.clone())]
        );
        assert_eq!((c.state(), c.wake_at()), ("BOUND", 40 * S));
        assert_eq!(c.lease().unwrap().1, 60 * S);
        // Server silent through T1 and T2; another server ACKs the rebind.
        let mut t = 40 * S;
        let mut out = sent(&c.on_timer(t));
        while c.state() == "RENEWING" {
            t = c.wake_at();
            out = sent(&c.on_timer(t));
        }
        assert_eq!((c.state(), t), ("REBINDING", 55 * S));
        let b = out[0];
        assert_eq!(b.to, Ipv4Addr::BROADCAST);
        let other = Lease {
            server: ip("10.0.0.2"),
            ..l.clone()
        };
        assert_eq!(
            c.on_reply(59 * S, b.xid, MessageType::Ack, other.clone()),
            [Action::Apply(other.clone())]
        );
        // Renewals now go to the server that answered.
        let r = sent(&c.on_timer(c.wake_at()))[0];
        assert_eq!(r.to, ip("10.0.0.2"));
    }

    #[test]
    fn new_address_on_renewal_removes_the_old_one() {
        let l = lease("10.0.0.9", 100);
        let mut c = bound(&l, Duration::ZERO);
        let r = sent(&c.on_timer(50 * S))[0];
        let moved = lease("10.0.0.77", 100);
        assert_eq!(
            c.on_reply(50 * S, r.xid, MessageType::Ack, moved.clone()),
            [Action::Remove(l.clone()), Action::Apply(moved.clone())]
        );
        assert_eq!(c.lease().unwrap().0, &moved);
        // Only the prefix changing is a change of address too.
        let r = sent(&c.on_timer(100 * S))[0];
        let wider = Lease {
            prefix: 16,
            ..moved.clone()
        };
        assert_eq!(
            c.on_reply(100 * S, r.xid, MessageType::Ack, wider.clone()),
            [Action::Remove(moved), Action::Apply(wider)]
        );
    }

    #[test]
    fn nak_removes_the_address_and_backs_off() {
        let l = lease("10.0.0.9", 100);
        let mut c = bound(&l, Duration::ZERO);
        let r = sent(&c.on_timer(50 * S))[0];
        // A NAK for another transaction is not ours.
        assert!(
            c.on_reply(50 * S, r.xid ^ 1, MessageType::Nak, lease("0.0.0.0", 0))
                .is_empty()
        );
        let a = c.on_reply(51 * S, r.xid, MessageType::Nak, lease("0.0.0.0", 0));
        assert_eq!(a, [Action::Remove(l.clone())]);
        assert_eq!(c.state(), "INIT");
        // Backoff 2 s ±1 s, doubling per failure up to 60 s.
        let mut t = 51 * S;
        for want in [2u32, 4, 8, 16, 32, 60, 60] {
            let wait = c.wake_at() - t;
            assert!(
                wait >= (want - 1) * S && wait <= (want + 1) * S,
                "{wait:?} for {want}"
            );
            assert!(
                c.on_timer(c.wake_at() - S / 10).is_empty(),
                "not before the backoff"
            );
            t = c.wake_at();
            let d = sent(&c.on_timer(t))[0];
            assert_eq!(d.msg, Message::Discover);
            let o = sent(&c.on_reply(t, d.xid, MessageType::Offer, l.clone()))[0];
            assert!(
                c.on_reply(t, o.xid, MessageType::Nak, lease("0.0.0.0", 0))
                    .is_empty()
            );
            assert_eq!(c.state(), "INIT");
        }
        // A lease resets the backoff.
        let d = sent(&c.on_timer(c.wake_at()))[0];
        let o = sent(&c.on_reply(t, d.xid, MessageType::Offer, l.clone()))[0];
        let _ = c.on_reply(t, o.xid, MessageType::Ack, l.clone());
        assert_eq!(c.failures(), 0);
    }

    #[test]
    fn discover_retransmits_back_off_to_64s_and_requests_give_up() {
        let mut c = Client::new(Duration::ZERO, 99);
        let first = sent(&c.on_timer(Duration::ZERO))[0];
        let mut t = Duration::ZERO;
        for want in [4u32, 8, 16, 32, 64, 64, 64] {
            let wait = c.wake_at() - t;
            assert!(
                wait >= (want - 1) * S && wait <= (want + 1) * S,
                "{wait:?} for {want}"
            );
            t = c.wake_at();
            assert_eq!(sent(&c.on_timer(t))[0], first, "same DISCOVER");
        }
        // An OFFER nobody confirms: 4 REQUESTs, then INIT with backoff.
        let l = lease("10.0.0.9", 100);
        let mut requests = sent(&c.on_reply(t, first.xid, MessageType::Offer, l.clone()));
        while c.state() == "REQUESTING" {
            t = c.wake_at();
            requests.extend(sent(&c.on_timer(t)));
        }
        assert_eq!(requests.len(), REQUEST_TRIES as usize);
        assert_eq!(c.state(), "INIT");
        assert_eq!(c.failures(), 1);
        // A late OFFER for the old transaction is ignored.
        assert!(c.on_reply(t, first.xid, MessageType::Offer, l).is_empty());
    }

    #[test]
    fn late_wakeup_goes_straight_to_the_right_phase() {
        let l = lease("10.0.0.9", 100);
        let mut c = bound(&l, Duration::ZERO);
        let b = sent(&c.on_timer(90 * S));
        assert_eq!((c.state(), b[0].to), ("REBINDING", Ipv4Addr::BROADCAST));
        let mut c = bound(&l, Duration::ZERO);
        assert_eq!(c.on_timer(200 * S), [Action::Remove(l)]);
        assert_eq!(c.state(), "INIT");
    }

    #[test]
    fn zero_second_leases_are_paced() {
        // A server answering at once with leases of 0 s: the client must
        // not spin, each lease costs it the 2 s (±1 s) backoff.
        let l = lease("10.0.0.9", 0);
        let mut c = bound(&l, Duration::ZERO);
        let (mut t, mut binds) = (Duration::ZERO, 0);
        while t < 60 * S {
            t = c.wake_at().max(t);
            let mut queue = c.on_timer(t);
            while let Some(a) = queue.pop() {
                match a {
                    Action::Send(Outgoing {
                        xid,
                        msg: Message::Discover,
                        ..
                    }) => queue.extend(c.on_reply(t, xid, MessageType::Offer, l.clone())),
                    Action::Send(o) => {
                        queue.extend(c.on_reply(t, o.xid, MessageType::Ack, l.clone()))
                    }
                    Action::Apply(_) => binds += 1,
                    Action::Remove(_) => {}
                }
            }
        }
        assert!((15..=60).contains(&binds), "{binds} leases in 60 s");
    }

    #[test]
    fn apply_failure_removes_and_starts_over() {
        let l = lease("10.0.0.9", 100);
        let mut c = bound(&l, Duration::ZERO);
        assert_eq!(c.on_apply_failed(S), [Action::Remove(l)]);
        assert_eq!((c.state(), c.failures()), ("INIT", 1));
        assert!(c.wake_at() >= 2 * S);
    }

    #[test]
    fn t1_t2_options_and_off_subnet_router() {
        let mut l = lease("10.0.0.9", 100);
        l.t1_secs = Some(30);
        l.t2_secs = Some(60);
        assert_eq!((l.t1(), l.t2()), (30 * S, 60 * S));
        // Nonsense (T2 past the lease, T1 past T2) falls back to defaults.
        l.t1_secs = Some(90);
        l.t2_secs = Some(200);
        assert_eq!((l.t1(), l.t2()), (50 * S, 87_500 * S / 1000));
        l.t2_secs = Some(40);
        assert_eq!((l.t1(), l.t2()), (40 * S, 40 * S), "T1 never after T2");
        assert_eq!(l.router_off_subnet(), None);
        let host = Lease {
            prefix: 32,
            ..l.clone()
        };
        assert_eq!(host.router_off_subnet(), Some(ip("10.0.0.1")));
        let elsewhere = Lease {
            router: Some(ip("10.0.1.1")),
            ..l
        };
        assert_eq!(elsewhere.router_off_subnet(), Some(ip("10.0.1.1")));
        assert_eq!(
            Lease {
                prefix: 0,
                ..elsewhere
            }
            .router_off_subnet(),
            None
        );
    }

    #[test]
    fn packets_roundtrip() {
        let out = Outgoing {
            xid: 7,
            msg: Message::Discover,
            to: Ipv4Addr::BROADCAST,
        };
        let msg = v4::Message::decode(&mut Decoder::new(&build_packet(&out, &MAC))).unwrap();
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(&msg.chaddr()[..6], &MAC);
        assert!(msg.flags().broadcast());
        // Extending: ciaddr set, no options 50/54, no broadcast flag.
        let out = Outgoing {
            xid: 8,
            msg: Message::Extend {
                ciaddr: ip("10.0.2.15"),
            },
            to: ip("10.0.2.2"),
        };
        let msg = v4::Message::decode(&mut Decoder::new(&build_packet(&out, &MAC))).unwrap();
        assert_eq!(msg.ciaddr(), ip("10.0.2.15"));
        assert!(!msg.flags().broadcast());
        assert!(msg.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(msg.opts().get(OptionCode::ServerIdentifier).is_none());
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));

        // A server's ACK.
        let mut ack = v4::Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            ip("10.0.2.15"),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        ack.set_opcode(v4::Opcode::BootReply);
        let o = ack.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::SubnetMask(ip("255.255.255.0")));
        o.insert(DhcpOption::Router(vec![ip("10.0.2.2")]));
        o.insert(DhcpOption::ServerIdentifier(ip("10.0.2.2")));
        o.insert(DhcpOption::AddressLeaseTime(86400));
        o.insert(DhcpOption::Renewal(3600));
        o.insert(DhcpOption::Hostname("worker-3".into()));
        o.insert(DhcpOption::DomainNameServer(vec![
            ip("10.0.2.3"),
            ip("9.9.9.9"),
        ]));
        let bytes = ack.to_vec().unwrap();
        let (xid, kind, lease) = parse_reply(&bytes, &MAC).unwrap();
        assert_eq!((xid, kind), (7, MessageType::Ack));
        assert_eq!(lease.addr, ip("10.0.2.15"));
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(ip("10.0.2.2")));
        assert_eq!(lease.server, ip("10.0.2.2"));
        assert_eq!(
            (lease.lease_secs, lease.t1_secs, lease.t2_secs),
            (86400, Some(3600), None)
        );
        assert_eq!(lease.hostname.as_deref(), Some("worker-3"));
        assert_eq!(lease.dns, [ip("10.0.2.3"), ip("9.9.9.9")]);
        assert!(
            parse_reply(&bytes, &[1, 2, 3, 4, 5, 6]).is_none(),
            "another client's reply"
        );
        assert!(parse_reply(b"junk", &MAC).is_none());
        // Truncated or corrupted replies are dropped or parsed, never a
        // panic: they come from anyone on the link (a `hlen` over 16 made
        // dhcproto's `chaddr()` panic).
        for n in 0..bytes.len() {
            let _ = parse_reply(&bytes[..n], &MAC);
        }
        // Options dhcproto asserts on (rapid commit with a body, bulk lease
        // query status with none), a hlen over 16, an option past the end.
        let end = bytes.len() - 1;
        for extra in [&[80u8, 1, 0][..], &[151, 0], &[82, 200, 1]] {
            let mut b = bytes[..end].to_vec();
            b.extend_from_slice(extra);
            b.push(255);
            let r = parse_reply(&b, &MAC);
            assert!(
                extra[0] == 82 || r.is_some(),
                "{extra:?}: the rest still counts"
            );
        }
        let mut b = bytes.clone();
        b[2] = 57;
        assert!(parse_reply(&b, &MAC).is_none());
        let mut x = 0x9e37_79b9u32;
        for i in 0..bytes.len() * 64 {
            let mut b = bytes.clone();
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            b[i % bytes.len()] ^= (x >> 24) as u8 | 1;
            let _ = parse_reply(&b, &MAC);
        }
    }
}
