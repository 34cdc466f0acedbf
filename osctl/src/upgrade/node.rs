//! The node driver: [`ApiNodes`] does what the planner asks of a node over
//! the existing API, and the waits of `reboot --wait` and `rollback
//! --wait`:
//!
//! - state: `BootStatus` (the running slot, its release and successful
//!   bit), `Boots` (the running boot's number: the boot id the wait
//!   compares), `Health` (every check), and `Version` once for the
//!   hostname the hooks get;
//! - upgrade: the install step of `osctl install` ([`install::send`],
//!   with the node's live line turned into its byte bar), `Reboot`, then
//!   the wait ([`super::wait`]) for the slot the install wrote and the
//!   release's root hash. A node already running the release on trial (a
//!   rollout that halted before its mark) is only waited for;
//! - rollback: `Rollback`, then the wait for the slot it names.
//!
//! A poll opens a fresh connection: the node behind the address is a new
//! process after its reboot. Must never retry an install, reboot or
//! rollback call (a retried Reboot is a second reboot), nor call a node
//! that the planner did not hand it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use matic_proto::v1::*;
use matic_release::hex;
use tonic::Code;

use super::failure::{Check, Failure, Hook};
use super::hook::{self, HookEnv};
use super::plan::Nodes;
use super::report::{Progress, Stage};
use super::wait::{Expect, Observation, Step, Waiter};
use crate::client::{ClientError, Connection, Credentials, Options, connect};
use crate::commands::install::{self, Prepared};

/// How long a wait lasts and how often it looks.
#[derive(Debug, Clone, Copy)]
pub struct WaitOpts {
    /// Every check must pass continuously this long.
    pub healthy_for: Duration,
    /// Per node, from the reboot until it passes.
    pub timeout: Duration,
    /// Between two looks at the node.
    pub poll: Duration,
}

/// The default time between two looks at a rebooting node.
pub const POLL: Duration = Duration::from_secs(1);

/// Extra time a look may take beyond the connect timeout before the node
/// counts as not answering.
const CALL_SLACK: Duration = Duration::from_secs(10);

/// A node's state, with what the wait does not judge.
struct Look {
    seen: Observation,
    /// The slot the next boot chooses.
    next_slot: String,
}

/// The node set of a command, over the API.
pub struct ApiNodes<'a> {
    pub creds: &'a Credentials,
    pub opts: &'a Options,
    pub progress: &'a dyn Progress,
    pub wait: WaitOpts,
    /// The release rolled out (`upgrade` only).
    pub release: Option<&'a Prepared>,
    hostnames: Mutex<HashMap<String, String>>,
}

/// The client's sentence as the failure of a check.
fn failed(check: Check, e: &ClientError) -> Failure {
    Failure::new(check, e.to_string())
}

/// Reading a node's state failed: unreachable, or the node refused.
fn unreadable(e: &ClientError) -> Failure {
    let check = match e {
        ClientError::Unreachable { .. } | ClientError::ConnectionLost { .. } => Check::Unreachable,
        _ => Check::Api,
    };
    failed(check, e)
}

impl<'a> ApiNodes<'a> {
    pub fn new(
        creds: &'a Credentials,
        opts: &'a Options,
        progress: &'a dyn Progress,
        wait: WaitOpts,
        release: Option<&'a Prepared>,
    ) -> Self {
        ApiNodes {
            creds,
            opts,
            progress,
            wait,
            release,
            hostnames: Mutex::default(),
        }
    }

    async fn conn(&self, node: &str) -> Result<Connection, ClientError> {
        connect(node, self.creds, self.opts).await
    }

    /// The release's (version, root hash in hex).
    fn release_id(&self) -> Option<(String, String)> {
        self.release.map(|p| {
            let m = &p.release.unverified;
            (m.version().to_string(), hex::string(&m.root_hash))
        })
    }

