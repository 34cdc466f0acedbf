//! The live appliers: what the agent changes on the node from a document
//! today: the interfaces (addresses, routes, MTU, DHCP or static, through
//! the network task: [`crate::net::NetControl`]), the hostname, the
//! sysctls, the rendered files of containerd ([`super::containerd`]) and
//! kubelet ([`super::kubelet`]), and the SNTP client's servers
//! ([`crate::sntp`]), the name servers and search domains
//! ([`crate::resolv`]).
//!
//! Must never: write outside the sysctl directory (`--sysctl-dir`, names
//! come from the schema's allow-list only) and the rendered files' own
//! directories, or write a sysctl before checking that every one of the
//! document's exists.

use std::path::{Path, PathBuf};

use matic_config::Config;
use matic_config::schema::SYSCTL_ALLOW;

use super::files::{self, FileError};
use super::{containerd, kubelet};
use crate::hostname;

/// Where the appliers write (the agent's flags; a sandbox in tests).
#[derive(Debug, Clone)]
pub struct Targets {
    pub sysctl_dir: PathBuf,
    pub containerd_dir: PathBuf,
    pub kubelet: kubelet::Paths,
    /// The resolver file (`network.nameservers`, `network.search`).
    pub resolver: std::sync::Arc<crate::resolv::Resolver>,
    /// The SNTP client's servers (`time.ntp`), read by [`crate::sntp`].
    pub ntp: std::sync::Arc<tokio::sync::watch::Sender<Vec<String>>>,
    /// The network task (`network.interfaces`); unattached: not managed.
    pub net: std::sync::Arc<crate::net::NetControl>,
}

impl Targets {
    pub fn from_config(cfg: &crate::config::Config) -> Targets {
        Targets {
            sysctl_dir: cfg.sysctl_dir.clone(),
            containerd_dir: cfg.containerd_dir.clone(),
            kubelet: kubelet::Paths {
                kubelet_dir: cfg.kubelet_dir.clone(),
                kubernetes_dir: cfg.kubernetes_dir.clone(),
                containerd_socket: cfg.containerd_socket.clone(),
            },
            resolver: std::sync::Arc::new(crate::resolv::Resolver::new(cfg.resolv_file())),
            ntp: std::sync::Arc::new(tokio::sync::watch::Sender::new(Vec::new())),
            net: Default::default(),
        }
    }
}

/// What an apply changed that a service must be restarted for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Services (init's names) whose files changed, containerd first:
    /// containerd reads its configuration only when it starts, and a
    /// `restart kubelet` makes init look at kubelet's flags file again
    /// (start, restart, or stop and wait).
    pub restart: Vec<&'static str>,
}

