//! The document's types, version 1. Every table refuses unknown keys
//! (`deny_unknown_fields`), so a misspelt key is an error, never silently
//! ignored. Only the shape is here; values are checked by [`crate::check`].
//!
//! Must never: hold a default that changes the node (an absent section
//! means "leave it as the image and the kernel command line have it").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only schema version this build reads.
pub const VERSION: u32 = 1;

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Schema version: must be [`VERSION`].
    pub version: u32,
    /// The node's name (RFC 1123, lowercase): wins over `matic.hostname=`,
    /// DHCP and the MAC-derived default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Network::is_empty")]
    pub network: Network,
    #[serde(default, skip_serializing_if = "Time::is_empty")]
    pub time: Time,
    /// `name = value` of allow-listed sysctls ([`SYSCTL_ALLOW`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, SysctlValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<Containerd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<Kubelet>,
}

impl Config {
    /// The empty document: nothing configured, the kernel command line's
    /// defaults rule (what a revert of the first generation goes back to).
    pub fn empty() -> Config {
        Config {
            version: VERSION,
            ..Config::default()
        }
    }

    /// The document as TOML (normalised: comments and key order are not kept).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Interfaces, name servers and search domains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// By kernel name (`eth0`, `enp1s0`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interfaces: BTreeMap<String, Interface>,
    /// IP addresses of DNS resolvers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// DNS search domains, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

impl Network {
    fn is_empty(&self) -> bool {
        self == &Network::default()
    }
}

/// One interface: DHCP, or static addresses; routes and MTU either way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Take address, routes and DNS from DHCP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
    /// Static addresses as CIDRs (`10.0.0.5/24`, `fd00::5/64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A static route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination CIDR, or `default`.
    pub to: String,
    /// Gateway address (same family as `to`).
    pub via: String,
}

/// Time keeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// NTP servers (host names or IPs) the agent's SNTP client asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
}

impl Time {
    fn is_empty(&self) -> bool {
        self.ntp.is_empty()
    }
}

/// A sysctl's value: TOML integer or string (`"32768 60999"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    Text(String),
}

impl SysctlValue {
    /// What is written to the `/proc/sys` file (a newline is added then).
    pub fn render(&self) -> String {
        match self {
            SysctlValue::Int(i) => i.to_string(),
            SysctlValue::Text(s) => s.clone(),
        }
    }
}

/// The sysctls a document may set, and why each is there. Anything else is
/// refused: a node's kernel settings are the image's, and these are the
/// ones Kubernetes nodes and common workloads are documented to need.
pub const SYSCTL_ALLOW: &[(&str, &str)] = &[
    (
        "net.ipv4.ip_forward",
        "pod networking routes between pods and the node",
    ),
    ("net.ipv6.conf.all.forwarding", "pod networking over IPv6"),
    (
        "net.bridge.bridge-nf-call-iptables",
        "kube-proxy's iptables rules must see bridged pod traffic",
    ),
    ("net.bridge.bridge-nf-call-ip6tables", "the same for IPv6"),
    (
        "net.ipv4.conf.all.rp_filter",
        "some CNIs (Cilium) need loose or no reverse-path filtering",
    ),
    (
        "net.core.somaxconn",
        "listen backlog of busy ingress and API servers",
    ),
    (
        "net.ipv4.ip_local_port_range",
        "nodes making many outgoing connections (proxies, NAT)",
    ),
    (
        "net.netfilter.nf_conntrack_max",
        "kube-proxy sizes the connection-tracking table",
    ),
    (
        "vm.max_map_count",
        "Elasticsearch and other mmap-heavy workloads",
    ),
    (
        "vm.overcommit_memory",
        "kubelet --protect-kernel-defaults expects 1",
    ),
    (
        "vm.panic_on_oom",
        "kubelet --protect-kernel-defaults expects 0",
    ),
    (
        "kernel.panic",
        "kubelet --protect-kernel-defaults expects 10",
    ),
    (
        "kernel.panic_on_oops",
        "kubelet --protect-kernel-defaults expects 1",
    ),
    (
        "fs.inotify.max_user_watches",
        "kubelet and containers watching many files",
    ),
    ("fs.inotify.max_user_instances", "the same, per user"),
    ("fs.file-max", "system-wide open files of dense nodes"),
];

/// containerd's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Containerd {
    /// Registry host (`docker.io`) → its mirrors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Extra CA certificates (PEM) trusted for registries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ca: Vec<String>,
    /// The pause image (`registry.k8s.io/pause:3.10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_image: Option<String>,
}

/// Mirrors of one registry, tried in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// `http(s)://host[:port][/path]` URLs.
    pub endpoints: Vec<String>,
}

/// kubelet's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubelet {
    /// Whether init runs kubelet at all (default true once the section exists).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `https://host[:port]` of the cluster's API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
    /// The cluster CA (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A bootstrap token (`abcdef.0123456789abcdef`); redacted for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<String>,
    /// IPs of the cluster DNS service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_dns: Vec<String>,
    /// Extra `--flag=value` arguments, flag name without dashes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_args: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The document with its secrets replaced by [`REDACTED`] (for readers).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if let Some(k) = c.kubelet.as_mut()
            && k.bootstrap_token.is_some()
        {
            k.bootstrap_token = Some(REDACTED.to_owned());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_unique_and_says_why() {
        for (i, (name, why)) in SYSCTL_ALLOW.iter().enumerate() {
            assert!(!why.is_empty(), "{name}");
            assert!(
                name.split('.').count() >= 2 && !name.contains('/'),
                "{name} must be a dotted /proc/sys name"
            );
            assert!(
                SYSCTL_ALLOW[..i].iter().all(|(n, _)| n != name),
                "{name} twice"
            );
        }
    }

    #[test]
    fn redaction_and_rendering() {
        let mut c = Config::empty();
        assert_eq!(c.to_toml(), "version = 1\n");
        c.kubelet = Some(Kubelet {
            enabled: false,
            api_server: None,
            ca: None,
            bootstrap_token: Some("abcdef.0123456789abcdef".into()),
            labels: BTreeMap::new(),
            taints: vec![],
            cluster_dns: vec![],
            extra_args: BTreeMap::new(),
        });
        let r = c.redacted().to_toml();
        assert!(r.contains(REDACTED) && !r.contains("0123456789"), "{r}");
        assert!(c.to_toml().contains("abcdef.0123456789abcdef"));
        assert_eq!(SysctlValue::Text("1 2".into()).render(), "1 2");
        assert_eq!(SysctlValue::Int(-3).render(), "-3");
    }
}
