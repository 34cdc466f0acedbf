//! The flags of `osctl upgrade` and of the waits of `reboot --wait` and
//! `rollback --wait` (docs/osctl.md, "upgrade"), with the duration parser
//! they share. Part of [`crate::args`]: definitions only, nothing runs.

use std::time::Duration;

use clap::Args;

use crate::image;

/// How a node is waited for after its reboot. Options, so that `reboot`
/// and `rollback` can refuse them without `--wait`; [`Timing::healthy_for`]
/// and [`Timing::timeout`] give the defaults.
#[derive(Debug, Clone, Args)]
pub struct Timing {
    /// How long every health check must pass without a break, after the
    /// node answers from the new boot and slot with its boot marked
    /// successful (30s, 2m, 1m30s, 500ms; a bare number is seconds)
    /// [default: 30s].
    #[arg(long = "healthy-for", value_name = "DURATION", value_parser = parse_duration)]
    pub healthy_for_arg: Option<Duration>,
    /// Per node, from its reboot until it has passed; past it the node
    /// has failed [default: 10m].
    #[arg(long = "timeout", value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout_arg: Option<Duration>,
}

/// `--healthy-for` when not given.
pub const HEALTHY_FOR: Duration = Duration::from_secs(30);
/// `--timeout` when not given.
pub const TIMEOUT: Duration = Duration::from_secs(600);

impl Timing {
    pub fn healthy_for(&self) -> Duration {
        self.healthy_for_arg.unwrap_or(HEALTHY_FOR)
    }
    pub fn timeout(&self) -> Duration {
        self.timeout_arg.unwrap_or(TIMEOUT)
    }
    /// Either flag was given.
    pub fn given(&self) -> bool {
        self.healthy_for_arg.is_some() || self.timeout_arg.is_some()
    }
}

/// `--wait` and its timing, for `reboot` and `rollback`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until each node answers from its new boot, marked successful
    /// and healthy for --healthy-for (exit code 1 when one does not).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub timing: Timing,
}

/// `osctl upgrade`.
#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// Release file (`osctl release sign` makes one), or https URL.
    pub release: String,
    /// At most this many nodes upgrading (so unavailable) at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unavailable: u32,
    #[command(flatten)]
    pub timing: Timing,
    /// On a failed node: halt and leave it as it is (the default).
    #[arg(long, conflicts_with = "rollback_on_failure")]
    pub pause_on_failure: bool,
    /// On a failed node: halt, roll it back to its old slot and wait for
    /// that.
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Command run (sh -c, on this machine) before each node's install,
    /// with MATIC_NODE, MATIC_NODE_ENDPOINT, MATIC_NODE_HOSTNAME,
    /// MATIC_HOOK and MATIC_RELEASE_VERSION set; failing halts the rollout.
    #[arg(long, value_name = "CMD")]
    pub before_node: Option<String>,
    /// Command run the same way once each node has passed.
    #[arg(long, value_name = "CMD")]
    pub after_node: Option<String>,
    /// Accept a plain http:// URL.
    #[arg(long)]
    pub insecure: bool,
    /// The release file's expected SHA-256 (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = image::parse_sha256)]
    pub sha256: Option<[u8; 32]>,
}

/// `30s`, `10m`, `1h`, `500ms`, `1m30s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (examples: 30s, 10m, 1m30s, 500ms, 45)");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(unit).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    if s.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// A duration that is not zero (a zero timeout fails every node at once).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("the timeout must be longer than 0".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn upgrade_flags_and_their_defaults() {
        let c = Cli::try_parse_from(["osctl", "upgrade", "r.release", "-n", "a,b"]).unwrap();
        let Command::Upgrade(a) = c.command else {
            panic!("upgrade expected")
        };
        assert_eq!(c.nodes, ["a", "b"]);
        assert_eq!(a.release, "r.release");
        assert_eq!(a.max_unavailable, 1);
        assert_eq!(a.timing.healthy_for(), Duration::from_secs(30));
        assert_eq!(a.timing.timeout(), Duration::from_secs(600));
        assert!(!a.pause_on_failure && !a.rollback_on_failure);
        assert_eq!((a.before_node, a.after_node), (None, None));
        let c = Cli::try_parse_from([
            "osctl",
            "upgrade",
            "r.release",
            "--max-unavailable",
            "2",
            "--healthy-for",
            "1m",
            "--timeout",
            "5m",
            "--rollback-on-failure",
            "--before-node",
            "kubectl drain $MATIC_NODE_HOSTNAME",
            "--after-node",
            "true",
        ])
        .unwrap();
        let Command::Upgrade(a) = c.command else {
            panic!("upgrade expected")
        };
        assert_eq!(a.max_unavailable, 2);
        assert_eq!(a.timing.healthy_for(), Duration::from_secs(60));
        assert_eq!(a.timing.timeout(), Duration::from_secs(300));
        assert!(a.rollback_on_failure);
        assert_eq!(
            a.before_node.as_deref(),
            Some("kubectl drain $MATIC_NODE_HOSTNAME")
        );
        for bad in [
            &["--max-unavailable", "0"][..],
            &["--pause-on-failure", "--rollback-on-failure"],
            &["--timeout", "0"],
            &["--healthy-for", "soon"],
        ] {
            let mut args = vec!["osctl", "upgrade", "r.release"];
            args.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reboot_and_rollback_wait() {
        let c = Cli::try_parse_from(["osctl", "reboot"]).unwrap();
        assert!(matches!(c.command, Command::Reboot { wait } if !wait.wait));
        let c = Cli::try_parse_from(["osctl", "reboot", "--wait", "--healthy-for", "5s"]).unwrap();
        let Command::Reboot { wait } = c.command else {
            panic!("reboot expected")
        };
        assert!(wait.wait);
        assert_eq!(wait.timing.healthy_for(), Duration::from_secs(5));
        let c = Cli::try_parse_from(["osctl", "rollback", "--wait", "--timeout", "2m"]).unwrap();
        let Command::Rollback { wait, no_reboot } = c.command else {
            panic!("rollback expected")
        };
        assert!(wait.wait && !no_reboot);
        assert_eq!(wait.timing.timeout(), Duration::from_secs(120));
        // Nothing to wait for without a reboot.
        assert!(Cli::try_parse_from(["osctl", "rollback", "--wait", "--no-reboot"]).is_err());
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("45"), Duration::from_secs(45));
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "s", "10x", "1.5s", "-1s", "10 s", "m10"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_timeout("0s").is_err());
    }
}
