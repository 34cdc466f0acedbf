//! Command-line parsing (clap derive) and the command implementations: every
//! node call runs on all target nodes concurrently; results come back in the
//! order the nodes were given, each node's failure is printed as
//! `NODE: sentence` on stderr, and the exit code is 1 if any node failed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use matic_proto::v1::*;

use crate::client::{self, ClientError, Connection, Credentials, Options};
use crate::config::{self, Config, Overrides};
use crate::image;
use crate::output::{self, Format};
use crate::pki::{self, Role};

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
    /// Write an OS image into each node's inactive slot.
    Install {
        /// Image file, or https URL (downloaded to a temporary file first).
        image: String,
        /// Reboot into the new image once it is installed.
        #[arg(long)]
        reboot: bool,
        /// Version recorded for the image [default: from the file name,
        /// e.g. maticos-1.2.3.squashfs gives 1.2.3].
        #[arg(long = "version", value_name = "VERSION")]
        image_version: Option<String>,
        /// Accept a plain http:// URL (a redirect from https to http is
        /// refused all the same).
        #[arg(long)]
        insecure: bool,
        /// The image's expected SHA-256 (64 hex digits, as sha256sum
        /// prints it); checked before anything is sent to a node.
        #[arg(long, value_name = "HEX", value_parser = image::parse_sha256)]
        sha256: Option<[u8; 32]>,
    },
    /// Reboot the nodes.
    Reboot,
    /// Power the nodes off.
    Shutdown,
    /// Boot the other slot next (if it will boot), then reboot.
    Rollback {
        /// Switch slots but do not reboot.
        #[arg(long)]
        no_reboot: bool,
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
    /// A service's captured output.
    Logs {
        service: String,
        /// Keep printing new output.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (0: all).
        #[arg(long, default_value_t = 0)]
        tail: u32,
    },
    /// The kernel log.
    Dmesg {
        /// Keep printing new messages.
        #[arg(short, long)]
        follow: bool,
    },
    /// The agent's health checks (exit code 1 when a node is unhealthy).
    Health,
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    crate::install_crypto_provider();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("osctl: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osctl: {e}");
            1
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;
type NodeResults<T> = Vec<(String, Result<T, ClientError>)>;

/// Run `cmd`; the exit code, or an error that is not any one node's.
pub async fn run(cli: Cli) -> Result<i32, AnyError> {
    match &cli.command {
        Command::GenCerts { out, sans, roles } => return gen_certs(out, sans, roles),
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "osctl", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Version { client: true } => {
            println!("osctl {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        _ => {}
    }
    let path = config::config_path(
        cli.config.as_deref(),
        std::env::var(config::ENV_CONFIG).ok().as_deref(),
    );
    let overrides = Overrides {
        config: cli.config.clone(),
        context: cli.context.clone(),
        endpoints: config::split_list(&cli.endpoints),
        nodes: config::split_list(&cli.nodes),
    };
    let resolved = Config::load(&path)?.resolve(&path, &overrides)?;
    let ctx = Ctx {
        targets: resolved.targets.clone(),
        creds: Credentials {
            ca_pem: resolved.ca_pem,
            crt_pem: resolved.crt_pem,
            key_pem: resolved.key_pem,
        },
        opts: Options {
            connect_timeout: Duration::from_secs(cli.connect_timeout.max(1)),
        },
        format: cli.output,
    };
    ctx.run(cli.command).await
}

/// What every node command needs.
struct Ctx {
    targets: Vec<String>,
    creds: Credentials,
    opts: Options,
    format: Format,
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
    /// Connect to every target and run `f` on each, concurrently; results in
    /// target order.
    async fn each<T, F, Fut>(&self, f: F) -> NodeResults<T>
    where
        F: Fn(String, Connection) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let f = &f;
        let futs = self.targets.iter().map(|t| async move {
            let r = match client::connect(t, &self.creds, &self.opts).await {
                Ok(c) => f(t.clone(), c).await,
                Err(e) => Err(e),
            };
            (t.clone(), r)
        });
        futures::future::join_all(futs).await
    }

    /// Print a non-streaming result: JSON document, or `text` for the
    /// successful nodes; then the errors.
    fn finish<T>(
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

    async fn run(&self, cmd: Command) -> Result<i32, AnyError> {
        use serde_json::json;
        let code = match cmd {
            Command::GenCerts { .. } | Command::Completion { .. } => unreachable!("handled"),
            Command::Version { .. } => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.version(VersionRequest {}).await;
                        v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                    })
                    .await;
                if self.format == Format::Text {
                    write_out(format!("osctl {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
                }
                self.finish(&r, output::version_json, |ok| {
                    let rows: Vec<_> = ok.iter().map(|(n, v)| output::version_row(n, v)).collect();
                    output::table(output::VERSION_HEADERS, &rows)
                })
            }
            Command::Reboot => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.reboot(RebootRequest {}).await;
                        v.map(|_| ()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(&r, |_| json!({}), |ok| lines(ok, |_| "rebooting".into()))
            }
            Command::Shutdown => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.shutdown(ShutdownRequest {}).await;
                        v.map(|_| ()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(
                    &r,
                    |_| json!({}),
                    |ok| lines(ok, |_| "shutting down".into()),
                )
            }
            Command::Rollback { no_reboot } => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.rollback(RollbackRequest { no_reboot }).await;
                        v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(
                    &r,
                    |v| json!({"slot": v.slot, "rebooting": v.rebooting}),
                    |ok| {
                        lines(ok, |v| {
                            format!(
                                "next boot from slot {}{}",
                                v.slot,
                                if v.rebooting { ", rebooting" } else { "" }
                            )
                        })
                    },
                )
            }
            Command::BootStatus => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.boot_status(BootStatusRequest {}).await;
                        v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(&r, output::boot_status_json, |ok| {
                    let rows: Vec<_> = ok
                        .iter()
                        .flat_map(|(n, v)| output::boot_status_rows(n, v))
                        .collect();
                    output::table(output::BOOT_STATUS_HEADERS, &rows)
                })
            }
            Command::Services => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.service_list(ServiceListRequest {}).await;
                        v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(&r, output::services_json, |ok| {
                    let rows: Vec<_> = ok
                        .iter()
                        .flat_map(|(n, v)| output::services_rows(n, v))
                        .collect();
                    output::table(output::SERVICES_HEADERS, &rows)
                })
            }
            Command::Restart { service } => {
                let service = &service;
                let r = self
                    .each(|_, mut c| async move {
                        let req = ServiceRestartRequest {
                            name: service.clone(),
                        };
                        let v = c.client.service_restart(req).await;
                        v.map(|_| ()).map_err(|s| c.explain(&s))
                    })
                    .await;
                self.finish(
                    &r,
                    |_| json!({}),
                    |ok| lines(ok, |_| format!("restarting {service}")),
                )
            }
            Command::Health => {
                let r = self
                    .each(|_, mut c| async move {
                        let v = c.client.health(HealthRequest {}).await;
                        v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                    })
                    .await;
                let code = self.finish(&r, output::health_json, |ok| {
                    let rows: Vec<_> = ok
                        .iter()
                        .flat_map(|(n, v)| output::health_rows(n, v))
                        .collect();
                    output::table(output::HEALTH_HEADERS, &rows)
                });
                let unhealthy: Vec<&str> = r
                    .iter()
                    .filter(|(_, v)| v.as_ref().is_ok_and(|h| !h.healthy))
                    .map(|(n, _)| n.as_str())
                    .collect();
                for n in &unhealthy {
                    eprintln!("{n}: unhealthy");
                }
                if unhealthy.is_empty() { code } else { 1 }
            }
            Command::Logs {
                service,
                follow,
                tail,
            } => {
                let req = LogsRequest {
                    service,
                    tail_lines: tail,
                    follow,
                };
                self.logs(req).await
            }
            Command::Dmesg { follow } => self.dmesg(follow).await,
            Command::Install {
                image,
                reboot,
                image_version,
                insecure,
                sha256,
            } => {
                let source = InstallSource {
                    src: &image,
                    insecure,
                    sha256,
                };
                self.install(source, reboot, image_version).await?
            }
        };
        Ok(code)
    }

    /// Whether stream lines get a `node: ` prefix: only with several nodes,
    /// so a single node's log can be redirected to a file unchanged.
    fn prefix_streams(&self) -> bool {
        self.targets.len() > 1
    }

    async fn logs(&self, req: LogsRequest) -> i32 {
        let prefix = self.prefix_streams();
        let json = self.format == Format::Json;
        let req = &req;
        let r = self
            .each(|node, mut c| async move {
                let mut s = c
                    .client
                    .logs(req.clone())
                    .await
                    .map_err(|s| c.explain(&s))?
                    .into_inner();
                let mut p = output::LinePrefixer::new(&node);
                let mut jl = output::LinePrefixer::new("");
                loop {
                    match s.next().await {
                        Some(Ok(m)) => {
                            if json {
                                emit_json_lines(&node, &jl.push(&m.data));
                            } else if prefix {
                                write_out(&p.push(&m.data));
                            } else {
                                write_out(&m.data);
                            }
                        }
                        Some(Err(st)) => {
                            write_out(&p.finish());
                            return Err(c.explain(&st));
                        }
                        None => break,
                    }
                }
                if json {
                    emit_json_lines(&node, &jl.finish());
                } else if prefix {
                    write_out(&p.finish());
                }
                Ok(())
            })
            .await;
        report_errors(&r)
    }

    async fn dmesg(&self, follow: bool) -> i32 {
        let prefix = self.prefix_streams();
        let json = self.format == Format::Json;
        let r = self
            .each(|node, mut c| async move {
                let mut s = c
                    .client
                    .dmesg(DmesgRequest { follow })
                    .await
                    .map_err(|s| c.explain(&s))?
                    .into_inner();
                while let Some(m) = s.next().await {
                    let m = m.map_err(|st| c.explain(&st))?;
                    let mut out = String::new();
                    for k in &m.messages {
                        if json {
                            out += &output::kmsg_json(&node, k).to_string();
                        } else if prefix {
                            out += &format!("{node}: {}", output::kmsg_line(k));
                        } else {
                            out += &output::kmsg_line(k);
                        }
                        out.push('\n');
                    }
                    write_out(out.as_bytes());
                }
                Ok(())
            })
            .await;
        report_errors(&r)
    }

    async fn install(
        &self,
        source: InstallSource<'_>,
        reboot: bool,
        version: Option<String>,
    ) -> Result<i32, AnyError> {
        let src = source.src;
        // The scheme first: no other complaint about a URL refused anyway.
        if image::is_url(src) {
            image::check_scheme(src, source.insecure)?;
        }
        let version = match version {
            Some(v) => v,
            None => image::version_from_name(src)?,
        };
        let multi = MultiProgress::with_draw_target(
            if self.format == Format::Json || !std::io::stderr().is_terminal() {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        let bytes_style = ProgressStyle::with_template(
            "{prefix:>15} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> ");
        // A URL is downloaded first, so every node streams from a local file
        // and the digest covers exactly what is sent.
        let _download;
        let path = if image::is_url(src) {
            let tmp = image::TempFile::new("download");
            let bar = multi.add(ProgressBar::no_length());
            bar.set_style(bytes_style.clone());
            bar.set_prefix("downloading");
            image::download(src, source.insecure, &tmp.0, |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            let p = tmp.0.clone();
            _download = tmp;
            p
        } else {
            PathBuf::from(src)
        };
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|source| image::ImageError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        if size == 0 {
            return Err(image::ImageError::Empty(path).into());
        }
        let hbar = multi.add(ProgressBar::new(size));
        hbar.set_style(bytes_style.clone());
        hbar.set_prefix("sha256");
        let (digest, hashed) = image::sha256_file(&path, |n| hbar.set_position(n)).await?;
        hbar.finish_and_clear();
        // Before any node is contacted: a wrong image is refused whole.
        image::check_digest(src, &digest, source.sha256.as_ref())?;
        let header = InstallHeader {
            size: hashed,
            sha256: digest.to_vec(),
            version,
        };
        let (multi, header, path, style) = (&multi, &header, &path, &bytes_style);
        let r = self
            .each(|node, mut c| async move {
                let bar = multi.add(ProgressBar::new(header.size));
                bar.set_style(style.clone());
                bar.set_prefix(node.clone());
                let b = bar.clone();
                let failure = image::ReadFailure::default();
                let stream = image::request_stream(
                    path.clone(),
                    header.clone(),
                    move |n| b.inc(n),
                    failure.clone(),
                );
                let res = c.client.install(stream).await;
                bar.finish_and_clear();
                if let Some(e) = failure.lock().unwrap().take() {
                    return Err(ClientError::Other(
                        image::ImageError::Read {
                            path: path.clone(),
                            source: e,
                        }
                        .to_string(),
                    ));
                }
                let resp = res.map_err(|s| c.explain(&s))?.into_inner();
                let mut rebooting = false;
                if reboot {
                    c.client.reboot(RebootRequest {}).await.map_err(|s| {
                        ClientError::Other(format!(
                            "installed {} into slot {}, but the reboot failed: {}",
                            resp.version,
                            resp.slot,
                            c.explain(&s)
                        ))
                    })?;
                    rebooting = true;
                }
                Ok((resp, rebooting))
            })
            .await;
        let _ = multi.clear();
        Ok(self.finish(
            &r,
            |(v, rebooting)| {
                serde_json::json!({
                    "slot": v.slot,
                    "version": v.version,
                    "bytes_written": v.bytes_written,
                    "tries": v.tries,
                    "rebooting": rebooting,
                })
            },
            |ok| {
                lines(ok, |(v, rebooting)| {
                    format!(
                        "installed {} into slot {} ({} bytes, {} tries){}",
                        v.version,
                        v.slot,
                        v.bytes_written,
                        v.tries,
                        if *rebooting { ", rebooting" } else { "" }
                    )
                })
            },
        ))
    }
}

/// Where `osctl install` takes its image from and what it must be.
struct InstallSource<'a> {
    /// A file path or a URL.
    src: &'a str,
    /// `--insecure`: accept an http:// URL.
    insecure: bool,
    /// `--sha256`: the digest the image must have.
    sha256: Option<[u8; 32]>,
}

/// `NODE: sentence` per successful node.
fn lines<T>(ok: &[(&str, &T)], f: impl Fn(&T) -> String) -> String {
    ok.iter().map(|(n, v)| format!("{n}: {}\n", f(v))).collect()
}

/// Write to stdout and flush. When the reader has gone (`osctl logs -f X |
/// head`), stop quietly like other command-line tools rather than streaming
/// into a closed pipe forever (Rust ignores SIGPIPE).
fn write_out(b: &[u8]) {
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

fn emit_json_lines(node: &str, prefixed: &[u8]) {
    // `prefixed` came from a LinePrefixer with an empty node: lines start
    // with ": ".
    let text = String::from_utf8_lossy(prefixed);
    let mut out = String::new();
    for l in text.lines() {
        let line = l.strip_prefix(": ").unwrap_or(l);
        out += &serde_json::json!({"node": node, "line": line}).to_string();
        out.push('\n');
    }
    write_out(out.as_bytes());
}

fn gen_certs(
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn install_flags() {
        let c = Cli::try_parse_from([
            "osctl",
            "install",
            "img.squashfs",
            "--reboot",
            "--version",
            "9",
        ])
        .unwrap();
        match c.command {
            Command::Install {
                image,
                reboot,
                image_version,
                insecure,
                sha256,
            } => {
                assert_eq!(image, "img.squashfs");
                assert!(reboot);
                assert_eq!(image_version.as_deref(), Some("9"));
                assert!(!insecure);
                assert_eq!(sha256, None);
            }
            other => panic!("{other:?}"),
        }
        let hex = "00ff".repeat(16);
        let c = Cli::try_parse_from([
            "osctl",
            "install",
            "x-1.img",
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
            Cli::try_parse_from(["osctl", "install", "x-1.img", "--sha256", "abc"]).unwrap_err();
        assert!(
            e.to_string().contains("expected 64 hexadecimal digits"),
            "{e}"
        );
    }
}