/// An applier failed; names the path or the name.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("sysctl {name}: {path} does not exist on this kernel (module not loaded?)")]
    NoSysctl { name: String, path: PathBuf },
    #[error("sysctl {name}: writing {value:?} to {path}: {source}")]
    Sysctl {
        name: String,
        value: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sysctl {0}: not on the allow-list")]
    NotAllowed(String),
    #[error(transparent)]
    Hostname(#[from] hostname::HostnameError),
    #[error("network.nameservers: {0:?} is not an IP address")]
    NameServer(String),
    #[error(transparent)]
    Resolv(#[from] crate::resolv::ResolvError),
    #[error("kubelet's flags: {0}")]
    KubeletFlags(#[from] kubelet::FlagsError),
    #[error("network.interfaces: {0}")]
    Net(String),
    #[error("rendering {what}: {source}")]
    Render {
        what: &'static str,
        source: FileError,
    },
}

/// `<dir>/net/ipv4/ip_forward` for `net.ipv4.ip_forward`.
pub fn sysctl_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name.replace('.', "/"))
}

/// Applies what is live of `c`: the interfaces, containerd's and
/// kubelet's files, every sysctl it sets, then the hostname (None gives the
/// name back to the command line, DHCP or the MAC). Every sysctl file is
/// read first (so a missing one changes nothing), and the interfaces, files
/// and sysctls are put back as they were if a later step fails: an error
/// leaves the node as it found it. The services to restart for what
/// changed. Blocks on the network task: call it from a blocking thread.
pub fn apply_live(c: &Config, t: &Targets) -> Result<Applied, ApplyError> {
    // Rendered first: a flags file init would refuse changes nothing.
    let kubelet_files = kubelet::wants(c.kubelet.as_ref(), &t.kubelet)?;
    let mut servers = Vec::new();
    for s in &c.network.nameservers {
        // The check refused these already; the appliers do not trust it.
        servers.push(s.parse().map_err(|_| ApplyError::NameServer(s.clone()))?);
    }
    // First: the network task puts the interfaces back itself when it
    // fails, so nothing else has been touched then.
    let net_before = t.net.current();
    t.net
        .apply_blocking(&c.network.interfaces)
        .map_err(ApplyError::Net)?;
    let net_undo = || {
        if let Err(e) = t.net.apply_blocking(&net_before) {
            eprintln!("matic-agent: config: putting the interfaces back: {e}");
        }
    };
    let resolv_before = t.resolver.configured();
    if let Err(e) = t.resolver.set_configured(&servers, &c.network.search) {
        net_undo();
        return Err(e.into());
    }
    let resolv_undo = || {
        if let Err(e) = t
            .resolver
            .set_configured(&resolv_before.0, &resolv_before.1)
        {
            eprintln!("matic-agent: config: putting the resolver file back: {e}");
        }
        net_undo();
    };
    let ctd = match files::put(&containerd::wants(c.containerd.as_ref(), &t.containerd_dir)) {
        Ok(c) => c,
        Err(source) => {
            resolv_undo();
            return Err(ApplyError::Render {
                what: "containerd's configuration",
                source,
            });
        }
    };
    let kub = match files::put(&kubelet_files) {
        Ok(k) => k,
        Err(source) => {
            resolv_undo();
            ctd.undo();
            return Err(ApplyError::Render {
                what: "kubelet's files",
                source,
            });
        }
    };
    containerd::prune(&t.containerd_dir);
    let mut applied = Applied::default();
    if !ctd.changed.is_empty() {
        applied.restart.push("containerd");
    }
    if !kub.changed.is_empty() {
        applied.restart.push("kubelet");
    }
    match apply_system(c, &t.sysctl_dir) {
        Ok(()) => {
            for p in ctd.changed.iter().chain(&kub.changed) {
                eprintln!("matic-agent: config: wrote {}", p.display());
            }
            // Last: it cannot fail, so nothing has to be put back after it.
            t.ntp.send_if_modified(|v| {
                let changed = *v != c.time.ntp;
                if changed {
                    v.clone_from(&c.time.ntp);
                }
                changed
            });
            Ok(applied)
        }
        Err(e) => {
            kub.undo();
            ctd.undo();
            resolv_undo();
            Err(e)
        }
    }
}

/// The sysctls and the hostname of `c`.
fn apply_system(c: &Config, sysctl_dir: &Path) -> Result<(), ApplyError> {
    let mut writes = Vec::new();
    for (name, value) in &c.sysctls {
        // The check refused these already; the appliers do not trust it.
        if !SYSCTL_ALLOW.iter().any(|(k, _)| k == name) {
            return Err(ApplyError::NotAllowed(name.clone()));
        }
        let path = sysctl_path(sysctl_dir, name);
        let before = match path.is_file().then(|| std::fs::read(&path)) {
            Some(Ok(b)) => b,
            _ => {
                return Err(ApplyError::NoSysctl {
                    name: name.clone(),
                    path,
                });
            }
        };
        writes.push((name, value.render(), path, before));
    }
    let restore = |done: &[(&String, String, PathBuf, Vec<u8>)]| {
        for (name, _, path, before) in done {
            if let Err(e) = std::fs::write(path, before) {
                eprintln!("matic-agent: config: putting sysctl {name} back: {e}");
            }
        }
    };
    for (i, (name, value, path, _)) in writes.iter().enumerate() {
        if let Err(source) = std::fs::write(path, format!("{value}\n")) {
            restore(&writes[..i]);
            return Err(ApplyError::Sysctl {
                name: (*name).clone(),
                value: value.clone(),
                path: path.clone(),
                source,
            });
        }
    }
    if let Err(e) = hostname::set_configured(c.hostname.as_deref()) {
        restore(&writes);
        return Err(e.into());
    }
    for (name, value, _, _) in &writes {
        eprintln!("matic-agent: config: sysctl {name} = {value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_are_written_only_when_all_exist() {
        let dir = std::env::temp_dir().join(format!("matic-sysctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("vm")).unwrap();
        std::fs::write(dir.join("vm/max_map_count"), "65530\n").unwrap();
        let c = matic_config::parse(
            "version = 1\n[sysctls]\n\"vm.max_map_count\" = 262144\n\"kernel.panic\" = 10\n",
        )
        .unwrap();
        let e = apply_system(&c, &dir).unwrap_err();
        assert!(e.to_string().contains("kernel/panic"), "{e}");
        // Nothing was written: the missing one is found first.
        assert_eq!(
            std::fs::read_to_string(dir.join("vm/max_map_count")).unwrap(),
            "65530\n"
        );
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        std::fs::write(dir.join("kernel/panic"), "0\n").unwrap();
        let c = Config {
            hostname: None,
            ..c
        };
        apply_system(&c, &dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("vm/max_map_count")).unwrap(),
            "262144\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("kernel/panic")).unwrap(),
            "10\n"
        );
        // A write the kernel refuses (here: a read-only /proc file) puts
        // back the ones written before it.
        std::os::unix::fs::symlink("/proc/version", dir.join("vm/overcommit_memory")).unwrap();
        let c = matic_config::parse(
            "version = 1\n[sysctls]\n\"vm.max_map_count\" = 1\n\"vm.overcommit_memory\" = 1\n",
        )
        .unwrap();
        let e = apply_system(&c, &dir).unwrap_err();
        assert!(e.to_string().contains("vm.overcommit_memory"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.join("vm/max_map_count")).unwrap(),
            "262144\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
