//! Rendering of the boot history: `osctl boots` (one row per boot, newest
//! first) and `osctl boots show N` (a boot's timeline), as tables and
//! `-o json`. Pure functions over the API messages.
//!
//! Must never show a time in the viewer's local zone (a fleet spans zones:
//! wall clocks are UTC, marked `Z`) or invent a time the node did not
//! record (`-`, or `+uptime` when only the uptime is known).

use matic_proto::v1::{BootMark, BootRecord, BootTimelineResponse, BootsResponse};
use serde_json::{Value, json};

use super::{duration_words, yes};

pub const BOOTS_HEADERS: &[&str] = &[
    "NODE", "BOOT", "SLOT", "VERSION", "KERNEL", "STARTED", "RAN", "ENDING", "OK",
];

/// `2026-11-29 20:25:35Z` for Unix ms; `None` out of the calendar's range.
pub fn utc(unix_ms: u64) -> Option<String> {
    let ns = i128::from(unix_ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// `850ms`, `3.4s`, then two units (`1m5s`, `2h3m`).
pub fn ms_words(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        _ => duration_words(ms / 1000),
    }
}

/// When a boot started: its kernel's start as a UTC date when the wall
/// clock was known, else `+` the uptime its record began at.
fn started(b: &BootRecord) -> String {
    if let Some(date) = b.start_wall_unix_ms.and_then(utc) {
        return date;
    }
    b.start_uptime_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("+{}", ms_words(ms)))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

pub fn boots_rows(node: &str, r: &BootsResponse) -> Vec<Vec<String>> {
    r.boots
        .iter()
        .map(|b| {
            vec![
                node.to_owned(),
                b.number.to_string(),
                or_dash(&b.slot),
                or_dash(&b.os_version),
                or_dash(&b.kernel),
                started(b),
                b.duration_ms.map_or_else(|| "-".to_owned(), ms_words),
                or_dash(&b.ending),
                yes(b.successful),
            ]
        })
        .collect()
}

/// After the table: boots left out by the limit, and damaged records.
pub fn boots_notes(node: &str, r: &BootsResponse) -> String {
    let mut out = String::new();
    for b in r.boots.iter().filter(|b| b.damaged_records > 0) {
        out += &format!(
            "{node}: boot {}: {} damaged record(s) of its history skipped\n",
            b.number, b.damaged_records
        );
    }
    let shown = r.boots.len();
    if (shown as u64) < u64::from(r.held) {
        out += &format!(
            "{node}: {shown} of the {} boots held shown (--limit N for more)\n",
            r.held
        );
    }
    out
}

pub fn boots_json(r: &BootsResponse) -> Value {
    json!({
        "held": r.held,
        "boots": r.boots.iter().map(|b| json!({
            "number": b.number,
            "slot": b.slot,
            "os_version": b.os_version,
            "kernel": b.kernel,
            "start_wall_unix_ms": b.start_wall_unix_ms,
            "start_uptime_ms": b.start_uptime_ms,
            "duration_ms": b.duration_ms,
            "ending": b.ending,
            "ending_kind": b.ending_kind,
            "successful": b.successful,
            "running": b.running,
            "damaged_records": b.damaged_records,
        })).collect::<Vec<_>>(),
    })
}

pub const TIMELINE_HEADERS: &[&str] = &["NODE", "BOOT", "MARK", "AT (ms)", "STEP (ms)"];

/// The prefix of the marks a loader's kernel handed over when it kexec'd
/// this boot's (docs/history.md, "A kexec'd boot"): on that kernel's
/// clock, so they are listed first, as their own run.
const LOADER: &str = "loader:";

/// The marks in the order shown: the loader's first (when the boot was
/// kexec'd), then this kernel's, each as recorded (by time), with each
/// mark's step from the one before (the first of each run: from its
/// kernel's start); negative if the marks were recorded out of order.
fn ordered(t: &BootTimelineResponse) -> Vec<(&BootMark, i128)> {
    let (loader, own): (Vec<_>, Vec<_>) = t.marks.iter().partition(|m| m.name.starts_with(LOADER));
    let mut out = Vec::with_capacity(t.marks.len());
    for run in [loader, own] {
        let mut before = 0u64;
        for m in run {
            out.push((m, i128::from(m.at_ms) - i128::from(before)));
            before = m.at_ms;
        }
    }
    out
}

pub fn timeline_rows(node: &str, t: &BootTimelineResponse) -> Vec<Vec<String>> {
    ordered(t)
        .into_iter()
        .map(|(m, step)| {
            vec![
                node.to_owned(),
                t.number.to_string(),
                m.name.clone(),
                m.at_ms.to_string(),
                format!("{step:+}"),
            ]
        })
        .collect()
}

/// A boot without marks says so (an empty table says nothing).
pub fn timeline_notes(node: &str, t: &BootTimelineResponse) -> String {
    if t.marks.is_empty() {
        format!("{node}: boot {} recorded no timeline marks\n", t.number)
    } else {
        String::new()
    }
}

pub fn timeline_json(t: &BootTimelineResponse) -> Value {
    json!({
        "number": t.number,
        "marks": ordered(t).into_iter().map(|(m, step)| json!({
            "name": m.name,
            "at_ms": m.at_ms,
            "step_ms": step as i64,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::table;

    fn history() -> BootsResponse {
        BootsResponse {
            held: 5,
            boots: vec![
                BootRecord {
                    number: 42,
                    slot: "A".into(),
                    os_version: "1.2.0".into(),
                    kernel: "6.1.0-57-amd64".into(),
                    start_wall_unix_ms: Some(1_795_983_935_708),
                    start_uptime_ms: Some(3_412),
                    duration_ms: Some(3_725_000),
                    ending: "running".into(),
                    ending_kind: "running".into(),
                    successful: true,
                    running: true,
                    damaged_records: 0,
                },
                BootRecord {
                    number: 41,
                    slot: "B".into(),
                    os_version: "1.3.0".into(),
                    kernel: "6.1.0-57-amd64".into(),
                    start_wall_unix_ms: None,
                    start_uptime_ms: Some(3_412),
                    duration_ms: Some(2_155),
                    ending: "kernel panic: sysrq triggered crash".into(),
                    ending_kind: "kernel_panic".into(),
                    successful: false,
                    running: false,
                    damaged_records: 1,
                },
                BootRecord {
                    number: 40,
                    ending: "unknown".into(),
                    ending_kind: "unknown".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn boots_table_newest_first_with_notes() {
        let t = table(BOOTS_HEADERS, &boots_rows("n1", &history()));
        let want = "\
NODE   BOOT   SLOT   VERSION   KERNEL           STARTED                RAN    ENDING                                OK
n1     42     A      1.2.0     6.1.0-57-amd64   2026-11-29 20:25:35Z   1h2m   running                               yes
n1     41     B      1.3.0     6.1.0-57-amd64   +3.4s                  2.1s   kernel panic: sysrq triggered crash   no
n1     40     -      -         -                -                      -      unknown                               no
";
        assert_eq!(t, want);
        assert_eq!(
            boots_notes("n1", &history()),
            "n1: boot 41: 1 damaged record(s) of its history skipped\n\
             n1: 3 of the 5 boots held shown (--limit N for more)\n"
        );
        let all = BootsResponse {
            held: 3,
            ..history()
        };
        assert_eq!(
            boots_notes("n1", &all),
            "n1: boot 41: 1 damaged record(s) of its history skipped\n"
        );
    }

    #[test]
    fn boots_json_keeps_the_raw_numbers() {
        let j = boots_json(&history());
        assert_eq!(j["held"], 5);
        assert_eq!(j["boots"][0]["start_wall_unix_ms"], 1_795_983_935_708u64);
        assert_eq!(j["boots"][0]["running"], true);
        assert_eq!(j["boots"][1]["start_wall_unix_ms"], Value::Null);
        assert_eq!(j["boots"][1]["start_uptime_ms"], 3_412);
        assert_eq!(j["boots"][1]["ending_kind"], "kernel_panic");
        assert_eq!(j["boots"][2]["duration_ms"], Value::Null);
    }

    #[test]
    fn times_in_words() {
        assert_eq!(utc(0).as_deref(), Some("1970-01-01 00:00:00Z"));
        assert_eq!(
            utc(951_782_400_999).as_deref(),
            Some("2000-02-29 00:00:00Z")
        );
        assert_eq!(utc(u64::MAX), None);
        assert_eq!(ms_words(850), "850ms");
        assert_eq!(ms_words(3_412), "3.4s");
        assert_eq!(ms_words(59_999), "59.9s");
        assert_eq!(ms_words(65_000), "1m5s");
    }

    fn timeline() -> BootTimelineResponse {
        let m = |name: &str, at_ms| BootMark {
            name: name.into(),
            at_ms,
        };
        BootTimelineResponse {
            number: 41,
            marks: vec![
                m("/init", 2210),
                m("stage2", 3210),
                m("service:containerd", 3250),
                m("agent-listening", 3240),
            ],
        }
    }

    #[test]
    fn timeline_table_has_offsets_and_steps() {
        let t = table(TIMELINE_HEADERS, &timeline_rows("n1", &timeline()));
        let want = "\
NODE   BOOT   MARK                 AT (ms)   STEP (ms)
n1     41     /init                2210      +2210
n1     41     stage2               3210      +1000
n1     41     service:containerd   3250      +40
n1     41     agent-listening      3240      -10
";
        assert_eq!(t, want);
        assert_eq!(timeline_notes("n1", &timeline()), "");
        let empty = BootTimelineResponse {
            number: 7,
            marks: vec![],
        };
        assert_eq!(
            timeline_notes("n1", &empty),
            "n1: boot 7 recorded no timeline marks\n"
        );
        let j = timeline_json(&timeline());
        assert_eq!(j["number"], 41);
        assert_eq!(j["marks"][1]["step_ms"], 1000);
        assert_eq!(j["marks"][3]["step_ms"], -10);
        assert_eq!(j["marks"][0]["name"], "/init");
    }

    #[test]
    fn a_kexecd_boot_lists_the_loaders_marks_first() {
        let mut t = timeline();
        let m = |name: &str, at_ms| BootMark {
            name: name.into(),
            at_ms,
        };
        // As the history returns them: by time, both clocks mixed.
        t.marks = vec![
            m("kernel", 0),
            m("loader:kernel", 0),
            m("loader:/init", 1480),
            m("/init", 2210),
            m("loader:kexec", 3612),
            m("stage2", 3700),
        ];
        let want = "\
NODE   BOOT   MARK            AT (ms)   STEP (ms)
n1     41     loader:kernel   0         +0
n1     41     loader:/init    1480      +1480
n1     41     loader:kexec    3612      +2132
n1     41     kernel          0         +0
n1     41     /init           2210      +2210
n1     41     stage2          3700      +1490
";
        assert_eq!(table(TIMELINE_HEADERS, &timeline_rows("n1", &t)), want);
        let j = timeline_json(&t);
        assert_eq!(j["marks"][2]["name"], "loader:kexec");
        assert_eq!(j["marks"][3]["step_ms"], 0);
    }
}
