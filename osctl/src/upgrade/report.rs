//! What a person or a script sees of a rollout (and of `reboot --wait`,
//! `rollback --wait`): the [`Stage`]s a node goes through, reported through
//! [`Progress`] as they happen, and the final table or summary.
//!
//! - For people (`-o text`) at a terminal: one live line per node on
//!   stderr (state, running slot, elapsed), which turns into the install's
//!   byte bar while the release streams; in a pipe, one line per change
//!   (`NODE: state (slot B, 12s)`) on stderr. Then the final table on
//!   stdout and each failure as `NODE: check: sentence` on stderr.
//! - For scripts (`-o json`): one JSON object per line on stdout per state
//!   change, then one summary object.
//!
//! Must never decide anything about the rollout (the planner and the wait
//! do), nor write anything but these lines to stdout.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::failure::{Failure, Hook};
use super::plan::{Outcome, Report};
use crate::commands::install::bytes_style;
use crate::output::{self, Format};

/// Where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Its state is being read.
    Checking,
    /// Already runs the release from a successful slot.
    Skipped,
    /// The rollout halted before its batch.
    Untouched,
    Hook(Hook),
    Installing,
    Rebooting,
    /// Waiting, for what in words ("answer", "health check containerd").
    Waiting(String),
    Done,
    Failed(Failure),
    RollingBack,
    RolledBack,
}

impl Stage {
    /// The state's word (the JSON `state` field).
    pub fn word(&self) -> String {
        match self {
            Stage::Checking => "checking".into(),
            Stage::Skipped => "skipped".into(),
            Stage::Untouched => "untouched".into(),
            Stage::Hook(h) => format!("hook:{}", h.name()),
            Stage::Installing => "installing".into(),
            Stage::Rebooting => "rebooting".into(),
            Stage::Waiting(_) => "waiting".into(),
            Stage::Done => "done".into(),
            Stage::Failed(_) => "failed".into(),
            Stage::RollingBack => "rolling-back".into(),
            Stage::RolledBack => "rolled-back".into(),
        }
    }

    /// The word and what it waits for or why it failed, for people.
    fn words(&self) -> String {
        match self {
            Stage::Waiting(what) => format!("waiting for {what}"),
            Stage::Failed(f) => format!("failed: {f}"),
            Stage::Skipped => "skipped: already runs the release".into(),
            s => s.word(),
        }
    }
}

/// Where stages are reported.
pub trait Progress: Sync {
    fn stage(&self, node: &str, stage: &Stage);
    /// The node answered running `slot` with release `version`.
    fn running(&self, _node: &str, _slot: &str, _version: &str) {}
    /// A hook's output, for people (never on stdout).
    fn note(&self, _node: &str, _text: &str) {}
    /// A bar for `len` install bytes (hidden where there are no bars).
    fn install_bar(&self, _node: &str, _len: u64) -> ProgressBar {
        ProgressBar::hidden()
    }
}

#[derive(Default)]
struct NodeLine {
    started: Option<Instant>,
    ended: Option<Instant>,
    stage: Option<Stage>,
    slot: String,
    version: String,
    bar: Option<ProgressBar>,
}

impl NodeLine {
    fn elapsed(&self) -> Duration {
        match (self.started, self.ended) {
            (Some(s), Some(e)) => e.duration_since(s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        }
    }
}

/// The renderer of [`Progress`] for osctl's two formats.
pub struct Live {
    format: Format,
    multi: MultiProgress,
    bars: bool,
    nodes: Mutex<HashMap<String, NodeLine>>,
    /// When the command began (the summary's wall time).
    began: Instant,
}

fn line_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>15} {msg}").expect("template")
}

fn secs(d: Duration) -> String {
    output::duration_words(d.as_secs())
}

impl Live {
    pub fn new(format: Format, multi: MultiProgress) -> Self {
        Live {
            bars: format == Format::Text && std::io::stderr().is_terminal(),
            format,
            multi,
            nodes: Mutex::default(),
            began: Instant::now(),
        }
    }

