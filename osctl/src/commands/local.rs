//! The commands that contact no node: `gen-certs`, `completion` and
//! `version --client`. They run before any config is looked for, so they
//! work on a machine with no osctl config yet.
//!
//! Must never read the client config or open a connection.

use clap::CommandFactory;

use super::AnyError;
use crate::args::Cli;
use crate::config::Config;
use crate::pki::{self, Role};

/// `osctl version --client`.
pub(crate) fn client_version() -> i32 {
    println!("osctl {}", env!("CARGO_PKG_VERSION"));
    0
}

/// `osctl completion SHELL`: the script on stdout.
pub(crate) fn completion(shell: clap_complete::Shell) -> i32 {
    clap_complete::generate(shell, &mut Cli::command(), "osctl", &mut std::io::stdout());
    0
}

/// `osctl gen-certs`: the PKI and a client config pointing at it.
pub(crate) fn gen_certs(
    out: &std::path::Path,
    sans: &[String],
    roles: &[(String, Role)],
) -> Result<i32, AnyError> {
    let g = pki::gen_certs(out, sans, roles)?;
    let cfg = Config::for_generated(sans);
    let cfg_path = out.join("osctlconfig");
    cfg.save(&cfg_path)?;
    for f in g.files.iter().chain([&cfg_path]) {
        println!("wrote {}", f.display());
    }
    println!(
        "the node needs ca.crt, server.crt and server.key in /var/lib/matic/pki/; point osctl at the config with: export OSCTL_CONFIG={}",
        cfg_path.display()
    );
    Ok(0)
}
