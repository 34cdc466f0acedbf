//! `osctl config …`: the machine configuration RPCs, one call per node,
//! printed through [`Ctx::finish`] like every unary command. The agent's
//! refusals (line, field, why) are printed as it words them.
//!
//! Must never check a document itself beyond reading the file: the node
//! is the judge (its schema is the one that applies).

use matic_proto::v1::*;
use serde_json::{Value, json};

use super::{AnyError, Ctx, lines};
use crate::client::ClientError;
use crate::config_args::{ConfigCommand, Mode};
use crate::output;

fn mode(m: Mode) -> i32 {
    match m {
        Mode::Auto => ConfigMode::Auto as i32,
        Mode::NoReboot => ConfigMode::NoReboot as i32,
        Mode::Reboot => ConfigMode::Reboot as i32,
    }
}

fn change_json(c: &ConfigChange) -> Value {
    json!({
        "field": c.field,
        "old": c.has_old.then_some(&c.old),
        "new": c.has_new.then_some(&c.new),
        "effect": c.effect,
    })
}

/// `  field: old → new (effect)` per change.
fn change_lines(changes: &[ConfigChange]) -> String {
    changes
        .iter()
        .map(|c| {
            let side = |has: bool, v: &str| if has { v.to_owned() } else { "(absent)".into() };
            format!(
                "  {}: {} -> {} ({})\n",
                c.field,
                side(c.has_old, &c.old),
                side(c.has_new, &c.new),
                c.effect
            )
        })
        .collect()
}

/// How long `config apply --try` waits for the node's reply.
const TRIAL_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// What a trial whose reply never came means, in words.
fn no_trial_reply(window: u32) -> ClientError {
    ClientError::Other(format!(
        "no reply within {} s: the change may have cut this client off from the node; \
         unless `osctl config confirm` reaches it, the node puts the previous generation \
         back by itself when the {window} s window ends (`osctl config history` shows which)",
        TRIAL_REPLY_WAIT.as_secs()
    ))
}

