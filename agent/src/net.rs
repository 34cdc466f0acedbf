//! Networking, over rtnetlink (no external programs): bring up `lo`, then the
//! first Ethernet interface with the static address from `matic.ip=` on the
//! kernel command line, or else with DHCPv4 (dhcproto packets on a UDP socket
//! bound to the interface; the lease is applied via netlink and renewed at
//! half its lifetime). Name servers (`dns=` in `matic.ip=`, or the lease's)
//! go to the resolver file the image's `/etc/resolv.conf` links to; the
//! hostname is chosen here too, as [`crate::hostname`] describes.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::hostname;
use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// Errors configuring the network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("opening the netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("no Ethernet interface found")]
    NoEthernet,
    #[error("bad matic.ip={value:?}: {why}")]
    BadIp { value: String, why: &'static str },
    #[error("DHCP on {iface}: {why}")]
    Dhcp { iface: String, why: String },
    #[error("writing {path}: {source}")]
    Resolv {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A static IPv4 configuration from
/// `matic.ip=ADDR/PREFIX[,gw=GW][,dns=IP]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// Finds and parses `matic.ip=` in a kernel command line; None when absent.
pub fn parse_cmdline(cmdline: &str) -> Result<Option<StaticIp>, NetError> {
    let Some(value) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("matic.ip="))
    else {
        return Ok(None);
    };
    let bad = |why| NetError::BadIp {
        value: value.to_owned(),
        why,
    };
    let mut parts = value.split(',');
    let cidr = parts.next().unwrap_or_default();
    let (a, p) = cidr
        .split_once('/')
        .ok_or_else(|| bad("expected ADDR/PREFIX"))?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad("address is not IPv4"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad("prefix must be 0..=32"))?;
    let mut gateway = None;
    let mut dns = Vec::new();
    for opt in parts {
        if let Some(g) = opt.strip_prefix("gw=") {
            gateway = Some(g.parse().map_err(|_| bad("gateway is not IPv4"))?);
        } else if let Some(d) = opt.strip_prefix("dns=") {
            dns.push(d.parse().map_err(|_| bad("name server is not IPv4"))?);
        } else {
            return Err(bad("only gw=GW and dns=IP may follow the address"));
        }
    }
    Ok(Some(StaticIp {
        addr,
        prefix,
        gateway,
        dns,
    }))
}

fn link_name(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_mac(l: &LinkMessage) -> Option<Vec<u8>> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    })
}

/// Ethernet = backed by a device (not a bridge/veth/tunnel) or named like one.
fn is_ethernet(name: &str) -> bool {
    name != "lo"
        && (Path::new("/sys/class/net")
            .join(name)
            .join("device")
            .exists()
            || name.starts_with("en")
            || name.starts_with("eth"))
}

/// Writes the resolver configuration (`nameserver` lines) atomically: a
/// temporary file renamed over `path`, so a reader never sees half a file.
/// Nothing is written without servers.
pub fn write_resolv(path: &Path, servers: &[Ipv4Addr], source: &str) -> Result<(), NetError> {
    if servers.is_empty() {
        return Ok(());
    }
    let mut text = format!("# written by matic-agent from {source}\n");
    for s in servers.iter().take(3) {
        // The resolver reads at most three (MAXNS).
        text.push_str(&format!("nameserver {s}\n"));
    }
    let tmp = path.with_extension("tmp");
    let err = |source| NetError::Resolv {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Configures the network; runs until the DHCP lease task ends (forever on
/// success), so call it in its own task. Name servers go to `resolv_path`.
pub async fn configure(cmdline_path: &Path, resolv_path: &Path) -> Result<(), NetError> {
    let cmdline = std::fs::read_to_string(cmdline_path).unwrap_or_default();
    let static_ip = parse_cmdline(&cmdline)?;
    // A name from the command line is final; otherwise DHCP may name the node.
    let fixed_name = match hostname::from_cmdline(&cmdline) {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            eprintln!("matic-agent: {e}; ignoring it");
            None
        }
        None => None,
    };
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
    tokio::spawn(conn);
    let links: Vec<LinkMessage> = handle.link().get().execute().try_collect().await?;
    let mut eth = None;
    for l in &links {
        let Some(name) = link_name(l) else { continue };
        if name == "lo" {
            handle
                .link()
                .set(LinkUnspec::new_with_index(l.header.index).up().build())
                .execute()
                .await?;
            eprintln!("matic-agent: net: lo up");
        } else if eth.is_none() && is_ethernet(&name) {
            eth = Some((l.header.index, name, link_mac(l).unwrap_or_default()));
        }
    }
    let Some((index, name, mac)) = eth else {
        set_hostname(
            fixed_name.as_deref().unwrap_or(hostname::FALLBACK),
            "no Ethernet interface",
        );
        return Err(NetError::NoEthernet);
    };
    match &fixed_name {
        Some(n) => set_hostname(n, "matic.hostname"),
        None => set_hostname(&hostname::from_mac(&mac), &format!("MAC of {name}")),
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    match static_ip {
        Some(ip) => {
            apply(&handle, index, ip.addr, ip.prefix, ip.gateway).await?;
            write_resolv(resolv_path, &ip.dns, "matic.ip")?;
            eprintln!(
                "matic-agent: net: {name} {}/{} gw {:?} dns {:?} (matic.ip)",
                ip.addr, ip.prefix, ip.gateway, ip.dns
            );
            Ok(())
        }
        None => {
            let dhcp_names = fixed_name.is_none();
            dhcp_forever(&handle, index, &name, &mac, resolv_path, dhcp_names).await
        }
    }
}

/// Sets the hostname; a failure is logged, not fatal: the API still serves.
fn set_hostname(name: &str, source: &str) {
    if let Err(e) = hostname::set(name, source) {
        eprintln!("matic-agent: {e}");
    }
}

async fn apply(
    h: &Handle,
    index: u32,
    addr: Ipv4Addr,
    prefix: u8,
    gw: Option<Ipv4Addr>,
) -> Result<(), NetError> {
    h.address()
        .add(index, IpAddr::V4(addr), prefix)
        .replace()
        .execute()
        .await?;
    if let Some(gw) = gw {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        h.route().add(route).replace().execute().await?;
    }
    Ok(())
}

/// What a DHCP ACK gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 12, as the server sent it (validated when applied).
    pub hostname: Option<String>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
}

fn mask_to_prefix(m: Ipv4Addr) -> u8 {
    u32::from(m).leading_ones() as u8
}

/// Builds a DISCOVER (no `requested`) or REQUEST for `requested` from `server`.
pub fn build_packet(xid: u32, mac: &[u8], requested: Option<(Ipv4Addr, Ipv4Addr)>) -> Vec<u8> {
    let mut chaddr = mac.to_vec();
    chaddr.truncate(16);
    let mut msg = v4::Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &chaddr,
    );
    msg.set_flags(v4::Flags::default().set_broadcast());
    let opts = msg.opts_mut();
    match requested {
        None => {
            opts.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        Some((addr, server)) => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
            opts.insert(DhcpOption::RequestedIpAddress(addr));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
    }
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::Hostname,
        OptionCode::AddressLeaseTime,
    ]));
    msg.to_vec().unwrap_or_default()
}

