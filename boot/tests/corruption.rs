//! Damaged and foreign disks: each broken check falls back or fails with an
//! error that names what failed.

mod common;

use common::*;
use matic_boot::{BlockDevice, Check, Disk, Error, IoOp, Part, Slot};

fn entries_off(s: &Sparse, which_backup: bool, index: u64) -> u64 {
    let base = if which_backup {
        (s.last_lba() - 32) * SECTOR
    } else {
        2 * SECTOR
    };
    base + index * 128
}

#[test]
fn primary_header_crc_broken_falls_back_to_backup() {
    let mut s = running_a();
    let good = read_snapshot(&mut s.clone());
    s.flip(SECTOR + 60, 0x80); // inside the disk GUID: only the CRC notices
    let d = Disk::open(&mut s).unwrap();
    assert_eq!(d.health().primary, Err(Check::HeaderCrc));
    assert_eq!(d.health().backup, Ok(()));
    assert_eq!(snapshot(&d), good);
}

#[test]
fn primary_entries_crc_broken_falls_back_to_backup() {
    let mut s = running_a();
    let good = read_snapshot(&mut s.clone());
    // Corrupt slot A's attributes in the primary array only.
    s.flip(entries_off(&s, false, 1) + 54, 0x01);
    let d = Disk::open(&mut s).unwrap();
    assert_eq!(d.health().primary, Err(Check::EntriesCrc));
    assert_eq!(snapshot(&d), good);
    assert_eq!(d.status().a, attrs(2, 2, true));
}

#[test]
fn backup_missing_reads_primary_and_reports_it() {
    let mut s = running_a();
    let good = read_snapshot(&mut s.clone());
    let last = s.last_lba();
    s.put_sector(last, [0; 512]);
    let d = Disk::open(&mut s).unwrap();
    assert_eq!(d.health().primary, Ok(()));
    assert_eq!(d.health().backup, Err(Check::Signature));
    assert_eq!(snapshot(&d), good);
}

#[test]
fn backup_entries_broken_is_reported() {
    let mut s = running_a();
    s.flip(entries_off(&s, true, 2) + 1, 0x01);
    let d = Disk::open(&mut s).unwrap();
    assert_eq!(d.health().backup, Err(Check::EntriesCrc));
}

#[test]
fn both_broken_names_both_checks() {
    let mut s = running_a();
    s.flip(SECTOR + 60, 0x80);
    s.flip(entries_off(&s, true, 0), 0x01);
    match Disk::open(&mut s) {
        Err(Error::NoValidGpt { primary, backup }) => {
            assert_eq!((primary, backup), (Check::HeaderCrc, Check::EntriesCrc));
        }
        other => panic!("expected NoValidGpt, got {:?}", other.err()),
    }
    let msg = Disk::open(&mut s).err().unwrap().to_string();
    assert!(
        msg.contains("primary header: header CRC32 mismatch"),
        "{msg}"
    );
    assert!(
        msg.contains("backup header: partition entry array CRC32"),
        "{msg}"
    );
}

/// xorshift64*, deterministic garbage.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn garbage_and_blank_devices_are_rejected() {
    for seed in 1..20u64 {
        let mut g = Sparse::from_bytes(&garbage(1 << 20, seed));
        match Disk::open(&mut g) {
            Err(Error::NoValidGpt { primary, backup }) => {
                assert_eq!((primary, backup), (Check::Signature, Check::Signature));
            }
            other => panic!("seed {seed}: got {:?}", other.err()),
        }
    }
    let mut zero = Sparse::new(1 << 30);
    assert!(matches!(
        Disk::open(&mut zero),
        Err(Error::NoValidGpt {
            primary: Check::Signature,
            backup: Check::Signature
        })
    ));
    for size in [0, 511, 512, 2047, 2048] {
        let mut tiny = Sparse::new(size);
        assert!(
            matches!(Disk::open(&mut tiny), Err(Error::DeviceTooSmall { bytes }) if bytes == size),
            "size {size}"
        );
    }
}

