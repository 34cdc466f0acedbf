//! Crash dumps in the real ERST form (from a QEMU panic on this project's
//! kernel): parts joined in time order, the panic line found, files moved
//! out of pstore only once copied.

use matic_history::pstore::{self, Dump};
use std::fs;
use std::path::{Path, PathBuf};

/// Part1 of a panic: the newest chunk, ending with the panic and its trace.
fn part1(panic_at: &str) -> String {
    format!(
        "Panic#1 Part1\n\
         <6>[    0.573162] NMI watchdog: Perf NMI watchdog permanently disabled\n\
         <6>[    0.582181] smp: Bringing up secondary CPUs ...\n\
         <6>[    2.023838] sysrq: Trigger a crash\n\
         <0>[    {panic_at}] Kernel panic - not syncing: sysrq triggered crash\n\
         <4>[    2.155990] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3\n\
         <4>[    2.156101] Call Trace:\n\
         <4>[    2.156200]  <TASK>\n\
         <4>[    2.156300]  panic+0x118/0x2f4\n\
         <0>[    2.158314] Kernel Offset: 0x13400000 from 0xffffffff81000000\n"
    )
}

/// Part2: the chunk before it, from the start of the log.
const PART2: &str = "Panic#1 Part2\n\
    <5>[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\n\
    <6>[    0.000000] Command line: console=ttyS0 panic=5 lockdown=integrity\n\
    <6>[    0.535573] ACPI: Reserving ERST table memory at [mem 0x3ffe1aab-0x3ffe1e3a]\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// The two parts of one panic as the kernel leaves them in pstore.
fn one_panic(dir: &Path) -> Vec<PathBuf> {
    vec![
        write(dir, "dmesg-erst-7713669033488285697", &part1("2.155872")),
        write(dir, "dmesg-erst-7713669033488285698", PART2),
    ]
}

/// What the reader should make of [`one_panic`]: Part2 then Part1, no
/// headers, no `<N>` levels.
fn joined(panic_at: &str) -> String {
    let strip = |part: &str| -> String {
        part.lines()
            .skip(1)
            .map(|l| l.split_once('>').unwrap().1.to_owned() + "\n")
            .collect()
    };
    strip(PART2) + &strip(&part1(panic_at))
}

#[test]
fn the_parts_join_oldest_first_and_the_panic_line_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = one_panic(tmp.path());
    // The order files are handed over in does not matter.
    files.reverse();
    let report = pstore::panic_report(&files).unwrap();
    assert_eq!(
        report.first_line,
        "Kernel panic - not syncing: sysrq triggered crash"
    );
    assert_eq!(report.text, joined("2.155872"));
    assert!(report.text.starts_with("[    0.000000] Linux version"));
    assert!(!report.text.contains("Part1") && !report.text.contains("<0>"));
}

#[test]
fn the_newest_of_two_panics_is_reported_and_both_are_dumps() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = one_panic(tmp.path());
    // A later crash (a higher ERST id: its time is in the id's high half).
    files.push(write(
        tmp.path(),
        "dmesg-erst-7713669076437958657",
        &part1("2.024335"),
    ));
    files.push(write(tmp.path(), "dmesg-erst-7713669076437958658", PART2));
    let report = pstore::panic_report(&files).unwrap();
    assert_eq!(report.text, joined("2.024335"));
    let dumps = pstore::dumps(&files);
    assert_eq!(
        dumps,
        [
            Dump {
                reason: "Panic".into(),
                text: joined("2.155872")
            },
            Dump {
                reason: "Panic".into(),
                text: joined("2.024335")
            },
        ]
    );
}

#[test]
fn other_files_and_unreadable_dumps_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = one_panic(tmp.path());
    files.push(write(
        tmp.path(),
        "console-ramoops-0",
        "Panic#1 Part1\n<0>[    9.000000] Kernel panic - not syncing: console\n",
    ));
    // What the kernel leaves when it cannot decompress a record.
    let enc = tmp.path().join("dmesg-erst-7713669076437958659.enc.z");
    fs::write(&enc, [0x78, 0x9c, 0xff, 0x00, 0x13]).unwrap();
    files.push(enc);
    files.push(tmp.path().join("dmesg-erst-missing"));
    assert_eq!(
        pstore::panic_report(&files).unwrap().text,
        joined("2.155872")
    );
}

