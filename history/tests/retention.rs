//! Retention under any sequence of boots, lines and events: the total
//! stays under the cap, the current boot is never deleted, and boots go
//! oldest first.

mod common;

use matic_history::stamp::At;
use matic_history::store::{MIN_CAP, Store};
use matic_history::{BootWriter, Error, Event};
use proptest::prelude::*;
use std::fs;

#[derive(Clone, Debug)]
enum Op {
    Begin,
    Kmsg(usize),
    Service(usize, usize),
    Mark(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Begin),
        4 => (1usize..120_000).prop_map(Op::Kmsg),
        4 => (0usize..5, 1usize..120_000).prop_map(|(s, n)| Op::Service(s, n)),
        2 => (1usize..3_000).prop_map(Op::Mark),
        1 => Just(Op::Flush),
    ]
}

fn apply(writer: &mut BootWriter, op: &Op, clock: &mut u64) -> Result<(), Error> {
    *clock += 400_000;
    let at = At {
        boot_us: *clock,
        wall_unix_us: None,
    };
    match op {
        Op::Begin => unreachable!("handled by the caller"),
        Op::Kmsg(n) => writer.kmsg_line("k".repeat(*n)),
        Op::Service(s, n) => writer.service_line(&format!("svc{s}"), at, "s".repeat(*n)),
        Op::Mark(n) => {
            match writer.event(&Event::Mark {
                name: "m".repeat(*n),
                at_ms: *clock / 1000,
            }) {
                // The events bound refusing is the documented outcome.
                Err(Error::JournalFull { .. }) => Ok(()),
                other => other,
            }
        }
        Op::Flush => writer.flush_due(*clock).map(drop),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cap_holds_current_survives_oldest_go_first(ops in proptest::collection::vec(op(), 1..70)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("boots");
        let store = Store::open(&dir, MIN_CAP).unwrap();
        let limits = store.limits();
        // Entries that are not boots: never counted, never deleted.
        fs::create_dir(dir.join("lost+found")).unwrap();
        fs::write(dir.join("lost+found/big"), vec![0u8; 2 * MIN_CAP as usize]).unwrap();
        fs::write(dir.join("000000001"), b"nine digits").unwrap();

        let mut created = Vec::new();
        let mut clock = 0;
        let mut writer = store.begin(common::started("b1")).unwrap();
        created.push(writer.number());
        for op in &ops {
            if let Op::Begin = op {
                writer.close().unwrap();
                writer = store.begin(common::started("b")).unwrap();
                created.push(writer.number());
            } else {
                apply(&mut writer, op, &mut clock).unwrap();
            }
            let total = common::total(&dir);
            prop_assert!(total <= limits.cap, "total {} > cap {} after {:?}", total, limits.cap, op);
            let present = common::numbers(&dir);
            prop_assert!(present.contains(&writer.number()), "current boot deleted");
            prop_assert!(created.ends_with(&present), "not oldest first: {:?} of {:?}", present, created);
            let kmsg = fs::metadata(writer.dir().join("kmsg.log")).map_or(0, |m| m.len());
            prop_assert!(kmsg <= limits.kmsg, "kmsg.log {} past its bound", kmsg);
            prop_assert!(dir.join("lost+found/big").exists() && dir.join("000000001").exists());
        }
        prop_assert!(created.windows(2).all(|w| w[1] == w[0] + 1), "numbers {:?}", created);
    }
}

/// With room to spare nothing is deleted.
#[test]
fn nothing_is_deleted_under_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), MIN_CAP).unwrap();
    for i in 0..20 {
        let mut w = store.begin(common::started(&format!("b{i}"))).unwrap();
        w.kmsg_line("a line").unwrap();
        w.close().unwrap();
    }
    assert_eq!(common::numbers(tmp.path()), (1..=20).collect::<Vec<_>>());
}

/// The current boot alone over its bounds keeps its newest lines, whole.
#[test]
fn a_chatty_boot_keeps_its_newest_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), MIN_CAP).unwrap();
    let mut w = store.begin(common::started("b")).unwrap();
    let lines: Vec<String> = (0..40_000).map(|i| format!("kernel line {i:06}")).collect();
    for line in &lines {
        w.kmsg_line(line).unwrap();
    }
    let number = w.number();
    w.close().unwrap();
    let kmsg = store.kmsg(number).unwrap();
    let kept: Vec<&str> = kmsg.lines().collect();
    assert!(
        kmsg.len() as u64 <= store.limits().kmsg,
        "{} bytes",
        kmsg.len()
    );
    assert!(
        kept.len() > 1000 && kept.len() < lines.len(),
        "{} lines",
        kept.len()
    );
    assert_eq!(
        kept,
        lines[lines.len() - kept.len()..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

/// A chatty service loses its oldest half; a quiet one keeps everything.
#[test]
fn the_largest_service_pays() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), MIN_CAP).unwrap();
    let mut w = store.begin(common::started("b")).unwrap();
    let at = |i: u64| At {
        boot_us: i,
        wall_unix_us: None,
    };
    for i in 0..10 {
        w.service_line("quiet", at(i), format!("quiet {i}"))
            .unwrap();
    }
    for i in 0..30_000 {
        w.service_line("chatty", at(i), format!("chatty line {i:06}"))
            .unwrap();
    }
    let number = w.number();
    w.close().unwrap();
    assert_eq!(store.service_log(number, "quiet").unwrap().len(), 10);
    let chatty = store.service_log(number, "chatty").unwrap();
    assert!(
        chatty.len() < 30_000 && chatty.len() > 1000,
        "{}",
        chatty.len()
    );
    assert_eq!(chatty.last().unwrap().text, "chatty line 029999");
    let dir = tmp.path().join(format!("{number:010}/services"));
    let services: u64 = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(services <= store.limits().services);
}