#[test]
fn missing_protective_mbr_is_rejected() {
    let mut s = running_a();
    s.put_sector(0, [0; 512]);
    assert!(matches!(Disk::open(&mut s), Err(Error::NoProtectiveMbr)));
}

#[test]
fn gpt_for_4096_byte_sectors_is_refused_clearly() {
    let mut s = running_a();
    let hdr = s.sector(1);
    s.put_sector(1, [0; 512]);
    s.put_sector(8, hdr); // byte 4096: LBA 1 of a 4Kn disk
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::UnsupportedSectorSize(4096))
    ));
    let msg = Disk::open(&mut s).err().unwrap().to_string();
    assert!(msg.contains("4096-byte sectors are not supported"), "{msg}");
}

struct Reports4k(Sparse);
impl BlockDevice for Reports4k {
    type Error = DevError;
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), DevError> {
        self.0.read_at(o, b)
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), DevError> {
        self.0.write_at(o, b)
    }
    fn flush(&mut self) -> Result<(), DevError> {
        Ok(())
    }
    fn size(&mut self) -> Result<u64, DevError> {
        self.0.size()
    }
    fn sector_size(&mut self) -> Result<u32, DevError> {
        Ok(4096)
    }
}

#[test]
fn device_reporting_4096_byte_sectors_is_refused() {
    assert!(matches!(
        Disk::open(Reports4k(running_a())),
        Err(Error::UnsupportedSectorSize(4096))
    ));
    assert!(matches!(
        Disk::create(Reports4k(Sparse::new(1 << 30)), &small_layout()),
        Err(Error::UnsupportedSectorSize(4096))
    ));
}

/// Rewrites entry `index`'s name in both arrays and fixes the CRCs.
fn rename(s: &mut Sparse, index: u64, name: &str) {
    let mut units = [0u8; 72];
    for (i, u) in name.encode_utf16().enumerate() {
        units[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    for backup in [false, true] {
        let off = entries_off(s, backup, index) + 56;
        s.write_at_test(off, &units);
    }
    fix_crcs(s);
}

#[test]
fn missing_and_duplicate_partitions_are_named() {
    let mut s = running_a();
    rename(&mut s, 2, "MATIC_ROOT_C");
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::MissingPartition(Part::RootB))
    ));
    rename(&mut s, 2, "MATIC_ROOT_A");
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::DuplicatePartition(Part::RootA))
    ));
    rename(&mut s, 2, "MATIC_ROOT_B");
    rename(&mut s, 3, "DATA");
    let d = Disk::open(&mut s).expect("the state partition is checked when asked for");
    assert!(matches!(
        d.state_partition(),
        Err(Error::MissingPartition(Part::State))
    ));
    assert_eq!(d.find_partition("DATA").unwrap().number, 4);
}

#[test]
fn partition_outside_usable_range_is_rejected() {
    let mut s = running_a();
    let last_usable = s.last_lba() - 33;
    for backup in [false, true] {
        let off = entries_off(&s, backup, 2) + 40; // last_lba of ROOT_B
        s.write_at_test(off, &(last_usable + 1).to_le_bytes());
    }
    fix_crcs(&mut s);
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::PartitionOutOfRange(Part::RootB))
    ));
}

struct FailReadAt(Sparse, u64);
impl BlockDevice for FailReadAt {
    type Error = DevError;
    fn read_at(&mut self, o: u64, b: &mut [u8]) -> Result<(), DevError> {
        if (o..o + b.len() as u64).contains(&self.1) {
            return Err(DevError::Cut);
        }
        self.0.read_at(o, b)
    }
    fn write_at(&mut self, o: u64, b: &[u8]) -> Result<(), DevError> {
        self.0.write_at(o, b)
    }
    fn flush(&mut self) -> Result<(), DevError> {
        Ok(())
    }
    fn size(&mut self) -> Result<u64, DevError> {
        self.0.size()
    }
}

