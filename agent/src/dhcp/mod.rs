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
//!
//! Files: `client` (the state machine and the lease), `packet` (encoding a
//! request, and decoding a reply through a sanitiser dhcproto can take),
//! this file (the [`Host`] seam and the driver).

mod client;
mod packet;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use client::FIRST_BACKOFF;
pub use client::{
    Action, Client, FIRST_RETRANSMIT, Lease, MAX_BACKOFF, MAX_RETRANSMIT, Message, Outgoing,
    RENEW_MIN_RETRY, REQUEST_TRIES,
};
pub use packet::{build_packet, parse_reply};

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
    use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
    use dhcproto::{Decodable, Decoder, Encodable};

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
