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
//!
//! Interfaces that come later (a driver that probes late, a USB adapter
//! plugged in) are watched for over rtnetlink's link group: the plan is
//! made again when one appears, and what the agent owned on one that goes
//! is forgotten, so it is configured again if it comes back.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use matic_config::schema::Interface;

use crate::netplan::{self, Cidr, NetRoute, Owned, Want};
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

/// The configuration's interface `name` as what the agent owns on it.
pub fn owned_of(name: &str, i: &Interface) -> Result<Owned, NetError> {
    let mut o = Owned {
        mtu: i.mtu,
        ..Owned::default()
    };
    for a in &i.addresses {
        o.addresses.insert(cidr(name, a)?);
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
        if to.is_some_and(|(d, _)| d.is_ipv4() != via.is_ipv4()) {
            return Err(bad("to and via of different families"));
        }
        o.routes.insert(NetRoute { to, via });
    }
    Ok(o)
}

/// What the agent owns for a [`Plan`].
pub fn want_of(p: &Plan) -> Result<Want, NetError> {
    let mut w = Want {
        dhcp: p.dhcp.clone(),
        ..Want::default()
    };
    for (n, i) in &p.statics {
        w.statics.insert(n.clone(), owned_of(n, i)?);
    }
    if let Some((n, ip)) = &p.cmdline {
        let mut o = Owned::default();
        o.addresses.insert((IpAddr::V4(ip.addr), ip.prefix));
        if let Some(gw) = ip.gateway {
            o.routes.insert(NetRoute {
                to: None,
                via: IpAddr::V4(gw),
            });
        }
        w.statics.insert(n.clone(), o);
        w.cmdline_dns = Some(ip.dns.iter().map(|a| IpAddr::V4(*a)).collect());
    }
    Ok(w)
}

/// The netlink message of a route on link `index` (the builders differ by
/// family; the built messages do not).
fn route_msg(index: u32, r: &NetRoute) -> rtnetlink::packet_route::route::RouteMessage {
    match (r.via, r.to) {
        (IpAddr::V4(gw), Some((IpAddr::V4(d), p))) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d, p)
            .gateway(gw)
            .output_interface(index)
            .build(),
        (IpAddr::V4(gw), _) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build(),
        (IpAddr::V6(gw), Some((IpAddr::V6(d), p))) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d, p)
            .gateway(gw)
            .output_interface(index)
            .build(),
        (IpAddr::V6(gw), _) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build(),
    }
}

/// Puts what the agent owns on an interface in place (link `index`): up,
/// the MTU, the addresses, then the routes, replacing the same ones.
async fn put_static(h: &Handle, index: u32, o: &Owned) -> Result<(), NetError> {
    let mut link = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = o.mtu {
        link = link.mtu(mtu);
    }
    h.link().set(link.build()).execute().await?;
    for (addr, prefix) in &o.addresses {
        h.address()
            .add(index, *addr, *prefix)
            .replace()
            .execute()
            .await?;
    }
    for r in &o.routes {
        h.route()
            .add(route_msg(index, r))
            .replace()
            .execute()
            .await?;
    }
    Ok(())
}

/// Puts a configured interface's MTU, addresses and routes in place (link
/// `index`), replacing what is there under the same keys.
pub async fn apply_static(
    h: &Handle,
    index: u32,
    name: &str,
    i: &Interface,
) -> Result<(), NetError> {
    put_static(h, index, &owned_of(name, i)?).await
}

/// Removes one address from link `index` (absent already: nothing to do).
async fn del_address(h: &Handle, index: u32, (addr, prefix): Cidr) -> Result<(), NetError> {
    let found: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(addr)
        .execute()
        .try_collect()
        .await?;
    for a in found.into_iter().filter(|a| a.header.prefix_len == prefix) {
        h.address().del(a).execute().await?;
    }
    Ok(())
}

/// The live half of the machine configuration's interfaces: the agent's
/// appliers send the configuration's interfaces here, the network task
/// ([`run`]) carries them out and answers. Before the task is attached
/// (the agent's start) or without one (`--no-network`) nothing is done.
#[derive(Debug, Default)]
pub struct NetControl {
    link: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Request>>,
    /// The interfaces last put in place: what an undo goes back to.
    current: std::sync::Mutex<BTreeMap<String, Interface>>,
}

