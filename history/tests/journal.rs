//! The events file format: every event round-trips, a torn last record
//! and a damaged line cost only themselves.

use matic_history::journal::{self, Journal};
use matic_history::{Ending, Event, Started};
use proptest::prelude::*;

fn started() -> Event {
    Event::Started(Started {
        boot: "6c1f0e4c-1d55-4a57-8f8e-3c0d1f3a2b11".into(),
        slot: "A".into(),
        os_version: "0.1.0".into(),
        kernel: "6.1.0-57-amd64".into(),
        wall_unix_ms: Some(1_795_983_939_120),
        uptime_ms: 3_412,
    })
}

/// One of every event, and every ending.
fn every_event() -> Vec<Event> {
    let mut events = vec![
        started(),
        Event::Started(Started {
            boot: String::new(),
            slot: "B".into(),
            os_version: "ünïcode \"quoted\"\n".into(),
            kernel: String::new(),
            wall_unix_ms: None,
            uptime_ms: u64::MAX,
        }),
        Event::Mark {
            name: "root-mounted".into(),
            at_ms: 2_900,
        },
        Event::Successful { at_ms: 5_800 },
    ];
    for ending in [
        Ending::Reboot {
            by: "api:admin".into(),
        },
        Ending::Poweroff { by: "init".into() },
        Ending::KernelPanic {
            first_line: "Kernel panic - not syncing: sysrq triggered crash".into(),
        },
        Ending::Watchdog,
        Ending::BootDeadline,
        Ending::UnmountableRoot,
        Ending::PowerLossOrReset,
    ] {
        events.push(Event::Ended {
            ending,
            at_ms: 61_000,
        });
    }
    events
}

fn file(events: &[Event]) -> Vec<u8> {
    events.iter().flat_map(journal::encode).collect()
}

#[test]
fn every_event_round_trips() {
    let events = every_event();
    assert_eq!(
        journal::read(&file(&events)),
        Journal { events, skipped: 0 }
    );
}

#[test]
fn the_json_names_the_event_and_the_ending() {
    let line = journal::encode(&Event::Ended {
        ending: Ending::Reboot {
            by: "api:admin".into(),
        },
        at_ms: 7,
    });
    let json = std::str::from_utf8(&line[9..]).unwrap();
    assert_eq!(
        json,
        "{\"event\":\"ended\",\"ending\":{\"kind\":\"reboot\",\"by\":\"api:admin\"},\"at_ms\":7}\n"
    );
}

/// A real 3-record file cut at every length reads exactly the records
/// that are whole, and counts the torn one.
#[test]
fn a_torn_last_record_is_skipped_at_every_cut() {
    let events = vec![
        started(),
        Event::Mark {
            name: "stage2".into(),
            at_ms: 3_100,
        },
        Event::Successful { at_ms: 5_800 },
    ];
    let bytes = file(&events);
    let ends: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] == b'\n')
        .map(|i| i + 1)
        .collect();
    assert_eq!(ends.len(), 3);
    for cut in 0..=bytes.len() {
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let torn = usize::from(!ends.contains(&cut) && cut != 0);
        assert_eq!(
            journal::read(&bytes[..cut]),
            Journal {
                events: events[..whole].to_vec(),
                skipped: torn
            },
            "cut at {cut}"
        );
    }
}

/// Any byte of any line changed: that line is skipped, every other reads.
#[test]
fn a_flipped_byte_skips_only_its_line() {
    let events = every_event();
    let lines: Vec<Vec<u8>> = events.iter().map(journal::encode).collect();
    for (n, line) in lines.iter().enumerate() {
        // Not the newline itself: flipping it merges two lines, tested below.
        for at in 0..line.len() - 1 {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut damaged = lines.clone();
                damaged[n][at] ^= flip;
                if damaged[n][at] == b'\n' {
                    continue;
                }
                let mut want = events.clone();
                want.remove(n);
                assert_eq!(
                    journal::read(&damaged.concat()),
                    Journal {
                        events: want,
                        skipped: 1
                    },
                    "line {n} byte {at} ^ {flip:#x}"
                );
            }
        }
    }
}

#[test]
fn a_lost_newline_costs_the_two_lines_it_joined() {
    let events = every_event();
    let mut bytes = file(&events[..3]);
    let first_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    bytes[first_end] = b' ';
    assert_eq!(
        journal::read(&bytes),
        Journal {
            events: events[2..3].to_vec(),
            skipped: 1
        }
    );
}

#[test]
fn an_unknown_event_with_a_good_checksum_is_skipped() {
    let json = br#"{"event":"from_the_future","at_ms":1}"#;
    let mut bytes = format!("{:08x} ", crc32fast::hash(json)).into_bytes();
    bytes.extend_from_slice(json);
    bytes.push(b'\n');
    bytes.extend(journal::encode(&Event::Successful { at_ms: 2 }));
    assert_eq!(
        journal::read(&bytes),
        Journal {
            events: vec![Event::Successful { at_ms: 2 }],
            skipped: 1
        }
    );
}

proptest! {
    /// Any bytes at all: no panic, and never more events than lines.
    #[test]
    fn any_bytes_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let journal = journal::read(&bytes);
        let lines = bytes.split(|&b| b == b'\n').count();
        prop_assert!(journal.events.len() + journal.skipped <= lines);
    }

    /// Good lines around garbage lines all read.
    #[test]
    fn garbage_lines_cost_only_themselves(
        garbage in proptest::collection::vec("[^\n]{1,80}", 0..6),
        at in proptest::collection::vec(any::<u64>(), 1..6),
    ) {
        let events: Vec<Event> = at.iter().map(|&at_ms| Event::Successful { at_ms }).collect();
        let mut bytes = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if let Some(g) = garbage.get(i) {
                bytes.extend_from_slice(g.as_bytes());
                bytes.push(b'\n');
            }
            bytes.extend(journal::encode(event));
        }
        let journal = journal::read(&bytes);
        prop_assert_eq!(journal.events, events.clone());
        prop_assert_eq!(journal.skipped, garbage.len().min(events.len()));
    }
}
