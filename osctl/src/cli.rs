//! Command-line parsing (clap derive) and the command implementations.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Context};
use crate::pki::{self, Role};

/// Operate MaticOS nodes over their mutual-TLS API.
#[derive(Debug, Parser)]
#[command(name = "osctl", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the CA, the node's server certificate, client certificates
    /// and a client config pointing at them.
    GenCerts {
        /// Directory to write into (created if missing; an existing ca.crt and
        /// ca.key there are reused).
        #[arg(long)]
        out: PathBuf,
        /// IP address or DNS name of the node (repeatable, or comma-separated).
        #[arg(long = "san", required = true, value_delimiter = ',')]
        sans: Vec<String>,
        /// Extra client certificate NAME=ROLE, role one of os:admin,
        /// os:operator, os:reader (repeatable).
        #[arg(long = "role", value_parser = parse_role_arg)]
        roles: Vec<(String, Role)>,
    },
}

fn parse_role_arg(s: &str) -> Result<(String, Role), String> {
    let (name, role) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=ROLE, got {s:?}"))?;
    if name.is_empty() || name.contains('/') || name == "ca" || name == "server" {
        return Err(format!("invalid certificate name {name:?}"));
    }
    Ok((
        name.to_string(),
        role.parse().map_err(|e: pki::PkiError| e.to_string())?,
    ))
}

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    crate::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osctl: {e}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32, Box<dyn std::error::Error>> {
    match cli.command {
        Command::GenCerts { out, sans, roles } => {
            let g = pki::gen_certs(&out, &sans, &roles)?;
            let endpoint = sans
                .iter()
                .find(|s| s.parse::<std::net::IpAddr>().is_ok())
                .unwrap_or(&sans[0])
                .clone();
            let mut cfg = Config {
                context: Some("maticos".into()),
                ..Default::default()
            };
            cfg.contexts.insert(
                "maticos".into(),
                Context {
                    endpoints: vec![endpoint],
                    nodes: vec![],
                    ca: "ca.crt".into(),
                    crt: "admin.crt".into(),
                    key: "admin.key".into(),
                },
            );
            let cfg_path = out.join("osctlconfig");
            cfg.save(&cfg_path)?;
            for f in g.files.iter().chain([&cfg_path]) {
                println!("wrote {}", f.display());
            }
            println!(
                "install ca.crt, server.crt and server.key as /var/lib/matic/pki/ on the node; use the client config with: export OSCTL_CONFIG={}",
                cfg_path.display()
            );
            Ok(0)
        }
    }
}
