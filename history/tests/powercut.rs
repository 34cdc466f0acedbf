//! A power cut in the middle of a boot: the writer is dropped without
//! `close` (its unflushed lines are gone, as in a cut) and the last file
//! is cut at any point. Every earlier boot reads whole; the cut boot's
//! events read up to the cut, its logs up to their last flush.

mod common;

use matic_history::read::{Mark, Outcome};
use matic_history::stamp::At;
use matic_history::store::{DEFAULT_CAP, Store};
use matic_history::{BootWriter, Ending, Event};
use proptest::prelude::*;
use std::fs::OpenOptions;

/// What one boot wrote.
struct Wrote {
    number: u64,
    marks: Vec<Mark>,
    kmsg: Vec<String>,
    service: Vec<String>,
    /// Service lines on disk at the last flush that happened.
    flushed: usize,
}

fn at(boot_us: u64) -> At {
    At {
        boot_us,
        wall_unix_us: Some(1_795_983_939_000_000 + boot_us),
    }
}

/// Writes `n` marks, kernel and service lines, flushing as the agent does.
fn fill(w: &mut BootWriter, tag: &str, n: usize) -> Wrote {
    let mut wrote = Wrote {
        number: w.number(),
        marks: vec![],
        kmsg: vec![],
        service: vec![],
        flushed: 0,
    };
    for i in 0..n {
        let t = (i as u64 + 1) * 700_000;
        let mark = Mark {
            name: format!("{tag}-mark-{i}"),
            at_ms: t / 1000,
        };
        w.event(&Event::Mark {
            name: mark.name.clone(),
            at_ms: mark.at_ms,
        })
        .unwrap();
        wrote.marks.push(mark);
        let line = format!(
            "<6>[{:>5}.{:06}] {tag} kernel {i}",
            t / 1_000_000,
            t % 1_000_000
        );
        w.kmsg_line(&line).unwrap();
        wrote.kmsg.push(line);
        let line = format!("{tag} service line {i}");
        w.service_line("containerd", at(t), &line).unwrap();
        wrote.service.push(line);
        if w.flush_due(t).unwrap() {
            wrote.flushed = wrote.service.len();
        }
    }
    wrote
}

fn finished_boot(store: &Store, tag: &str) -> Wrote {
    let mut w = store.begin(common::started(tag)).unwrap();
    let wrote = fill(&mut w, tag, 6);
    w.event(&Event::Successful { at_ms: 5_000 }).unwrap();
    w.event(&Event::Ended {
        ending: Ending::Reboot {
            by: "api:admin".into(),
        },
        at_ms: 9_000,
    })
    .unwrap();
    w.close().unwrap();
    wrote
}

