//! The rollout planner: which nodes to upgrade, in which batches, and when
//! to stop. Pure logic over the [`Nodes`] trait (the API driver in
//! [`super::node`], a fake node set in the tests), so every rule here is
//! unit-tested without a network:
//!
//! - every node's state is read first; a node already running the release
//!   from a slot marked successful is skipped (a rerun resumes), and a
//!   node whose state cannot be read halts the rollout before any node is
//!   touched (it would fail in its batch anyway, after others were);
//! - the others go in batches of at most `max_unavailable`, in the order
//!   given; a batch's nodes run at once: `--before-node` hook, upgrade,
//!   `--after-node` hook;
//! - the first batch with a failed node halts the rollout: no node of a
//!   later batch is touched. With [`OnFailure::Rollback`] the failed nodes
//!   that may run the new release are rolled back and waited for.
//!
//! Must never: talk to a node or print (that is the driver's and the
//! report's), start a batch before the previous one has passed, or roll
//! back a node whose failure says it is not on the new release.

use futures::future::join_all;

use super::failure::{Failure, Hook};
use super::report::{Progress, Stage};

/// What the planner needs of a node set.
#[allow(async_fn_in_trait)] // used with concrete types only, never boxed
pub trait Nodes {
    /// Whether `node` already runs the release from a slot marked
    /// successful.
    async fn is_done(&self, node: &str) -> Result<bool, Failure>;
    /// Install the release, reboot, and wait until the node passes.
    async fn upgrade(&self, node: &str) -> Result<(), Failure>;
    /// Boot the other slot again and wait until the node passes.
    async fn roll_back(&self, node: &str) -> Result<(), Failure>;
    /// Run `cmd` for `node` on the operator's machine.
    async fn hook(&self, hook: Hook, cmd: &str, node: &str) -> Result<(), Failure>;
}

/// What to do with the nodes of a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Leave them as they are, for a person to look at (the default).
    Pause,
    /// Roll them back to the slot they ran before and wait for that.
    Rollback,
}

/// The rollout's rules, from the command line.
#[derive(Debug, Clone)]
pub struct Policy {
    /// At most this many nodes upgrading at once (at least 1).
    pub max_unavailable: usize,
    pub on_failure: OnFailure,
    pub before_node: Option<String>,
    pub after_node: Option<String>,
}

/// What became of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already ran the release from a successful slot.
    Skipped,
    /// Upgraded (or rebooted) and passed the wait.
    Passed,
    /// Failed; with the rollback's result when one was made.
    Failed {
        failure: Failure,
        rollback: Option<Result<(), Failure>>,
    },
    /// Not touched: the rollout halted first.
    Untouched,
}

/// The rollout's result: each node's outcome, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub nodes: Vec<(String, Outcome)>,
    /// A node failed (in its batch or when its state was read).
    pub halted: bool,
}

/// Run the rollout of `targets` by `policy` on `nodes`.
pub async fn run<N: Nodes>(
    nodes: &N,
    progress: &dyn Progress,
    targets: &[String],
    policy: &Policy,
) -> Report {
    for t in targets {
        progress.stage(t, &Stage::Checking);
    }
    let states = join_all(targets.iter().map(|t| nodes.is_done(t))).await;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(targets.len());
    let mut todo = Vec::new();
    let mut halted = false;
    for (i, (t, s)) in targets.iter().zip(states).enumerate() {
        outcomes.push(match s {
            Ok(true) => {
                progress.stage(t, &Stage::Skipped);
                Outcome::Skipped
            }
            Ok(false) => {
                todo.push(i);
                Outcome::Untouched
            }
            Err(failure) => {
                halted = true;
                progress.stage(t, &Stage::Failed(failure.clone()));
                Outcome::Failed {
                    failure,
                    rollback: None,
                }
            }
        });
    }
    if halted {
        for &i in &todo {
            progress.stage(&targets[i], &Stage::Untouched);
        }
        return report(targets, outcomes, true);
    }
    let batches: Vec<&[usize]> = todo.chunks(policy.max_unavailable.max(1)).collect();
    for (b, batch) in batches.iter().enumerate() {
        let results = join_all(batch.iter().map(|&i| one(nodes, &targets[i], policy))).await;
        let mut failed = Vec::new();
        for (&i, r) in batch.iter().zip(results) {
            outcomes[i] = match r {
                Ok(()) => {
                    progress.stage(&targets[i], &Stage::Done);
                    Outcome::Passed
                }
                Err(failure) => {
                    progress.stage(&targets[i], &Stage::Failed(failure.clone()));
                    failed.push(i);
                    Outcome::Failed {
                        failure,
                        rollback: None,
                    }
                }
            };
        }
        if failed.is_empty() {
            continue;
        }
        if policy.on_failure == OnFailure::Rollback {
            roll_back(nodes, progress, targets, &failed, &mut outcomes).await;
        }
        for later in &batches[b + 1..] {
            for &i in *later {
                progress.stage(&targets[i], &Stage::Untouched);
            }
        }
        return report(targets, outcomes, true);
    }
    report(targets, outcomes, false)
}

/// One node of a batch: its hooks around its upgrade.
async fn one<N: Nodes>(nodes: &N, node: &str, policy: &Policy) -> Result<(), Failure> {
    if let Some(cmd) = &policy.before_node {
        nodes.hook(Hook::Before, cmd, node).await?;
    }
    nodes.upgrade(node).await?;
    if let Some(cmd) = &policy.after_node {
        nodes.hook(Hook::After, cmd, node).await?;
    }
    Ok(())
}

/// Roll back, at once, the failed nodes that may run the new release.
async fn roll_back<N: Nodes>(
    nodes: &N,
    progress: &dyn Progress,
    targets: &[String],
    failed: &[usize],
    outcomes: &mut [Outcome],
) {
    let wanted: Vec<usize> = failed
        .iter()
        .copied()
        .filter(|&i| {
            matches!(&outcomes[i], Outcome::Failed { failure, .. } if failure.check.rollback_wanted())
        })
        .collect();
    let results = join_all(wanted.iter().map(|&i| {
        progress.stage(&targets[i], &Stage::RollingBack);
        nodes.roll_back(&targets[i])
    }))
    .await;
    for (&i, r) in wanted.iter().zip(results) {
        progress.stage(
            &targets[i],
            &match &r {
                Ok(()) => Stage::RolledBack,
                Err(f) => Stage::Failed(f.clone()),
            },
        );
        if let Outcome::Failed { rollback, .. } = &mut outcomes[i] {
            *rollback = Some(r);
        }
    }
}

fn report(targets: &[String], outcomes: Vec<Outcome>, halted: bool) -> Report {
    Report {
        nodes: targets.iter().cloned().zip(outcomes).collect(),
        halted,
    }
}