    /// The bars' [`MultiProgress`] (the download and sha256 bars join it).
    pub fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    fn message(line: &NodeLine, stage: &Stage) -> String {
        let slot = if line.slot.is_empty() {
            String::new()
        } else {
            format!("  slot {}", line.slot)
        };
        format!("{}{slot}  {}", stage.words(), secs(line.elapsed()))
    }

    /// Clear the live lines (before the final table).
    pub fn clear(&self) {
        let nodes = self.nodes.lock().unwrap();
        for l in nodes.values() {
            if let Some(b) = &l.bar {
                b.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }

    /// Print the final table (text) or summary object (JSON) on stdout and
    /// each failure on stderr; the exit code: 1 when the rollout halted.
    pub fn finish(&self, report: &Report, halted: &str) -> i32 {
        self.clear();
        let nodes = self.nodes.lock().unwrap();
        let empty = NodeLine::default();
        let line = |n: &str| nodes.get(n).unwrap_or(&empty);
        match self.format {
            Format::Json => {
                let v: Vec<Value> = report
                    .nodes
                    .iter()
                    .map(|(n, o)| summary_json(n, o, line(n)))
                    .collect();
                super::write_line(&json!({
                    "summary": {
                        "halted": report.halted,
                        "elapsed_s": self.began.elapsed().as_secs_f64(),
                        "nodes": v,
                    }
                }));
            }
            Format::Text => {
                let rows: Vec<Vec<String>> = report
                    .nodes
                    .iter()
                    .map(|(n, o)| summary_row(n, o, line(n)))
                    .collect();
                super::write_text(&output::table(SUMMARY_HEADERS, &rows));
                for (n, o) in &report.nodes {
                    if let Outcome::Failed { failure, rollback } = o {
                        eprintln!("{n}: {failure}");
                        if let Some(Err(f)) = rollback {
                            eprintln!("{n}: the rollback failed too: {f}");
                        }
                    }
                }
                if report.halted && !halted.is_empty() {
                    eprintln!("osctl: {halted}");
                }
            }
        }
        i32::from(report.halted)
    }
}

impl Progress for Live {
    fn stage(&self, node: &str, stage: &Stage) {
        let mut nodes = self.nodes.lock().unwrap();
        let line = nodes.entry(node.to_string()).or_default();
        if line.stage.as_ref() == Some(stage) {
            return;
        }
        let now = Instant::now();
        match stage {
            Stage::Checking | Stage::Skipped | Stage::Untouched => {}
            // A rollback is the node's work too: its clock runs on.
            Stage::Done | Stage::Failed(_) | Stage::RolledBack => line.ended = Some(now),
            _ => {
                line.started.get_or_insert(now);
                line.ended = None;
            }
        }
        line.stage = Some(stage.clone());
        match self.format {
            Format::Json => super::write_line(&json!({
                "node": node,
                "state": stage.word(),
                "slot": line.slot,
                "version": line.version,
                "elapsed_s": line.elapsed().as_secs_f64(),
                "detail": match stage {
                    Stage::Waiting(w) => Value::from(format!("waiting for {w}")),
                    Stage::Failed(f) => json!({"check": f.check.word(), "detail": f.detail}),
                    _ => Value::Null,
                },
            })),
            Format::Text if self.bars => {
                let msg = Self::message(line, stage);
                let bar = line.bar.get_or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_prefix(node.to_string());
                    b.enable_steady_tick(Duration::from_secs(1));
                    b
                });
                bar.set_style(line_style());
                bar.set_message(msg);
            }
            Format::Text => eprintln!("{node}: {}", Self::message(line, stage)),
        }
    }

    fn note(&self, node: &str, text: &str) {
        if self.format != Format::Text {
            return;
        }
        for l in text.lines() {
            let l = format!("{node}: {l}");
            if self.bars {
                let _ = self.multi.println(l);
            } else {
                eprintln!("{l}");
            }
        }
    }

    fn running(&self, node: &str, slot: &str, version: &str) {
        let mut nodes = self.nodes.lock().unwrap();
        let line = nodes.entry(node.to_string()).or_default();
        line.slot = slot.to_string();
        line.version = version.to_string();
        if let (Some(bar), Some(stage)) = (&line.bar, &line.stage) {
            bar.set_message(Self::message(line, stage));
        }
    }