/// How long a live change waits for the network task to take it. Its
/// work is a few netlink calls (well under a second, even on an emulated
/// node under load): a task that has not taken the change by then is stuck,
/// and waiting on would hold the configuration's lock — every config RPC
/// and the trial timer — for as long.
pub const TAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// A wait this long is logged (once) while it lasts: a stall shows in the
/// agent's log, which the API still serves.
pub const SLOW_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A live change: the interfaces, where the network task answers, and who
/// owns it ([`Request::take`]: the task, or the waiter who gave it up).
#[derive(Debug)]
pub struct Request {
    pub want: BTreeMap<String, Interface>,
    reply: std::sync::mpsc::SyncSender<Result<(), String>>,
    /// [`PENDING`], [`TAKEN`] or [`ABANDONED`].
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    sent: std::time::Instant,
}

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Request {
    /// The network task's claim: false when the waiter gave the change up
    /// (it answered "nothing was changed": it must not be carried out).
    pub fn take(&self) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        self.state
            .compare_exchange(PENDING, TAKEN, AcqRel, std::sync::atomic::Ordering::Acquire)
            .is_ok()
    }

    /// The task's answer (a waiter that gave up is not there to read it).
    pub fn answer(&self, r: Result<(), String>) {
        let _ = self.reply.try_send(r);
    }
}

impl NetControl {
    /// Connects the network task, which starts from `current`; None when
    /// one is attached already.
    pub fn attach(
        &self,
        current: BTreeMap<String, Interface>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Request>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.link.set(tx).ok()?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = current;
        Some(rx)
    }

    /// The interfaces last put in place.
    pub fn current(&self) -> BTreeMap<String, Interface> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `want` in place and waits for it; an error has left the
    /// interfaces as they were (the task puts them back, or never took the
    /// change: [`TAKE_WAIT`]). Blocks: call it from a blocking thread (the
    /// appliers run in `spawn_blocking`).
    pub fn apply_blocking(&self, want: &BTreeMap<String, Interface>) -> Result<(), String> {
        self.apply_within(want, SLOW_WAIT, TAKE_WAIT)
    }

    fn apply_within(
        &self,
        want: &BTreeMap<String, Interface>,
        slow: std::time::Duration,
        take_wait: std::time::Duration,
    ) -> Result<(), String> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        use std::sync::mpsc::RecvTimeoutError;
        let Some(tx) = self.link.get() else {
            return Ok(());
        };
        if *want == self.current() {
            return Ok(());
        }
        let gone = || "the network task is gone".to_owned();
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(PENDING));
        let sent = std::time::Instant::now();
        tx.send(Request {
            want: want.clone(),
            reply,
            state: state.clone(),
            sent,
        })
        .map_err(|_| gone())?;
        let mut r = answer.recv_timeout(slow);
        if matches!(r, Err(RecvTimeoutError::Timeout)) {
            eprintln!(
                "matic-agent: net: a live change has waited {} s for the network task ({})",
                slow.as_secs_f32(),
                if state.load(Acquire) == TAKEN {
                    "carrying it out"
                } else {
                    "not taken yet"
                }
            );
            r = answer.recv_timeout(take_wait.saturating_sub(sent.elapsed()));
        }
        if matches!(r, Err(RecvTimeoutError::Timeout)) {
            if state
                .compare_exchange(PENDING, ABANDONED, AcqRel, Acquire)
                .is_ok()
            {
                return Err(format!(
                    "the network task did not take the change within {} s \
                     (stuck: its last lines say where); it will not carry it out",
                    take_wait.as_secs()
                ));
            }
            // Taken meanwhile: the task is carrying it out, and answers
            // once the interfaces are in place or put back.
            r = answer.recv().map_err(|_| RecvTimeoutError::Disconnected);
        }
        r.map_err(|_| gone())??;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = want.clone();
        Ok(())
    }
}

/// The DHCP client running on one interface, and the lease it holds.
struct DhcpRun {
    iface: String,
    index: u32,
    task: tokio::task::JoinHandle<()>,
    /// The lease last handed to the host (set before it is applied, so a
    /// client stopped half-way still leaves it known).
    held: std::sync::Arc<std::sync::Mutex<Option<dhcp::Lease>>>,
}

/// The network task's state: what it put in place.
struct Net {
    handle: Handle,
    resolver: std::sync::Arc<Resolver>,
    cmdline: Option<StaticIp>,
    first_eth: Option<String>,
    /// Whether a lease may name the node (no `matic.hostname=`).
    dhcp_names: bool,
    applied: Want,
    configured: BTreeMap<String, Interface>,
    dhcp: Option<DhcpRun>,
    /// The links seen (by index): a link event for one of these is a
    /// change of a known link (ours included), not a new interface.
    known: std::collections::BTreeSet<u32>,
}

