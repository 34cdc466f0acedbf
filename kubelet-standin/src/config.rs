//! The `config` check: `--config`'s KubeletConfiguration parses as YAML (the
//! agent writes JSON, which is YAML) and holds what this node needs:
//! `kind: KubeletConfiguration`, `apiVersion: kubelet.config.k8s.io/v1beta1`,
//! `cgroupDriver: cgroupfs` (containerd runs runc with `SystemdCgroup =
//! false`; kubelet refuses to run pods on a mismatch) and a
//! `containerRuntimeEndpoint` that is a unix socket.
//!
//! Must never: accept a document kubelet's own decoder would refuse for
//! these fields (another kind, another version, a missing endpoint).

use matic_contract::kubelet as contract;
use yaml_rust2::{Yaml, YamlLoader};

use crate::Node;

/// What the later checks need from a good KubeletConfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletConfig {
    /// The runtime's socket (from `unix://PATH`), absolute on the node.
    pub runtime_socket: String,
    /// `authentication.x509.clientCAFile`, when set.
    pub client_ca_file: Option<String>,
}

/// The one YAML document of `text`, a mapping; `what` names the file.
pub fn one_mapping(text: &str, what: &str) -> Result<Yaml, String> {
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| format!("{what}: not YAML: {e}"))?;
    if docs.len() != 1 {
        return Err(format!(
            "{what}: {} YAML documents, expected one",
            docs.len()
        ));
    }
    let doc = docs.remove(0);
    if doc.as_hash().is_none() {
        return Err(format!("{what}: not a mapping"));
    }
    Ok(doc)
}

/// `doc[key]` as a string, or why not.
pub fn string<'a>(doc: &'a Yaml, key: &str, what: &str) -> Result<&'a str, String> {
    match &doc[key] {
        Yaml::String(s) => Ok(s),
        Yaml::BadValue => Err(format!("{what}: no {key}")),
        other => Err(format!("{what}: {key} is not a string: {other:?}")),
    }
}

/// Checks a KubeletConfiguration's text.
pub fn parse(text: &str) -> Result<KubeletConfig, String> {
    let what = contract::CONFIG_PATH;
    let doc = one_mapping(text, what)?;
    let want = |key: &str, value: &str| -> Result<(), String> {
        let got = string(&doc, key, what)?;
        if got == value {
            Ok(())
        } else {
            Err(format!("{what}: {key} is {got:?}, expected {value:?}"))
        }
    };
    want("kind", "KubeletConfiguration")?;
    want("apiVersion", "kubelet.config.k8s.io/v1beta1")?;
    want("cgroupDriver", "cgroupfs")?;
    let endpoint = string(&doc, "containerRuntimeEndpoint", what)?;
    let socket = endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            format!("{what}: containerRuntimeEndpoint {endpoint:?} is not unix:///PATH")
        })?;
    let client_ca_file = match &doc["authentication"]["x509"]["clientCAFile"] {
        Yaml::String(s) => Some(s.clone()),
        Yaml::BadValue => None,
        other => {
            return Err(format!(
                "{what}: authentication.x509.clientCAFile is not a string: {other:?}"
            ));
        }
    };
    Ok(KubeletConfig {
        runtime_socket: socket.to_owned(),
        client_ca_file,
    })
}

/// The check on the node: the file `--config` names.
pub fn check(node: &Node) -> Result<KubeletConfig, String> {
    parse(&node.read_text(contract::CONFIG_PATH)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the agent renders (JSON), trimmed.
    const JSON: &str = r#"{
  "apiVersion": "kubelet.config.k8s.io/v1beta1",
  "kind": "KubeletConfiguration",
  "cgroupDriver": "cgroupfs",
  "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
  "authentication": { "x509": { "clientCAFile": "/etc/kubernetes/pki/ca.crt" } }
}
"#;

    #[test]
    fn the_agents_json_is_yaml() {
        assert_eq!(
            parse(JSON),
            Ok(KubeletConfig {
                runtime_socket: "/run/containerd/containerd.sock".into(),
                client_ca_file: Some("/etc/kubernetes/pki/ca.crt".into()),
            })
        );
        // The same as block YAML, as a person would write it.
        let yaml = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
                    cgroupDriver: cgroupfs\ncontainerRuntimeEndpoint: unix:///run/c.sock\n";
        assert_eq!(parse(yaml).unwrap().runtime_socket, "/run/c.sock");
        assert_eq!(parse(yaml).unwrap().client_ca_file, None);
    }

    #[test]
    fn bad_configurations() {
        let bad = |from: &str, to: &str| parse(&JSON.replace(from, to)).unwrap_err();
        let e = bad("\"KubeletConfiguration\"", "\"KubeProxyConfiguration\"");
        assert!(e.contains("kind is \"KubeProxyConfiguration\""), "{e}");
        let e = bad("v1beta1", "v1alpha1");
        assert!(e.contains("apiVersion"), "{e}");
        let e = bad("\"cgroupfs\"", "\"systemd\"");
        assert!(
            e.contains("cgroupDriver is \"systemd\", expected \"cgroupfs\""),
            "{e}"
        );
        let e = bad("unix:///run", "tcp://10.0.0.1:1/run");
        assert!(e.contains("is not unix:///PATH"), "{e}");
        let e = bad("\"containerRuntimeEndpoint\"", "\"runtimeEndpoint\"");
        assert!(e.contains("no containerRuntimeEndpoint"), "{e}");
        let e = bad("\"cgroupfs\"", "[1]");
        assert!(e.contains("cgroupDriver is not a string"), "{e}");
        let e = bad("\"/etc/kubernetes/pki/ca.crt\"", "7");
        assert!(e.contains("clientCAFile is not a string"), "{e}");
        let e = parse("{ \"kind\": ").unwrap_err();
        assert!(e.contains("not YAML"), "{e}");
        let e = parse("- a\n- b\n").unwrap_err();
        assert!(e.contains("not a mapping"), "{e}");
        let e = parse("").unwrap_err();
        assert!(e.contains("0 YAML documents"), "{e}");
        let e = parse(&format!("{JSON}---\n{JSON}")).unwrap_err();
        assert!(e.contains("2 YAML documents"), "{e}");
    }
}
