//! DHCP packets: a client's BOOTREQUEST encoded ([`build_packet`]) and a
//! server's reply decoded ([`parse_reply`]) — only after [`sanitize`] has
//! kept the options the client reads, each of a valid length, because
//! dhcproto 0.15 panics on some malformed ones and the agent aborts on a
//! panic.
//!
//! Must never decide anything about the lease's life: that is
//! `super::client`'s.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

use super::client::{Lease, Message, Outgoing};

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