/// A link that came or went, from the link group's messages.
#[derive(Debug, PartialEq, Eq)]
enum LinkEvent {
    New(u32, String),
    Gone(u32, String),
}

type LinkMessages = futures::channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

fn link_event(
    m: rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
) -> Option<LinkEvent> {
    use rtnetlink::packet_core::NetlinkPayload::InnerMessage;
    use rtnetlink::packet_route::RouteNetlinkMessage::{DelLink, NewLink};
    match m.payload {
        InnerMessage(NewLink(l)) => Some(LinkEvent::New(l.header.index, link_name(&l)?)),
        InnerMessage(DelLink(l)) => Some(LinkEvent::Gone(l.header.index, link_name(&l)?)),
        _ => None,
    }
}

impl Net {
    /// A link came or went. A new one gets the plan made again (the
    /// configuration may name it; it may be the first Ethernet interface);
    /// one that went takes what the agent owned on it along (the kernel
    /// dropped its addresses and routes), and its DHCP client stops.
    async fn link_event(&mut self, e: LinkEvent) {
        match e {
            LinkEvent::New(index, name) => {
                if !self.known.insert(index) {
                    return;
                }
                eprintln!("matic-agent: net: {name}: new interface");
                if self.first_eth.is_none() && is_ethernet(&name) {
                    self.first_eth = Some(name);
                }
                let configured = self.configured.clone();
                if let Err(e) = self.set(&configured, false).await {
                    eprintln!("matic-agent: net: after a new interface: {e}");
                }
            }
            LinkEvent::Gone(index, name) => {
                if !self.known.remove(&index) {
                    return;
                }
                eprintln!("matic-agent: net: {name}: interface gone");
                self.applied.statics.remove(&name);
                if self.applied.dhcp.as_ref().is_some_and(|(n, _)| *n == name) {
                    self.applied.dhcp = None;
                    if let Some(run) = self.dhcp.take() {
                        run.task.abort();
                        let lease = run.held.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let Some(l) = lease
                            && let Err(e) = self.resolver.forget_network(&lease_source(&l))
                        {
                            eprintln!("matic-agent: {e}");
                        }
                        eprintln!("matic-agent: net: {name}: DHCP client stopped");
                    }
                }
                if self.first_eth.as_deref() == Some(name.as_str()) {
                    // matic.ip='s name servers stay: the file says where
                    // they came from, and a link back takes them again.
                    self.applied.cmdline_dns = None;
                }
            }
        }
    }

    /// Puts `configured` in place. `strict` (a live change): the first
    /// error stops, the previous interfaces are put back and the error
    /// returned. Not strict (the agent's start): a failing interface is
    /// logged and the others still go.
    async fn set(
        &mut self,
        configured: &BTreeMap<String, Interface>,
        strict: bool,
    ) -> Result<(), NetError> {
        let links: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        let present: Vec<String> = links.iter().filter_map(link_name).collect();
        let p = plan(
            self.first_eth.as_deref(),
            &present,
            self.cmdline.clone(),
            configured,
        );
        for (n, why) in &p.skipped {
            eprintln!("matic-agent: net: network.interfaces.{n}: {why}; left alone");
        }
        let want = match want_of(&p) {
            Ok(w) => w,
            // At start a bad interface (the checks refuse these; the task
            // does not trust them) must not keep the others away.
            Err(e) if !strict => {
                eprintln!("matic-agent: net: {e}; that interface is left alone");
                let mut p = p;
                p.statics.retain(|(n, i)| owned_of(n, i).is_ok());
                want_of(&p)?
            }
            Err(e) => return Err(e),
        };
        let steps = netplan::steps(&self.applied, &want);
        if steps.is_empty() {
            self.configured = configured.clone();
            return Ok(());
        }
        match self.run_steps(&steps, &links, strict).await {
            Ok(()) => {
                self.applied = want;
                self.configured = configured.clone();
                Ok(())
            }
            Err(e) => {
                // Somewhere between the two: take everything either owns
                // as in place, so going back removes what came and puts
                // back what went.
                let mut both = self.applied.clone();
                for (n, o) in want.statics {
                    let b = both.statics.entry(n).or_default();
                    b.addresses.extend(o.addresses);
                    b.routes.extend(o.routes);
                }
                both.dhcp = self.dhcp.as_ref().map(|d| (d.iface.clone(), None));
                both.cmdline_dns = None;
                self.applied = both;
                let back = self.configured.clone();
                if let Err(e) = Box::pin(self.set(&back, false)).await {
                    eprintln!("matic-agent: net: putting the interfaces back: {e}");
                }
                Err(e)
            }
        }
    }

