//! What the agent owns on the node's interfaces ([`Want`]: static
//! addresses, routes and MTUs, which interface runs the DHCP client, the
//! name servers of `matic.ip=`), and the [`Steps`] that take the node from
//! one such state to another when a generation is applied live. Pure: no
//! netlink, no I/O, so every case is a unit or property test;
//! [`crate::net`] carries the steps out.
//!
//! Must never: name for removal an address or a route the previous state
//! did not own (the DHCP client's lease, what another program put there),
//! nor one the new state still wants; or stop the DHCP client on an
//! interface that keeps it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// `ADDRESS/PREFIX`.
pub type Cidr = (IpAddr, u8);

/// A route the agent puts on an interface: `to` None is the default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetRoute {
    pub to: Option<Cidr>,
    pub via: IpAddr,
}

/// What the agent puts on one interface with static addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub addresses: BTreeSet<Cidr>,
    pub routes: BTreeSet<NetRoute>,
    pub mtu: Option<u32>,
}

/// Everything the agent owns on the interfaces at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// Interfaces with static addresses (the configuration's, or
    /// `matic.ip=`'s on the first Ethernet interface).
    pub statics: BTreeMap<String, Owned>,
    /// The interface the DHCP client runs on, and its MTU.
    pub dhcp: Option<(String, Option<u32>)>,
    /// `matic.ip=`'s name servers, while it applies.
    pub cmdline_dns: Option<Vec<IpAddr>>,
}

/// From one [`Want`] to the next, in this order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Steps {
    /// Stop the DHCP client on this interface and remove its lease's
    /// address and routes (the interface leaves DHCP).
    pub stop_dhcp: Option<String>,
    /// Owned routes no longer wanted (before the addresses: a route may
    /// need its address's subnet to be found).
    pub del_routes: Vec<(String, NetRoute)>,
    /// Owned addresses no longer wanted.
    pub del_addresses: Vec<(String, Cidr)>,
    /// Interfaces whose static state changed: link up, MTU, and every
    /// address and route of it put in place (replacing the same ones).
    pub put: Vec<(String, Owned)>,
    /// Start the DHCP client here (link up and the MTU first).
    pub start_dhcp: Option<(String, Option<u32>)>,
    /// The DHCP interface stays, with a new MTU.
    pub dhcp_mtu: Option<(String, u32)>,
    /// `matic.ip=` (again) applies: its name servers.
    pub cmdline_dns: Option<Vec<IpAddr>>,
}

impl Steps {
    pub fn is_empty(&self) -> bool {
        *self == Steps::default()
    }
}

