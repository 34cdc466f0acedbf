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
//!
//! Once the machine configuration names interfaces, it wins: [`plan`]
//! decides at start which interface gets static addresses from it, which
//! one runs DHCP, and whether `matic.ip=` still applies (only to the first
//! Ethernet interface, when the configuration leaves it alone).
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use matic_config::schema::Interface;

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
    #[error("network.interfaces.{iface}: {value:?}: {why}")]
    BadConfig {
        iface: String,
        value: String,
        why: &'static str,
    },
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

/// What configures which interface at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Interfaces with static addresses from the configuration.
    pub statics: Vec<(String, Interface)>,
    /// The interface DHCP runs on, and the configuration's MTU for it.
    pub dhcp: Option<(String, Option<u32>)>,
    /// `matic.ip=` on the first Ethernet interface.
    pub cmdline: Option<(String, StaticIp)>,
    /// Configured interfaces left alone, and why.
    pub skipped: Vec<(String, &'static str)>,
}

/// Decides who configures what: the configuration's interfaces first (one
/// DHCP client at most, on the first that asks for it), then, for the first
/// Ethernet interface if the configuration leaves it alone, `matic.ip=` or
/// else DHCP.
pub fn plan(
    first_eth: Option<&str>,
    present: &[String],
    cmdline: Option<StaticIp>,
    configured: &BTreeMap<String, Interface>,
) -> Plan {
    let mut p = Plan::default();
    for (name, i) in configured {
        if !present.contains(name) {
            p.skipped.push((name.clone(), "no such interface"));
        } else if !i.dhcp {
            p.statics.push((name.clone(), i.clone()));
        } else if p.dhcp.is_none() {
            p.dhcp = Some((name.clone(), i.mtu));
        } else {
            p.skipped
                .push((name.clone(), "DHCP runs on one interface only (the first)"));
        }
    }
    if let Some(eth) = first_eth.filter(|e| !configured.contains_key(*e)) {
        match cmdline {
            Some(ip) => p.cmdline = Some((eth.to_owned(), ip)),
            None if p.dhcp.is_none() => p.dhcp = Some((eth.to_owned(), None)),
            None => {}
        }
    }
    p
}

/// `ADDRESS/PREFIX` (checked by the configuration; not trusted here).
fn cidr(iface: &str, s: &str) -> Result<(IpAddr, u8), NetError> {
    let bad = |why| NetError::BadConfig {
        iface: iface.to_owned(),
        value: s.to_owned(),
        why,
    };
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
    let a: IpAddr = a.parse().map_err(|_| bad("not an IP address"))?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    let p: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| bad("prefix out of range"))?;
    Ok((a, p))
}

/// Puts a configured interface's MTU, addresses and routes in place (link
/// `index`), replacing what is there under the same keys.
pub async fn apply_static(
    h: &Handle,
    index: u32,
    name: &str,
    i: &Interface,
) -> Result<(), NetError> {
    let mut link = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = i.mtu {
        link = link.mtu(mtu);
    }
    h.link().set(link.build()).execute().await?;
    for a in &i.addresses {
        let (addr, prefix) = cidr(name, a)?;
        h.address()
            .add(index, addr, prefix)
            .replace()
            .execute()
            .await?;
    }
    for r in &i.routes {
        let bad = |why| NetError::BadConfig {
            iface: name.to_owned(),
            value: format!("{} via {}", r.to, r.via),
            why,
        };
        let via: IpAddr = r.via.parse().map_err(|_| bad("via is not an IP address"))?;
        let to = match r.to.as_str() {
            "default" => None,
            t => Some(cidr(name, t)?),
        };
        // The builders differ by family; the built messages do not.
        let msg = match (via, to) {
            (IpAddr::V4(gw), None) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
            (IpAddr::V4(gw), Some((IpAddr::V4(d), p))) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, p)
                .gateway(gw)
                .output_interface(index)
                .build(),
            (IpAddr::V6(gw), None) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
            (IpAddr::V6(gw), Some((IpAddr::V6(d), p))) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, p)
                .gateway(gw)
                .output_interface(index)
                .build(),
            _ => return Err(bad("to and via of different families")),
        };
        h.route().add(msg).replace().execute().await?;
    }
    Ok(())
}