#[test]
fn an_oops_without_a_panic_is_a_dump_but_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let oops = "Oops#1 Part1\n<4>[   12.000001] BUG: kernel NULL pointer dereference\n";
    let files = vec![write(tmp.path(), "dmesg-erst-1", oops)];
    assert_eq!(pstore::panic_report(&files), None);
    assert_eq!(
        pstore::dumps(&files),
        [Dump {
            reason: "Oops".into(),
            text: "[   12.000001] BUG: kernel NULL pointer dereference\n".into()
        }]
    );
}

#[test]
fn collect_copies_then_unlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pstore");
    fs::create_dir(&src).unwrap();
    one_panic(&src);
    let dest = tmp.path().join("boots/0000000007/pstore");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let copies = pstore::collect(&src, &dest).unwrap();
    assert_eq!(
        copies,
        [
            dest.join("dmesg-erst-7713669033488285697"),
            dest.join("dmesg-erst-7713669033488285698")
        ]
    );
    assert_eq!(fs::read_dir(&src).unwrap().count(), 0, "originals unlinked");
    assert_eq!(fs::read_to_string(&copies[0]).unwrap(), part1("2.155872"));
    assert_eq!(fs::read_to_string(&copies[1]).unwrap(), PART2);
    assert_eq!(
        pstore::panic_report(&copies).unwrap().text,
        joined("2.155872")
    );
    assert!(!dest.join(".collect.tmp").exists());
}

#[test]
fn collect_never_overwrites_an_earlier_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("pstore"), tmp.path().join("dest"));
    fs::create_dir(&src).unwrap();
    write(&src, "dmesg-ramoops-0", "first");
    pstore::collect(&src, &dest).unwrap();
    write(&src, "dmesg-ramoops-0", "second");
    let copies = pstore::collect(&src, &dest).unwrap();
    assert_eq!(copies, [dest.join("dmesg-ramoops-0.1")]);
    assert_eq!(
        fs::read_to_string(dest.join("dmesg-ramoops-0")).unwrap(),
        "first"
    );
    assert_eq!(
        fs::read_to_string(dest.join("dmesg-ramoops-0.1")).unwrap(),
        "second"
    );
}

#[test]
fn a_destination_that_cannot_be_written_keeps_the_originals() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pstore");
    fs::create_dir(&src).unwrap();
    one_panic(&src);
    // A file where the directory should be: fails even for root.
    let blocker = tmp.path().join("boot");
    fs::write(&blocker, b"").unwrap();
    let err = pstore::collect(&src, &blocker.join("pstore")).unwrap_err();
    assert!(err.to_string().contains("boot/pstore"), "{err}");
    let mut left: Vec<_> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "dmesg-erst-7713669033488285697",
            "dmesg-erst-7713669033488285698"
        ]
    );
    assert_eq!(
        fs::read_to_string(src.join("dmesg-erst-7713669033488285698")).unwrap(),
        PART2
    );
}

#[test]
fn a_copy_that_cannot_be_written_keeps_its_original() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("pstore"), tmp.path().join("dest"));
    fs::create_dir(&src).unwrap();
    one_panic(&src);
    // The temporary copy's name is taken by a directory: creating it fails.
    fs::create_dir_all(dest.join(".collect.tmp/x")).unwrap();
    let err = pstore::collect(&src, &dest).unwrap_err();
    assert!(err.to_string().contains(".collect.tmp"), "{err}");
    assert_eq!(fs::read_dir(&src).unwrap().count(), 2, "originals kept");
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 1, "no copy made");
}

#[test]
fn each_dump_comes_with_its_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let first = one_panic(tmp.path());
    let second = vec![
        write(
            tmp.path(),
            "dmesg-erst-7713669076437958657",
            &part1("2.024335"),
        ),
        write(tmp.path(), "dmesg-erst-7713669076437958658", PART2),
    ];
    let all: Vec<PathBuf> = second.iter().chain(&first).cloned().collect();
    let grouped = pstore::dumps_with_files(&all);
    assert_eq!(grouped.len(), 2);
    assert_eq!(grouped[0].1, first, "Part1 first, then Part2");
    assert_eq!(grouped[1].1, second);
    assert_eq!(grouped[0].0.text, joined("2.155872"));
    let plain: Vec<Dump> = grouped.into_iter().map(|(d, _)| d).collect();
    assert_eq!(plain, pstore::dumps(&all));
}
