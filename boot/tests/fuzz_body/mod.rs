//! The body shared by the stable, time-bounded fuzz harness
//! (`tests/fuzz.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/gpt.rs`):
//! open arbitrary bytes as a disk, and when that succeeds, use every
//! accessor, run transitions chosen by the input, write, and check that the
//! result reopens to the same state with both copies healthy.
#![allow(dead_code)]

use matic_boot::gpt::entry::Entry;
use matic_boot::gpt::header::Header;
use matic_boot::gpt::mbr;
use matic_boot::{Disk, Guid, Part, Slot};

/// Exercises the parser and, if it accepts `data`, the whole API. Panics on
/// any violated expectation (that is the finding).
pub fn exercise(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut disk) = Disk::open(&mut buf[..]) else {
        return;
    };
    for part in Part::ALL {
        if let Ok(p) = disk.partition(part) {
            assert!(p.first_lba <= p.last_lba);
            assert!(p.end() <= data.len() as u64, "{part} beyond the device");
            assert_eq!(disk.find_partition(part.name()), Some(p));
        }
    }
    for s in Slot::ALL {
        let p = disk.slot_partition(s);
        assert!(p.end() <= data.len() as u64);
        // A slot that opened shares no sector with any other used entry.
        for i in 0..disk.entry_count() {
            let e = disk.entry(i).unwrap();
            if i + 1 != p.number as usize && e.is_used() && e.first_lba <= e.last_lba {
                assert!(
                    e.last_lba < p.first_lba || e.first_lba > p.last_lba,
                    "slot {s} overlaps entry {i}"
                );
            }
        }
    }
    for i in 0..disk.entry_count() + 1 {
        let _ = disk.entry(i);
    }
    // The first bytes (MBR boot code, which nothing reads) pick transitions.
    for &op in data.iter().take(12) {
        let s = if op & 1 == 0 { Slot::A } else { Slot::B };
        let _ = match (op >> 1) % 7 {
            0 => disk.choose_boot_slot().map(|_| ()),
            1 => disk.mark_successful(s),
            2 => disk.begin_update(s, !s),
            3 => disk.finish_update(s, op >> 4),
            4 => disk.cancel_update(s),
            5 => disk.rollback(s).map(|_| ()),
            _ => Ok(()),
        };
    }
    let status = disk.status();
    let snapshot: Vec<Entry> = (0..disk.entry_count())
        .map(|i| disk.entry(i).unwrap())
        .collect();
    disk.write().expect("write within the device cannot fail");
    let disk = match Disk::open(&mut buf[..]) {
        Ok(d) => d,
        Err(e) => panic!("a table we wrote does not reopen: {e}"),
    };
    assert_eq!(disk.status(), status);
    assert_eq!(disk.health().primary, Ok(()));
    assert_eq!(disk.health().backup, Ok(()));
    let again: Vec<Entry> = (0..disk.entry_count())
        .map(|i| disk.entry(i).unwrap())
        .collect();
    assert_eq!(again, snapshot);
}

/// A compact valid MaticOS GPT for seeding: `sectors` 512-byte sectors,
/// `entry_count` entries of `entry_size` bytes.
pub fn seed_image(sectors: u64, entry_count: u32, entry_size: u32) -> Vec<u8> {
    let mut img = vec![0u8; (sectors * 512) as usize];
    img[..512].copy_from_slice(&mbr::protective(sectors));
    let es = u64::from(entry_count * entry_size).div_ceil(512);
    let last = sectors - 1;
    let (first_usable, last_usable) = (2 + es, last - 1 - es);
    let span = (last_usable - first_usable + 1) / 4;
    let mut entries = vec![0u8; (entry_count * entry_size) as usize];
    for (i, part) in Part::ALL.iter().enumerate() {
        let first = first_usable + span * i as u64;
        let e = Entry {
            type_guid: part.type_guid(),
            unique_guid: Guid([i as u8 + 1; 16]),
            first_lba: first,
            last_lba: first + span - 1,
            attributes: 0x0013_0000_0000_0000 * (i as u64 % 2),
            name: Entry::encode_name(part.name()).unwrap(),
        };
        if i < entry_count as usize {
            let at = i * entry_size as usize;
            e.write(&mut entries[at..at + 128]);
        }
    }
    let crc = crc32fast::hash(&entries);
    for (my, alt, ent) in [(1, last, 2), (last, 1, last - es)] {
        let h = Header {
            my_lba: my,
            alternate_lba: alt,
            first_usable_lba: first_usable,
            last_usable_lba: last_usable,
            disk_guid: Guid([0xd1; 16]),
            entries_lba: ent,
            entry_count,
            entry_size,
            entries_crc: crc,
        };
        let o = (ent * 512) as usize;
        img[o..o + entries.len()].copy_from_slice(&entries);
        img[(my * 512) as usize..(my * 512 + 512) as usize].copy_from_slice(&h.serialize());
    }
    img
}

