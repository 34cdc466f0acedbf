//! The commands that make one call per node and print one answer per node:
//! version, reboot, shutdown, rollback, boot-status, services, restart,
//! health. Each is a call, a JSON form and a text form of its answer.
//!
//! Must never print a node's answer anywhere but through [`Ctx::finish`]
//! (JSON document or table, then the errors), so every command reports
//! failed nodes and sets the exit code the same way.

use matic_proto::v1::*;
use serde_json::json;

use super::{Ctx, lines, write_out};
use crate::output::{self, Format};

impl Ctx {
    /// `osctl version`: osctl's own version, then each node's versions.
    pub(crate) async fn version(&self) -> i32 {
        let r = self
            .fleet
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

    /// `osctl reboot`.
    pub(crate) async fn reboot(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.reboot(RebootRequest {}).await;
                v.map(|_| ()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, |_| json!({}), |ok| lines(ok, |_| "rebooting".into()))
    }

    /// `osctl shutdown`.
    pub(crate) async fn shutdown(&self) -> i32 {
        let r = self
            .fleet
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

    /// `osctl rollback [--no-reboot]`.
    pub(crate) async fn rollback(&self, no_reboot: bool) -> i32 {
        let r = self
            .fleet
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

    /// `osctl boot-status`: one table row per node and slot, then why a
    /// slot has no verified manifest.
    pub(crate) async fn boot_status(&self) -> i32 {
        let r = self
            .fleet
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
            let notes: String = ok
                .iter()
                .map(|(n, v)| output::boot_status_notes(n, v))
                .collect();
            output::table(output::BOOT_STATUS_HEADERS, &rows) + &notes
        })
    }

    /// `osctl services`: one table row per node and service.
    pub(crate) async fn services(&self) -> i32 {
        let r = self
            .fleet
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

    /// `osctl restart SERVICE`.
    pub(crate) async fn restart(&self, service: String) -> i32 {
        let service = &service;
        let r = self
            .fleet
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

    /// `osctl health`: the checks; exit code 1 also when a node answers but is unhealthy.
    /// `osctl time`.
    pub(crate) async fn time(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.time(TimeRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, output::time_json, |ok| {
            let rows: Vec<_> = ok.iter().map(|(n, t)| output::time_row(n, t)).collect();
            let mut s = output::table(output::TIME_HEADERS, &rows);
            for (n, t) in ok {
                for e in &t.errors {
                    s.push_str(&format!("{n}: {}: {}\n", e.server, e.error));
                }
            }
            s
        })
    }

    pub(crate) async fn health(&self) -> i32 {
        let r = self
            .fleet
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
}
