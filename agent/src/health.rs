//! Health checks: what must hold before the boot is marked successful and
//! what `Health` reports. containerd is checked only when init supervises it
//! (it is in the services file and not `skipped`).
use std::path::Path;
use std::time::Duration;

use matic_contract::services::{HELD_LIMIT_MS, State};
use matic_proto::v1::{HealthCheck, HealthResponse};

use crate::config::Config;
use crate::init_link;

fn check(name: &str, r: Result<String, String>) -> HealthCheck {
    match r {
        Ok(detail) => HealthCheck {
            name: name.into(),
            ok: true,
            detail,
        },
        Err(detail) => HealthCheck {
            name: name.into(),
            ok: false,
            detail,
        },
    }
}

async fn containerd(socket: &Path) -> Result<String, String> {
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::UnixStream::connect(socket),
    )
    .await
    {
        Ok(Ok(_)) => Ok(format!("answering on {}", socket.display())),
        Ok(Err(e)) => Err(format!("connecting to {}: {e}", socket.display())),
        Err(_) => Err(format!("connecting to {}: timed out", socket.display())),
    }
}

/// Runs every check. `disk` is the GPT device (None when unknown).
pub async fn run(cfg: &Config, disk: Option<&Path>) -> HealthResponse {
    let mut checks = Vec::new();
    let services = init_link::read_services(&cfg.services_file());
    let containerd_state = match &services {
        Ok(list) => list
            .iter()
            .find(|s| s.name == "containerd")
            .map(|s| s.state),
        Err(_) => None,
    };
    checks.push(check(
        "init",
        services
            .map(|l| format!("{} services supervised", l.len()))
            .map_err(|e| e.to_string()),
    ));
    let gpt = match disk {
        Some(d) => {
            let d = d.to_owned();
            tokio::task::spawn_blocking(move || {
                crate::slots::read_table(&d).map(|_| format!("GPT on {} readable", d.display()))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        }
        None => Err("no disk: neither --disk nor disk= in the boot file".into()),
    };
    checks.push(check("disk", gpt));
    match containerd_state {
        None | Some(State::Skipped) => {}
        // Not started yet on purpose: say so rather than "connection refused".
        Some(State::Held) => checks.push(check(
            "containerd",
            Err(format!(
                "held: init starts it once the agent listens (at most {} s)",
                HELD_LIMIT_MS / 1000
            )),
        )),
        Some(_) => checks.push(check(
            "containerd",
            containerd(&cfg.containerd_socket).await,
        )),
    }
    HealthResponse {
        healthy: checks.iter().all(|c| c.ok),
        checks,
    }
}
