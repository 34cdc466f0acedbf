//! The grammar of `osctl config …` (the machine configuration,
//! docs/config.md): its own module so other subcommands' additions to
//! [`crate::args`] stay apart.
//!
//! Must never run anything (as [`crate::args`]): no I/O, no network.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Live where it can be; reboot only when a change needs it.
    Auto,
    /// Refuse a change that needs a reboot.
    NoReboot,
    /// Reboot in any case.
    Reboot,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check and apply a TOML document as each node's new generation.
    Apply {
        /// The document (docs/config.md).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
        /// Try it: reverted by itself (also across a reboot) unless `osctl
        /// config confirm` comes within DURATION (e.g. 90s, 5m, 1h; at most 24h).
        #[arg(long = "try", value_name = "DURATION", value_parser = parse_try)]
        try_window: Option<Duration>,
    },
    /// The current generation's document (the bootstrap token redacted
    /// unless you are an admin).
    Get,
    /// The generations each node keeps (the last 10).
    History,
    /// Field-level differences, with what each needs (live, restart,
    /// reboot): generation A against B, or the current one against its parent.
    Diff {
        /// 0: the empty document.
        a: Option<u64>,
        b: Option<u64>,
    },
    /// Keep the generation on trial.
    Confirm,
    /// Go back to the current generation's parent (as a new generation).
    Rollback {
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        mode: Mode,
    },
}

fn parse_try(s: &str) -> Result<Duration, String> {
    matic_config::check::try_window(s)
}
