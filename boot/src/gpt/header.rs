//! The 92-byte GPT header: parse with every check the spec asks for, and
//! serialise with its CRC32. Bytes only: never does I/O, and never picks
//! between the primary and the backup (that is `disk.rs`).

use crate::device::SECTOR_SIZE;
use crate::error::{Check, Which};
use crate::gpt::MAX_ENTRIES_BYTES;
use crate::guid::Guid;

/// `EFI PART`
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0.
pub const REVISION: u32 = 0x0001_0000;
/// The header size we write (the spec's defined fields).
pub const HEADER_SIZE: u32 = 92;

/// The fields of a GPT header that matter after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First LBA a partition may use.
    pub first_usable_lba: u64,
    /// Last LBA a partition may use.
    pub last_usable_lba: u64,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// First LBA of this header's entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub entry_count: u32,
    /// Bytes per entry.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc: u32,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

impl Header {
    /// Bytes of the entry array.
    pub fn entries_bytes(&self) -> usize {
        // Bounded by the EntrySize/EntryCount checks before anyone calls this.
        self.entry_count as usize * self.entry_size as usize
    }

    /// Sectors the entry array spans.
    pub fn entries_sectors(&self) -> u64 {
        (self.entries_bytes() as u64).div_ceil(SECTOR_SIZE)
    }

    /// Parses and checks a header sector read from `at_lba` as `which`, on a
    /// device whose last LBA is `last_lba`. The entries CRC is checked
    /// separately, after the array has been read.
    pub fn parse(
        sector: &[u8; 512],
        which: Which,
        at_lba: u64,
        last_lba: u64,
    ) -> Result<Header, Check> {
        if sector[0..8] != SIGNATURE {
            return Err(Check::Signature);
        }
        if u32_at(sector, 8) >> 16 != 1 {
            return Err(Check::Revision);
        }
        let size = u32_at(sector, 12);
        if !(HEADER_SIZE..=SECTOR_SIZE as u32).contains(&size) {
            return Err(Check::HeaderSize);
        }
        let stored_crc = u32_at(sector, 16);
        let mut h = crate::crc32::Hasher::new();
        h.update(&sector[0..16]);
        h.update(&[0; 4]);
        h.update(&sector[20..size as usize]);
        if h.finalize() != stored_crc {
            return Err(Check::HeaderCrc);
        }
        let hdr = Header {
            my_lba: u64_at(sector, 24),
            alternate_lba: u64_at(sector, 32),
            first_usable_lba: u64_at(sector, 40),
            last_usable_lba: u64_at(sector, 48),
            disk_guid: {
                let mut g = [0u8; 16];
                g.copy_from_slice(&sector[56..72]);
                Guid(g)
            },
            entries_lba: u64_at(sector, 72),
            entry_count: u32_at(sector, 80),
            entry_size: u32_at(sector, 84),
            entries_crc: u32_at(sector, 88),
        };
        hdr.check_geometry(which, at_lba, last_lba)?;
        Ok(hdr)
    }

    fn check_geometry(&self, which: Which, at_lba: u64, last_lba: u64) -> Result<(), Check> {
        if self.my_lba != at_lba {
            return Err(Check::MyLba);
        }
        let alt_ok = match which {
            Which::Primary => self.alternate_lba > self.my_lba && self.alternate_lba <= last_lba,
            Which::Backup => self.alternate_lba == 1,
        };
        if !alt_ok {
            return Err(Check::AlternateLba);
        }
        let es = self.entry_size;
        if es < 128 || !es.is_power_of_two() || es as usize > MAX_ENTRIES_BYTES {
            return Err(Check::EntrySize);
        }
        let bytes = u64::from(self.entry_count) * u64::from(es);
        if self.entry_count == 0 || bytes > MAX_ENTRIES_BYTES as u64 {
            return Err(Check::EntryCount);
        }
        let sectors = bytes.div_ceil(SECTOR_SIZE);
        // The area where the primary's entries go when we rebuild it from the
        // backup (LBA 2, as every tool writes it) must fit before the usable
        // range, and the usable range must lie between the two headers.
        let (first, last) = (self.first_usable_lba, self.last_usable_lba);
        let usable_ok = first <= last
            && first >= 2 + sectors
            && match which {
                // Room for the backup's entries between the two.
                Which::Primary => last.saturating_add(sectors) < self.alternate_lba,
                Which::Backup => last < self.my_lba,
            };
        if !usable_ok {
            return Err(Check::UsableRange);
        }
        let end = self.entries_lba.checked_add(sectors);
        let loc_ok = match (which, end) {
            (_, None) => false,
            (Which::Primary, Some(end)) => self.entries_lba >= 2 && end <= first,
            (Which::Backup, Some(end)) => self.entries_lba > last && end <= self.my_lba,
        };
        if !loc_ok {
            return Err(Check::EntriesLocation);
        }
        Ok(())
    }

