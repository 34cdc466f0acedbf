//! The resolver file the image's `/etc/resolv.conf` links to
//! (`<run-dir>/resolv.conf`): the one place that writes it, merging the
//! network's name servers (`dns=` of `matic.ip=`, or the DHCP lease's)
//! with the machine configuration's `network.nameservers` and
//! `network.search`. Once the configuration names servers they win; the
//! network's are remembered and come back when it stops naming them. A
//! source that goes away (a DHCP lease released, expired or its client
//! stopped) takes its servers with it ([`Resolver::forget_network`]).
//!
//! Must never: write a half file (temporary file, then rename), or more
//! than the three servers the resolver reads (MAXNS) and six search
//! domains.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The resolver reads at most three `nameserver` lines (MAXNS).
const MAX_SERVERS: usize = 3;
/// glibc's traditional limit of search domains.
const MAX_SEARCH: usize = 6;

/// Writing the resolver file failed.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct ResolvError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    /// The network's servers and where they came from.
    network: Option<(Vec<IpAddr>, String)>,
    /// The configuration's servers and search domains (None: it sets neither).
    configured: Option<(Vec<IpAddr>, Vec<String>)>,
}

/// The resolver file and what it is made of.
#[derive(Debug)]
pub struct Resolver {
    path: PathBuf,
    state: Mutex<State>,
}

/// The file for `s`; None when there is nothing to say.
fn render(s: &State) -> Option<String> {
    let (conf_servers, search) = s
        .configured
        .as_ref()
        .map_or((&[][..], &[][..]), |(n, d)| (&n[..], &d[..]));
    let (servers, source) = if !conf_servers.is_empty() {
        (conf_servers, "the machine configuration")
    } else if let Some((n, src)) = &s.network {
        (&n[..], src.as_str())
    } else {
        (&[][..], "the machine configuration")
    };
    if servers.is_empty() && search.is_empty() && s.configured.is_none() {
        return None;
    }
    let mut text = format!("# written by matic-agent from {source}\n");
    if !search.is_empty() {
        let d: Vec<&str> = search.iter().take(MAX_SEARCH).map(|d| d.as_str()).collect();
        text.push_str(&format!("search {}\n", d.join(" ")));
    }
    for s in servers.iter().take(MAX_SERVERS) {
        text.push_str(&format!("nameserver {s}\n"));
    }
    Some(text)
}

