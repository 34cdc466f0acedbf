//! Reading the history: the listing with each boot's ending, damaged and
//! foreign entries, timelines, logs, and the writer's refusals.

mod common;

use matic_history::read::{Mark, Outcome, ServiceLine};
use matic_history::stamp::At;
use matic_history::store::{DEFAULT_CAP, MIN_CAP, Store};
use matic_history::{Ending, Error, Event, Started};
use std::fs;

const PANIC_PART1: &str = "Panic#1 Part1\n\
    <6>[    2.023838] sysrq: Trigger a crash\n\
    <0>[    2.024335] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n\
    <4>[    2.024564] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-57-amd64 #1\n";

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("boots"), DEFAULT_CAP).unwrap();
    (tmp, store)
}

#[test]
fn every_ending_is_listed_newest_first() {
    let (_tmp, store) = store();
    // 1: rebooted over the API, after being marked successful.
    let mut w = store.begin(common::started("1")).unwrap();
    w.event(&Event::Mark {
        name: "stage2".into(),
        at_ms: 3_100,
    })
    .unwrap();
    w.event(&Event::Successful { at_ms: 5_800 }).unwrap();
    w.event(&Event::Ended {
        ending: Ending::Reboot {
            by: "api:admin".into(),
        },
        at_ms: 60_000,
    })
    .unwrap();
    w.close().unwrap();
    // 2: panicked; its dump was collected into it by the next boot.
    let w = store.begin(common::started("2")).unwrap();
    let two = w.dir().join("pstore");
    w.close().unwrap();
    fs::create_dir(&two).unwrap();
    fs::write(two.join("dmesg-erst-7713669076437958657"), PANIC_PART1).unwrap();
    // 3: the watchdog reset it.
    let w = store.begin(common::started("3")).unwrap();
    w.close().unwrap();
    store.note_watchdog_reset(3).unwrap();
    // 4: nothing recorded: a power cut.
    store.begin(common::started("4")).unwrap().close().unwrap();
    // 5: running, no wall clock yet.
    let w = store
        .begin(Started {
            wall_unix_ms: None,
            uptime_ms: 2_500,
            ..common::started("5")
        })
        .unwrap();

    let boots = store.boots(16, Some(w.number())).unwrap();
    let endings: Vec<String> = boots.iter().map(|b| b.ending.to_string()).collect();
    assert_eq!(
        endings,
        [
            "running",
            "power loss or hard reset",
            "watchdog",
            "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)",
            "reboot requested by api:admin",
        ]
    );
    assert_eq!(
        boots.iter().map(|b| b.number).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    let first = &boots[4];
    assert!(first.successful && !boots[3].successful);
    assert_eq!(first.duration_ms, Some(60_000));
    assert_eq!(first.start_wall_unix_ms, Some(1_795_983_939_120 - 3_412));
    assert_eq!(first.started_uptime_ms, Some(3_412));
    assert_eq!(
        (first.slot.as_deref(), first.kernel.as_deref()),
        (Some("A"), Some("6.1.0-57-amd64"))
    );
    assert_eq!(boots[0].start_wall_unix_ms, None);
    assert_eq!(boots[0].started_uptime_ms, Some(2_500));
    // The limit keeps the newest.
    let two: Vec<u64> = store
        .boots(2, None)
        .unwrap()
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(two, [5, 4]);
    // Without a running boot, the newest is classified too.
    assert_eq!(
        store.boots(1, None).unwrap()[0].ending,
        Outcome::Ended(Ending::PowerLossOrReset)
    );
    let panic = store.panic(2).unwrap().unwrap();
    assert!(panic.text.contains("[    2.024335] Kernel panic"));
    assert_eq!(store.crash_dumps(2).unwrap().len(), 1);
}

#[test]
fn damaged_and_foreign_entries_never_fail_the_listing() {
    let (_tmp, store) = store();
    store.begin(common::started("1")).unwrap().close().unwrap();
    let dir = store.dir();
    fs::create_dir(dir.join("0000000002")).unwrap(); // no events file
    fs::create_dir(dir.join("0000000003")).unwrap();
    fs::write(
        dir.join("0000000003/events.jsonl"),
        b"\xff\xfe garbage\nmore",
    )
    .unwrap();
    fs::create_dir(dir.join("0000000004")).unwrap();
    fs::create_dir(dir.join("0000000004/events.jsonl")).unwrap(); // unreadable as a file
    fs::create_dir(dir.join("lost+found")).unwrap();
    fs::write(dir.join("0000000009"), b"a file, not a boot").unwrap();

    let boots = store.boots(16, None).unwrap();
    assert_eq!(
        boots.iter().map(|b| b.number).collect::<Vec<_>>(),
        [4, 3, 2, 1]
    );
    for b in &boots[..3] {
        assert_eq!(b.ending, Outcome::Unknown, "boot {}", b.number);
        assert_eq!(b.slot, None);
    }
    assert_eq!(boots[3].ending, Outcome::Ended(Ending::PowerLossOrReset));
    assert_eq!(store.timeline(2).unwrap(), []);
    // The next boot counts past every boot directory, whatever it holds.
    assert_eq!(store.begin(common::started("5")).unwrap().number(), 5);
}

#[test]
fn timeline_and_logs_of_one_boot() {
    let (_tmp, store) = store();
    let mut w = store.begin(common::started("1")).unwrap();
    // Written out of time order, as they are on a node: the agent marks
    // `agent-listening` before the kernel log copy reaches init's `stage2`.
    let written = [
        ("init", 2_210),
        ("modules-loaded", 2_900),
        ("root-mounted", 3_050),
        ("agent-listening", 4_100),
        ("stage2", 3_200),
        ("boot-ok", 5_800),
    ];
    let marks = [
        ("init", 2_210),
        ("modules-loaded", 2_900),
        ("root-mounted", 3_050),
        ("stage2", 3_200),
        ("agent-listening", 4_100),
        ("boot-ok", 5_800),
    ];
    for (name, at_ms) in written {
        w.event(&Event::Mark {
            name: name.into(),
            at_ms,
        })
        .unwrap();
    }
    w.kmsg_line("<6>[    0.000000] Linux version 6.1.0-57-amd64\n")
        .unwrap();
    w.kmsg_line(b"two\nlines".as_slice()).unwrap();
    let at = At {
        boot_us: 5_120_417,
        wall_unix_us: Some(1_795_983_939_120_417),
    };
    w.service_line("containerd", at, "serving...").unwrap();
    w.service_line("kubelet", at, b"bad \xff byte".as_slice())
        .unwrap();
    let n = w.number();
    w.close().unwrap();

    let want: Vec<Mark> = marks
        .iter()
        .map(|&(n, at)| Mark {
            name: n.into(),
            at_ms: at,
        })
        .collect();
    assert_eq!(store.timeline(n).unwrap(), want);
    assert_eq!(
        store.kmsg(n).unwrap(),
        "<6>[    0.000000] Linux version 6.1.0-57-amd64\ntwo\nlines\n"
    );
    assert_eq!(store.services(n).unwrap(), ["containerd", "kubelet"]);
    assert_eq!(
        store.service_log(n, "containerd").unwrap(),
        [ServiceLine {
            at: Some(at),
            text: "serving...".into()
        }]
    );
    let raw = fs::read_to_string(w_path(&store, n, "services/containerd.log")).unwrap();
    assert_eq!(raw, "5.120417 2026-11-29T20:25:39.120417Z serving...\n");
    assert_eq!(
        store.service_log(n, "kubelet").unwrap()[0].text,
        "bad \u{fffd} byte"
    );
    assert_eq!(store.service_log(n, "never-logged").unwrap(), []);
}

fn w_path(store: &Store, n: u64, file: &str) -> std::path::PathBuf {
    store.boot_dir(n).join(file)
}

#[test]
fn bad_requests_get_typed_errors() {
    let (_tmp, store) = store();
    let mut w = store.begin(common::started("1")).unwrap();
    let at = At {
        boot_us: 1,
        wall_unix_us: None,
    };
    for name in ["", "../escape", "a/b", ".hidden"] {
        assert!(
            matches!(
                w.service_line(name, at, "x"),
                Err(Error::BadServiceName { .. })
            ),
            "{name:?}"
        );
        assert!(matches!(
            store.service_log(1, name),
            Err(Error::BadServiceName { .. })
        ));
    }
    assert!(!store.dir().join("escape.log").exists());
    let err = store.timeline(7).unwrap_err();
    assert!(matches!(err, Error::NoSuchBoot { number: 7, .. }));
    assert!(err.to_string().contains("0000000007"), "{err}");
    assert!(matches!(store.kmsg(7), Err(Error::NoSuchBoot { .. })));
    assert!(matches!(
        Store::open(store.dir(), MIN_CAP - 1),
        Err(Error::CapTooSmall { .. })
    ));
}

#[test]
fn an_event_past_the_bound_is_refused_and_the_file_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), MIN_CAP).unwrap();
    let mut w = store.begin(common::started("1")).unwrap();
    let events = w.dir().join("events.jsonl");
    let big = Event::Mark {
        name: "x".repeat(10_000),
        at_ms: 1,
    };
    let mut written = 1;
    // 1 MiB of these is far past the bound: stop there if nothing refuses.
    let err = (0..100)
        .find_map(|_| match w.event(&big) {
            Ok(()) => {
                written += 1;
                None
            }
            Err(e) => Some(e),
        })
        .expect("an event past the bound is refused");
    assert!(
        matches!(err, Error::JournalFull { bound, .. } if bound == MIN_CAP / 16),
        "{err}"
    );
    let before = fs::read(&events).unwrap();
    assert!(before.len() as u64 <= MIN_CAP / 16);
    assert!(w.event(&big).is_err());
    assert_eq!(fs::read(&events).unwrap(), before);
    // A small event still fits.
    w.event(&Event::Successful { at_ms: 2 }).unwrap();
    assert_eq!(store.timeline(1).unwrap().len(), written - 1);
}

