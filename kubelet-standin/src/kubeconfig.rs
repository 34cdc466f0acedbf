//! The `kubeconfig` and `token` checks: the bootstrap kubeconfig
//! (`--bootstrap-kubeconfig`) parses as YAML, its `current-context` names a
//! context whose cluster has an `https://` server and a CA file and whose
//! user has a token, and the token has the bootstrap-token shape
//! (`[a-z0-9]{6}.[a-z0-9]{16}`, what kubeadm's bootstrap signer accepts).
//!
//! Must never: print the token (the report goes to the node's log, which
//! every API role can read).

use matic_contract::kubelet as contract;
use yaml_rust2::Yaml;

use crate::Node;
use crate::config::{one_mapping, string};

/// What the later checks need from a good kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub server: String,
    /// The CA file the cluster names (checked by [`crate::ca`]).
    pub certificate_authority: String,
    pub token: String,
}

/// The entry of list `key` whose `name` is `name`, as its `field`.
fn named<'a>(doc: &'a Yaml, key: &str, name: &str, field: &str) -> Result<&'a Yaml, String> {
    let what = contract::BOOTSTRAP_KUBECONFIG_PATH;
    let list = doc[key]
        .as_vec()
        .ok_or_else(|| format!("{what}: no {key} list"))?;
    let entry = list
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .ok_or_else(|| format!("{what}: no {key} entry named {name:?}"))?;
    match &entry[field] {
        Yaml::Hash(_) => Ok(&entry[field]),
        _ => Err(format!(
            "{what}: {key} entry {name:?} has no {field} mapping"
        )),
    }
}

/// Checks a kubeconfig's text (not the token's shape: [`check_token`]).
pub fn parse(text: &str) -> Result<Bootstrap, String> {
    let what = contract::BOOTSTRAP_KUBECONFIG_PATH;
    let doc = one_mapping(text, what)?;
    let kind = string(&doc, "kind", what)?;
    if kind != "Config" {
        return Err(format!("{what}: kind is {kind:?}, expected \"Config\""));
    }
    let current = string(&doc, "current-context", what)?;
    let context = named(&doc, "contexts", current, "context")?;
    let cluster_name = string(context, "cluster", what)?;
    let user_name = string(context, "user", what)?;
    let cluster = named(&doc, "clusters", cluster_name, "cluster")?;
    let server = string(cluster, "server", what)?;
    let host = server
        .strip_prefix("https://")
        .map(|r| r.split(['/', ':']).next().unwrap_or(""))
        .unwrap_or("");
    if host.is_empty() {
        return Err(format!(
            "{what}: server {server:?} is not an https://HOST[:PORT] URL"
        ));
    }
    let ca = string(cluster, "certificate-authority", what)?;
    let user = named(&doc, "users", user_name, "user")?;
    let token = string(user, "token", what)?;
    Ok(Bootstrap {
        server: server.to_owned(),
        certificate_authority: ca.to_owned(),
        token: token.to_owned(),
    })
}

/// A bootstrap token's shape: `[a-z0-9]{6}.[a-z0-9]{16}`. The error never
/// shows the token.
pub fn check_token(token: &str) -> Result<(), String> {
    let part = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match token.split_once('.') {
        Some((id, secret)) if part(id, 6) && part(secret, 16) => Ok(()),
        _ => Err(format!(
            "the kubeconfig's token ({} bytes) is not a bootstrap token [a-z0-9]{{6}}.[a-z0-9]{{16}}",
            token.len()
        )),
    }
}

/// The check on the node: the file `--bootstrap-kubeconfig` names.
pub fn check(node: &Node) -> Result<Bootstrap, String> {
    parse(&node.read_text(contract::BOOTSTRAP_KUBECONFIG_PATH)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the agent renders (JSON).
    const JSON: &str = r#"{
  "apiVersion": "v1",
  "kind": "Config",
  "clusters": [{ "name": "cluster", "cluster": {
      "server": "https://10.0.0.1:6443",
      "certificate-authority": "/etc/kubernetes/pki/ca.crt" } }],
  "users": [{ "name": "kubelet-bootstrap", "user": { "token": "abcdef.0123456789abcdef" } }],
  "contexts": [{ "name": "bootstrap", "context": { "cluster": "cluster", "user": "kubelet-bootstrap" } }],
  "current-context": "bootstrap"
}"#;

    #[test]
    fn the_agents_kubeconfig() {
        assert_eq!(
            parse(JSON),
            Ok(Bootstrap {
                server: "https://10.0.0.1:6443".into(),
                certificate_authority: "/etc/kubernetes/pki/ca.crt".into(),
                token: "abcdef.0123456789abcdef".into(),
            })
        );
        assert_eq!(check_token("abcdef.0123456789abcdef"), Ok(()));
    }

    #[test]
    fn bad_kubeconfigs() {
        let bad = |from: &str, to: &str| parse(&JSON.replace(from, to)).unwrap_err();
        let e = bad("\"Config\"", "\"Pod\"");
        assert!(e.contains("kind is \"Pod\""), "{e}");
        let e = bad("https://10.0.0.1:6443", "http://10.0.0.1:6443");
        assert!(e.contains("not an https://HOST[:PORT] URL"), "{e}");
        let e = bad("https://10.0.0.1:6443", "https://:6443");
        assert!(e.contains("not an https://HOST[:PORT] URL"), "{e}");
        let e = bad(
            "\"current-context\": \"bootstrap\"",
            "\"current-context\": \"other\"",
        );
        assert!(e.contains("no contexts entry named \"other\""), "{e}");
        let e = bad("\"cluster\": \"cluster\"", "\"cluster\": \"gone\"");
        assert!(e.contains("no clusters entry named \"gone\""), "{e}");
        let e = bad(
            "\"certificate-authority\"",
            "\"certificate-authority-data\"",
        );
        assert!(e.contains("no certificate-authority"), "{e}");
        let e = bad("\"token\"", "\"password\"");
        assert!(e.contains("no token"), "{e}");
        let e = bad("\"users\"", "\"people\"");
        assert!(e.contains("no users list"), "{e}");
        let e = parse("kind: [").unwrap_err();
        assert!(e.contains("not YAML"), "{e}");
    }

    #[test]
    fn token_shapes() {
        for bad in [
            "",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "abcdef.0123456789abcde-",
        ] {
            let e = check_token(bad).unwrap_err();
            assert!(e.contains("not a bootstrap token"), "{bad}: {e}");
            assert!(
                bad.is_empty() || !e.contains(bad),
                "the token is never shown"
            );
        }
    }
}