/// Configures the network; with DHCP it never returns (the client retries
/// every error itself), so call it in its own task. Name servers go to `resolver`.
pub async fn configure(
    cmdline_path: &Path,
    resolver: &Resolver,
    configured: &BTreeMap<String, Interface>,
) -> Result<(), NetError> {
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
    let index_of = |n: &str| {
        links
            .iter()
            .find(|l| link_name(l).as_deref() == Some(n))
            .map(|l| (l.header.index, link_mac(l).unwrap_or_default()))
    };
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
    let present: Vec<String> = links.iter().filter_map(link_name).collect();
    let p = plan(
        eth.as_ref().map(|(_, n, _)| n.as_str()),
        &present,
        static_ip,
        configured,
    );
    for (n, why) in &p.skipped {
        eprintln!("matic-agent: net: network.interfaces.{n}: {why}; left alone");
    }
    // One interface failing must not keep the others (or the API) away.
    for (n, i) in &p.statics {
        let Some((index, _)) = index_of(n) else {
            continue;
        };
        match apply_static(&handle, index, n, i).await {
            Ok(()) => eprintln!(
                "matic-agent: net: {n} {:?} routes {} mtu {:?} (machine configuration)",
                i.addresses,
                i.routes.len(),
                i.mtu
            ),
            Err(e) => eprintln!("matic-agent: net: {n}: {e}"),
        }
    }
    let Some((_, name, mac)) = eth else {
        set_hostname(
            fixed_name.as_deref().unwrap_or(hostname::FALLBACK),
            "no Ethernet interface",
        );
        return if p.statics.is_empty() && p.dhcp.is_none() {
            Err(NetError::NoEthernet)
        } else {
            Ok(())
        };
    };
    match &fixed_name {
        Some(n) => set_hostname(n, "matic.hostname"),
        None => set_hostname(&hostname::from_mac(&mac), &format!("MAC of {name}")),
    }
    if let Some((n, ip)) = p.cmdline {
        let Some((index, _)) = index_of(&n) else {
            return Err(NetError::NoEthernet);
        };
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await?;
        apply(&handle, index, ip.addr, ip.prefix, ip.gateway).await?;
        let dns: Vec<IpAddr> = ip.dns.iter().map(|a| IpAddr::V4(*a)).collect();
        resolver.set_network(&dns, "matic.ip")?;
        eprintln!(
            "matic-agent: net: {n} {}/{} gw {:?} dns {:?} (matic.ip)",
            ip.addr, ip.prefix, ip.gateway, ip.dns
        );
    }
    let Some((name, mtu)) = p.dhcp else {
        return Ok(());
    };
    let Some((index, mac)) = index_of(&name) else {
        return Ok(());
    };
    let mut link = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        link = link.mtu(mtu);
    }
    handle.link().set(link.build()).execute().await?;
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

    fn iface(dhcp: bool, addrs: &[&str]) -> Interface {
        Interface {
            dhcp,
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
            ..Interface::default()
        }
    }

    #[test]
    fn configuration_wins_over_the_command_line() {
        let ip = parse_cmdline("matic.ip=10.0.2.15/24").unwrap().unwrap();
        let present: Vec<String> = ["lo", "eth0", "eth1"].map(String::from).to_vec();
        // Nothing configured: matic.ip= on the first Ethernet, else DHCP.
        let p = plan(Some("eth0"), &present, Some(ip.clone()), &BTreeMap::new());
        assert_eq!(p.cmdline, Some(("eth0".into(), ip.clone())));
        assert_eq!(p.dhcp, None);
        let p = plan(Some("eth0"), &present, None, &BTreeMap::new());
        assert_eq!(p.dhcp, Some(("eth0".into(), None)));
        // eth0 configured statically: matic.ip= is not used.
        let mut c = BTreeMap::new();
        c.insert("eth0".to_owned(), iface(false, &["10.0.0.5/24"]));
        let p = plan(Some("eth0"), &present, Some(ip.clone()), &c);
        assert_eq!((p.cmdline, p.dhcp), (None, None));
        assert_eq!(
            p.statics,
            [("eth0".to_owned(), iface(false, &["10.0.0.5/24"]))]
        );
        // eth0 asked for DHCP (with its MTU): over matic.ip=.
        let mut c = BTreeMap::new();
        c.insert(
            "eth0".to_owned(),
            Interface {
                mtu: Some(9000),
                ..iface(true, &[])
            },
        );
        let p = plan(Some("eth0"), &present, Some(ip.clone()), &c);
        assert_eq!(
            (p.cmdline, p.dhcp),
            (None, Some(("eth0".into(), Some(9000))))
        );
        // Only eth1 configured: eth0 keeps matic.ip=; a missing one and a
        // second DHCP interface are left alone, saying why.
        let mut c = BTreeMap::new();
        c.insert("eth1".to_owned(), iface(true, &[]));
        c.insert("eth7".to_owned(), iface(false, &["10.0.0.5/24"]));
        let p = plan(Some("eth0"), &present, Some(ip.clone()), &c);
        assert_eq!(p.cmdline, Some(("eth0".into(), ip)));
        assert_eq!(p.dhcp, Some(("eth1".into(), None)));
        assert_eq!(p.skipped, [("eth7".to_owned(), "no such interface")]);
        c.remove("eth7");
        c.insert("eth0".to_owned(), iface(true, &[]));
        let p = plan(Some("eth0"), &present, None, &c);
        assert_eq!(p.dhcp, Some(("eth0".into(), None)));
        assert_eq!(p.skipped[0].0, "eth1");
    }

    const CHILD: &str = "MATIC_NETNS_CHILD";

    /// Runs [`netns_child`] in a fresh network namespace (`unshare -n`, as
    /// root): the agent's netlink code on a veth pair, never the host's
    /// interfaces.
    #[test]
    fn static_interface_applied_in_a_network_namespace() {
        let out = std::process::Command::new("unshare")
            .args(["-n", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "net::tests::netns_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("unshare (util-linux) runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("netns child: ok"),
            "{text}"
        );
    }

    #[test]
    #[ignore = "run by static_interface_applied_in_a_network_namespace"]
    fn netns_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let ip = |args: &str| {
            let o = std::process::Command::new("ip")
                .args(args.split(' '))
                .output()
                .unwrap();
            assert!(o.status.success(), "ip {args}: {o:?}");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        ip("link add v0 type veth peer name v1");
        ip("link set v1 up");
        let i = Interface {
            dhcp: false,
            addresses: vec!["10.9.0.5/24".into(), "fd00:9::5/64".into()],
            routes: vec![
                matic_config::schema::Route {
                    to: "192.168.50.0/24".into(),
                    via: "10.9.0.1".into(),
                },
                matic_config::schema::Route {
                    to: "default".into(),
                    via: "10.9.0.1".into(),
                },
            ],
            mtu: Some(1400),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let links: Vec<LinkMessage> = h.link().get().execute().try_collect().await.unwrap();
            let index = links
                .iter()
                .find(|l| link_name(l).as_deref() == Some("v0"))
                .unwrap()
                .header
                .index;
            apply_static(&h, index, "v0", &i).await.unwrap();
            // Applying again replaces, it does not fail on what is there.
            apply_static(&h, index, "v0", &i).await.unwrap();
            let bad = Interface {
                addresses: vec!["10.9.0.5/40".into()],
                ..i.clone()
            };
            let e = apply_static(&h, index, "v0", &bad).await.unwrap_err();
            assert!(e.to_string().contains("network.interfaces.v0"), "{e}");
        });
        let link = ip("link show v0");
        assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
        let addrs = ip("addr show v0");
        assert!(
            addrs.contains("10.9.0.5/24") && addrs.contains("fd00:9::5/64"),
            "{addrs}"
        );
        let routes = ip("route");
        assert!(routes.contains("default via 10.9.0.1 dev v0"), "{routes}");
        assert!(
            routes.contains("192.168.50.0/24 via 10.9.0.1 dev v0"),
            "{routes}"
        );
        println!("netns child: ok");
    }
}
