//! containerd's settings from the `containerd` section (docs/config.md,
//! "containerd"): a drop-in `<dir>/conf.d/matic.toml` that the image's
//! `/etc/containerd/config.toml` imports (`imports = [".../conf.d/*.toml"]`,
//! scripts/lib/containerd-config.toml), one `hosts.toml` per mirrored
//! registry under `<dir>/certs.d/HOST/`, and the extra CA certificates
//! under `<dir>/ca/`.
//!
//! containerd 1.6 replaces a whole `[plugins."…"]` section from an
//! imported file (measured with Debian's 1.6.20: an imported CRI section
//! without `cni.conf_dir` drops the image's value), so the drop-in carries
//! the image's whole CRI section (compiled in from the same file the image
//! builder installs) plus `sandbox_image` and the registry `config_path`.
//!
//! Must never: write outside `<dir>`, or leave a file of a removed mirror
//! or section behind (containerd would still read it).

use std::path::{Path, PathBuf};

use matic_config::schema::Containerd;

use super::files::Want;

/// The image's containerd configuration (what build-rootfs installs).
pub const IMAGE_CONFIG: &str = include_str!("../../../scripts/lib/containerd-config.toml");
/// The CRI plugin's section name.
const CRI: &str = "io.containerd.grpc.v1.cri";

/// `<dir>/conf.d/matic.toml`.
pub fn drop_in(dir: &Path) -> PathBuf {
    dir.join("conf.d/matic.toml")
}

/// `<dir>/certs.d`: containerd's registry `config_path`.
pub fn hosts_dir(dir: &Path) -> PathBuf {
    dir.join("certs.d")
}

/// The directory of a registry host's `hosts.toml`: containerd names it
/// `HOST_PORT_` when the host has a port (`host:port` is not a portable
/// file name), `HOST` otherwise.
fn host_dir(dir: &Path, host: &str) -> PathBuf {
    let name = match host.rsplit_once(':') {
        Some((h, p)) => format!("{h}_{p}_"),
        None => host.to_owned(),
    };
    hosts_dir(dir).join(name)
}

