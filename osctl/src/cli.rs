//! osctl's entry point: parse the command line ([`crate::args`]), start the
//! async runtime, handle the commands that need no node, resolve the config
//! into the target nodes and their credentials, hand the command to its body
//! (`commands`), and turn the outcome into the exit code: 0, or 1 when any
//! node failed (or, for `health`, is unhealthy) or an error that is no one
//! node's (printed as `osctl: sentence`) stopped the command.
//!
//! Must never hold a command's logic or output format: it only wires the
//! parsed arguments to a body.

use std::time::Duration;

use clap::Parser;
use matic_proto::v1::{ContainerLogsRequest, LogsRequest};

use crate::args::{BootsCommand, Cli, Command, ImageCommand};
use crate::client::{Credentials, Fleet, Options};
use crate::commands::install::InstallSource;
use crate::commands::{AnyError, Ctx, local, release};
use crate::config::{self, Config, Overrides};

/// `reboot --timeout 5m` without `--wait` would wait for nothing.
const WITHOUT_WAIT: &str = "--healthy-for and --timeout only apply with --wait";

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

/// Run `cmd`; the exit code, or an error that is not any one node's.
pub async fn run(cli: Cli) -> Result<i32, AnyError> {
    match &cli.command {
        Command::GenCerts { out, sans, roles } => return local::gen_certs(out, sans, roles),
        Command::Completion { shell } => return Ok(local::completion(*shell)),
        Command::Version { client: true } => return Ok(local::client_version()),
        Command::Release { command } => return release::run(command, cli.output),
        // Before any config is looked for: the flag itself is the mistake.
        Command::Install {
            image_version: Some(_),
            ..
        } => return Err(crate::image::ImageError::VersionFlag.into()),
        Command::Reboot { wait } | Command::Rollback { wait, .. }
            if !wait.wait && wait.timing.given() =>
        {
            return Err(WITHOUT_WAIT.into());
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
        fleet: Fleet {
            targets: resolved.targets.clone(),
            creds: Credentials {
                ca_pem: resolved.ca_pem,
                crt_pem: resolved.crt_pem,
                key_pem: resolved.key_pem,
            },
            opts: Options {
                connect_timeout: Duration::from_secs(cli.connect_timeout.max(1)),
            },
        },
        format: cli.output,
    };
    dispatch(&ctx, cli.command).await
}

/// Hand a node command to its body.
async fn dispatch(ctx: &Ctx, cmd: Command) -> Result<i32, AnyError> {
    let code = match cmd {
        Command::GenCerts { .. } | Command::Completion { .. } | Command::Release { .. } => {
            unreachable!("handled")
        }
        Command::Version { .. } => ctx.version().await,
        Command::Reboot { wait } if wait.wait => ctx.reboot_wait(&wait.timing).await,
        Command::Reboot { .. } => ctx.reboot().await,
        Command::Shutdown => ctx.shutdown().await,
        Command::Rollback { wait, .. } if wait.wait => ctx.rollback_wait(&wait.timing).await,
        Command::Rollback { no_reboot, .. } => ctx.rollback(no_reboot).await,
        Command::Upgrade(args) => ctx.upgrade(args).await?,
        Command::BootStatus => ctx.boot_status().await,
        Command::Services => ctx.services().await,
        Command::Restart { service } => ctx.restart(service).await,
        Command::Health => ctx.health().await,
        Command::Time => ctx.time().await,
        Command::Config { command } => ctx.config(command).await?,
        Command::Images => ctx.images().await,
        Command::Image {
            command: ImageCommand::Import { file },
        } => ctx.image_import(&file).await?,
        Command::Containers => ctx.containers().await,
        Command::Logs {
            container: Some(container),
            tail,
            ..
        } => {
            let req = ContainerLogsRequest {
                container,
                tail_lines: tail,
            };
            ctx.container_logs(req).await
        }
        Command::Logs {
            service,
            follow,
            tail,
            boot,
            container: None,
        } => {
            // clap requires one of SERVICE and --container.
            let service = service.unwrap_or_default();
            let req = LogsRequest {
                service,
                tail_lines: tail,
                follow,
                boot,
            };
            ctx.logs(req).await
        }
        Command::Dmesg { follow, boot } => ctx.dmesg(follow, boot).await,
        Command::Boots {
            limit,
            command: None,
        } => ctx.boots(limit).await,
        Command::Boots {
            command: Some(BootsCommand::Show { boot }),
            ..
        } => ctx.boot_timeline(boot).await,
        Command::Install {
            release,
            reboot,
            image_version: _,
            insecure,
            sha256,
        } => {
            let source = InstallSource {
                src: &release,
                insecure,
                sha256,
            };
            ctx.install(source, reboot).await?
        }
    };
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_flags_without_wait_are_refused_before_any_config() {
        for args in [
            &["osctl", "reboot", "--timeout", "5m"][..],
            &["osctl", "rollback", "--healthy-for", "1m"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let e = run(cli).await.unwrap_err();
            assert_eq!(e.to_string(), WITHOUT_WAIT, "{args:?}");
        }
    }
}
