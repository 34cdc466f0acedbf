//! kubelet's files from the `kubelet` section (docs/config.md, "kubelet's
//! files"), at the paths of [`matic_contract::kubelet`], which init starts
//! kubelet with (the fixed flags) once the flags file exists.
//!
//! - `<kubelet-dir>/config.yaml`: the KubeletConfiguration (JSON, which is
//!   YAML): cgroupfs driver (containerd runs runc with `SystemdCgroup =
//!   false`), containerd's socket, the cluster CA for client certificates,
//!   cluster DNS, taints to register with.
//! - `<kubernetes-dir>/bootstrap-kubelet.conf` (mode 0600: the token): a
//!   kubeconfig with the API server, the CA's path and the bootstrap token.
//! - `<kubernetes-dir>/pki/ca.crt`: the cluster CA.
//! - `<kubelet-dir>/matic-flags`: what only flags can say (`--node-labels`,
//!   the `extra_args`), one `--flag=value` a line, for init to pass. It is
//!   the contract's marker that the others are complete: checked with
//!   [`contract::check`] (init's own rule) before anything is written,
//!   written last, and removed first.
//!
//! No section, or `enabled = false`: every one of them is removed, so init
//! (which starts kubelet only while the flags file exists) leaves it
//! `waiting`.
//!
//! Must never: write the token anywhere but the 0600 kubeconfig, or hand
//! init a flags file its rule refuses.

use std::path::{Path, PathBuf};

use matic_config::schema::Kubelet;
use matic_contract::kubelet::{self as contract, FlagsError as Refused};
use serde_json::{Value, json};

use super::files::Want;

/// The flags file this agent would write breaks init's rule
/// ([`contract::check`]); names the file and says which part of the
/// `kubelet` section to shorten.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct FlagsError {
    pub path: PathBuf,
    pub why: String,
}

fn refused(path: PathBuf, r: Refused) -> FlagsError {
    let why = match r {
        Refused::TooLong => format!(
            "more than {} bytes (init reads it into a fixed buffer): fewer or shorter \
             kubelet.labels or kubelet.extra_args",
            contract::MAX_FLAGS_FILE
        ),
        Refused::TooMany => format!(
            "more than {} flags (init's argv limit): fewer kubelet.extra_args",
            contract::MAX_EXTRA_FLAGS
        ),
        Refused::BadLine(n) => format!("line {n} is not a `--flag` without NUL"),
    };
    FlagsError { path, why }
}