/// The steps from `old` (what is in place) to `new`.
pub fn steps(old: &Want, new: &Want) -> Steps {
    let dhcp_iface = |w: &Want| w.dhcp.as_ref().map(|(i, _)| i.clone());
    let moved = dhcp_iface(old) != dhcp_iface(new);
    let mut s = Steps {
        stop_dhcp: if moved { dhcp_iface(old) } else { None },
        start_dhcp: if moved { new.dhcp.clone() } else { None },
        ..Steps::default()
    };
    if !moved
        && let (Some((i, Some(m))), Some((_, before))) = (&new.dhcp, &old.dhcp)
        && *before != Some(*m)
    {
        s.dhcp_mtu = Some((i.clone(), *m));
    }
    let nothing = Owned::default();
    for (iface, o) in &old.statics {
        let n = new.statics.get(iface).unwrap_or(&nothing);
        for r in o.routes.difference(&n.routes) {
            s.del_routes.push((iface.clone(), *r));
        }
        for a in o.addresses.difference(&n.addresses) {
            s.del_addresses.push((iface.clone(), *a));
        }
    }
    for (iface, n) in &new.statics {
        // A lease removed from this interface may have taken a route or an
        // address equal to one of ours with it: put everything back.
        let lease_gone = s.stop_dhcp.as_deref() == Some(iface.as_str());
        if lease_gone || old.statics.get(iface) != Some(n) {
            s.put.push((iface.clone(), n.clone()));
        }
    }
    if new.cmdline_dns.is_some() && new.cmdline_dns != old.cmdline_dns {
        s.cmdline_dns = new.cmdline_dns.clone();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').unwrap();
        (a.parse().unwrap(), p.parse().unwrap())
    }

    fn owned(addrs: &[&str], routes: &[(&str, &str)], mtu: Option<u32>) -> Owned {
        Owned {
            addresses: addrs.iter().map(|a| cidr(a)).collect(),
            routes: routes
                .iter()
                .map(|(to, via)| NetRoute {
                    to: (*to != "default").then(|| cidr(to)),
                    via: via.parse().unwrap(),
                })
                .collect(),
            mtu,
        }
    }

    fn statics(v: &[(&str, Owned)]) -> BTreeMap<String, Owned> {
        v.iter().map(|(n, o)| (n.to_string(), o.clone())).collect()
    }

    #[test]
    fn static_a_to_b_removes_only_what_a_owned() {
        let a = Want {
            statics: statics(&[(
                "eth0",
                owned(
                    &["10.0.0.5/24", "fd00::5/64"],
                    &[("default", "10.0.0.1"), ("192.168.0.0/16", "10.0.0.254")],
                    Some(1400),
                ),
            )]),
            ..Want::default()
        };
        let b = Want {
            statics: statics(&[(
                "eth0",
                owned(
                    &["10.0.1.5/24", "fd00::5/64"],
                    &[("default", "10.0.1.1")],
                    None,
                ),
            )]),
            ..Want::default()
        };
        let s = steps(&a, &b);
        assert_eq!(s.stop_dhcp, None);
        assert_eq!(
            s.del_addresses,
            [("eth0".to_owned(), cidr("10.0.0.5/24"))],
            "fd00::5/64 stays"
        );
        let vias: Vec<String> = s
            .del_routes
            .iter()
            .map(|(_, r)| r.via.to_string())
            .collect();
        assert_eq!(vias, ["10.0.0.1", "10.0.0.254"]);
        assert_eq!(s.put, [("eth0".to_owned(), b.statics["eth0"].clone())]);
        // Nothing changed: nothing to do (an apply of another field).
        assert!(steps(&b, &b).is_empty());
        assert!(steps(&a, &a).is_empty());
    }

    #[test]
    fn dhcp_to_static_and_back() {
        let cmdline = Want {
            statics: statics(&[(
                "eth0",
                owned(&["10.0.2.15/24"], &[("default", "10.0.2.2")], None),
            )]),
            cmdline_dns: Some(vec!["10.0.2.3".parse().unwrap()]),
            ..Want::default()
        };
        let dhcp = Want {
            dhcp: Some(("eth0".into(), None)),
            ..Want::default()
        };
        let moved = Want {
            statics: statics(&[("eth0", owned(&["10.0.3.15/24"], &[], None))]),
            ..Want::default()
        };
        // DHCP → static: the client stops (its lease goes), the static
        // address comes; nothing of the lease is named for removal here.
        let s = steps(&dhcp, &moved);
        assert_eq!(s.stop_dhcp.as_deref(), Some("eth0"));
        assert!(s.del_addresses.is_empty() && s.del_routes.is_empty());
        assert_eq!(s.put.len(), 1);
        assert_eq!(s.start_dhcp, None);
        // static → DHCP: the owned address goes, the client starts.
        let s = steps(&moved, &dhcp);
        assert_eq!(s.del_addresses, [("eth0".to_owned(), cidr("10.0.3.15/24"))]);
        assert_eq!(s.start_dhcp, Some(("eth0".to_owned(), None)));
        assert_eq!(s.stop_dhcp, None);
        // The configuration takes eth0 from matic.ip= and gives it back:
        // its address and route go, then come back with its name servers.
        let s = steps(&cmdline, &moved);
        assert_eq!(s.del_addresses, [("eth0".to_owned(), cidr("10.0.2.15/24"))]);
        assert_eq!(s.del_routes.len(), 1);
        assert_eq!(s.cmdline_dns, None);
        let s = steps(&moved, &cmdline);
        assert_eq!(s.del_addresses, [("eth0".to_owned(), cidr("10.0.3.15/24"))]);
        assert_eq!(
            s.put,
            [("eth0".to_owned(), cmdline.statics["eth0"].clone())]
        );
        assert_eq!(s.cmdline_dns, cmdline.cmdline_dns);
        // DHCP moves to another interface; an MTU change alone restarts
        // nothing.
        let other = Want {
            dhcp: Some(("eth1".into(), Some(9000))),
            ..Want::default()
        };
        let s = steps(&dhcp, &other);
        assert_eq!(
            (s.stop_dhcp, s.start_dhcp),
            (Some("eth0".into()), Some(("eth1".into(), Some(9000))))
        );
        let jumbo = Want {
            dhcp: Some(("eth0".into(), Some(9000))),
            ..Want::default()
        };
        let s = steps(&dhcp, &jumbo);
        assert_eq!((s.stop_dhcp, s.start_dhcp), (None, None));
        assert_eq!(s.dhcp_mtu, Some(("eth0".into(), 9000)));
    }

    /// A model of the kernel's interfaces: addresses and routes per
    /// interface, tagged with who put them there.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    struct Node {
        addrs: BTreeSet<(String, Cidr)>,
        routes: BTreeSet<(String, NetRoute)>,
        /// The DHCP client's interface and whether its lease is applied.
        dhcp: Option<String>,
        /// Someone else's address (never ours to remove).
        foreign: BTreeSet<(String, Cidr)>,
    }

    const LEASE: &str = "10.9.9.9/24";

    impl Node {
        fn from(w: &Want) -> Node {
            let mut n = Node::default();
            for (i, o) in &w.statics {
                n.addrs.extend(o.addresses.iter().map(|a| (i.clone(), *a)));
                n.routes.extend(o.routes.iter().map(|r| (i.clone(), *r)));
            }
            if let Some((i, _)) = &w.dhcp {
                n.dhcp = Some(i.clone());
                n.foreign.insert((i.clone(), cidr(LEASE)));
            }
            n.foreign.insert(("eth0".into(), cidr("172.16.0.1/32")));
            n
        }

        fn run(&mut self, s: &Steps) {
            if let Some(i) = &s.stop_dhcp {
                assert_eq!(self.dhcp.as_ref(), Some(i), "stopping a client not running");
                self.foreign.remove(&(i.clone(), cidr(LEASE)));
                self.dhcp = None;
            }
            for (i, r) in &s.del_routes {
                assert!(
                    self.routes.remove(&(i.clone(), *r)),
                    "{i} {r:?} was not there"
                );
            }
            for (i, a) in &s.del_addresses {
                assert!(
                    !self.foreign.contains(&(i.clone(), *a)),
                    "removing {a:?}, not ours"
                );
                assert!(
                    self.addrs.remove(&(i.clone(), *a)),
                    "{i} {a:?} was not there"
                );
            }
            for (i, o) in &s.put {
                self.addrs
                    .extend(o.addresses.iter().map(|a| (i.clone(), *a)));
                self.routes.extend(o.routes.iter().map(|r| (i.clone(), *r)));
            }
            if let Some((i, _)) = &s.start_dhcp {
                assert!(self.dhcp.is_none(), "two DHCP clients");
                self.dhcp = Some(i.clone());
                self.foreign.insert((i.clone(), cidr(LEASE)));
            }
        }
    }

    fn want() -> impl Strategy<Value = Want> {
        let ifaces = prop::sample::select(vec!["eth0", "eth1", "eth2"]);
        let addr = prop::sample::select(vec![
            "10.0.0.5/24",
            "10.0.0.6/24",
            "10.0.1.5/24",
            "fd00::5/64",
            "fd00:1::5/64",
        ]);
        let route = prop::sample::select(vec![
            ("default", "10.0.0.1"),
            ("192.168.0.0/16", "10.0.0.254"),
            ("default", "fd00::1"),
            ("10.50.0.0/16", "10.0.1.1"),
        ]);
        let owned = (
            prop::collection::btree_set(addr, 0..4),
            prop::collection::btree_set(route, 0..3),
            prop::option::of(prop::sample::select(vec![1400u32, 1500, 9000])),
        )
            .prop_map(|(a, r, m)| {
                owned(
                    &a.into_iter().collect::<Vec<_>>(),
                    &r.into_iter().collect::<Vec<_>>(),
                    m,
                )
            });
        (
            prop::collection::btree_map(ifaces.clone().prop_map(String::from), owned, 0..3),
            prop::option::of(ifaces),
        )
            .prop_map(|(statics, dhcp)| {
                // One interface is static or DHCP, never both (net::plan).
                let dhcp = dhcp
                    .filter(|d| !statics.contains_key(*d))
                    .map(|d| (d.to_owned(), None));
                Want {
                    statics,
                    dhcp,
                    cmdline_dns: None,
                }
            })
    }

    proptest! {
        /// Any sequence of states: after each step the node holds exactly
        /// what the state owns, plus what it never owned; the DHCP client
        /// runs where the state says, and the steps never remove an
        /// address the agent did not put there.
        #[test]
        fn steps_reach_every_state_and_touch_only_what_is_owned(
            seq in prop::collection::vec(want(), 1..8)
        ) {
            let mut at = Want::default();
            let mut node = Node::from(&at);
            for w in seq {
                let s = steps(&at, &w);
                node.run(&s);
                // Node::from: eth0's foreign address always there, the
                // lease only where DHCP runs.
                prop_assert_eq!(&node, &Node::from(&w));
                prop_assert_eq!(
                    node.foreign.contains(&(String::from("eth0"), cidr("172.16.0.1/32"))),
                    true
                );
                prop_assert!(steps(&w, &w).is_empty());
                at = w;
            }
        }
    }
}
