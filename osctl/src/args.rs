//! The command line's grammar: clap derive definitions of the global flags
//! and the subcommands, and the parsers of their values.
//!
//! Owns every flag, its help text and its default: `osctl --help` and each
//! subcommand's `--help` are rendered from these definitions (the `-o`
//! values' help from [`Format`]'s docs), and docs/osctl.md and the tests pin
//! them, so a change here is a change of osctl's interface.
//!
//! Must never run anything: no I/O, no network, no config lookup. What a
//! command does lives in `commands`, and [`crate::cli`] ties the two.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::image;
use crate::output::Format;
use crate::pki::{self, Role};

mod upgrade;
pub use upgrade::{Timing, UpgradeArgs, WaitArgs, parse_duration};

/// Operate MaticOS nodes over their mutual-TLS API.
#[derive(Debug, Parser)]
#[command(name = "osctl", version, about)]
pub struct Cli {
    /// Client config file [default: $OSCTL_CONFIG, else <config dir>/osctl/config].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Context of the config to use instead of its current one.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Endpoints to use instead of the context's (comma-separated).
    #[arg(short, long, global = true, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Nodes to run the command on (comma-separated, host[:port]).
    #[arg(short, long, global = true, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Seconds allowed for TCP connect plus TLS handshake.
    #[arg(long, global = true, default_value_t = 10)]
    pub connect_timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the CA, the node's server certificate, client certificates
    /// and a client config (osctlconfig) pointing at them.
    GenCerts {
        /// Directory to write into (created if missing; an existing ca.crt and
        /// ca.key there are reused).
        #[arg(long)]
        out: PathBuf,
        /// IP addresses or DNS names of the node (`--san a b`, `--san a,b`
        /// or `--san a --san b`).
        #[arg(long = "san", required = true, num_args = 1.., value_delimiter = ',')]
        sans: Vec<String>,
        /// Extra client certificate NAME=ROLE, role one of os:admin,
        /// os:operator, os:reader (repeatable).
        #[arg(long = "role", value_parser = parse_role_arg)]
        roles: Vec<(String, Role)>,
    },
    /// Versions of osctl and of each node's OS, agent and kernel.
    Version {
        /// Only print osctl's own version; contact no node.
        #[arg(long)]
        client: bool,
    },
    /// Write a signed release into each node's inactive slot.
    Install {
        /// Release file (`osctl release sign` makes one), or https URL
        /// (downloaded to a temporary file first).
        release: String,
        /// Reboot into the new release once it is installed.
        #[arg(long)]
        reboot: bool,
        /// Gone: the version is in the release's signed manifest. Kept only
        /// to say so (`osctl release sign --version V` sets it).
        #[arg(long = "version", value_name = "VERSION", hide = true)]
        image_version: Option<String>,
        /// Accept a plain http:// URL (a redirect from https to http is
        /// refused all the same).
        #[arg(long)]
        insecure: bool,
        /// The release file's expected SHA-256 (64 hex digits, as sha256sum
        /// prints it); checked before anything is sent to a node.
        #[arg(long, value_name = "HEX", value_parser = image::parse_sha256)]
        sha256: Option<[u8; 32]>,
    },
    /// Roll a release across the nodes, a batch at a time: install,
    /// reboot, and wait until each node runs it, marked successful and
    /// healthy for --healthy-for, before the next batch; halt on the
    /// first failure. Nodes already running it are skipped.
    Upgrade(UpgradeArgs),
    /// Make and check signed releases (no node is contacted).
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Reboot the nodes.
    Reboot {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Power the nodes off.
    Shutdown,
    /// Boot the other slot next (if it will boot), then reboot.
    Rollback {
        /// Switch slots but do not reboot.
        #[arg(long, conflicts_with = "wait")]
        no_reboot: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// A/B slot state.
    BootStatus,
    /// The services init supervises.
    Services,
    /// Restart a service.
    Restart {
        /// Service name (see `osctl services`).
        service: String,
    },
    /// A service's captured output, or with --container a container's.
    Logs {
        /// Service name (see `osctl services`).
        #[arg(required_unless_present = "container")]
        service: Option<String>,
        /// A container's output instead (its id or an id prefix, as
        /// `osctl containers` prints it), from the CRI's log file.
        #[arg(long, value_name = "ID", conflicts_with_all = ["service", "follow", "boot"])]
        container: Option<String>,
        /// Keep printing new output.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (0: all).
        #[arg(long, default_value_t = 0)]
        tail: u32,
        /// An earlier boot's log from the boot history, every line stamped
        /// with both clocks (0: the running log; -1 the boot before; N > 0
        /// as `osctl boots` numbers them).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        boot: i64,
    },
    /// The kernel log.
    Dmesg {
        /// Keep printing new messages.
        #[arg(short, long)]
        follow: bool,
        /// An earlier boot's kernel log from the boot history, then the
        /// crash dumps kept with it (0: the live log; -1 the boot before;
        /// N > 0 as `osctl boots` numbers them).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        boot: i64,
    },
    /// The boot history, newest first: slot, version, kernel, start, how
    /// long each boot ran, how it ended, whether it was marked successful.
    #[command(args_conflicts_with_subcommands = true)]
    Boots {
        /// How many boots to list (`-n` is --nodes).
        #[arg(long, value_name = "N", default_value_t = 16)]
        limit: u32,
        #[command(subcommand)]
        command: Option<BootsCommand>,
    },
    /// The agent's health checks (exit code 1 when a node is unhealthy).
    Health,
    /// The node's clock: NTP servers, the last offset, delay and sync (the
    /// agent's SNTP client, from the configuration's `time.ntp`).
    Time,
    /// Images in containerd's k8s.io namespace: name, digest, size.
    Images,
    /// Image operations: import an OCI image archive.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Pods and containers as the CRI sees them: id, pod, image, state,
    /// started, exit code.
    Containers,
    /// The machine configuration: apply, get, history, diff, confirm, rollback.
    Config {
        #[command(subcommand)]
        command: crate::config_args::ConfigCommand,
    },
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Stream an OCI image archive (a tar of an image layout, as
    /// `oci-archive` or `docker save`/`skopeo copy oci-archive:` write it)
    /// to each node, into containerd's k8s.io namespace (admin).
    Import {
        /// The archive.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BootsCommand {
    /// One boot's timeline: each mark as ms since its kernel started, and
    /// the step from the mark before.
    Show {
        /// 0: the running boot; -1 the boot before; N > 0 as `osctl boots`
        /// numbers them.
        #[arg(allow_negative_numbers = true)]
        boot: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Make an Ed25519 release key: DIR/release.key (private, 0600) and
    /// DIR/<key id>.pub (what nodes trust); never overwrites.
    Keygen {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a SquashFS root image into a release file: veritysetup's hash
    /// tree appended, the signed manifest in front.
    Sign {
        /// The private key (release.key from `osctl release keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The OS version the manifest records (printable ASCII, no blanks,
        /// at most 64 bytes).
        #[arg(long = "version", value_name = "VERSION")]
        release_version: String,
        /// The security counter: nodes refuse to install a release whose
        /// counter is below the running one's.
        #[arg(long, value_name = "N")]
        counter: u64,
        /// The verity salt in hex [default: 32 random bytes, veritysetup's].
        #[arg(long, value_name = "HEX", value_parser = parse_salt_arg)]
        salt: Option<Salt>,
        /// The SquashFS root image.
        squashfs: PathBuf,
        /// The release file to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a release: its signature with the keys in --keys, then the
    /// payload's size, verity tree and SHA-256.
    Verify {
        /// Directory of trusted public keys (<key id>.pub files).
        #[arg(long)]
        keys: PathBuf,
        release: PathBuf,
    },
    /// Print a release's manifest (its signature is NOT checked).
    Inspect {
        release: PathBuf,
        /// JSON output (the same as `-o json`).
        #[arg(long)]
        json: bool,
    },
}

/// A verity salt given in hex (a newtype: clap would read a bare
/// `Vec<u8>` as a list of values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salt(pub Vec<u8>);

fn parse_salt_arg(s: &str) -> Result<Salt, String> {
    crate::release::veritysetup::parse_salt(s).map(Salt)
}

fn parse_role_arg(s: &str) -> Result<(String, Role), String> {
    let (name, role) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=ROLE, got {s:?}"))?;
    let reserved = ["ca", "server", "admin", "osctlconfig"];
    if name.is_empty()
        || reserved.contains(&name)
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(format!(
            "invalid certificate name {name:?} (letters, digits, - _ . only; not ca, server, admin)"
        ));
    }
    Ok((
        name.to_string(),
        pki::parse_role(role).map_err(|e| e.to_string())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_after_the_subcommand() {
        let c = Cli::try_parse_from([
            "osctl",
            "boot-status",
            "--nodes",
            "a,b",
            "-n",
            "c",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(c.nodes, ["a", "b", "c"]);
        assert_eq!(c.output, Format::Json);
        assert!(matches!(c.command, Command::BootStatus));
    }

    #[test]
    fn sans_accept_lists_repeats_and_commas() {
        let c = Cli::try_parse_from([
            "osctl",
            "gen-certs",
            "--out",
            "d",
            "--san",
            "a",
            "b,c",
            "--san",
            "d",
            "--role",
            "x=os:reader",
        ])
        .unwrap();
        match c.command {
            Command::GenCerts { sans, roles, .. } => {
                assert_eq!(sans, ["a", "b", "c", "d"]);
                assert_eq!(roles, [("x".to_string(), Role::Reader)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn role_arguments() {
        assert_eq!(
            parse_role_arg("ops=os:operator").unwrap(),
            ("ops".to_string(), Role::Operator)
        );
        assert!(parse_role_arg("ops").is_err());
        assert!(parse_role_arg("ca=os:admin").is_err());
        assert!(parse_role_arg("../x=os:admin").is_err());
        assert!(parse_role_arg("x=root").is_err());
    }

    #[test]
    fn boot_numbers_may_be_negative() {
        let c = Cli::try_parse_from(["osctl", "boots", "show", "-1", "-n", "a"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Boots {
                command: Some(BootsCommand::Show { boot: -1 }),
                ..
            }
        ));
        assert_eq!(c.nodes, ["a"]);
        let c = Cli::try_parse_from(["osctl", "boots", "--limit", "3"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Boots {
                limit: 3,
                command: None
            }
        ));
        let c = Cli::try_parse_from(["osctl", "dmesg", "--boot", "-2"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Dmesg {
                boot: -2,
                follow: false
            }
        ));
        let c = Cli::try_parse_from(["osctl", "logs", "kubelet", "--boot", "-1", "--tail", "5"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Logs {
                boot: -1,
                tail: 5,
                ..
            }
        ));
        let c = Cli::try_parse_from(["osctl", "logs", "kubelet"]).unwrap();
        assert!(matches!(c.command, Command::Logs { boot: 0, .. }));
        assert!(Cli::try_parse_from(["osctl", "boots", "show", "x"]).is_err());
    }

    #[test]
    fn workload_commands() {
        let c =
            Cli::try_parse_from(["osctl", "logs", "--container", "abc123", "--tail", "2"]).unwrap();
        match c.command {
            Command::Logs {
                service,
                container,
                tail,
                ..
            } => {
                assert_eq!(service, None);
                assert_eq!(container.as_deref(), Some("abc123"));
                assert_eq!(tail, 2);
            }
            other => panic!("{other:?}"),
        }
        // One of a service and a container; a container log is never
        // followed nor from an earlier boot.
        assert!(Cli::try_parse_from(["osctl", "logs"]).is_err());
        assert!(Cli::try_parse_from(["osctl", "logs", "kubelet", "--container", "x"]).is_err());
        assert!(Cli::try_parse_from(["osctl", "logs", "--container", "x", "-f"]).is_err());
        assert!(
            Cli::try_parse_from(["osctl", "logs", "--container", "x", "--boot", "-1"]).is_err()
        );
        let c = Cli::try_parse_from(["osctl", "image", "import", "w.tar"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Image { command: ImageCommand::Import { file } } if file == std::path::Path::new("w.tar")
        ));
        assert!(Cli::try_parse_from(["osctl", "image", "import"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["osctl", "images", "-o", "json"])
                .unwrap()
                .command,
            Command::Images
        ));
        assert!(matches!(
            Cli::try_parse_from(["osctl", "containers"])
                .unwrap()
                .command,
            Command::Containers
        ));
    }

    #[test]
    fn install_flags() {
        let c = Cli::try_parse_from(["osctl", "install", "maticos.release", "--reboot"]).unwrap();
        match c.command {
            Command::Install {
                release,
                reboot,
                image_version,
                insecure,
                sha256,
            } => {
                assert_eq!(release, "maticos.release");
                assert!(reboot);
                assert_eq!(image_version, None);
                assert!(!insecure);
                assert_eq!(sha256, None);
            }
            other => panic!("{other:?}"),
        }
        let hex = "00ff".repeat(16);
        let c = Cli::try_parse_from([
            "osctl",
            "install",
            "x.release",
            "--insecure",
            "--sha256",
            &hex,
        ])
        .unwrap();
        let Command::Install {
            insecure, sha256, ..
        } = c.command
        else {
            panic!("install expected")
        };
        assert!(insecure);
        assert_eq!(sha256, Some([[0u8, 0xff]; 16].concat().try_into().unwrap()));
        let e =
            Cli::try_parse_from(["osctl", "install", "x.release", "--sha256", "abc"]).unwrap_err();
        assert!(
            e.to_string().contains("expected 64 hexadecimal digits"),
            "{e}"
        );
    }

    #[test]
    fn release_sign_flags() {
        let c = Cli::try_parse_from([
            "osctl",
            "release",
            "sign",
            "--key",
            "k",
            "--version",
            "1.2",
            "--counter",
            "7",
            "--salt",
            "00ff",
            "root.squashfs",
            "--out",
            "r.release",
        ])
        .unwrap();
        let Command::Release {
            command:
                ReleaseCommand::Sign {
                    release_version,
                    counter,
                    salt,
                    squashfs,
                    ..
                },
        } = c.command
        else {
            panic!("release sign expected")
        };
        assert_eq!(
            (release_version.as_str(), counter, salt),
            ("1.2", 7, Some(Salt(vec![0, 0xff])))
        );
        assert_eq!(squashfs, PathBuf::from("root.squashfs"));
        // The counter is required: no silent 0 that any release passes.
        let e = Cli::try_parse_from([
            "osctl",
            "release",
            "sign",
            "--key",
            "k",
            "--version",
            "1",
            "x",
            "--out",
            "y",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--counter"), "{e}");
        let e = Cli::try_parse_from([
            "osctl",
            "release",
            "sign",
            "--key",
            "k",
            "--version",
            "1",
            "--counter",
            "1",
            "--salt",
            "xyz",
            "x",
            "--out",
            "y",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("even number of hex digits"), "{e}");
    }
}
