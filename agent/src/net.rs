//! Networking, over rtnetlink (no external programs): bring up `lo`, then the
//! first Ethernet interface with the static address from `matic.ip=` on the
//! kernel command line, or else with DHCPv4: [`crate::dhcp`] runs the RFC
//! 2131 client and this module applies and removes its leases via netlink
//! (address, an on-link route to a router outside the lease's subnet, the
//! default route). Name servers (`dns=` in `matic.ip=`, or the lease's) go
//! to the resolver file through [`crate::resolv`] (where the machine
//! configuration's win over them); the
//! hostname is chosen here too, as [`crate::hostname`] describes. It never
//! speaks DHCP itself.
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::resolv::Resolver;
use crate::{dhcp, hostname};
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::RouteScope;
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
    #[error(transparent)]
    Resolv(#[from] crate::resolv::ResolvError),
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

/// Configures the network; with DHCP it never returns (the client retries
/// every error itself), so call it in its own task. Name servers go to `resolver`.
pub async fn configure(cmdline_path: &Path, resolver: &Resolver) -> Result<(), NetError> {
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
            let dns: Vec<IpAddr> = ip.dns.iter().map(|a| IpAddr::V4(*a)).collect();
            resolver.set_network(&dns, "matic.ip")?;
            eprintln!(
                "matic-agent: net: {name} {}/{} gw {:?} dns {:?} (matic.ip)",
                ip.addr, ip.prefix, ip.gateway, ip.dns
            );
            Ok(())
        }
        None => {
            let mut host = DhcpHost {
                handle: &handle,
                index,
                iface: &name,
                resolver,
                dhcp_names: fixed_name.is_none(),
                named: None,
            };
            dhcp::run(&mut host, &name, &mac).await
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

/// The interface DHCP configures: applies and removes leases over
/// netlink, writes their name servers and takes their host name.
struct DhcpHost<'a> {
    handle: &'a Handle,
    index: u32,
    iface: &'a str,
    resolver: &'a Resolver,
    /// Whether the lease may name the node (no `matic.hostname=`).
    dhcp_names: bool,
    /// The name this host last set, so a renewal does not set it again.
    named: Option<String>,
}

/// The host route that makes a router outside the lease's subnet (a /32
/// lease, say) reachable: `ROUTER/32 dev IFACE scope link`.
fn onlink_route(router: Ipv4Addr, index: u32) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(router, 32)
        .output_interface(index)
        .scope(RouteScope::Link)
        .build()
}

impl dhcp::Host for DhcpHost<'_> {
    type Error = NetError;

    async fn apply(&mut self, lease: &dhcp::Lease, renewal: bool) -> Result<(), NetError> {
        let h = self.handle;
        // Only the lease's address: one left by an earlier lease (or an
        // earlier agent) would keep answering for an address that is gone.
        // Deleted before the new one is added: deleting a subnet's primary
        // address takes its secondaries (the new one, in the same subnet)
        // with it.
        let addrs: Vec<_> = h
            .address()
            .get()
            .set_link_index_filter(self.index)
            .execute()
            .try_collect()
            .await?;
        for a in addrs {
            let stale = a.header.family == AddressFamily::Inet
                && a.attributes.iter().any(
                    |at| matches!(at, AddressAttribute::Address(IpAddr::V4(v)) if *v != lease.addr),
                );
            if stale {
                h.address().del(a).execute().await?;
            }
        }
        h.address()
            .add(self.index, IpAddr::V4(lease.addr), lease.prefix)
            .replace()
            .execute()
            .await?;
        if let Some(r) = lease.router_off_subnet() {
            h.route()
                .add(onlink_route(r, self.index))
                .replace()
                .execute()
                .await?;
        }
        apply(h, self.index, lease.addr, lease.prefix, lease.router).await?;
        // The address works without them: a resolver file that cannot be
        // written is logged, not a reason to drop the lease.
        let dns: Vec<IpAddr> = lease.dns.iter().map(|a| IpAddr::V4(*a)).collect();
        if let Err(e) = self
            .resolver
            .set_network(&dns, &format!("DHCP server {}", lease.server))
        {
            eprintln!("matic-agent: {e}");
        }
        if let Some(name) = lease.hostname.as_deref().filter(|_| self.dhcp_names) {
            match hostname::normalize(name, "DHCP") {
                Ok(n) if self.named.as_ref() != Some(&n) => {
                    set_hostname(&n, &format!("DHCP server {}", lease.server));
                    self.named = Some(n);
                }
                Ok(_) => {}
                Err(e) => eprintln!("matic-agent: {e}; keeping the current name"),
            }
        }
        eprintln!(
            "matic-agent: net: {} {}/{} gw {:?}{} dns {:?} from DHCP server {} for {}s{}",
            self.iface,
            lease.addr,
            lease.prefix,
            lease.router,
            if lease.router_off_subnet().is_some() {
                " (on-link)"
            } else {
                ""
            },
            lease.dns,
            lease.server,
            lease.lease_secs,
            if renewal { " (renewed)" } else { "" }
        );
        Ok(())
    }

    async fn remove(&mut self, lease: &dhcp::Lease) -> Result<(), NetError> {
        let h = self.handle;
        // Routes first (the kernel drops the default route with the
        // address, but not the on-link host route); a route already gone
        // is not an error.
        if let Some(gw) = lease.router {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(self.index)
                .build();
            let _ = h.route().del(route).execute().await;
        }
        if let Some(r) = lease.router_off_subnet() {
            let _ = h.route().del(onlink_route(r, self.index)).execute().await;
        }
        let addrs: Vec<_> = h
            .address()
            .get()
            .set_link_index_filter(self.index)
            .set_address_filter(IpAddr::V4(lease.addr))
            .execute()
            .try_collect()
            .await?;
        for a in addrs {
            h.address().del(a).execute().await?;
        }
        eprintln!(
            "matic-agent: net: {} {}/{} removed (lease from {} over)",
            self.iface, lease.addr, lease.prefix, lease.server
        );
        Ok(())
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
}
