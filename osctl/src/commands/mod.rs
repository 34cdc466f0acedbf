//! The command bodies: what each subcommand does once its arguments are
//! parsed ([`crate::args`]) and, for node commands, the config resolved
//! ([`crate::cli`]). [`unary`] holds the one-call-one-answer commands,
//! [`stream`] `logs` and `dmesg`, [`boots`] `boots` and `boots show`,
//! [`install`] `install`, [`upgrade`] `upgrade` and the `--wait` of
//! `reboot` and `rollback`, [`machine_config`] `config …`, [`local`] and
//! [`release`] those that contact no node.
//!
//! Every node command runs on all target nodes concurrently
//! ([`crate::client::Fleet`]); results come back in the order the nodes
//! were given, each node's failure is printed as `NODE: sentence` on
//! stderr, and the exit code is 1 if any node failed.
//!
//! Must never parse arguments, set up TLS or phrase a node's error (that is
//! [`crate::client`]'s); node commands write to stdout only through
//! [`write_out`], which stops quietly when the reader has gone.

pub(crate) mod boots;
pub(crate) mod install;
pub(crate) mod local;
pub(crate) mod machine_config;
pub(crate) mod release;
pub(crate) mod stream;
pub(crate) mod unary;
pub(crate) mod upgrade;
pub(crate) mod workloads;

use std::io::Write;

use crate::client::{Fleet, NodeResults};
use crate::output::{self, Format};

/// A failure that is not any one node's (config, image, download).
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// What every node command needs.
pub(crate) struct Ctx {
    pub fleet: Fleet,
    pub format: Format,
}

/// Print each node's error as `NODE: message` on stderr; the exit code.
fn report_errors<T>(results: &NodeResults<T>) -> i32 {
    let mut code = 0;
    for (node, r) in results {
        if let Err(e) = r {
            eprintln!("{node}: {e}");
            code = 1;
        }
    }
    code
}

impl Ctx {
    /// Print a non-streaming result: JSON document, or `text` for the
    /// successful nodes; then the errors.
    pub(crate) fn finish<T>(
        &self,
        results: &NodeResults<T>,
        to_json: impl Fn(&T) -> serde_json::Value,
        text: impl Fn(&[(&str, &T)]) -> String,
    ) -> i32 {
        match self.format {
            Format::Json => write_out(output::json_results(results, to_json).as_bytes()),
            Format::Text => {
                let ok: Vec<(&str, &T)> = results
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().ok().map(|v| (n.as_str(), v)))
                    .collect();
                if !ok.is_empty() {
                    write_out(text(&ok).as_bytes());
                }
            }
        }
        report_errors(results)
    }
}

/// `NODE: sentence` per successful node.
fn lines<T>(ok: &[(&str, &T)], f: impl Fn(&T) -> String) -> String {
    ok.iter().map(|(n, v)| format!("{n}: {}\n", f(v))).collect()
}

/// Write to stdout and flush. When the reader has gone (`osctl logs -f X |
/// head`), stop quietly like other command-line tools rather than streaming
/// into a closed pipe forever (Rust ignores SIGPIPE).
pub(crate) fn write_out(b: &[u8]) {
    if b.is_empty() {
        return;
    }
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(b).and_then(|_| o.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}
