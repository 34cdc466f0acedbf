//! The `fault-injection` feature (test images only): `ServiceRestart
//! fault:abort-agent` from an admin replies, then aborts the agent;
//! `fault:panic-task` replies, then panics in a tokio task, which must end
//! the agent the same way (its panic hook), even in this test build, which
//! unwinds (scripts/test). Run by `scripts/test.d/30-api-fault-injection`
//! (`--features fault-injection`).
#![cfg(feature = "fault-injection")]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::*;
use matic_agent::service::{FAULT_ABORT, FAULT_PANIC};
use matic_proto::v1::ServiceRestartRequest;
use osctl::pki::Role;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_agent_replies_then_aborts() {
    replies_then_aborts("fault", FAULT_ABORT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_task_aborts_the_agent() {
    replies_then_aborts("fault-panic", FAULT_PANIC).await;
}

async fn replies_then_aborts(test: &str, fault: &str) {
    let mut node = Node::start(test, NodeOpts::default());
    let req = || ServiceRestartRequest { name: fault.into() };
    // Not for operators (ServiceRestart is admin-only).
    let mut op = node.client(Role::Operator).await;
    let e = op.service_restart(req()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(node.alive());

    let mut admin = node.client(Role::Admin).await;
    admin
        .service_restart(req())
        .await
        .expect("the reply comes before the abort");
    let st = node
        .wait_exit(Duration::from_secs(10))
        .expect("agent did not abort");
    assert_eq!(st.signal(), Some(6), "expected SIGABRT, got {st:?}");
}