/// Parses a server reply to `xid`: the message type and the lease it offers.
pub fn parse_reply(buf: &[u8], xid: u32) -> Option<(MessageType, Lease)> {
    let msg = v4::Message::decode(&mut Decoder::new(buf)).ok()?;
    if msg.xid() != xid || msg.opcode() != v4::Opcode::BootReply {
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
    Some((
        kind,
        Lease {
            addr: msg.yiaddr(),
            prefix,
            router,
            dns,
            hostname,
            server,
            lease_secs,
        },
    ))
}

async fn exchange(
    sock: &tokio::net::UdpSocket,
    xid: u32,
    packet: &[u8],
    want: MessageType,
) -> std::io::Result<Option<Lease>> {
    let dst = SocketAddr::from((Ipv4Addr::BROADCAST, 67));
    let mut buf = vec![0u8; 1500];
    for attempt in 0..4u32 {
        sock.send_to(packet, dst).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2u64 << attempt);
        while let Ok(r) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            let (n, _) = r?;
            match parse_reply(&buf[..n], xid) {
                Some((MessageType::Nak, _)) => return Ok(None),
                Some((kind, lease)) if kind == want => return Ok(Some(lease)),
                _ => {}
            }
        }
    }
    Ok(None)
}

async fn dhcp_once(
    sock: &tokio::net::UdpSocket,
    mac: &[u8],
    xid: u32,
) -> std::io::Result<Option<Lease>> {
    let Some(offer) =
        exchange(sock, xid, &build_packet(xid, mac, None), MessageType::Offer).await?
    else {
        return Ok(None);
    };
    exchange(
        sock,
        xid,
        &build_packet(xid, mac, Some((offer.addr, offer.server))),
        MessageType::Ack,
    )
    .await
}