/// The upstream a registry name stands for (`docker.io`'s API is elsewhere).
fn server(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io".into(),
        h => format!("https://{h}"),
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// The drop-in: the image's CRI section, with `sandbox_image` (when set)
/// and the registry `config_path`.
pub fn render_drop_in(c: &Containerd, dir: &Path) -> String {
    let image: toml::Table = IMAGE_CONFIG
        .parse()
        .expect("scripts/lib/containerd-config.toml is TOML (tested)");
    let mut cri = image
        .get("plugins")
        .and_then(|p| p.get(CRI))
        .and_then(|c| c.as_table())
        .cloned()
        .unwrap_or_default();
    if let Some(img) = &c.sandbox_image {
        cri.insert("sandbox_image".into(), toml::Value::String(img.clone()));
    }
    let mut registry = toml::Table::new();
    registry.insert(
        "config_path".into(),
        toml::Value::String(hosts_dir(dir).display().to_string()),
    );
    cri.insert("registry".into(), toml::Value::Table(registry));
    let mut plugins = toml::Table::new();
    plugins.insert(CRI.into(), toml::Value::Table(cri));
    let mut top = toml::Table::new();
    top.insert("version".into(), toml::Value::Integer(2));
    top.insert("plugins".into(), toml::Value::Table(plugins));
    format!(
        "# Written by matic-agent from the machine configuration (docs/config.md); \
         replaced on every apply.\n{}",
        toml::to_string(&top).unwrap_or_default()
    )
}

/// A mirrored registry's `hosts.toml`: its mirrors in order, each trusted
/// with the extra CAs, then the upstream.
pub fn render_hosts(host: &str, endpoints: &[String], cas: &[String]) -> String {
    let mut s = format!(
        "# Written by matic-agent from containerd.mirrors.\"{host}\".\nserver = {}\n",
        toml_str(&server(host))
    );
    if !cas.is_empty() {
        s.push_str(&format!("ca = {}\n", toml_list(cas)));
    }
    for e in endpoints {
        s.push_str(&format!(
            "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
            toml_str(e)
        ));
        if !cas.is_empty() {
            s.push_str(&format!("  ca = {}\n", toml_list(cas)));
        }
    }
    s
}

/// Removes the directories of mirrors whose `hosts.toml` went (containerd
/// would still find the directory and read it as the host's, empty).
pub fn prune(dir: &Path) {
    for name in entries(&hosts_dir(dir)) {
        let d = hosts_dir(dir).join(name);
        if !d.join("hosts.toml").exists() {
            // Fails, harmlessly, if something else is in it.
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// Entries of `dir` (names), none when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file of containerd's settings for `c` under `dir`, and the ones
/// present that must go (a mirror or CA no longer listed, or every file
/// when the section is gone).
pub fn wants(c: Option<&Containerd>, dir: &Path) -> Vec<Want> {
    let mut w = Vec::new();
    let empty = Containerd::default();
    let cfg = c.unwrap_or(&empty);
    let ca_paths: Vec<PathBuf> = (0..cfg.extra_ca.len())
        .map(|i| dir.join(format!("ca/extra-{i}.crt")))
        .collect();
    for (p, pem) in ca_paths.iter().zip(&cfg.extra_ca) {
        let mut pem = pem.trim().to_owned();
        pem.push('\n');
        w.push(Want::file(p.clone(), pem, 0o644));
    }
    for name in entries(&dir.join("ca")) {
        let p = dir.join("ca").join(&name);
        if !ca_paths.contains(&p) {
            w.push(Want::absent(p));
        }
    }
    let cas: Vec<String> = ca_paths.iter().map(|p| p.display().to_string()).collect();
    let mut hosts = Vec::new();
    for (host, m) in &cfg.mirrors {
        let p = host_dir(dir, host).join("hosts.toml");
        w.push(Want::file(
            p.clone(),
            render_hosts(host, &m.endpoints, &cas),
            0o644,
        ));
        hosts.push(p);
    }
    for name in entries(&hosts_dir(dir)) {
        let p = hosts_dir(dir).join(name).join("hosts.toml");
        if !hosts.contains(&p) {
            w.push(Want::absent(p));
        }
    }
    w.push(match c {
        Some(c) => Want::file(drop_in(dir), render_drop_in(c, dir), 0o644),
        None => Want::absent(drop_in(dir)),
    });
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_config::schema::Mirror;

    fn section() -> Containerd {
        let mut c = Containerd {
            sandbox_image: Some("registry.example/pause:3.10".into()),
            extra_ca: vec!["-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----".into()],
            ..Containerd::default()
        };
        c.mirrors.insert(
            "docker.io".into(),
            Mirror {
                endpoints: vec!["https://mirror.example:5000".into()],
            },
        );
        c.mirrors.insert(
            "registry.example:5000".into(),
            Mirror {
                endpoints: vec!["http://10.0.0.9:5000".into()],
            },
        );
        c
    }

    #[test]
    fn image_config_imports_the_drop_in() {
        let image: toml::Table = IMAGE_CONFIG.parse().unwrap();
        let imports: Vec<&str> = image["imports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        // The agent's default --containerd-dir, as the image imports it.
        let want = drop_in(Path::new(crate::config::CONTAINERD_DIR));
        assert_eq!(
            want.parent().unwrap().join("*.toml").to_str().unwrap(),
            imports[0]
        );
    }

    #[test]
    fn drop_in_keeps_the_image_cri_section() {
        let dir = Path::new("/var/lib/matic/containerd");
        let got: toml::Table = render_drop_in(&section(), dir).parse().unwrap();
        let image: toml::Table = IMAGE_CONFIG.parse().unwrap();
        let image_cri = image["plugins"][CRI].as_table().unwrap();
        let cri = got["plugins"][CRI].as_table().unwrap();
        assert_eq!(got["version"].as_integer(), Some(2));
        // containerd replaces the whole section: every key the image sets
        // must be there, unchanged (but the sandbox image the configuration
        // chose instead of ours).
        for (k, v) in image_cri.iter().filter(|(k, _)| *k != "sandbox_image") {
            assert_eq!(cri.get(k), Some(v), "{k}");
        }
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some("registry.example/pause:3.10")
        );
        assert_eq!(
            cri["registry"]["config_path"].as_str(),
            Some("/var/lib/matic/containerd/certs.d")
        );
        // Without a sandbox image, the drop-in keeps the image's: our pause.
        let plain: toml::Table = render_drop_in(&Containerd::default(), dir).parse().unwrap();
        assert_eq!(
            plain["plugins"][CRI]["sandbox_image"].as_str(),
            Some(matic_contract::workloads::PAUSE_IMAGE)
        );
    }

    /// The image builder, containerd's configuration and the agent name
    /// the same pause image.
    #[test]
    fn one_pause_image_name_everywhere() {
        let image: toml::Table = IMAGE_CONFIG.parse().unwrap();
        assert_eq!(
            image["plugins"][CRI]["sandbox_image"].as_str(),
            Some(matic_contract::workloads::PAUSE_IMAGE)
        );
        let common = include_str!("../../../scripts/lib/common.sh");
        let line = format!(
            "\nMATIC_PAUSE_IMAGE={}\n",
            matic_contract::workloads::PAUSE_IMAGE
        );
        assert!(
            common.contains(&line),
            "scripts/lib/common.sh lacks {line:?}"
        );
    }

    #[test]
    fn hosts_files_per_mirror_with_the_cas() {
        let dir = std::env::temp_dir().join(format!("matic-ctd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = wants(Some(&section()), &dir);
        let files: Vec<String> = w
            .iter()
            .map(|w| w.path.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "ca/extra-0.crt",
                "certs.d/docker.io/hosts.toml",
                "certs.d/registry.example_5000_/hosts.toml",
                "conf.d/matic.toml"
            ]
        );
        let docker: toml::Table = String::from_utf8(w[1].content.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            docker["server"].as_str(),
            Some("https://registry-1.docker.io")
        );
        let ca = dir.join("ca/extra-0.crt").display().to_string();
        let host = &docker["host"]["https://mirror.example:5000"];
        assert_eq!(host["ca"][0].as_str(), Some(ca.as_str()));
        assert_eq!(host["capabilities"][0].as_str(), Some("pull"));
        // What is there and no longer wanted goes; the section gone, all go.
        super::super::files::put(&w).unwrap();
        std::fs::write(dir.join("ca/extra-7.crt"), "old").unwrap();
        let gone = wants(None, &dir);
        assert!(gone.iter().all(|w| w.content.is_none()), "{gone:?}");
        assert_eq!(gone.len(), 5, "{gone:?}");
        super::super::files::put(&gone).unwrap();
        prune(&dir);
        assert!(entries(&hosts_dir(&dir)).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