    /// Serialises into a zeroed 512-byte sector, computing the header CRC.
    pub fn serialize(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..8].copy_from_slice(&SIGNATURE);
        s[8..12].copy_from_slice(&REVISION.to_le_bytes());
        s[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        s[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        s[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        s[40..48].copy_from_slice(&self.first_usable_lba.to_le_bytes());
        s[48..56].copy_from_slice(&self.last_usable_lba.to_le_bytes());
        s[56..72].copy_from_slice(&self.disk_guid.0);
        s[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        s[80..84].copy_from_slice(&self.entry_count.to_le_bytes());
        s[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        s[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crate::crc32::hash(&s[0..HEADER_SIZE as usize]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(which: Which) -> Header {
        let (my, alt, ent) = match which {
            Which::Primary => (1, 2047, 2),
            Which::Backup => (2047, 1, 2047 - 32),
        };
        Header {
            my_lba: my,
            alternate_lba: alt,
            first_usable_lba: 34,
            last_usable_lba: 2047 - 33,
            disk_guid: Guid([9; 16]),
            entries_lba: ent,
            entry_count: 128,
            entry_size: 128,
            entries_crc: 0x1234_5678,
        }
    }

    #[test]
    fn round_trip_both() {
        for which in [Which::Primary, Which::Backup] {
            let h = sample(which);
            let s = h.serialize();
            assert_eq!(Header::parse(&s, which, h.my_lba, 2047), Ok(h));
        }
    }

    /// Re-CRCs a mutated header so the geometry checks are reached.
    fn recrc(s: &mut [u8; 512]) {
        s[16..20].fill(0);
        let crc = crate::crc32::hash(&s[0..92]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn each_check_fires() {
        let p = sample(Which::Primary);
        let parse = |s: &[u8; 512]| Header::parse(s, Which::Primary, 1, 2047);
        let mut s = p.serialize();
        s[0] = b'X';
        assert_eq!(parse(&s), Err(Check::Signature));
        let mut s = p.serialize();
        s[10] = 2;
        assert_eq!(parse(&s), Err(Check::Revision));
        let mut s = p.serialize();
        s[12] = 91;
        assert_eq!(parse(&s), Err(Check::HeaderSize));
        let mut s = p.serialize();
        s[60] ^= 1;
        assert_eq!(parse(&s), Err(Check::HeaderCrc));
        assert_eq!(
            Header::parse(&p.serialize(), Which::Primary, 2, 2047),
            Err(Check::MyLba)
        );
        let mut bad = p;
        bad.alternate_lba = 4000;
        assert_eq!(parse(&bad.serialize()), Err(Check::AlternateLba));
        let mut bad = p;
        bad.entry_size = 100;
        assert_eq!(parse(&bad.serialize()), Err(Check::EntrySize));
        let mut bad = p;
        bad.entry_count = 129;
        assert_eq!(parse(&bad.serialize()), Err(Check::EntryCount));
        let mut bad = p;
        bad.first_usable_lba = 3000;
        assert_eq!(parse(&bad.serialize()), Err(Check::UsableRange));
        let mut bad = p;
        bad.entries_lba = 3;
        assert_eq!(parse(&bad.serialize()), Err(Check::EntriesLocation));
        let b = sample(Which::Backup);
        let mut bad = b;
        bad.alternate_lba = 2;
        assert_eq!(
            Header::parse(&bad.serialize(), Which::Backup, 2047, 2047),
            Err(Check::AlternateLba)
        );
        // A header size above 92 is covered by the CRC.
        let mut s = p.serialize();
        s[12] = 100;
        recrc(&mut s);
        assert_eq!(parse(&s), Err(Check::HeaderCrc));
    }
}