/// The last part of one of the contract's paths.
fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The directory of one of the contract's paths.
fn dir_of(path: &str) -> PathBuf {
    Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `--kubelet-dir`'s default: the directory of the contract's
/// KubeletConfiguration and flags file (one source for init and the agent).
pub fn default_kubelet_dir() -> PathBuf {
    dir_of(contract::CONFIG_PATH)
}

/// `--kubernetes-dir`'s default: the directory of the contract's bootstrap
/// kubeconfig.
pub fn default_kubernetes_dir() -> PathBuf {
    dir_of(contract::BOOTSTRAP_KUBECONFIG_PATH)
}

/// Where kubelet's files go (the agent's flags).
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/var/lib/kubelet`.
    pub kubelet_dir: PathBuf,
    /// `/etc/kubernetes` (bound from `MATIC_STATE` by init).
    pub kubernetes_dir: PathBuf,
    /// containerd's CRI socket.
    pub containerd_socket: PathBuf,
}

impl Paths {
    pub fn config(&self) -> PathBuf {
        self.kubelet_dir.join(name_of(contract::CONFIG_PATH))
    }
    pub fn flags(&self) -> PathBuf {
        let flags = contract::FLAGS_PATH.to_str().unwrap_or_default();
        self.kubelet_dir.join(name_of(flags))
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.kubernetes_dir
            .join(name_of(contract::BOOTSTRAP_KUBECONFIG_PATH))
    }
    pub fn ca(&self) -> PathBuf {
        self.kubernetes_dir.join("pki/ca.crt")
    }
}

/// A taint `KEY[=VALUE]:EFFECT` as KubeletConfiguration's `registerWithTaints`
/// holds it (the checks made sure of the shape).
fn taint(t: &str) -> Value {
    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, ""));
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    let mut o = json!({ "key": key, "effect": effect });
    if !value.is_empty() {
        o["value"] = json!(value);
    }
    o
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The KubeletConfiguration.
pub fn render_config(k: &Kubelet, p: &Paths) -> String {
    let mut v = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": format!("unix://{}", p.containerd_socket.display()),
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": p.ca().display().to_string() },
        },
        "authorization": { "mode": "Webhook" },
        "rotateCertificates": true,
    });
    if !k.cluster_dns.is_empty() {
        v["clusterDNS"] = json!(k.cluster_dns);
        v["clusterDomain"] = json!("cluster.local");
    }
    if !k.taints.is_empty() {
        v["registerWithTaints"] = Value::Array(k.taints.iter().map(|t| taint(t)).collect());
    }
    pretty(&v)
}

/// The bootstrap kubeconfig.
pub fn render_kubeconfig(k: &Kubelet, p: &Paths) -> String {
    pretty(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "cluster", "cluster": {
            "server": k.api_server.clone().unwrap_or_default(),
            "certificate-authority": p.ca().display().to_string(),
        }}],
        "users": [{ "name": "kubelet-bootstrap", "user": {
            "token": k.bootstrap_token.clone().unwrap_or_default(),
        }}],
        "contexts": [{ "name": "bootstrap", "context": {
            "cluster": "cluster", "user": "kubelet-bootstrap",
        }}],
        "current-context": "bootstrap",
    }))
}

/// The flags only the command line can carry.
pub fn render_flags(k: &Kubelet) -> String {
    let mut s = String::new();
    if !k.labels.is_empty() {
        let labels: Vec<String> = k.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!("--node-labels={}\n", labels.join(",")));
    }
    for (flag, value) in &k.extra_args {
        s.push_str(&format!("--{flag}={value}\n"));
    }
    s
}

/// kubelet's files for `k` (all absent when None or disabled), in the
/// order they must be put: the flags file, init's signal to start kubelet,
/// comes last when written and first when removed, so init never starts
/// kubelet on a half-written set. An error when init would refuse the
/// flags file: nothing may be written then.
pub fn wants(k: Option<&Kubelet>, p: &Paths) -> Result<Vec<Want>, FlagsError> {
    Ok(match k.filter(|k| k.enabled) {
        Some(k) => {
            let flags = render_flags(k);
            contract::check(flags.as_bytes()).map_err(|r| refused(p.flags(), r))?;
            let mut ca = k.ca.clone().unwrap_or_default().trim().to_owned();
            ca.push('\n');
            vec![
                Want::file(p.ca(), ca, 0o644),
                Want::file(p.kubeconfig(), render_kubeconfig(k, p), 0o600),
                Want::file(p.config(), render_config(k, p), 0o644),
                Want::file(p.flags(), flags, 0o644),
            ]
        }
        None => [p.flags(), p.config(), p.kubeconfig(), p.ca()]
            .into_iter()
            .map(Want::absent)
            .collect(),
    })
}

/// `dir` as the node sees it, for a test's sandbox.
pub fn node_paths(root: &Path) -> Paths {
    Paths {
        kubelet_dir: root.join("var/lib/kubelet"),
        kubernetes_dir: root.join("etc/kubernetes"),
        containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Kubelet {
        let doc = "version = 1\n[kubelet]\napi_server = \"https://10.0.0.1:6443\"\n\
                   ca = \"\"\"\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n\"\"\"\n\
                   bootstrap_token = \"abcdef.0123456789abcdef\"\n\
                   labels = { \"node-role.kubernetes.io/worker\" = \"\", zone = \"r3\" }\n\
                   taints = [\"dedicated=gpu:NoSchedule\", \"spot:NoExecute\"]\n\
                   cluster_dns = [\"10.96.0.10\"]\nextra_args = { \"max-pods\" = \"200\" }\n";
        matic_config::parse(doc).unwrap().kubelet.unwrap()
    }

    #[test]
    fn kubelet_configuration_fields() {
        let p = node_paths(Path::new("/"));
        let v: Value = serde_json::from_str(&render_config(&example(), &p)).unwrap();
        assert_eq!(v["kind"], "KubeletConfiguration");
        assert_eq!(v["apiVersion"], "kubelet.config.k8s.io/v1beta1");
        assert_eq!(v["cgroupDriver"], "cgroupfs");
        assert_eq!(
            v["containerRuntimeEndpoint"],
            "unix:///run/containerd/containerd.sock"
        );
        assert_eq!(
            v["authentication"]["x509"]["clientCAFile"],
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(v["clusterDNS"], json!(["10.96.0.10"]));
        assert_eq!(
            v["registerWithTaints"],
            json!([
                { "key": "dedicated", "value": "gpu", "effect": "NoSchedule" },
                { "key": "spot", "effect": "NoExecute" },
            ])
        );
    }

    #[test]
    fn kubeconfig_and_flags() {
        let p = node_paths(Path::new("/"));
        let v: Value = serde_json::from_str(&render_kubeconfig(&example(), &p)).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority"],
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(v["users"][0]["user"]["token"], "abcdef.0123456789abcdef");
        assert_eq!(v["current-context"], "bootstrap");
        assert_eq!(v["contexts"][0]["context"]["user"], "kubelet-bootstrap");
        assert_eq!(
            render_flags(&example()),
            "--node-labels=node-role.kubernetes.io/worker=,zone=r3\n--max-pods=200\n"
        );
        let w = wants(Some(&example()), &p).unwrap();
        let kc = w.iter().find(|w| w.path == p.kubeconfig()).unwrap();
        assert_eq!(kc.mode, 0o600, "the token is a secret");
        assert!(w.iter().filter(|w| w.path != p.kubeconfig()).all(|w| {
            !String::from_utf8_lossy(w.content.as_deref().unwrap()).contains("0123456789abcdef")
        }));
        let off = Kubelet {
            enabled: false,
            ..example()
        };
        assert!(
            wants(Some(&off), &p)
                .unwrap()
                .iter()
                .all(|w| w.content.is_none())
        );
        assert_eq!(wants(None, &p).unwrap().len(), 4);
    }

    /// The node's paths are the contract's, the ones init starts kubelet
    /// with, and the agent's directory defaults come from it.
    #[test]
    fn paths_are_the_contracts() {
        let p = Paths {
            kubelet_dir: default_kubelet_dir(),
            kubernetes_dir: default_kubernetes_dir(),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
        };
        assert_eq!(p.config(), Path::new(contract::CONFIG_PATH));
        assert_eq!(
            p.flags().as_os_str(),
            contract::FLAGS_PATH.to_str().unwrap()
        );
        assert_eq!(
            p.kubeconfig(),
            Path::new(contract::BOOTSTRAP_KUBECONFIG_PATH)
        );
        let n = node_paths(Path::new("/"));
        assert_eq!((n.config(), n.flags()), (p.config(), p.flags()));
        assert_eq!(n.kubeconfig(), p.kubeconfig());
        // What the KubeletConfiguration names is what the fixed flags say.
        let fixed: Vec<&str> = contract::FIXED_FLAGS
            .iter()
            .map(|f| f.to_str().unwrap())
            .collect();
        assert!(fixed.contains(&format!("--config={}", p.config().display()).as_str()));
    }

    /// The flags file is last when written and first when removed: init
    /// starts kubelet when it appears, so it must never see it beside a
    /// missing or old KubeletConfiguration.
    #[test]
    fn flags_file_written_last_and_removed_first() {
        let p = node_paths(Path::new("/"));
        let on = wants(Some(&example()), &p).unwrap();
        assert_eq!(on.last().unwrap().path, p.flags());
        let rendered = on.last().unwrap().content.clone().unwrap();
        assert_eq!(contract::check(&rendered), Ok(2));
        let off = wants(None, &p).unwrap();
        assert_eq!(off.first().unwrap().path, p.flags());
    }

    /// A section whose flags init would refuse is an error naming the
    /// file, before anything is written.
    #[test]
    fn flags_init_would_refuse_are_an_error() {
        let p = node_paths(Path::new("/n"));
        let mut k = example();
        k.extra_args = (0..40).map(|i| (format!("flag-{i}"), "1".into())).collect();
        let e = wants(Some(&k), &p).unwrap_err();
        assert_eq!(e.path, p.flags());
        assert!(e.why.contains("more than 32 flags"), "{e}");
        let mut k = example();
        k.extra_args = [("long".to_owned(), "x".repeat(5000))].into();
        let e = wants(Some(&k), &p).unwrap_err();
        assert!(
            e.to_string().contains("/n/var/lib/kubelet/matic-flags"),
            "{e}"
        );
        assert!(e.why.contains("more than 4096 bytes"), "{e}");
        // Exactly at the limits is fine.
        let mut k = example();
        k.labels.clear();
        k.extra_args = (0..32).map(|i| (format!("flag-{i}"), "1".into())).collect();
        assert!(wants(Some(&k), &p).is_ok());
    }
}