fn write(path: &Path, text: &str) -> Result<(), ResolvError> {
    let err = |source| ResolvError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl Resolver {
    pub fn new(path: PathBuf) -> Resolver {
        Resolver {
            path,
            state: Mutex::new(State::default()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) -> Result<(), ResolvError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = st.clone();
        f(&mut st);
        if *st == before {
            return Ok(());
        }
        // Nothing left to say after something was written: the old
        // servers must not linger.
        let text = render(&st).or_else(|| {
            render(&before).map(|_| "# written by matic-agent: no name servers\n".to_owned())
        });
        match text {
            Some(text) => write(&self.path, &text).inspect_err(|_| *st = before),
            None => Ok(()),
        }
    }

    /// The configuration's servers and search domains as last set.
    pub fn configured(&self) -> (Vec<IpAddr>, Vec<String>) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.configured.clone().unwrap_or_default()
    }

    /// The network's servers (`source`: `matic.ip`, `DHCP server X`). No
    /// servers: nothing is written.
    pub fn set_network(&self, servers: &[IpAddr], source: &str) -> Result<(), ResolvError> {
        if servers.is_empty() {
            return Ok(());
        }
        self.update(|s| s.network = Some((servers.to_vec(), source.to_owned())))
    }

    /// The network's servers are gone if they came from `source` (its lease
    /// ended, its client stopped): no server of a network the node has left
    /// stays in the file. Servers of another source stay.
    pub fn forget_network(&self, source: &str) -> Result<(), ResolvError> {
        self.update(|s| {
            if s.network.as_ref().is_some_and(|(_, src)| src == source) {
                s.network = None;
            }
        })
    }

    /// The configuration's servers and search domains (both empty: it sets
    /// none, and the network's servers come back). A failed write leaves
    /// the state as it was.
    pub fn set_configured(&self, servers: &[IpAddr], search: &[String]) -> Result<(), ResolvError> {
        let c = (!servers.is_empty() || !search.is_empty())
            .then(|| (servers.to_vec(), search.to_vec()));
        self.update(|s| s.configured = c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn network_servers_then_configured_ones_win_and_give_back() {
        let dir = std::env::temp_dir().join(format!("matic-resolv-{}", std::process::id()));
        let path = dir.join("run/resolv.conf");
        let r = Resolver::new(path.clone());
        let read = || std::fs::read_to_string(&path).unwrap();
        r.set_network(&[], "nothing").unwrap();
        assert!(!path.exists(), "no servers, no file");
        r.set_network(
            &ips(&["10.0.2.3", "1.1.1.1", "8.8.8.8", "9.9.9.9"]),
            "DHCP server 10.0.2.2",
        )
        .unwrap();
        assert_eq!(
            read(),
            "# written by matic-agent from DHCP server 10.0.2.2\n\
             nameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
        );
        r.set_configured(&ips(&["fd00::53", "10.0.0.2"]), &["cluster.example".into()])
            .unwrap();
        let conf = "# written by matic-agent from the machine configuration\n\
                    search cluster.example\nnameserver fd00::53\nnameserver 10.0.0.2\n";
        assert_eq!(read(), conf);
        // A new lease does not override the configuration's servers.
        r.set_network(&ips(&["10.0.2.4"]), "DHCP server 10.0.2.2")
            .unwrap();
        assert_eq!(read(), conf);
        // Search domains alone keep the network's servers.
        r.set_configured(&[], &["a.example".into()]).unwrap();
        assert_eq!(
            read(),
            "# written by matic-agent from DHCP server 10.0.2.2\n\
             search a.example\nnameserver 10.0.2.4\n"
        );
        r.set_configured(&[], &[]).unwrap();
        assert_eq!(
            read(),
            "# written by matic-agent from DHCP server 10.0.2.2\nnameserver 10.0.2.4\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_source_that_goes_takes_its_servers_and_only_its_own() {
        let dir = std::env::temp_dir().join(format!("matic-resolv3-{}", std::process::id()));
        let path = dir.join("resolv.conf");
        let r = Resolver::new(path.clone());
        let read = || std::fs::read_to_string(&path).unwrap();
        r.set_network(&ips(&["10.0.2.3"]), "DHCP server 10.0.2.2")
            .unwrap();
        // Another source's end changes nothing.
        r.forget_network("DHCP server 10.9.9.9").unwrap();
        assert!(read().contains("nameserver 10.0.2.3"), "{}", read());
        r.forget_network("DHCP server 10.0.2.2").unwrap();
        assert_eq!(read(), "# written by matic-agent: no name servers\n");
        // The configuration's servers are not the network's to forget.
        r.set_configured(&ips(&["10.0.0.2"]), &[]).unwrap();
        r.set_network(&ips(&["10.0.2.3"]), "DHCP server 10.0.2.2")
            .unwrap();
        r.forget_network("DHCP server 10.0.2.2").unwrap();
        assert!(read().contains("nameserver 10.0.0.2"), "{}", read());
        r.set_configured(&[], &[]).unwrap();
        assert!(!read().contains("10.0.2.3"), "{}", read());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configuration_removed_without_network_servers_empties_the_file() {
        let dir = std::env::temp_dir().join(format!("matic-resolv2-{}", std::process::id()));
        let path = dir.join("resolv.conf");
        let r = Resolver::new(path.clone());
        r.set_configured(&ips(&["10.0.0.2"]), &[]).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("nameserver 10.0.0.2")
        );
        r.set_configured(&[], &[]).unwrap();
        // The state is back to nothing: the file is not rewritten, but the
        // configured server must not linger either.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("10.0.0.2"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
