//! The client configuration file (like talosconfig) and how the target nodes
//! and credentials are resolved from it and the command-line overrides.
//!
//! ```toml
//! context = "lab"
//!
//! [contexts.lab]
//! endpoints = ["10.0.2.15"]
//! nodes = ["10.0.2.15", "10.0.2.16"]
//! ca = "ca.crt"          # path, relative to this file's directory,
//! crt = "admin.crt"      # or inline PEM ("-----BEGIN ...")
//! key = "admin.key"
//! ```
//!
//! MaticOS has no API proxy (Talos's apid): osctl connects to every target
//! directly. The targets are, first match wins: `--nodes`, `--endpoints`,
//! the context's `nodes`, the context's `endpoints`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "OSCTL_CONFIG";

/// Errors while finding, reading or resolving the config; each names the file
/// or context concerned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no osctl config found (looked at {0}); create one with `osctl gen-certs`, or pass --config or set OSCTL_CONFIG"
    )]
    NotFound(PathBuf),
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("cannot write config {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} has no context {name:?} (it has: {available})")]
    NoSuchContext {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error("config {0} names no current context; pass --context")]
    NoContext(PathBuf),
    #[error("context {0:?} has no nodes or endpoints; pass --nodes")]
    NoTargets(String),
    #[error("cannot read {what} of context {context:?} from {path}: {source}")]
    Credential {
        what: &'static str,
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One cluster or node group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    /// CA certificate: a path or inline PEM.
    pub ca: String,
    /// Client certificate: a path or inline PEM.
    pub crt: String,
    /// Client key: a path or inline PEM.
    pub key: String,
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub context: Option<String>,
    pub endpoints: Vec<String>,
    pub nodes: Vec<String>,
}

/// What a command needs: where to connect and with which credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub config_path: PathBuf,
    pub context: String,
    pub targets: Vec<String>,
    pub ca_pem: Vec<u8>,
    pub crt_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// The config path: `--config`, else `$OSCTL_CONFIG`, else
/// `<user config dir>/osctl/config`.
pub fn config_path(flag: Option<&Path>, env: Option<&str>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return PathBuf::from(e);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("osctl")
        .join("config")
}

