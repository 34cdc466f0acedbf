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

impl Outcome {
    /// The outcome's word (the report's RESULT column, the JSON `result`).
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped",
            Outcome::Passed => "done",
            Outcome::Untouched => "untouched",
            Outcome::Failed { rollback: None, .. } => "failed",
            Outcome::Failed {
                rollback: Some(Ok(())),
                ..
            } => "rolled-back",
            Outcome::Failed {
                rollback: Some(Err(_)),
                ..
            } => "rollback-failed",
        }
    }
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

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::upgrade::failure::Check;

    /// A node set in memory: which nodes run the release, which fail
    /// where, and a log of every call in the order made.
    #[derive(Default)]
    struct Fake {
        done: Mutex<HashSet<String>>,
        unreadable: HashSet<&'static str>,
        fails: HashMap<&'static str, Check>,
        hook_fails: HashSet<(&'static str, &'static str)>,
        log: Mutex<Vec<String>>,
        active: AtomicUsize,
        max_active: AtomicUsize,
    }

    impl Fake {
        fn log(&self, s: String) {
            self.log.lock().unwrap().push(s);
        }
        fn calls(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Nodes for Fake {
        async fn is_done(&self, node: &str) -> Result<bool, Failure> {
            if self.unreadable.contains(node) {
                return Err(Failure::new(Check::Unreachable, "connection refused"));
            }
            Ok(self.done.lock().unwrap().contains(node))
        }
        async fn upgrade(&self, node: &str) -> Result<(), Failure> {
            self.log(format!("upgrade {node}"));
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(now, Ordering::SeqCst);
            // Let the other nodes of the batch start meanwhile.
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.log(format!("end {node}"));
            if let Some(c) = self.fails.get(node) {
                return Err(Failure::new(c.clone(), "made to fail"));
            }
            self.done.lock().unwrap().insert(node.to_string());
            Ok(())
        }
        async fn roll_back(&self, node: &str) -> Result<(), Failure> {
            self.log(format!("rollback {node}"));
            Ok(())
        }
        async fn hook(&self, hook: Hook, cmd: &str, node: &str) -> Result<(), Failure> {
            self.log(format!("{} {cmd} {node}", hook.name()));
            if self.hook_fails.contains(&(hook.name(), node)) {
                return Err(Failure::new(Check::Hook(hook), "exited with status 1"));
            }
            Ok(())
        }
    }

    /// Records every stage reported.
    #[derive(Default)]
    struct Rec(Mutex<Vec<(String, Stage)>>);
    impl Progress for Rec {
        fn stage(&self, node: &str, stage: &Stage) {
            self.0.lock().unwrap().push((node.into(), stage.clone()));
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn policy(max: usize) -> Policy {
        Policy {
            max_unavailable: max,
            on_failure: OnFailure::Pause,
            before_node: None,
            after_node: None,
        }
    }

    async fn go(fake: &Fake, nodes: &[&str], p: &Policy) -> Report {
        run(fake, &Rec::default(), &names(nodes), p).await
    }

    fn outcomes(r: &Report) -> Vec<&'static str> {
        r.nodes.iter().map(|(_, o)| o.word()).collect()
    }

    #[tokio::test]
    async fn batches_hold_at_most_max_unavailable_nodes_and_run_in_order() {
        let fake = Fake::default();
        let r = go(&fake, &["a", "b", "c", "d", "e"], &policy(2)).await;
        assert!(!r.halted);
        assert_eq!(outcomes(&r), ["done"; 5]);
        assert_eq!(fake.max_active.load(Ordering::SeqCst), 2);
        assert_eq!(
            fake.calls(),
            [
                "upgrade a",
                "upgrade b",
                "end a",
                "end b",
                "upgrade c",
                "upgrade d",
                "end c",
                "end d",
                "upgrade e",
                "end e"
            ]
        );
        // The default: one node at a time.
        let fake = Fake::default();
        go(&fake, &["a", "b", "c"], &policy(1)).await;
        assert_eq!(fake.max_active.load(Ordering::SeqCst), 1);
        // A 0 from a caller still means one at a time, never a panic.
        let fake = Fake::default();
        go(&fake, &["a", "b"], &policy(0)).await;
        assert_eq!(fake.max_active.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rerun_skips_the_nodes_already_done() {
        let fake = Fake {
            fails: HashMap::from([("c", Check::Health("containerd".into()))]),
            ..Default::default()
        };
        let nodes = ["a", "b", "c", "d"];
        let r = go(&fake, &nodes, &policy(1)).await;
        assert_eq!(outcomes(&r), ["done", "done", "failed", "untouched"]);
        // The operator fixed c; the rerun touches only c and d.
        let fake = Fake {
            done: fake.done,
            ..Default::default()
        };
        let r = go(&fake, &nodes, &policy(2)).await;
        assert!(!r.halted);
        assert_eq!(outcomes(&r), ["skipped", "skipped", "done", "done"]);
        assert_eq!(fake.calls(), ["upgrade c", "upgrade d", "end c", "end d"]);
        // Once more: nothing left to do, nothing touched.
        let fake = Fake {
            done: fake.done,
            ..Default::default()
        };
        let r = go(&fake, &nodes, &policy(1)).await;
        assert_eq!(outcomes(&r), ["skipped"; 4]);
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn the_first_failed_batch_halts_and_no_later_node_is_touched() {
        let fake = Fake {
            fails: HashMap::from([("b", Check::RolledBack)]),
            ..Default::default()
        };
        let rec = Rec::default();
        let r = run(&fake, &rec, &names(&["a", "b", "c", "d", "e"]), &policy(2)).await;
        assert!(r.halted);
        assert_eq!(
            outcomes(&r),
            ["done", "failed", "untouched", "untouched", "untouched"]
        );
        assert_eq!(fake.calls(), ["upgrade a", "upgrade b", "end a", "end b"]);
        let Outcome::Failed { failure, .. } = &r.nodes[1].1 else {
            panic!()
        };
        assert_eq!(failure.check, Check::RolledBack);
        // The untouched nodes are reported as such.
        let stages = rec.0.lock().unwrap();
        assert!(stages.contains(&("e".into(), Stage::Untouched)));
        assert!(!stages.iter().any(|(n, s)| n == "c" && *s == Stage::Done));
    }

    #[tokio::test]
    async fn an_unreadable_node_halts_before_any_node_is_touched() {
        let fake = Fake {
            unreadable: HashSet::from(["c"]),
            ..Default::default()
        };
        let r = go(&fake, &["a", "b", "c"], &policy(1)).await;
        assert!(r.halted);
        assert_eq!(outcomes(&r), ["untouched", "untouched", "failed"]);
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn rollback_on_failure_rolls_back_only_nodes_on_the_new_release() {
        let fake = Fake {
            fails: HashMap::from([
                ("a", Check::Health("containerd".into())),
                ("b", Check::RolledBack),
                ("c", Check::Install),
                ("d", Check::NotRebooted),
            ]),
            ..Default::default()
        };
        let p = Policy {
            on_failure: OnFailure::Rollback,
            ..policy(4)
        };
        let r = go(&fake, &["a", "b", "c", "d", "e"], &p).await;
        assert!(r.halted);
        // b came back on its old slot by itself, c and d never left it: a
        // rollback would boot the new release on them.
        assert_eq!(
            outcomes(&r),
            ["rolled-back", "failed", "failed", "failed", "untouched"]
        );
        let calls = fake.calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("rollback")).count(),
            1
        );
        assert_eq!(calls.last().unwrap(), "rollback a");
        // The default leaves the failed node as it is.
        let fake = Fake {
            fails: HashMap::from([("a", Check::NotMarked)]),
            ..Default::default()
        };
        let r = go(&fake, &["a", "b"], &policy(1)).await;
        assert_eq!(outcomes(&r), ["failed", "untouched"]);
        assert!(!fake.calls().iter().any(|c| c.starts_with("rollback")));
    }

    #[tokio::test]
    async fn a_failing_hook_halts_like_a_failed_node() {
        let with_hooks = Policy {
            before_node: Some("drain".into()),
            after_node: Some("uncordon".into()),
            on_failure: OnFailure::Rollback,
            ..policy(1)
        };
        // The before hook fails: the node is not upgraded, nor later ones.
        let fake = Fake {
            hook_fails: HashSet::from([("before-node", "b")]),
            ..Default::default()
        };
        let r = go(&fake, &["a", "b", "c"], &with_hooks).await;
        assert!(r.halted);
        assert_eq!(outcomes(&r), ["done", "failed", "untouched"]);
        assert_eq!(
            fake.calls(),
            [
                "before-node drain a",
                "upgrade a",
                "end a",
                "after-node uncordon a",
                "before-node drain b"
            ]
        );
        // The after hook fails: halted, but the node passed its checks, so
        // there is nothing to roll back.
        let fake = Fake {
            hook_fails: HashSet::from([("after-node", "a")]),
            ..Default::default()
        };
        let r = go(&fake, &["a", "b"], &with_hooks).await;
        assert_eq!(outcomes(&r), ["failed", "untouched"]);
        let Outcome::Failed { failure, .. } = &r.nodes[0].1 else {
            panic!()
        };
        assert_eq!(failure.check.word(), "hook:after-node");
        assert_eq!(
            fake.calls(),
            [
                "before-node drain a",
                "upgrade a",
                "end a",
                "after-node uncordon a"
            ]
        );
    }
}
