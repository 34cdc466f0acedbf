//! kubelet's files from the `kubelet` section (docs/config.md, "kubelet"):
//! rendered only; init starting kubelet with them is not written yet.
//!
//! - `<kubelet-dir>/config.yaml`: the KubeletConfiguration (JSON, which is
//!   YAML): cgroupfs driver (containerd runs runc with `SystemdCgroup =
//!   false`), containerd's socket, the cluster CA for client certificates,
//!   cluster DNS, taints to register with.
//! - `<kubernetes-dir>/bootstrap-kubelet.conf` (mode 0600: the token): a
//!   kubeconfig with the API server, the CA's path and the bootstrap token.
//! - `<kubernetes-dir>/pki/ca.crt`: the cluster CA.
//! - `<kubelet-dir>/matic-flags`: what only flags can say (`--node-labels`,
//!   the `extra_args`), one `--flag=value` a line, for init to pass.
//!
//! No section, or `enabled = false`: every one of them is removed, so init
//! (which starts kubelet only when they exist) leaves it `skipped`.
//!
//! Must never: write the token anywhere but the 0600 kubeconfig.

use std::path::{Path, PathBuf};

use matic_config::schema::Kubelet;
use serde_json::{Value, json};

use super::files::Want;

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
        self.kubelet_dir.join("config.yaml")
    }
    pub fn flags(&self) -> PathBuf {
        self.kubelet_dir.join("matic-flags")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.kubernetes_dir.join("bootstrap-kubelet.conf")
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

/// kubelet's files for `k` (all absent when None or disabled).
pub fn wants(k: Option<&Kubelet>, p: &Paths) -> Vec<Want> {
    match k.filter(|k| k.enabled) {
        Some(k) => {
            let mut ca = k.ca.clone().unwrap_or_default().trim().to_owned();
            ca.push('\n');
            vec![
                Want::file(p.ca(), ca, 0o644),
                Want::file(p.kubeconfig(), render_kubeconfig(k, p), 0o600),
                Want::file(p.config(), render_config(k, p), 0o644),
                Want::file(p.flags(), render_flags(k), 0o644),
            ]
        }
        None => [p.ca(), p.kubeconfig(), p.config(), p.flags()]
            .into_iter()
            .map(Want::absent)
            .collect(),
    }
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
        let w = wants(Some(&example()), &p);
        let kc = w.iter().find(|w| w.path == p.kubeconfig()).unwrap();
        assert_eq!(kc.mode, 0o600, "the token is a secret");
        assert!(w.iter().filter(|w| w.path != p.kubeconfig()).all(|w| {
            !String::from_utf8_lossy(w.content.as_deref().unwrap()).contains("0123456789abcdef")
        }));
        let off = Kubelet {
            enabled: false,
            ..example()
        };
        assert!(wants(Some(&off), &p).iter().all(|w| w.content.is_none()));
        assert_eq!(wants(None, &p).len(), 4);
    }
}