impl Config {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound(path.to_path_buf())
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Write to `path` (0600: it may hold inline keys).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).expect("config serializes");
        crate::pki::write_file(path, text.as_bytes(), 0o600).map_err(|e| match e {
            crate::pki::PkiError::Write { path, source } => ConfigError::Write { path, source },
            other => unreachable!("write_file only fails with Write: {other}"),
        })
    }

    /// The config `gen-certs` writes beside the files it generated: one
    /// context `maticos`, current, whose endpoint is the first IP among
    /// `sans` (else the first name), with relative paths to `ca.crt`,
    /// `admin.crt` and `admin.key`.
    pub fn for_generated(sans: &[String]) -> Config {
        let endpoint = sans
            .iter()
            .find(|s| s.parse::<std::net::IpAddr>().is_ok())
            .or(sans.first())
            .cloned();
        let mut cfg = Config {
            context: Some("maticos".into()),
            ..Default::default()
        };
        cfg.contexts.insert(
            "maticos".into(),
            Context {
                endpoints: endpoint.into_iter().collect(),
                nodes: vec![],
                ca: "ca.crt".into(),
                crt: "admin.crt".into(),
                key: "admin.key".into(),
            },
        );
        cfg
    }

    /// Pick the context and targets per [`Overrides`] and load the credentials.
    pub fn resolve(&self, path: &Path, o: &Overrides) -> Result<Resolved, ConfigError> {
        let name = match (&o.context, &self.context) {
            (Some(n), _) | (None, Some(n)) => n.clone(),
            (None, None) if self.contexts.len() == 1 => {
                self.contexts.keys().next().cloned().expect("one context")
            }
            (None, None) => return Err(ConfigError::NoContext(path.to_path_buf())),
        };
        let ctx = self
            .contexts
            .get(&name)
            .ok_or_else(|| ConfigError::NoSuchContext {
                path: path.to_path_buf(),
                name: name.clone(),
                available: self.contexts.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let targets = [&o.nodes, &o.endpoints, &ctx.nodes, &ctx.endpoints]
            .into_iter()
            .find(|l| !l.is_empty())
            .cloned()
            .ok_or_else(|| ConfigError::NoTargets(name.clone()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let load = |what: &'static str, v: &str| -> Result<Vec<u8>, ConfigError> {
            if v.trim_start().starts_with("-----BEGIN") {
                return Ok(v.as_bytes().to_vec());
            }
            let p = base.join(v);
            fs::read(&p).map_err(|source| ConfigError::Credential {
                what,
                context: name.clone(),
                path: p,
                source,
            })
        };
        Ok(Resolved {
            config_path: path.to_path_buf(),
            context: name.clone(),
            targets,
            ca_pem: load("the CA certificate", &ctx.ca)?,
            crt_pem: load("the client certificate", &ctx.crt)?,
            key_pem: load("the client key", &ctx.key)?,
        })
    }
}

/// Split comma-separated flag values (`--nodes a,b --nodes c`).
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn ctx(nodes: &[&str], endpoints: &[&str]) -> Context {
        Context {
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            ca: "ca.crt".into(),
            crt: "admin.crt".into(),
            key: "-----BEGIN PRIVATE KEY-----\ninline\n-----END PRIVATE KEY-----\n".into(),
        }
    }

    fn setup() -> (TempDir, PathBuf, Config) {
        let dir = TempDir::new("cfg");
        fs::write(dir.path().join("ca.crt"), "CA").unwrap();
        fs::write(dir.path().join("admin.crt"), "CRT").unwrap();
        let mut c = Config {
            context: Some("a".into()),
            ..Default::default()
        };
        c.contexts.insert("a".into(), ctx(&["n1", "n2"], &["e1"]));
        c.contexts.insert("b".into(), ctx(&[], &["e2"]));
        let path = dir.path().join("config");
        c.save(&path).unwrap();
        (dir, path, c)
    }

    #[test]
    fn path_precedence_flag_env_default() {
        assert_eq!(
            config_path(Some(Path::new("/f")), Some("/e")),
            PathBuf::from("/f")
        );
        assert_eq!(config_path(None, Some("/e")), PathBuf::from("/e"));
        assert!(config_path(None, Some("")).ends_with("osctl/config"));
        assert!(config_path(None, None).ends_with("osctl/config"));
    }

    #[test]
    fn roundtrip_and_relative_and_inline_credentials() {
        let (_d, path, c) = setup();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded, c);
        let r = loaded.resolve(&path, &Overrides::default()).unwrap();
        assert_eq!(r.context, "a");
        assert_eq!(r.targets, ["n1", "n2"]);
        assert_eq!(r.ca_pem, b"CA");
        assert_eq!(r.crt_pem, b"CRT");
        assert!(r.key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn target_precedence() {
        let (_d, path, c) = setup();
        let o = |ctx: Option<&str>, n: &[&str], e: &[&str]| Overrides {
            config: None,
            context: ctx.map(String::from),
            nodes: n.iter().map(|s| s.to_string()).collect(),
            endpoints: e.iter().map(|s| s.to_string()).collect(),
        };
        let t = |ov: Overrides| c.resolve(&path, &ov).unwrap().targets;
        assert_eq!(t(o(None, &["x"], &["y"])), ["x"]);
        assert_eq!(t(o(None, &[], &["y"])), ["y"]);
        assert_eq!(t(o(None, &[], &[])), ["n1", "n2"]);
        // Context b has no nodes: its endpoints are the targets.
        assert_eq!(t(o(Some("b"), &[], &[])), ["e2"]);
        let err = c.resolve(&path, &o(Some("zz"), &[], &[])).unwrap_err();
        assert!(err.to_string().contains("no context \"zz\" (it has: a, b)"));
    }

    #[test]
    fn context_defaults_to_the_only_one_and_errors_name_files() {
        let (dir, path, mut c) = setup();
        c.context = None;
        let err = c.resolve(&path, &Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::NoContext(_)));
        c.contexts.remove("b");
        assert_eq!(
            c.resolve(&path, &Overrides::default()).unwrap().context,
            "a"
        );
        fs::remove_file(dir.path().join("ca.crt")).unwrap();
        let err = c.resolve(&path, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        let missing = dir.path().join("nope");
        assert!(matches!(
            Config::load(&missing),
            Err(ConfigError::NotFound(_))
        ));
        fs::write(&missing, "context = 3").unwrap();
        assert!(matches!(
            Config::load(&missing),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn split_list_handles_commas_and_repeats() {
        let v = split_list(&["a, b".into(), "c".into(), ",".into()]);
        assert_eq!(v, ["a", "b", "c"]);
    }
}