fn assert_whole(store: &Store, wrote: &Wrote) {
    let n = wrote.number;
    assert_eq!(store.timeline(n).unwrap(), wrote.marks);
    assert_eq!(
        store.kmsg(n).unwrap(),
        wrote
            .kmsg
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let texts: Vec<String> = store
        .service_log(n, "containerd")
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, wrote.service);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_cut_costs_only_the_cut_boot_after_the_cut(
        marks in 1usize..12,
        unflushed in 0usize..4,
        cut_events in 0.0f64..=1.0,
        cut_log in prop_oneof![Just(1.0f64), 0.0f64..1.0],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), DEFAULT_CAP).unwrap();
        let earlier = [finished_boot(&store, "one"), finished_boot(&store, "two")];

        let mut w = store.begin(common::started("three")).unwrap();
        let wrote = fill(&mut w, "three", marks);
        // Lines after the last flush: lost with the writer.
        for i in 0..unflushed {
            w.service_line("containerd", at(99_000_000), format!("unflushed {i}")).unwrap();
        }
        let dir = w.dir().to_owned();
        drop(w);

        // The cut: the events file and the service log lose their tails.
        let events = dir.join("events.jsonl");
        let bytes = std::fs::read(&events).unwrap();
        let keep = (bytes.len() as f64 * cut_events) as usize;
        OpenOptions::new().write(true).open(&events).unwrap().set_len(keep as u64).unwrap();
        let log = dir.join("services/containerd.log");
        let log_len = std::fs::metadata(&log).unwrap().len();
        let log_keep = (log_len as f64 * cut_log) as u64;
        OpenOptions::new().write(true).open(&log).unwrap().set_len(log_keep).unwrap();

        let store = Store::open(tmp.path(), DEFAULT_CAP).unwrap();
        for boot in &earlier {
            assert_whole(&store, boot);
        }
        // Events: exactly the records wholly before the cut (Started first).
        let whole_lines = bytes[..keep].iter().filter(|&&b| b == b'\n').count();
        let marks_read = whole_lines.saturating_sub(1);
        prop_assert_eq!(store.timeline(wrote.number).unwrap(), wrote.marks[..marks_read].to_vec());
        // Logs: a prefix of what was flushed, never an unflushed line.
        let read = store.service_log(wrote.number, "containerd").unwrap();
        for (i, line) in read.iter().enumerate() {
            let t = (i as u64 + 1) * 700_000;
            match line.at {
                Some(stamp) => {
                    prop_assert_eq!(stamp, at(t));
                    prop_assert!(wrote.service[i].starts_with(&line.text), "{:?}", line);
                }
                // Cut inside its stamp: only the last line, read as text.
                None => {
                    prop_assert_eq!(i, read.len() - 1);
                    let whole = matic_history::stamp::format(at(t), &wrote.service[i]);
                    prop_assert!(whole.starts_with(&line.text), "{:?}", line);
                }
            }
        }
        prop_assert!(read.len() <= wrote.flushed);
        if cut_log == 1.0 {
            // Uncut: exactly what was flushed, nothing buffered after it.
            prop_assert_eq!(read.len(), wrote.flushed);
        }

        // The next boot: the cut one is listed, ended by a power loss.
        let next = store.begin(common::started("four")).unwrap();
        prop_assert_eq!(next.number(), wrote.number + 1);
        let boots = store.boots(16, Some(next.number())).unwrap();
        prop_assert_eq!(boots.len(), 4);
        prop_assert_eq!(&boots[0].ending, &Outcome::Running);
        let cut = &boots[1];
        prop_assert_eq!(cut.number, wrote.number);
        if whole_lines == 0 {
            prop_assert_eq!(&cut.ending, &Outcome::Unknown);
        } else {
            prop_assert_eq!(&cut.ending, &Outcome::Ended(Ending::PowerLossOrReset));
            prop_assert_eq!(cut.slot.as_deref(), Some("A"));
        }
        for b in &boots[2..] {
            prop_assert_eq!(&b.ending, &Outcome::Ended(Ending::Reboot { by: "api:admin".into() }));
            prop_assert!(b.successful);
            prop_assert_eq!(b.skipped_lines, 0);
        }
    }
}

/// The agent restarted within the same kernel boot: it continues that
/// boot's record, after a torn last line, instead of starting a new one.
#[test]
fn a_restarted_agent_continues_its_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), DEFAULT_CAP).unwrap();
    let mut w = store.resume_or_begin(common::started("same")).unwrap();
    w.event(&Event::Mark {
        name: "a".into(),
        at_ms: 1,
    })
    .unwrap();
    w.service_line("kubelet", at(1), "before").unwrap();
    w.flush_due(1).unwrap();
    let number = w.number();
    let dir = w.dir().to_owned();
    drop(w);
    // A crash mid-record: half a line at the end of both files.
    for (file, torn) in [
        ("events.jsonl", "0123abcd {\"event\":\"ma"),
        ("services/kubelet.log", "1.0 - tor"),
    ] {
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(file))
            .unwrap();
        std::io::Write::write_all(&mut f, torn.as_bytes()).unwrap();
    }

    let mut w = store.resume_or_begin(common::started("same")).unwrap();
    assert_eq!(w.number(), number);
    w.event(&Event::Mark {
        name: "b".into(),
        at_ms: 2,
    })
    .unwrap();
    w.service_line("kubelet", at(2), "after").unwrap();
    w.close().unwrap();
    let names: Vec<String> = store
        .timeline(number)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let texts: Vec<String> = store
        .service_log(number, "kubelet")
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["before", "1.0 - tor", "after"]);
    assert_eq!(store.boots(16, None).unwrap()[0].skipped_lines, 1);

    let w = store
        .resume_or_begin(common::started("another kernel boot"))
        .unwrap();
    assert_eq!(w.number(), number + 1);
}
