//! Field-level differences between two documents, and what each one
//! needs to take effect: applied live by the agent, a restart of one
//! service, or a reboot.
//!
//! Must never: show a secret's value (the bootstrap token reads as
//! changed, not as what it is), or call a change live when the agent could
//! not undo it without a reboot.

use std::collections::BTreeMap;
use std::fmt;

use crate::schema::{Config, REDACTED};

/// What a change needs to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The agent applies it at once.
    Live,
    /// Init restarts this service.
    Restart(&'static str),
    /// Only a boot brings it about.
    Reboot,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Live => f.write_str("live"),
            Effect::Restart(s) => write!(f, "restart {s}"),
            Effect::Reboot => f.write_str("reboot"),
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `hostname`, `network.interfaces.eth0.mtu`, `sysctls."vm.max_map_count"`.
    pub field: String,
    /// Rendered as TOML; None: absent.
    pub old: Option<String>,
    pub new: Option<String>,
    pub effect: Effect,
}

/// The fields of `b` that differ from `a`, in field order.
pub fn diff(a: &Config, b: &Config) -> Vec<Change> {
    let (fa, fb) = (flatten(a), flatten(b));
    let mut fields: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|f| {
            let (old, new) = (fa.get(f).cloned(), fb.get(f).cloned());
            (old != new).then(|| Change {
                effect: effect(f, new.is_none()),
                field: f.clone(),
                old: old.map(|v| redact(f, v)),
                new: new.map(|v| redact(f, v)),
            })
        })
        .collect()
}

/// The first change that needs a reboot, if any (what `auto` names).
pub fn reboot_needed(changes: &[Change]) -> Option<&Change> {
    changes.iter().find(|c| c.effect == Effect::Reboot)
}

/// The services to restart, once each.
pub fn restarts(changes: &[Change]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = changes
        .iter()
        .filter_map(|c| match c.effect {
            Effect::Restart(s) => Some(s),
            _ => None,
        })
        .collect();
    v.dedup();
    v
}

fn effect(field: &str, removed: bool) -> Effect {
    // The agent applies interfaces live (docs/config.md, "Interfaces"),
    // except an MTU taken away: it does not keep the link's boot value.
    if let Some(rest) = field.strip_prefix("network.interfaces.") {
        return if removed && rest.ends_with(".mtu") {
            Effect::Reboot
        } else {
            Effect::Live
        };
    }
    let section = field.split(['.', '[']).next().unwrap_or("");
    match section {
        // The agent does not keep a sysctl's boot value: only a boot
        // brings the kernel's default back.
        "sysctls" if removed => Effect::Reboot,
        "containerd" => Effect::Restart("containerd"),
        "kubelet" => Effect::Restart("kubelet"),
        _ => Effect::Live,
    }
}

fn redact(field: &str, v: String) -> String {
    if field == "kubelet.bootstrap_token" {
        format!("\"{REDACTED}\"")
    } else {
        v
    }
}

/// Leaf fields (arrays are leaves) → their TOML rendering.
fn flatten(c: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(c) {
        walk(&t, "", &mut out);
    }
    out
}

fn walk(t: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let bare = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let key = if bare { k.clone() } else { format!("{k:?}") };
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match v {
            toml::Value::Table(inner) if !inner.is_empty() => walk(inner, &path, out),
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Config {
        crate::parse(s).unwrap()
    }

    #[test]
    fn fields_and_effects() {
        let a = doc(
            "version = 1\nhostname = \"a\"\n[sysctls]\n\"vm.max_map_count\" = 262144\n\"kernel.panic\" = 10\n",
        );
        let b = doc(concat!(
            "version = 1\nhostname = \"b\"\n[sysctls]\n\"kernel.panic\" = 10\n",
            "[containerd]\nsandbox_image = \"registry.k8s.io/pause:3.10\"\n",
        ));
        let d = diff(&a, &b);
        let got: Vec<(&str, Effect)> = d.iter().map(|c| (c.field.as_str(), c.effect)).collect();
        assert_eq!(
            got,
            vec![
                ("containerd.sandbox_image", Effect::Restart("containerd")),
                ("hostname", Effect::Live),
                ("sysctls.\"vm.max_map_count\"", Effect::Reboot),
            ]
        );
        assert_eq!(d[1].old.as_deref(), Some("\"a\""));
        let c = doc(
            "version = 1\n[network]\nnameservers = [\"10.0.0.2\"]\n[network.interfaces.eth0]\nmtu = 1400\ndhcp = true\n",
        );
        let got: Vec<(String, Effect)> = diff(&a, &c)
            .into_iter()
            .filter(|c| c.field.starts_with("network"))
            .map(|c| (c.field, c.effect))
            .collect();
        assert_eq!(
            got,
            [
                ("network.interfaces.eth0.dhcp".to_owned(), Effect::Live),
                ("network.interfaces.eth0.mtu".to_owned(), Effect::Live),
                ("network.nameservers".to_owned(), Effect::Live),
            ]
        );
        assert_eq!(d[1].new.as_deref(), Some("\"b\""));
        assert_eq!(
            reboot_needed(&d).unwrap().field,
            "sysctls.\"vm.max_map_count\""
        );
        assert_eq!(restarts(&d), vec!["containerd"]);
        // Adding a sysctl is live; the way back is not.
        let back = diff(&b, &a);
        assert_eq!(reboot_needed(&back), None);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn interfaces_are_live_but_an_mtu_taken_away() {
        let a = doc(concat!(
            "version = 1\n[network.interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\n",
            "routes = [{ to = \"default\", via = \"10.0.0.1\" }]\nmtu = 1400\n",
            "[network.interfaces.\"eth0.7\"]\ndhcp = true\nmtu = 1300\n",
        ));
        let b = doc(concat!(
            "version = 1\n[network.interfaces.eth0]\naddresses = [\"10.0.1.5/24\"]\n",
            "mtu = 1500\n[network.interfaces.eth1]\ndhcp = true\n",
        ));
        let got: Vec<(String, Effect)> = diff(&a, &b)
            .into_iter()
            .map(|c| (c.field, c.effect))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "network.interfaces.\"eth0.7\".dhcp".to_owned(),
                    Effect::Live
                ),
                (
                    "network.interfaces.\"eth0.7\".mtu".to_owned(),
                    Effect::Reboot
                ),
                ("network.interfaces.eth0.addresses".to_owned(), Effect::Live),
                ("network.interfaces.eth0.mtu".to_owned(), Effect::Live),
                ("network.interfaces.eth0.routes".to_owned(), Effect::Live),
                ("network.interfaces.eth1.dhcp".to_owned(), Effect::Live),
            ]
        );
        // Setting an MTU is live; taking it away (here: with the whole
        // interface) is not, and nothing else is.
        let back = diff(&b, &a);
        assert_eq!(reboot_needed(&back), None);
        let none = doc("version = 1\n");
        assert_eq!(
            reboot_needed(&diff(&b, &none)).map(|c| c.field.as_str()),
            Some("network.interfaces.eth0.mtu")
        );
    }

    #[test]
    fn the_token_never_shows() {
        let k = |t: &str| {
            doc(&format!(
                "version = 1\n[kubelet]\nenabled = false\nbootstrap_token = \"{t}\"\n"
            ))
        };
        let d = diff(&k("abcdef.0123456789abcdef"), &k("abcdef.aaaaaaaaaaaaaaaa"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].effect, Effect::Restart("kubelet"));
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("0123456789") && !shown.contains("aaaa"),
            "{shown}"
        );
    }
}