    async fn run_steps(
        &mut self,
        s: &netplan::Steps,
        links: &[LinkMessage],
        strict: bool,
    ) -> Result<(), NetError> {
        let index_of = |n: &str| {
            links
                .iter()
                .find(|l| link_name(l).as_deref() == Some(n))
                .map(|l| (l.header.index, link_mac(l).unwrap_or_default()))
        };
        let h = self.handle.clone();
        let fail = |n: &str, e: NetError| -> Result<(), NetError> {
            if strict {
                return Err(e);
            }
            eprintln!("matic-agent: net: {n}: {e}");
            Ok(())
        };
        if s.stop_dhcp.is_some() {
            self.stop_dhcp().await;
        }
        // A route already gone (the kernel drops those through a removed
        // address) is not an error.
        for (n, r) in &s.del_routes {
            if let Some((index, _)) = index_of(n) {
                match h.route().del(route_msg(index, r)).execute().await {
                    Ok(()) => eprintln!("matic-agent: net: {n}: route {r:?} removed"),
                    Err(e) => eprintln!("matic-agent: net: {n}: route {r:?}: {e} (already gone)"),
                }
            }
        }
        for (n, a) in &s.del_addresses {
            if let Some((index, _)) = index_of(n) {
                match del_address(&h, index, *a).await {
                    Ok(()) => eprintln!("matic-agent: net: {n}: {}/{} removed", a.0, a.1),
                    Err(e) => fail(n, e)?,
                }
            }
        }
        for (n, o) in &s.put {
            let Some((index, _)) = index_of(n) else {
                continue;
            };
            match put_static(&h, index, o).await {
                Ok(()) => eprintln!(
                    "matic-agent: net: {n} {:?} routes {} mtu {:?}",
                    o.addresses
                        .iter()
                        .map(|(a, p)| format!("{a}/{p}"))
                        .collect::<Vec<_>>(),
                    o.routes.len(),
                    o.mtu
                ),
                Err(e) => fail(n, e)?,
            }
        }
        if let Some(dns) = &s.cmdline_dns
            && let Err(e) = self.resolver.set_network(dns, "matic.ip")
        {
            eprintln!("matic-agent: {e}");
        }
        if let Some((n, mtu)) = &s.dhcp_mtu
            && let Some((index, _)) = index_of(n)
        {
            let link = LinkUnspec::new_with_index(index).mtu(*mtu).build();
            if let Err(e) = h.link().set(link).execute().await {
                fail(n, e.into())?;
            }
        }
        if let Some((n, mtu)) = &s.start_dhcp
            && let Some((index, mac)) = index_of(n)
        {
            let mut link = LinkUnspec::new_with_index(index).up();
            if let Some(mtu) = mtu {
                link = link.mtu(*mtu);
            }
            if let Err(e) = h.link().set(link.build()).execute().await {
                fail(n, e.into())?;
            }
            self.start_dhcp(n, index, mac);
        }
        Ok(())
    }

    fn start_dhcp(&mut self, iface: &str, index: u32, mac: Vec<u8>) {
        let held = std::sync::Arc::new(std::sync::Mutex::new(None));
        let mut host = DhcpHost {
            handle: self.handle.clone(),
            index,
            iface: iface.to_owned(),
            resolver: self.resolver.clone(),
            dhcp_names: self.dhcp_names,
            named: None,
            held: held.clone(),
        };
        let name = iface.to_owned();
        let task = tokio::spawn(async move {
            dhcp::run(&mut host, &name, &mac).await;
        });
        eprintln!("matic-agent: net: {iface}: DHCP client started");
        self.dhcp = Some(DhcpRun {
            iface: iface.to_owned(),
            index,
            task,
            held,
        });
    }

    /// Stops the DHCP client and takes its lease's address and routes off
    /// the interface (the interface leaves DHCP).
    async fn stop_dhcp(&mut self) {
        let Some(run) = self.dhcp.take() else {
            return;
        };
        run.task.abort();
        let _ = run.task.await;
        let lease = run.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        eprintln!("matic-agent: net: {}: DHCP client stopped", run.iface);
        if let Some(l) = lease
            && let Err(e) =
                remove_lease(&self.handle, run.index, &self.resolver, &run.iface, &l).await
        {
            eprintln!("matic-agent: net: {}: removing {}: {e}", run.iface, l.addr);
        }
    }
}