    /// One look at `node`: its slots, its running boot, its health.
    async fn look(&self, node: &str) -> Result<Look, ClientError> {
        let mut c = self.conn(node).await?;
        let bs = c
            .client
            .boot_status(BootStatusRequest {})
            .await
            .map_err(|s| c.explain(&s))?
            .into_inner();
        // The boot id: the running boot's number in the history. A node
        // whose history is off (or an agent without it) has none; the wait
        // then asks for the node to have been seen down instead.
        let boot = match c.client.boots(BootsRequest { limit: 1 }).await {
            Ok(r) => r
                .into_inner()
                .boots
                .iter()
                .find(|b| b.running)
                .map(|b| b.number),
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::Unimplemented) => None,
            Err(s) => return Err(c.explain(&s)),
        };
        let h = c
            .client
            .health(HealthRequest {})
            .await
            .map_err(|s| c.explain(&s))?
            .into_inner();
        let running = bs.slots.iter().find(|s| s.running);
        let release = running.and_then(|s| s.release.as_ref());
        let seen = Observation {
            boot,
            slot: running.map(|s| s.name.clone()).unwrap_or_default(),
            version: release.map(|r| r.version.clone()),
            root_hash: release.map(|r| r.root_hash.clone()),
            marked: running.is_some_and(|s| s.successful),
            failing: h
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| (c.name.clone(), c.detail.clone()))
                .collect(),
        };
        self.progress.running(
            node,
            &seen.slot,
            seen.version.as_deref().unwrap_or_default(),
        );
        let next_slot = bs
            .slots
            .iter()
            .find(|s| s.next_boot)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        Ok(Look { seen, next_slot })
    }

    /// A look bounded in time: a node that accepts but never answers
    /// counts as not answering.
    async fn look_bounded(&self, node: &str) -> Result<Look, ClientError> {
        let limit = self.opts.connect_timeout + CALL_SLACK;
        match tokio::time::timeout(limit, self.look(node)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Unreachable {
                addr: node.to_string(),
                reason: format!("no answer within {} s", limit.as_secs()),
            }),
        }
    }

    /// Wait until `node` passes `expect` (module [`super::wait`]).
    async fn wait_for(&self, node: &str, expect: Expect) -> Result<(), Failure> {
        let mut w = Waiter::new(
            expect,
            self.wait.healthy_for,
            Instant::now(),
            self.wait.timeout,
        );
        loop {
            let step = match self.look_bounded(node).await {
                Ok(l) => w.up(Instant::now(), &l.seen),
                Err(e) => w.down(Instant::now(), e.to_string()),
            };
            match step {
                Step::Passed => return Ok(()),
                Step::Failed(f) => return Err(f),
                Step::Pending(what) => self.progress.stage(node, &Stage::Waiting(what)),
            }
            let left = w.deadline().saturating_duration_since(Instant::now());
            tokio::time::sleep(self.wait.poll.min(left).max(Duration::from_millis(10))).await;
        }
    }

    /// `osctl reboot --wait` on one node: reboot, then wait for it to come
    /// back from the slot its next boot chooses.
    pub async fn reboot_and_wait(&self, node: &str) -> Result<(), Failure> {
        let before = self.look_bounded(node).await.map_err(|e| unreadable(&e))?;
        self.progress.stage(node, &Stage::Rebooting);
        let mut c = self.conn(node).await.map_err(|e| unreadable(&e))?;
        c.client
            .reboot(RebootRequest {})
            .await
            .map_err(|s| failed(Check::Reboot, &c.explain(&s)))?;
        let expect = Expect {
            boot_before: before.seen.boot,
            new_boot: true,
            slot: before.next_slot,
            release: None,
        };
        self.wait_for(node, expect).await
    }

    /// `osctl rollback --wait` on one node: roll back (and reboot), then
    /// wait for it to come back from the other slot.
    pub async fn rollback_and_wait(&self, node: &str) -> Result<(), Failure> {
        let before = self.look_bounded(node).await.map_err(|e| unreadable(&e))?;
        self.progress.stage(node, &Stage::RollingBack);
        let mut c = self.conn(node).await.map_err(|e| unreadable(&e))?;
        let r = c
            .client
            .rollback(RollbackRequest { no_reboot: false })
            .await
            .map_err(|s| failed(Check::Reboot, &c.explain(&s)))?
            .into_inner();
        let expect = Expect {
            boot_before: before.seen.boot,
            new_boot: true,
            slot: r.slot,
            release: None,
        };
        self.wait_for(node, expect).await
    }
}