/// Recomputes the entry-array and header CRCs of whatever headers sit at
/// LBA 1 and the last LBA, trusting their (possibly mutated) geometry as
/// far as it stays inside the buffer, so mutations get past the CRC checks.
pub fn fix_crcs(img: &mut [u8]) {
    let sectors = img.len() / 512;
    if sectors < 2 {
        return;
    }
    for lba in [1, sectors - 1] {
        let h = lba * 512;
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let ent_lba = u64::from_le_bytes(img[h + 72..h + 80].try_into().unwrap());
        let n = u64::from(le32(img, h + 80)) * u64::from(le32(img, h + 84));
        let start = ent_lba.saturating_mul(512);
        if n <= 1 << 20 && start.saturating_add(n) <= img.len() as u64 {
            let crc = crc32fast::hash(&img[start as usize..(start + n) as usize]);
            img[h + 88..h + 92].copy_from_slice(&crc.to_le_bytes());
        }
        let size = (le32(img, h + 12) as usize).clamp(92, 512);
        img[h + 16..h + 20].fill(0);
        let crc = crc32fast::hash(&img[h..h + size]);
        img[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The mutations' xorshift (the stable runner's, so the three fuzz runs
/// share one).
pub use matic_fuzz_runner::Rng;

/// One mutated input derived from a seed image.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut img = seed.to_vec();
    let len = img.len() as u64;
    let sectors = len / 512;
    // Offsets in the metadata: MBR, primary header/entries, backup.
    let meta_offset = |rng: &mut Rng| -> usize {
        match rng.below(4) {
            0 => (512 + rng.below(92)) as usize,
            1 => ((sectors - 1) * 512 + rng.below(92)) as usize,
            2 => (1024 + rng.below(1024)) as usize,
            _ => rng.below(len) as usize,
        }
    };
    let interesting_u64 = [
        0,
        1,
        2,
        33,
        34,
        sectors - 1,
        sectors,
        sectors + 1,
        u64::MAX,
        u64::MAX / 512,
        1 << 32,
    ];
    let interesting_u32 = [
        0u32,
        1,
        91,
        92,
        127,
        128,
        129,
        256,
        512,
        4096,
        u32::MAX,
        0x1_0000,
        16384 / 128 + 1,
    ];
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 => {
                let o = meta_offset(rng);
                img[o] ^= 1 << rng.below(8);
            }
            1 => {
                let o = meta_offset(rng);
                img[o] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5) as usize];
            }
            2 => {
                // A header u64 field (my/alt/usable/entries LBA).
                let hdr = if rng.below(2) == 0 {
                    512
                } else {
                    ((sectors - 1) * 512) as usize
                };
                let o = hdr + [24, 32, 40, 48, 72][rng.below(5) as usize];
                let v = interesting_u64[rng.below(interesting_u64.len() as u64) as usize];
                img[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 => {
                // A header u32 field (size, count, entry size, revision).
                let hdr = if rng.below(2) == 0 {
                    512
                } else {
                    ((sectors - 1) * 512) as usize
                };
                let o = hdr + [8, 12, 80, 84][rng.below(4) as usize];
                let v = interesting_u32[rng.below(interesting_u32.len() as u64) as usize];
                img[o..o + 4].copy_from_slice(&v.to_le_bytes());
            }
            4 => {
                // An entry's LBA or attribute field, in the primary array.
                let e = 1024 + 128 * rng.below(4) as usize + [32, 40, 48][rng.below(3) as usize];
                let v = interesting_u64[rng.below(interesting_u64.len() as u64) as usize];
                img[e..e + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let o = meta_offset(rng);
                let n = (rng.below(64) as usize).min(img.len() - o);
                for b in &mut img[o..o + n] {
                    *b = rng.next_u64() as u8;
                }
            }
        }
    }
    if rng.below(4) != 0 {
        fix_crcs(&mut img);
    }
    match rng.below(10) {
        0 => img.truncate(rng.below(len + 1) as usize),
        1 => img.resize((len + rng.below(4096)) as usize, 0),
        2 => {
            let n = rng.below(1 << 16) as usize;
            img = (0..n).map(|_| rng.next_u64() as u8).collect();
        }
        _ => {}
    }
    img
}