/// Configures the network, then carries out the live changes `requests`
/// brings (None: none come; the DHCP client, if any, runs on in its own
/// task). Name servers go to `resolver`.
pub async fn run(
    cmdline_path: &Path,
    resolver: std::sync::Arc<Resolver>,
    configured: &BTreeMap<String, Interface>,
    requests: Option<tokio::sync::mpsc::UnboundedReceiver<Request>>,
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
    // Link events before the first dump: a link that comes between the
    // two is in one or the other, never in neither.
    let mut events: Option<LinkMessages> = match rtnetlink::new_multicast_connection(&[
        rtnetlink::MulticastGroup::Link,
    ]) {
        Ok((conn, _, messages)) => {
            tokio::spawn(conn);
            Some(messages)
        }
        Err(e) => {
            eprintln!(
                "matic-agent: net: watching for new interfaces: {e}; only those present now are configured"
            );
            None
        }
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
            eth = Some((name, link_mac(l).unwrap_or_default()));
        }
    }
    match (&eth, &fixed_name) {
        (None, _) => set_hostname(
            fixed_name.as_deref().unwrap_or(hostname::FALLBACK),
            "no Ethernet interface",
        ),
        (Some(_), Some(n)) => set_hostname(n, "matic.hostname"),
        (Some((name, mac)), None) => {
            set_hostname(&hostname::from_mac(mac), &format!("MAC of {name}"))
        }
    }
    let mut net = Net {
        handle,
        resolver,
        cmdline: static_ip,
        first_eth: eth.map(|(n, _)| n),
        dhcp_names: fixed_name.is_none(),
        applied: Want::default(),
        configured: BTreeMap::new(),
        dhcp: None,
        known: links.iter().map(|l| l.header.index).collect(),
    };
    net.set(configured, false).await?;
    if net.applied == Want::default() && net.first_eth.is_none() {
        eprintln!("matic-agent: network: {}", NetError::NoEthernet);
    }
    let mut requests = requests;
    while requests.is_some() || events.is_some() {
        tokio::select! {
            // A source that is not there (or ended) is never ready.
            r = async {
                match &mut requests {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Some(req) => {
                    let waited = req.sent.elapsed();
                    if !req.take() {
                        eprintln!(
                            "matic-agent: net: a live change given up after {:.1} s in the queue: not carried out",
                            waited.as_secs_f32()
                        );
                    } else {
                        if waited >= std::time::Duration::from_secs(1) {
                            eprintln!(
                                "matic-agent: net: a live change waited {:.1} s in the queue",
                                waited.as_secs_f32()
                            );
                        }
                        let r = net.set(&req.want, true).await;
                        if let Err(e) = &r {
                            eprintln!("matic-agent: net: live change refused: {e}; interfaces put back");
                        }
                        req.answer(r.map_err(|e| e.to_string()));
                    }
                }
                None => requests = None,
            },
            m = async {
                match &mut events {
                    Some(m) => futures::StreamExt::next(m).await,
                    None => std::future::pending().await,
                }
            } => match m {
                Some((m, _)) => {
                    if let Some(e) = link_event(m) {
                        net.link_event(e).await;
                    }
                }
                None => events = None,
            },
        }
    }
    Ok(())
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

/// Where a lease's name servers came from, as the resolver file says it.
fn lease_source(lease: &dhcp::Lease) -> String {
    format!("DHCP server {}", lease.server)
}

/// Takes a lease's name servers out of the resolver file and its routes
/// and address off link `index`.
async fn remove_lease(
    h: &Handle,
    index: u32,
    resolver: &Resolver,
    iface: &str,
    lease: &dhcp::Lease,
) -> Result<(), NetError> {
    // The address goes whatever the file does: logged, not fatal.
    if let Err(e) = resolver.forget_network(&lease_source(lease)) {
        eprintln!("matic-agent: {e}");
    }
    // Routes first (the kernel drops the default route with the
    // address, but not the on-link host route); a route already gone
    // is not an error.
    if let Some(gw) = lease.router {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        let _ = h.route().del(route).execute().await;
    }
    if let Some(r) = lease.router_off_subnet() {
        let _ = h.route().del(onlink_route(r, index)).execute().await;
    }
    del_address(h, index, (IpAddr::V4(lease.addr), lease.prefix)).await?;
    eprintln!(
        "matic-agent: net: {iface} {}/{} removed (lease from {})",
        lease.addr, lease.prefix, lease.server
    );
    Ok(())
}

/// The interface DHCP configures: applies and removes leases over
/// netlink, writes their name servers and takes their host name.
struct DhcpHost {
    handle: Handle,
    index: u32,
    iface: String,
    resolver: std::sync::Arc<Resolver>,
    /// Whether the lease may name the node (no `matic.hostname=`).
    dhcp_names: bool,
    /// The name this host last set, so a renewal does not set it again.
    named: Option<String>,
    /// The lease last handed to [`dhcp::Host::apply`], for whoever stops
    /// the client ([`Net::stop_dhcp`]).
    held: std::sync::Arc<std::sync::Mutex<Option<dhcp::Lease>>>,
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

impl dhcp::Host for DhcpHost {
    type Error = NetError;

    async fn apply(&mut self, lease: &dhcp::Lease, renewal: bool) -> Result<(), NetError> {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease.clone());
        let h = &self.handle;
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
        if let Err(e) = self.resolver.set_network(&dns, &lease_source(lease)) {
            eprintln!("matic-agent: {e}");
        }
        if let Some(name) = lease.hostname.as_deref().filter(|_| self.dhcp_names) {
            match hostname::normalize(name, "DHCP") {
                Ok(n) if self.named.as_ref() != Some(&n) => {
                    set_hostname(&n, &lease_source(lease));
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
        remove_lease(&self.handle, self.index, &self.resolver, &self.iface, lease).await?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_ref() == Some(lease) {
            *held = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn eth0_at(addr: &str) -> BTreeMap<String, Interface> {
        let doc = format!("version = 1\n[network.interfaces.eth0]\naddresses = [\"{addr}\"]\n");
        matic_config::parse(&doc).unwrap().network.interfaces
    }

    /// A network task that never takes a live change (stuck) must not hold
    /// the apply, and with it the configuration's lock, forever: the change
    /// is given up, nothing has changed, and the task will not carry it out
    /// when it runs again.
    #[test]
    fn a_change_the_network_task_never_takes_is_given_up() {
        let ctl = std::sync::Arc::new(NetControl::default());
        let mut rx = ctl.attach(BTreeMap::new()).unwrap();
        let want = eth0_at("10.9.3.5/24");
        let (done, result) = std::sync::mpsc::channel();
        let (c, w) = (ctl.clone(), want.clone());
        std::thread::spawn(move || {
            let r = c.apply_within(&w, Duration::from_millis(20), Duration::from_millis(200));
            let _ = done.send(r);
        });
        let r = result
            .recv_timeout(Duration::from_secs(10))
            .expect("the apply still waits for a network task that never takes the change");
        let e = r.unwrap_err();
        assert!(e.contains("did not take the change within"), "{e}");
        assert_eq!(ctl.current(), BTreeMap::new(), "nothing has changed");
        let req = rx.try_recv().unwrap();
        assert_eq!(req.want, want);
        assert!(!req.take(), "a change given up must not be carried out");
    }

    /// A change the task took in time is waited for to its end, past the
    /// bound: the task's answer says whether the interfaces changed.
    #[test]
    fn a_change_taken_in_time_is_waited_for() {
        let ctl = NetControl::default();
        let mut rx = ctl.attach(BTreeMap::new()).unwrap();
        let want = eth0_at("10.9.3.5/24");
        let task = std::thread::spawn(move || {
            let req = rx.blocking_recv().unwrap();
            assert!(req.take());
            std::thread::sleep(Duration::from_millis(400));
            req.answer(Err("refused".into()));
            let req = rx.blocking_recv().unwrap();
            assert!(req.take());
            req.answer(Ok(()));
        });
        let (slow, bound) = (Duration::from_millis(20), Duration::from_millis(100));
        assert_eq!(ctl.apply_within(&want, slow, bound).unwrap_err(), "refused");
        assert_eq!(ctl.current(), BTreeMap::new());
        ctl.apply_within(&want, slow, bound).unwrap();
        assert_eq!(ctl.current(), want);
        task.join().unwrap();
    }

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

    /// Runs the ignored test `child` of this module in a fresh network
    /// namespace (`unshare -n`, as root), so the agent's netlink code works
    /// on a veth pair, never on the host's interfaces; it must print `ok`.
    fn in_a_network_namespace(child: &str, ok: &str) {
        let out = std::process::Command::new("unshare")
            .args(["-n", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("net::tests::{child}"),
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
        assert!(out.status.success() && text.contains(ok), "{text}");
    }

    /// `ip ARGS` (iproute2) in the namespace; its output.
    fn ip(args: &str) -> String {
        let o = std::process::Command::new("ip")
            .args(args.split(' '))
            .output()
            .unwrap();
        assert!(o.status.success(), "ip {args}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// [`netns_child`]: a static interface applied at start.
    #[test]
    fn static_interface_applied_in_a_network_namespace() {
        in_a_network_namespace("netns_child", "netns child: ok");
    }

    #[test]
    #[ignore = "run by static_interface_applied_in_a_network_namespace"]
    fn netns_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
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

    /// A child's scratch directory with its command line file (`cmdline`),
    /// its host names going to a file there (the host's name is not ours).
    fn child_sandbox(tag: &str, cmdline: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("matic-netns-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        hostname::write_to_file(dir.join("hostname"));
        let path = dir.join("cmdline");
        std::fs::write(&path, cmdline).unwrap();
        (dir, path)
    }

    /// Runs [`netns_late_child`] in a fresh network namespace: interfaces
    /// the configuration names that appear after the task started are
    /// configured when they come, and again when they come back.
    #[test]
    fn late_interfaces_in_a_network_namespace() {
        in_a_network_namespace("netns_late_child", "netns late child: ok");
    }

    #[test]
    #[ignore = "run by late_interfaces_in_a_network_namespace"]
    fn netns_late_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let (dir, cmdline) = child_sandbox("late", "console=ttyS0\n");
        let doc = matic_config::parse(concat!(
            "version = 1\n[network.interfaces.eth5]\n",
            "addresses = [\"10.9.5.5/24\"]\nmtu = 1400\n",
            "routes = [{ to = \"192.168.55.0/24\", via = \"10.9.5.1\" }]\n",
        ))
        .unwrap()
        .network
        .interfaces;
        let has = |want: &str| {
            std::process::Command::new("ip")
                .args(["addr", "show", "dev", "eth5"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(want))
        };
        let wait = |what: &str| {
            let t = std::time::Instant::now();
            while !has(what) {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(10),
                    "eth5 never got {what}: {}",
                    ip("addr")
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let resolver = std::sync::Arc::new(Resolver::new(dir.join("resolv.conf")));
        let task = rt.spawn(async move { run(&cmdline, resolver, &doc, None).await });
        // The task has made its plan without eth5 (it said so) before the
        // link comes; its start is quick, give it time.
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!task.is_finished(), "the task must keep watching");
        ip("link add eth5 type veth peer name p5");
        wait("10.9.5.5/24");
        assert!(ip("link show eth5").contains("mtu 1400"));
        assert!(ip("route").contains("192.168.55.0/24 via 10.9.5.1 dev eth5"));
        // Gone and back (a USB adapter replugged): configured again.
        ip("link del eth5");
        std::thread::sleep(std::time::Duration::from_millis(300));
        ip("link add eth5 type veth peer name p5");
        wait("10.9.5.5/24");
        // A link the agent already knows changing (down, up) is no new
        // interface: nothing is done twice (the address stays, once).
        ip("link set eth5 down");
        ip("link set eth5 up");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            ip("-o addr show dev eth5").matches("10.9.5.5/24").count(),
            1
        );
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
        println!("netns late child: ok");
    }

    /// Runs [`netns_live_child`] in a fresh network namespace: the network
    /// task ([`run`]) taking live changes A → B → A, to DHCP and back to
    /// `matic.ip=`, and a change the kernel refuses, put back.
    #[test]
    fn live_changes_in_a_network_namespace() {
        in_a_network_namespace("netns_live_child", "netns live child: ok");
    }

    #[test]
    #[ignore = "run by live_changes_in_a_network_namespace"]
    fn netns_live_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let (dir, cmdline) = child_sandbox(
            "live",
            "console=ttyS0 matic.ip=10.9.0.5/24,gw=10.9.0.1,dns=10.9.0.53\n",
        );
        ip("link add eth0 type veth peer name v1");
        ip("link set v1 up");
        ip("link set eth0 up");
        // Someone else's address: never the agent's to remove.
        ip("addr add 10.9.7.7/24 dev eth0");
        let doc = |s: &str| matic_config::parse(s).unwrap().network.interfaces;
        let a = doc(concat!(
            "version = 1\n[network.interfaces.eth0]\n",
            "addresses = [\"10.9.1.5/24\", \"fd00:9::5/64\"]\nmtu = 1400\n",
            "routes = [{ to = \"default\", via = \"10.9.1.1\" }, ",
            "{ to = \"192.168.50.0/24\", via = \"10.9.1.1\" }]\n",
        ));
        let b = doc(concat!(
            "version = 1\n[network.interfaces.eth0]\naddresses = [\"10.9.2.5/24\"]\n",
            "mtu = 1400\nroutes = [{ to = \"default\", via = \"10.9.2.1\" }]\n",
        ));
        let dhcp = doc("version = 1\n[network.interfaces.eth0]\ndhcp = true\n");
        let unreachable = doc(concat!(
            "version = 1\n[network.interfaces.eth0]\naddresses = [\"10.9.3.5/24\"]\n",
            "routes = [{ to = \"10.60.0.0/16\", via = \"10.99.0.1\" }]\n",
        ));
        let addrs = || {
            let mut v: Vec<String> = ip("-o addr show dev eth0 scope global")
                .lines()
                .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
                .collect();
            v.sort();
            v.join(" ")
        };
        let routes = || ip("route show dev eth0") + &ip("-6 route show dev eth0");
        let check_a = |when: &str| {
            assert_eq!(addrs(), "10.9.1.5/24 10.9.7.7/24 fd00:9::5/64", "{when}");
            let r = routes();
            assert!(
                r.contains("default via 10.9.1.1") && r.contains("192.168.50.0/24 via 10.9.1.1"),
                "{when}: {r}"
            );
            assert!(
                !r.contains("10.9.0.1") && !r.contains("10.9.2.1"),
                "{when}: {r}"
            );
            assert!(ip("link show eth0").contains("mtu 1400"), "{when}");
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ctl = std::sync::Arc::new(NetControl::default());
            let rx = ctl.attach(BTreeMap::new());
            let resolver = std::sync::Arc::new(Resolver::new(dir.join("resolv.conf")));
            let (cl, res) = (cmdline.clone(), resolver.clone());
            tokio::spawn(async move { run(&cl, res, &BTreeMap::new(), rx).await });
            let apply = |w: &BTreeMap<String, Interface>| {
                let (ctl, w) = (ctl.clone(), w.clone());
                tokio::task::spawn_blocking(move || ctl.apply_blocking(&w))
            };
            let settle = || tokio::time::sleep(std::time::Duration::from_millis(200));
            // The start: matic.ip= on the first Ethernet interface.
            apply(&BTreeMap::new()).await.unwrap().unwrap();
            settle().await;
            assert_eq!(addrs(), "10.9.0.5/24 10.9.7.7/24");
            assert!(routes().contains("default via 10.9.0.1"), "{}", routes());
            // A: takes eth0 from matic.ip=, whose address and route go.
            apply(&a).await.unwrap().unwrap();
            check_a("A");
            // B: A's addresses and routes go, B's come; the foreign stays.
            apply(&b).await.unwrap().unwrap();
            assert_eq!(addrs(), "10.9.2.5/24 10.9.7.7/24", "B");
            let r = routes();
            assert!(r.contains("default via 10.9.2.1"), "B: {r}");
            assert!(
                !r.contains("10.9.1.1") && !r.contains("192.168.50"),
                "B: {r}"
            );
            // And A again.
            apply(&a).await.unwrap().unwrap();
            check_a("A again");
            // A route the kernel refuses (its gateway is on no subnet):
            // the error names it, and A stays as it was.
            let e = apply(&unreachable).await.unwrap().unwrap_err();
            assert!(e.contains("unreachable") || e.contains("-101"), "{e}");
            check_a("after a refused change");
            // To DHCP: the static addresses and routes go, the client runs
            // (no server here: it only sends DISCOVERs).
            apply(&dhcp).await.unwrap().unwrap();
            assert_eq!(addrs(), "10.9.7.7/24", "DHCP");
            assert!(!routes().contains("via"), "DHCP: {}", routes());
            // Back to nothing configured: the client stops, matic.ip= is
            // back with its name server.
            apply(&BTreeMap::new()).await.unwrap().unwrap();
            assert_eq!(addrs(), "10.9.0.5/24 10.9.7.7/24", "matic.ip again");
            assert!(routes().contains("default via 10.9.0.1"), "{}", routes());
            let resolv = std::fs::read_to_string(dir.join("resolv.conf")).unwrap();
            assert!(resolv.contains("nameserver 10.9.0.53"), "{resolv}");
        });
        let _ = std::fs::remove_dir_all(&dir);
        println!("netns live child: ok");
    }
}
