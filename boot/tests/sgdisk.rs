//! Interop with a partitioner nobody here wrote: Debian's `sgdisk` (gdisk).
//! A GPT made by sgdisk is read correctly (names, ranges, GUIDs, attribute
//! bits); ours passes `sgdisk -v`; and the attribute bits we set are the
//! ones `sgdisk -A N:show` reports. These tests fail (not skip) when
//! sgdisk is missing: `scripts/lib/deps.sh` installs it.

mod common;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use matic_boot::{Disk, Guid, Part, Slot, SlotAttrs};

fn sgdisk(args: &[&str], img: &Path) -> String {
    let out = Command::new("sgdisk")
        .args(args)
        .arg(img)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run sgdisk ({e}): install Debian's gdisk package \
                 (scripts/lib/deps.sh does this); these interop tests require it"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sgdisk {args:?} failed:\n{text}");
    text
}

/// A fresh sparse image file, removed on drop.
struct Img(PathBuf);

impl Img {
    fn new(name: &str, size: u64) -> Img {
        let dir = std::env::temp_dir().join(format!("matic-boot-sgdisk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        Img(p)
    }
    fn rw(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.0)
            .unwrap()
    }
}

impl Drop for Img {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `sgdisk -i N`: (first sector, last sector, unique GUID, attribute flags).
fn info(img: &Path, n: u32) -> (u64, u64, Guid, u64) {
    let out = sgdisk(&["-i", &n.to_string()], img);
    let field = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
            .trim()
            .to_string()
    };
    let first = field("First sector:")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let last = field("Last sector:")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let guid = field("Partition unique GUID:").parse().unwrap();
    let attrs = u64::from_str_radix(&field("Attribute flags:"), 16).unwrap();
    (first, last, guid, attrs)
}

/// The bits `sgdisk -A N:show` reports as set.
fn shown_bits(img: &Path, n: u32) -> BTreeSet<u32> {
    let out = sgdisk(&["-A", &format!("{n}:show")], img);
    out.lines()
        .filter_map(|l| {
            let mut f = l.split(' ').next()?.split(':');
            let (part, bit, val) = (f.next()?, f.next()?, f.next()?);
            (part == n.to_string() && val == "1").then(|| bit.parse().unwrap())
        })
        .collect()
}

fn bits_of(a: SlotAttrs) -> BTreeSet<u32> {
    (0..64).filter(|b| a.apply_to(0) >> b & 1 == 1).collect()
}

fn assert_verifies_clean(img: &Path) {
    let out = sgdisk(&["-v"], img);
    assert!(out.contains("No problems found"), "sgdisk -v:\n{out}");
    for bad in ["Warning", "Caution", "Problem", "problem:"] {
        assert!(!out.contains(bad), "sgdisk -v says {bad:?}:\n{out}");
    }
}

#[test]
fn reads_a_gpt_made_by_sgdisk() {
    let img = Img::new("foreign.img", 64 * MIB);
    // Deliberately not our order: partitions are found by name, not number.
    #[rustfmt::skip]
    let args: &[&str] = &[
        "-o",
        "-n", "1:2048:+8M", "-t", "1:8300", "-c", "1:MATIC_STATE",
        "-n", "2:0:+4M", "-t", "2:8304", "-c", "2:MATIC_ROOT_B",
        "-n", "3:0:+1M", "-t", "3:EF00", "-c", "3:ESP",
        "-n", "4:0:+4M", "-t", "4:8304", "-c", "4:MATIC_ROOT_A",
        // A: priority 1, tries 2, successful; B: priority 3, tries 15.
        "-A", "4:set:48", "-A", "4:set:53", "-A", "4:set:56",
        "-A", "2:set:48", "-A", "2:set:49",
        "-A", "2:set:52", "-A", "2:set:53", "-A", "2:set:54", "-A", "2:set:55",
        "-A", "2:set:60",
    ];
    sgdisk(args, &img.0);
    let d = Disk::open(File::open(&img.0).unwrap()).unwrap();
    let expect = [
        (Part::State, 1),
        (Part::RootB, 2),
        (Part::Esp, 3),
        (Part::RootA, 4),
    ];
    for (part, n) in expect {
        let p = d.partition(part).unwrap();
        let (first, last, guid, raw) = info(&img.0, n);
        assert_eq!(p.number, n, "{part}");
        assert_eq!((p.first_lba, p.last_lba), (first, last), "{part}");
        assert_eq!(p.unique_guid, guid, "{part}");
        assert_eq!(p.attributes, raw, "{part}");
        assert_eq!(p.type_guid, part.type_guid(), "{part}");
    }
    assert_eq!(d.partition(Part::Esp).unwrap().size(), MIB);
    assert_eq!(d.slot_attrs(Slot::A), attrs(1, 2, true));
    assert_eq!(d.slot_attrs(Slot::B), attrs(3, 15, false));
    assert_eq!(d.status().next, Some(Slot::B));
    let disk_guid_line = sgdisk(&["-p"], &img.0);
    assert!(
        disk_guid_line.contains(&format!("Disk identifier (GUID): {}", d.disk_guid())),
        "{disk_guid_line}"
    );

    // Our write on sgdisk's table: still valid for sgdisk, bit 60 kept.
    let mut d = Disk::open(img.rw()).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    d.write().unwrap();
    drop(d);
    assert_verifies_clean(&img.0);
    let mut want = bits_of(attrs(3, 14, false));
    want.insert(60);
    assert_eq!(shown_bits(&img.0, 2), want);
}

#[test]
fn our_gpt_passes_sgdisk_verify() {
    let img = Img::new("ours.img", 1 << 30);
    Disk::create(img.rw(), &matic_boot::Layout::new(small_layout().disk_guid)).unwrap();
    assert_verifies_clean(&img.0);
    let table = sgdisk(&["-p"], &img.0);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let want = [
        ["1", "2048", "133119", "EF00", "ESP"],
        ["2", "133120", "657407", "8304", "MATIC_ROOT_A"],
        ["3", "657408", "1181695", "8304", "MATIC_ROOT_B"],
        ["4", "1181696", "2095103", "8300", "MATIC_STATE"],
    ];
    assert_eq!(rows.len(), 4, "{table}");
    for (row, w) in rows.iter().zip(want) {
        assert_eq!([row[0], row[1], row[2], row[5], row[6]], w, "{table}");
    }
    let d = Disk::open(File::open(&img.0).unwrap()).unwrap();
    for (i, part) in Part::ALL.into_iter().enumerate() {
        let (first, last, guid, _) = info(&img.0, i as u32 + 1);
        let p = d.partition(part).unwrap();
        assert_eq!(
            (p.first_lba, p.last_lba, p.unique_guid),
            (first, last, guid)
        );
    }
}

#[test]
fn attribute_bits_we_set_are_what_sgdisk_shows() {
    let img = Img::new("bits.img", 64 * MIB);
    let mut d = Disk::create(img.rw(), &small_layout()).unwrap();
    let cases = [
        (attrs(5, 10, true), attrs(0, 15, false)),
        (attrs(15, 0, false), attrs(1, 1, true)),
        (SlotAttrs::INVALID, attrs(2, 3, false)),
    ];
    for (a, b) in cases {
        d.force_slot_attrs(Slot::A, a);
        d.force_slot_attrs(Slot::B, b);
        d.write().unwrap();
        assert_eq!(shown_bits(&img.0, 2), bits_of(a), "A = {a}");
        assert_eq!(shown_bits(&img.0, 3), bits_of(b), "B = {b}");
        assert_verifies_clean(&img.0);
    }
    // And the other way round: bits set by sgdisk read back as the same value.
    drop(d);
    sgdisk(
        &["-A", "3:clear:49", "-A", "3:set:50", "-A", "3:set:56"],
        &img.0,
    );
    let d = Disk::open(File::open(&img.0).unwrap()).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), attrs(4, 3, true));
}

#[test]
fn our_write_repairs_what_sgdisk_flags() {
    let img = Img::new("repair.img", 64 * MIB);
    Disk::create(img.rw(), &small_layout()).unwrap();
    // Break the primary header's CRC.
    let f = img.rw();
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 512 + 60).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], 512 + 60).unwrap();
    drop(f);
    let out = Command::new("sgdisk")
        .arg("-v")
        .arg(&img.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("corrupt GPT"),
        "sgdisk should notice:\n{text}"
    );
    let mut d = Disk::open(img.rw()).unwrap();
    assert!(d.health().primary.is_err());
    d.write().unwrap();
    drop(d);
    assert_verifies_clean(&img.0);
}