impl Nodes for ApiNodes<'_> {
    async fn is_done(&self, node: &str) -> Result<bool, Failure> {
        let mut c = self.conn(node).await.map_err(|e| unreadable(&e))?;
        let v = c
            .client
            .version(VersionRequest {})
            .await
            .map_err(|s| unreadable(&c.explain(&s)))?
            .into_inner();
        self.hostnames
            .lock()
            .unwrap()
            .insert(node.to_string(), v.hostname);
        let l = self.look_bounded(node).await.map_err(|e| unreadable(&e))?;
        let ours = self.release_id().map(|(_, h)| h);
        Ok(l.seen.root_hash.is_some() && l.seen.root_hash == ours && l.seen.marked)
    }

    async fn upgrade(&self, node: &str) -> Result<(), Failure> {
        let Some(release) = self.release else {
            unreachable!("upgrade without a release")
        };
        let id = self.release_id();
        let before = self.look_bounded(node).await.map_err(|e| unreadable(&e))?;
        if before.seen.root_hash.is_some()
            && before.seen.root_hash == id.as_ref().map(|r| r.1.clone())
        {
            // On trial with this release already (a halted rollout's node):
            // an install would be refused; its boot is what is awaited.
            let expect = Expect {
                boot_before: None,
                new_boot: false,
                slot: before.seen.slot,
                release: id,
            };
            return self.wait_for(node, expect).await;
        }
        self.progress.stage(node, &Stage::Installing);
        let mut c = self.conn(node).await.map_err(|e| unreadable(&e))?;
        let bar = self
            .progress
            .install_bar(node, release.release.payload_range().1);
        let resp = install::send(&mut c, release, &bar)
            .await
            .map_err(|e| failed(Check::Install, &e))?;
        self.progress.stage(node, &Stage::Rebooting);
        c.client.reboot(RebootRequest {}).await.map_err(|s| {
            Failure::new(
                Check::Reboot,
                format!(
                    "installed {} into slot {}, but the reboot failed: {}",
                    resp.version,
                    resp.slot,
                    c.explain(&s)
                ),
            )
        })?;
        let expect = Expect {
            boot_before: before.seen.boot,
            new_boot: true,
            slot: resp.slot,
            release: id,
        };
        self.wait_for(node, expect).await
    }

    async fn roll_back(&self, node: &str) -> Result<(), Failure> {
        // Rollback boots the slot the node does not run: only right when it
        // runs the new release.
        let l = self.look_bounded(node).await.map_err(|e| unreadable(&e))?;
        let ours = self.release_id().map(|(_, h)| h);
        if l.seen.root_hash.is_none() || l.seen.root_hash != ours {
            return Err(Failure::new(
                Check::NotOnNew,
                format!(
                    "not rolled back: slot {} runs {}, not the new release (a rollback would boot it)",
                    l.seen.slot,
                    l.seen.version.as_deref().unwrap_or("no verified release")
                ),
            ));
        }
        self.rollback_and_wait(node).await
    }

    async fn hook(&self, which: Hook, cmd: &str, node: &str) -> Result<(), Failure> {
        self.progress.stage(node, &Stage::Hook(which));
        let env = HookEnv {
            node: node.to_string(),
            endpoint: crate::client::Target::parse(node)
                .map(|t| t.addr())
                .unwrap_or_else(|_| node.to_string()),
            hostname: self
                .hostnames
                .lock()
                .unwrap()
                .get(node)
                .cloned()
                .unwrap_or_default(),
            release_version: self.release_id().map(|r| r.0).unwrap_or_default(),
        };
        let out = hook::run(which, cmd, &env).await?;
        self.progress.note(node, &out);
        Ok(())
    }
}