    fn install_bar(&self, node: &str, len: u64) -> ProgressBar {
        let nodes = self.nodes.lock().unwrap();
        match nodes.get(node).and_then(|l| l.bar.clone()) {
            Some(bar) => {
                bar.set_style(bytes_style());
                bar.set_length(len);
                bar.set_position(0);
                bar
            }
            None => ProgressBar::hidden(),
        }
    }
}

pub const SUMMARY_HEADERS: &[&str] = &[
    "NODE", "RESULT", "SLOT", "VERSION", "ELAPSED", "CHECK", "DETAIL",
];

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

fn summary_row(node: &str, o: &Outcome, line: &NodeLine) -> Vec<String> {
    let (check, detail) = match o {
        Outcome::Failed { failure, .. } => (failure.check.word(), failure.detail.clone()),
        _ => ("-".into(), "-".into()),
    };
    vec![
        node.to_string(),
        o.word().into(),
        or_dash(&line.slot),
        or_dash(&line.version),
        secs(line.elapsed()),
        check,
        detail,
    ]
}

fn summary_json(node: &str, o: &Outcome, line: &NodeLine) -> Value {
    let failure = |f: &Failure| json!({"check": f.check.word(), "detail": f.detail});
    let (f, rb) = match o {
        Outcome::Failed {
            failure: f,
            rollback,
        } => (
            failure(f),
            match rollback {
                None => Value::Null,
                Some(Ok(())) => json!({"ok": true}),
                Some(Err(e)) => json!({"ok": false, "failure": failure(e)}),
            },
        ),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "node": node,
        "result": o.word(),
        "slot": line.slot,
        "version": line.version,
        "elapsed_s": line.elapsed().as_secs_f64(),
        "failure": f,
        "rollback": rb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::failure::Check;

    fn line(slot: &str, version: &str, secs: u64) -> NodeLine {
        let start = Instant::now();
        NodeLine {
            started: Some(start),
            ended: Some(start + Duration::from_secs(secs)),
            slot: slot.into(),
            version: version.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_final_table_names_the_failed_check() {
        let sick = Failure::new(Check::Health("containerd".into()), "socket not answering");
        let rows = vec![
            summary_row("n1", &Outcome::Passed, &line("B", "2.0", 65)),
            summary_row(
                "n2",
                &Outcome::Failed {
                    failure: sick.clone(),
                    rollback: None,
                },
                &line("B", "2.0", 600),
            ),
            summary_row("n3", &Outcome::Untouched, &line("A", "", 0)),
        ];
        assert_eq!(
            output::table(SUMMARY_HEADERS, &rows),
            "\
NODE   RESULT      SLOT   VERSION   ELAPSED   CHECK               DETAIL
n1     done        B      2.0       1m5s      -                   -
n2     failed      B      2.0       10m       health:containerd   socket not answering
n3     untouched   A      -         0s        -                   -
"
        );
        let rolled = Outcome::Failed {
            failure: sick.clone(),
            rollback: Some(Ok(())),
        };
        assert_eq!(rolled.word(), "rolled-back");
        let j = summary_json("n2", &rolled, &line("A", "1.0", 3));
        assert_eq!(j["result"], "rolled-back");
        assert_eq!(j["failure"]["check"], "health:containerd");
        assert_eq!(j["rollback"], json!({"ok": true}));
        assert_eq!(j["elapsed_s"], 3.0);
        let failed_twice = Outcome::Failed {
            failure: sick,
            rollback: Some(Err(Failure::new(Check::Unreachable, "refused"))),
        };
        let j = summary_json("n2", &failed_twice, &line("B", "2.0", 3));
        assert_eq!(j["result"], "rollback-failed");
        assert_eq!(j["rollback"]["failure"]["check"], "unreachable");
    }

    #[test]
    fn state_words() {
        assert_eq!(Stage::Hook(Hook::After).word(), "hook:after-node");
        assert_eq!(
            Stage::Waiting("health check containerd".into()).words(),
            "waiting for health check containerd"
        );
        let f = Failure::new(Check::RolledBack, "it came back on slot A");
        assert_eq!(
            Stage::Failed(f).words(),
            "failed: rolled-back: it came back on slot A"
        );
    }
}
