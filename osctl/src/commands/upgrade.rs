//! `osctl upgrade`, `reboot --wait` and `rollback --wait`: the wiring of
//! the rollout ([`crate::upgrade`]) to the command line: the release
//! checked whole first (as `install` does), then the planner over the API
//! driver, reported live and as a final table.
//!
//! Must never hold rollout logic (the planner's) or a wait's judgment (the
//! wait's): it only builds them from the flags.

use futures::future::join_all;

use super::install::{self, InstallSource};
use super::{AnyError, Ctx};
use crate::args::{Timing, UpgradeArgs};
use crate::upgrade::failure::Failure;
use crate::upgrade::node::{ApiNodes, POLL, WaitOpts};
use crate::upgrade::plan::{self, OnFailure, Outcome, Policy, Report};
use crate::upgrade::report::{Live, Progress, Stage};

fn wait_opts(t: &Timing) -> WaitOpts {
    WaitOpts {
        healthy_for: t.healthy_for(),
        timeout: t.timeout(),
        poll: POLL,
    }
}

impl Ctx {
    /// `osctl upgrade RELEASE`.
    pub(crate) async fn upgrade(&self, a: UpgradeArgs) -> Result<i32, AnyError> {
        let live = Live::new(self.format, install::progress(self.format));
        let source = InstallSource {
            src: &a.release,
            insecure: a.insecure,
            sha256: a.sha256,
        };
        // Every local check before any node is contacted.
        let prepared = self.prepare_release(&source, live.multi()).await?;
        let nodes = ApiNodes::new(
            &self.fleet.creds,
            &self.fleet.opts,
            &live,
            wait_opts(&a.timing),
            Some(&prepared),
        );
        let policy = Policy {
            max_unavailable: a.max_unavailable as usize,
            on_failure: if a.rollback_on_failure {
                OnFailure::Rollback
            } else {
                OnFailure::Pause
            },
            before_node: a.before_node,
            after_node: a.after_node,
        };
        let report = plan::run(&nodes, &live, &self.fleet.targets, &policy).await;
        Ok(live.finish(
            &report,
            "rollout halted; the nodes after the failed batch were not touched",
        ))
    }

    /// `osctl reboot --wait`.
    pub(crate) async fn reboot_wait(&self, t: &Timing) -> i32 {
        self.each_waited(t, |n, node| Box::pin(n.reboot_and_wait(node)))
            .await
    }

    /// `osctl rollback --wait`.
    pub(crate) async fn rollback_wait(&self, t: &Timing) -> i32 {
        self.each_waited(t, |n, node| Box::pin(n.rollback_and_wait(node)))
            .await
    }

    /// Every node at once through `f`, reported like a rollout.
    async fn each_waited<F>(&self, t: &Timing, f: F) -> i32
    where
        F: for<'n> Fn(
            &'n ApiNodes<'n>,
            &'n str,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'n>>,
    {
        let live = Live::new(self.format, install::progress(self.format));
        let nodes = ApiNodes::new(
            &self.fleet.creds,
            &self.fleet.opts,
            &live,
            wait_opts(t),
            None,
        );
        let results = join_all(self.fleet.targets.iter().map(|node| {
            let (nodes, live, f) = (&nodes, &live, &f);
            async move {
                let r = f(nodes, node).await;
                live.stage(
                    node,
                    &match &r {
                        Ok(()) => Stage::Done,
                        Err(e) => Stage::Failed(e.clone()),
                    },
                );
                r
            }
        }))
        .await;
        let report = Report {
            halted: results.iter().any(Result::is_err),
            nodes: self
                .fleet
                .targets
                .iter()
                .cloned()
                .zip(results.into_iter().map(|r| match r {
                    Ok(()) => Outcome::Passed,
                    Err(failure) => Outcome::Failed {
                        failure,
                        rollback: None,
                    },
                }))
                .collect(),
        };
        live.finish(&report, "")
    }
}
