//! Rolling a release across nodes (`osctl upgrade`) and waiting for a node
//! after its reboot (`reboot --wait`, `rollback --wait`), from the
//! operator's machine with no controller on the nodes:
//!
//! - [`plan`]: the planner (batches, resume, halt, rollback on failure),
//!   pure logic over its [`plan::Nodes`] trait;
//! - [`node`]: that trait over the API: install, reboot, rollback, looks;
//! - [`wait`]: what "the node passed" means, one observation at a time;
//! - [`hook`]: `--before-node` / `--after-node` on the operator's machine;
//! - [`failure`]: which check a node failed, in words;
//! - [`report`]: the live lines, JSON lines and the final table.
//!
//! Must never keep state between runs (a rerun learns what is done from
//! the nodes themselves) or touch a node outside the batch being run.

pub mod failure;
pub mod hook;
pub mod node;
pub mod plan;
pub mod report;
pub mod wait;

/// One JSON object on its own line on stdout.
fn write_line(v: &serde_json::Value) {
    crate::commands::write_out(format!("{v}\n").as_bytes());
}

/// Text on stdout.
fn write_text(s: &str) {
    crate::commands::write_out(s.as_bytes());
}