async fn dhcp_forever(
    h: &Handle,
    index: u32,
    iface: &str,
    mac: &[u8],
    resolv_path: &Path,
    dhcp_names: bool,
) -> Result<(), NetError> {
    let err = |why: String| NetError::Dhcp {
        iface: iface.to_owned(),
        why,
    };
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68))
        .await
        .map_err(|e| err(format!("bind :68: {e}")))?;
    sock.set_broadcast(true)
        .map_err(|e| err(format!("SO_BROADCAST: {e}")))?;
    sock.bind_device(Some(iface.as_bytes()))
        .map_err(|e| err(format!("SO_BINDTODEVICE: {e}")))?;
    let mut xid = std::process::id().wrapping_mul(2_654_435_761)
        ^ u32::from_le_bytes([mac.first().copied().unwrap_or(0), 1, 2, 3]);
    let mut backoff = Duration::from_secs(2);
    // The name this loop last set, so a renewal does not set it again.
    let mut named: Option<String> = None;
    loop {
        xid = xid.wrapping_add(1);
        match dhcp_once(&sock, mac, xid).await {
            Ok(Some(lease)) => {
                apply(h, index, lease.addr, lease.prefix, lease.router).await?;
                write_resolv(
                    resolv_path,
                    &lease.dns,
                    &format!("DHCP server {}", lease.server),
                )?;
                if let Some(h) = lease.hostname.as_deref().filter(|_| dhcp_names) {
                    match hostname::normalize(h, "DHCP") {
                        Ok(n) if named.as_ref() != Some(&n) => {
                            set_hostname(&n, &format!("DHCP server {}", lease.server));
                            named = Some(n);
                        }
                        Ok(_) => {}
                        Err(e) => eprintln!("matic-agent: {e}; keeping the current name"),
                    }
                }
                eprintln!(
                    "matic-agent: net: {iface} {}/{} gw {:?} dns {:?} from DHCP server {} for {}s",
                    lease.addr,
                    lease.prefix,
                    lease.router,
                    lease.dns,
                    lease.server,
                    lease.lease_secs
                );
                backoff = Duration::from_secs(2);
                // Renew (a fresh exchange) at half the lease.
                tokio::time::sleep(Duration::from_secs(u64::from(lease.lease_secs.max(60) / 2)))
                    .await;
            }
            Ok(None) => {
                eprintln!(
                    "matic-agent: net: no DHCP lease on {iface} yet; retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        assert_eq!(parse_cmdline("console=ttyS0 quiet").unwrap(), None);
        assert_eq!(
            parse_cmdline("ro matic.ip=10.0.2.15/24,gw=10.0.2.2 panic=5").unwrap(),
            Some(StaticIp {
                addr: "10.0.2.15".parse().unwrap(),
                prefix: 24,
                gateway: Some("10.0.2.2".parse().unwrap()),
                dns: vec![],
            })
        );
        assert_eq!(
            parse_cmdline("matic.ip=10.0.2.15/24,dns=10.0.2.3,gw=10.0.2.2,dns=1.1.1.1")
                .unwrap()
                .unwrap()
                .dns,
            [
                "10.0.2.3".parse::<Ipv4Addr>().unwrap(),
                "1.1.1.1".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_cmdline("matic.ip=192.168.1.9/16")
                .unwrap()
                .unwrap()
                .gateway,
            None
        );
        for bad in [
            "matic.ip=10.0.0.1",
            "matic.ip=10.0.0.1/33",
            "matic.ip=x/24",
            "matic.ip=10.0.0.1/24,via=1.1.1.1",
            "matic.ip=10.0.0.1/24,dns=resolver",
        ] {
            assert!(parse_cmdline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dhcp_roundtrip() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let discover = build_packet(7, &mac, None);
        let msg = v4::Message::decode(&mut Decoder::new(&discover)).unwrap();
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(&msg.chaddr()[..6], &mac);
        // A server's ACK to that request.
        let mut ack = v4::Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            "10.0.2.15".parse().unwrap(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &mac,
        );
        ack.set_opcode(v4::Opcode::BootReply);
        ack.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Ack));
        ack.opts_mut()
            .insert(DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()));
        ack.opts_mut()
            .insert(DhcpOption::Router(vec!["10.0.2.2".parse().unwrap()]));
        ack.opts_mut()
            .insert(DhcpOption::ServerIdentifier("10.0.2.2".parse().unwrap()));
        ack.opts_mut().insert(DhcpOption::AddressLeaseTime(86400));
        ack.opts_mut()
            .insert(DhcpOption::Hostname("worker-3".into()));
        ack.opts_mut().insert(DhcpOption::DomainNameServer(vec![
            "10.0.2.3".parse().unwrap(),
            "9.9.9.9".parse().unwrap(),
        ]));
        let bytes = ack.to_vec().unwrap();
        let (kind, lease) = parse_reply(&bytes, 7).unwrap();
        assert_eq!(kind, MessageType::Ack);
        assert_eq!(lease.addr, "10.0.2.15".parse::<Ipv4Addr>().unwrap());
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some("10.0.2.2".parse().unwrap()));
        assert_eq!(lease.lease_secs, 86400);
        assert_eq!(lease.hostname.as_deref(), Some("worker-3"));
        assert_eq!(
            lease.dns,
            [
                "10.0.2.3".parse::<Ipv4Addr>().unwrap(),
                "9.9.9.9".parse().unwrap()
            ]
        );
        assert!(
            parse_reply(&bytes, 8).is_none(),
            "another transaction's reply"
        );
        assert!(parse_reply(b"junk", 7).is_none());
    }

    #[test]
    fn resolv_file() {
        let dir = std::env::temp_dir().join(format!("matic-resolv-{}", std::process::id()));
        let path = dir.join("run/resolv.conf");
        let servers: Vec<Ipv4Addr> = ["10.0.2.3", "1.1.1.1", "8.8.8.8", "9.9.9.9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        write_resolv(&path, &[], "nothing").unwrap();
        assert!(!path.exists(), "no servers, no file");
        write_resolv(&path, &servers, "DHCP server 10.0.2.2").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# written by matic-agent from DHCP server 10.0.2.2\n\
             nameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
        );
        write_resolv(&path, &servers[3..], "matic.ip").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# written by matic-agent from matic.ip\nnameserver 9.9.9.9\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