#[test]
fn io_errors_carry_operation_and_offset() {
    let s = running_a();
    let backup_hdr = s.last_lba() * SECTOR;
    match Disk::open(FailReadAt(s.clone(), backup_hdr + 3)) {
        Err(Error::Io {
            op: IoOp::Read,
            offset,
            source: DevError::Cut,
        }) => assert_eq!(offset, backup_hdr),
        other => panic!("got {:?}", other.err()),
    }
    let msg = Disk::open(FailReadAt(s, 2 * SECTOR))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(msg, "block device read at byte 1024 failed: Cut");
}

#[test]
fn slot_state_survives_reopen_via_std_file() {
    // The std::fs::File implementation, on a real (sparse) file.
    let dir = std::env::temp_dir().join(format!("matic-boot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 * MIB).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut d = Disk::create(f, &small_layout()).unwrap();
    d.finish_update(Slot::B, 7).unwrap();
    d.write().unwrap();
    drop(d);
    let d = Disk::open(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), attrs(2, 7, false));
    assert_eq!(d.status().next, Some(Slot::B));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads entry `index`'s (first, last) LBA from the primary array.
fn range_of(s: &mut Sparse, index: u64) -> (u64, u64) {
    let mut b = [0u8; 16];
    s.read_at_test(entries_off(s, false, index) + 32, &mut b);
    (
        u64::from_le_bytes(b[..8].try_into().unwrap()),
        u64::from_le_bytes(b[8..].try_into().unwrap()),
    )
}

/// A CRC-valid table whose slots overlap each other, `MATIC_STATE`, or a
/// partition another tool added is refused at `open`, naming both: an
/// install bounded by the target's range would otherwise write into the
/// other partition (the running slot, the state).
#[test]
fn overlapping_slots_are_refused() {
    let base = running_a();
    let (a_first, a_last) = range_of(&mut base.clone(), 1);
    let (b_first, b_last) = range_of(&mut base.clone(), 2);
    let (st_first, _) = range_of(&mut base.clone(), 3);

    // B starts on A's last sector.
    let mut s = base.clone();
    set_entry_range(&mut s, 2, a_last, b_last);
    let e = Disk::open(&mut s).err().expect("overlap must be refused");
    assert!(
        matches!(
            e,
            Error::PartitionsOverlap {
                part: Part::RootA,
                number: 3,
                other: Some(Part::RootB)
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "partition MATIC_ROOT_A overlaps partition 3 (MATIC_ROOT_B)"
    );

    // B lies wholly inside A.
    let mut s = base.clone();
    set_entry_range(&mut s, 2, a_first + 8, a_last - 8);
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::PartitionsOverlap {
            part: Part::RootA,
            number: 3,
            ..
        })
    ));

    // B runs into MATIC_STATE.
    let mut s = base.clone();
    set_entry_range(&mut s, 2, b_first, st_first);
    assert!(matches!(
        Disk::open(&mut s),
        Err(Error::PartitionsOverlap {
            part: Part::RootB,
            number: 4,
            other: Some(Part::State)
        })
    ));

    // A partition of no MaticOS name (here entry 5, added by another tool)
    // over slot A.
    let mut s = base.clone();
    let mut e = [0u8; 128];
    s.read_at_test(entries_off(&s, false, 3), &mut e);
    for backup in [false, true] {
        let off = entries_off(&s, backup, 4);
        s.write_at_test(off, &e);
    }
    rename(&mut s, 4, "DATA");
    set_entry_range(&mut s, 4, a_first + 1, a_first + 1);
    let e = Disk::open(&mut s).err().expect("overlap must be refused");
    assert!(
        matches!(
            e,
            Error::PartitionsOverlap {
                part: Part::RootA,
                number: 5,
                other: None
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "partition MATIC_ROOT_A overlaps partition 5");

    // Adjacent is not overlapping: B moved to start right after A opens.
    let mut s = base.clone();
    set_entry_range(&mut s, 2, a_last + 1, b_last);
    Disk::open(&mut s).expect("adjacent partitions are fine");
}