#[test]
fn logs_reach_the_disk_at_most_once_a_second() {
    let (_tmp, store) = store();
    let mut w = store.begin(common::started("1")).unwrap();
    let path = w.dir().join("kmsg.log");
    let on_disk = || fs::read_to_string(&path).unwrap_or_default();
    assert!(!w.flush_due(0).unwrap(), "nothing to flush");
    w.kmsg_line("a").unwrap();
    assert_eq!(on_disk(), "", "buffered");
    assert!(w.flush_due(10_000).unwrap());
    assert_eq!(on_disk(), "a\n");
    w.kmsg_line("b").unwrap();
    assert!(
        !w.flush_due(1_009_999).unwrap(),
        "under a second since the last"
    );
    assert_eq!(on_disk(), "a\n");
    assert!(w.flush_due(1_010_000).unwrap());
    assert_eq!(on_disk(), "a\nb\n");
    w.kmsg_line("c").unwrap();
    w.close().unwrap();
    assert_eq!(on_disk(), "a\nb\nc\n");
}

/// The current boot may hold more than the cap (a crash dump collected
/// into it): it is still never deleted, the others are.
#[test]
fn the_current_boot_is_never_deleted_even_over_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), MIN_CAP).unwrap();
    store.begin(common::started("1")).unwrap().close().unwrap();
    let mut w = store.begin(common::started("2")).unwrap();
    fs::create_dir(w.dir().join("pstore")).unwrap();
    fs::write(
        w.dir().join("pstore/dmesg-erst-1"),
        vec![b'x'; 2 * MIN_CAP as usize],
    )
    .unwrap();
    let done = store.enforce(Some(2)).unwrap();
    assert_eq!(done.deleted, [1]);
    assert_eq!(common::numbers(tmp.path()), [2]);
    w.kmsg_line("still writing").unwrap();
    w.close().unwrap();
    assert_eq!(store.kmsg(2).unwrap(), "still writing\n");
}

#[test]
fn an_older_boot_reopened_gets_its_ending_and_logs_appended() {
    let (_tmp, store) = store();
    let mut old = store.begin(common::started("old")).unwrap();
    old.kmsg_line("[    1.000000] first").unwrap();
    old.close().unwrap();
    let current = store.begin(common::started("new")).unwrap();
    let mut again = store.reopen(1).unwrap();
    again.kmsg_line("[    2.000000] second").unwrap();
    let ending = Ending::KernelPanic {
        first_line: "Kernel panic - not syncing: x".into(),
    };
    again
        .event(&Event::Ended {
            ending: ending.clone(),
            at_ms: 2000,
        })
        .unwrap();
    again.close().unwrap();
    assert_eq!(
        store.kmsg(1).unwrap(),
        "[    1.000000] first\n[    2.000000] second\n"
    );
    let boots = store.boots(2, Some(current.number())).unwrap();
    assert_eq!(boots[1].ending, Outcome::Ended(ending));
    assert!(matches!(
        store.reopen(9),
        Err(Error::NoSuchBoot { number: 9, .. })
    ));
}