impl Ctx {
    /// `osctl config …`.
    pub(crate) async fn config(&self, cmd: ConfigCommand) -> Result<i32, AnyError> {
        Ok(match cmd {
            ConfigCommand::Apply {
                file,
                mode: m,
                try_window,
            } => {
                let document = std::fs::read_to_string(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?;
                let req = ConfigApplyRequest {
                    document,
                    mode: mode(m),
                    try_seconds: try_window.map_or(0, |d| d.as_secs() as u32),
                };
                self.config_apply(req).await
            }
            ConfigCommand::Get => self.config_get().await,
            ConfigCommand::History => self.config_history().await,
            ConfigCommand::Diff { a, b } => {
                let (a, b) = match (a, b) {
                    (Some(a), Some(b)) => (a, b),
                    (None, None) => (0, 0),
                    _ => return Err("config diff takes two generations, or none".into()),
                };
                self.config_diff(a, b).await
            }
            ConfigCommand::Confirm => self.config_confirm().await,
            ConfigCommand::Rollback { mode: m } => self.config_rollback(mode(m)).await,
        })
    }

    async fn config_apply(&self, req: ConfigApplyRequest) -> i32 {
        let window = req.try_seconds;
        let r = self
            .fleet
            .each(|_, mut c| {
                let req = req.clone();
                async move {
                    let call = c.client.config_apply(req);
                    // A trial may cut this client off (a wrong address or
                    // route: that is what trying is for); the reply then
                    // never comes, and waiting for it would hang.
                    let v = if window > 0 {
                        match tokio::time::timeout(TRIAL_REPLY_WAIT, call).await {
                            Ok(v) => v,
                            Err(_) => return Err(no_trial_reply(window)),
                        }
                    } else {
                        call.await
                    };
                    v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
                }
            })
            .await;
        self.finish(
            &r,
            |v| {
                json!({
                    "generation": v.generation,
                    "changes": v.changes.iter().map(change_json).collect::<Vec<_>>(),
                    "rebooting": v.rebooting,
                    "reboot_reason": v.reboot_reason,
                    "try_seconds": v.try_seconds,
                    "restarted": v.restarted,
                })
            },
            |ok| {
                ok.iter()
                    .map(|(n, v)| {
                        let mut s = format!("{n}: generation {} applied", v.generation);
                        if v.try_seconds > 0 {
                            s.push_str(&format!(
                                ", on trial for {} s (osctl config confirm keeps it)",
                                v.try_seconds
                            ));
                        }
                        if !v.restarted.is_empty() {
                            s.push_str(&format!(", restarted {}", v.restarted.join(", ")));
                        }
                        if v.rebooting {
                            s.push_str(&format!(", rebooting: {}", v.reboot_reason));
                        }
                        s.push('\n');
                        s + &change_lines(&v.changes)
                    })
                    .collect()
            },
        )
    }

    async fn config_get(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.config_get(ConfigGetRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(
            &r,
            |v| {
                json!({
                    "generation": v.generation,
                    "document": v.document,
                    "trial": v.trial.as_ref().map(|t| json!({
                        "generation": t.generation,
                        "seconds_left": t.seconds_left,
                        "needs_reboot": t.needs_reboot,
                        "waiting_for_reboot": t.waiting_for_reboot,
                    })),
                })
            },
            |ok| {
                ok.iter()
                    .map(|(n, v)| {
                        let mut head = if v.generation == 0 {
                            format!("# {n}: no configuration applied (the kernel command line's defaults)")
                        } else {
                            format!("# {n}: generation {}", v.generation)
                        };
                        if let Some(t) = &v.trial {
                            head.push_str(&match (t.waiting_for_reboot, t.seconds_left) {
                                (true, _) => format!(", generation {} on trial (reboot pending)", t.generation),
                                (false, s) => format!(", generation {} on trial: {s} s left", t.generation),
                            });
                        }
                        let body = if v.document.is_empty() || v.document.ends_with('\n') {
                            v.document.clone()
                        } else {
                            format!("{}\n", v.document)
                        };
                        format!("{head}\n{body}")
                    })
                    .collect()
            },
        )
    }

    async fn config_history(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.config_history(ConfigHistoryRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(
            &r,
            |v| {
                json!(
                    v.generations
                        .iter()
                        .map(|g| json!({
                            "id": g.id,
                            "origin": g.origin,
                            "parent": (g.parent > 0).then_some(g.parent),
                            "time": (g.time > 0).then_some(g.time),
                            "current": g.current,
                        }))
                        .collect::<Vec<_>>()
                )
            },
            |ok| {
                let rows: Vec<Vec<String>> = ok
                    .iter()
                    .flat_map(|(n, v)| {
                        v.generations.iter().map(move |g| {
                            vec![
                                n.to_string(),
                                g.id.to_string(),
                                if g.current { "*".into() } else { String::new() },
                                g.origin.clone(),
                                if g.parent > 0 {
                                    g.parent.to_string()
                                } else {
                                    "-".into()
                                },
                                (g.time > 0)
                                    .then(|| output::boots::utc(g.time * 1000))
                                    .flatten()
                                    .unwrap_or_else(|| "-".into()),
                            ]
                        })
                    })
                    .collect();
                output::table(
                    &[
                        "NODE",
                        "GEN",
                        "CURRENT",
                        "ORIGIN",
                        "PARENT",
                        "WRITTEN (UTC)",
                    ],
                    &rows,
                )
            },
        )
    }

    async fn config_diff(&self, a: u64, b: u64) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.config_diff(ConfigDiffRequest { a, b }).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(
            &r,
            |v| json!({"a": v.a, "b": v.b, "changes": v.changes.iter().map(change_json).collect::<Vec<_>>()}),
            |ok| {
                ok.iter()
                    .map(|(n, v)| {
                        let head = format!("{n}: generation {} -> {}: {} changes\n", v.a, v.b, v.changes.len());
                        head + &change_lines(&v.changes)
                    })
                    .collect()
            },
        )
    }

    async fn config_confirm(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.config_confirm(ConfigConfirmRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(
            &r,
            |v| json!({"generation": v.generation}),
            |ok| lines(ok, |v| format!("generation {} confirmed", v.generation)),
        )
    }

    async fn config_rollback(&self, mode: i32) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c
                    .client
                    .config_rollback(ConfigRollbackRequest { mode })
                    .await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(
            &r,
            |v| {
                json!({
                    "generation": v.generation,
                    "changes": v.changes.iter().map(change_json).collect::<Vec<_>>(),
                    "rebooting": v.rebooting,
                    "reboot_reason": v.reboot_reason,
                    "restarted": v.restarted,
                })
            },
            |ok| {
                ok.iter()
                    .map(|(n, v)| {
                        let mut s = format!("{n}: rolled back as generation {}", v.generation);
                        if !v.restarted.is_empty() {
                            s.push_str(&format!(", restarted {}", v.restarted.join(", ")));
                        }
                        if v.rebooting {
                            s.push_str(&format!(", rebooting: {}", v.reboot_reason));
                        }
                        s.push('\n');
                        s + &change_lines(&v.changes)
                    })
                    .collect()
            },
        )
    }
}
