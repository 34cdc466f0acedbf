//! One 128-byte GPT partition entry: type and unique GUIDs, LBA range,
//! attribute bits, and a 36-unit UTF-16LE name. Bytes only: never does I/O
//! and never interprets the slot bits (that is `slot.rs`).

use crate::guid::Guid;

/// Bytes of the entry fields this crate reads and writes.
pub const ENTRY_SIZE: usize = 128;
/// UTF-16 code units in a name.
pub const NAME_UNITS: usize = 36;

/// A partition entry as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Partition type; zero means the entry is unused.
    pub type_guid: Guid,
    /// Unique partition GUID (`PARTUUID`).
    pub unique_guid: Guid,
    /// First LBA (inclusive).
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// The 64-bit attribute field.
    pub attributes: u64,
    /// The name, UTF-16LE, NUL-padded.
    pub name: [u16; NAME_UNITS],
}

impl Entry {
    /// Parses the first 128 bytes of `b` (which may be a larger entry).
    pub fn parse(b: &[u8]) -> Entry {
        // One length check up front (a shorter `b` panics here, as it did
        // at its first field); the fields' reads below are then provably in
        // bounds and carry no checks of their own (docs/init.md "Size").
        let b = &b[..ENTRY_SIZE];
        let g = |o: usize| {
            let mut x = [0u8; 16];
            x.copy_from_slice(&b[o..o + 16]);
            Guid(x)
        };
        let q = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let mut name = [0u16; NAME_UNITS];
        for (i, n) in name.iter_mut().enumerate() {
            *n = u16::from_le_bytes([b[56 + 2 * i], b[57 + 2 * i]]);
        }
        Entry {
            type_guid: g(0),
            unique_guid: g(16),
            first_lba: q(32),
            last_lba: q(40),
            attributes: q(48),
            name,
        }
    }

    /// Writes the entry into the first 128 bytes of `b`.
    pub fn write(&self, b: &mut [u8]) {
        b[0..16].copy_from_slice(&self.type_guid.0);
        b[16..32].copy_from_slice(&self.unique_guid.0);
        b[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        b[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        b[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        for (i, n) in self.name.iter().enumerate() {
            b[56 + 2 * i..58 + 2 * i].copy_from_slice(&n.to_le_bytes());
        }
    }

    /// True when the entry is in use (non-zero type GUID).
    pub fn is_used(&self) -> bool {
        !self.type_guid.is_zero()
    }

    /// Whether the name is exactly `s` (compared as UTF-16, up to the first NUL).
    pub fn name_is(&self, s: &str) -> bool {
        let mut units = s.encode_utf16();
        for &n in &self.name {
            match units.next() {
                Some(u) if u == n => {}
                Some(_) => return false,
                None => return n == 0,
            }
        }
        units.next().is_none()
    }

    /// Encodes `s` as a NUL-padded UTF-16 name; `None` if it is too long.
    pub fn encode_name(s: &str) -> Option<[u16; NAME_UNITS]> {
        let mut name = [0u16; NAME_UNITS];
        for (i, u) in s.encode_utf16().enumerate() {
            *name.get_mut(i)? = u;
        }
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_name() {
        let e = Entry {
            type_guid: Guid([1; 16]),
            unique_guid: Guid([2; 16]),
            first_lba: 2048,
            last_lba: 4095,
            attributes: 1 << 56,
            name: Entry::encode_name("MATIC_ROOT_A").unwrap(),
        };
        let mut b = [0u8; 128];
        e.write(&mut b);
        assert_eq!(&b[56..60], &[b'M', 0, b'A', 0]);
        let p = Entry::parse(&b);
        assert_eq!(p, e);
        assert!(p.name_is("MATIC_ROOT_A"));
        assert!(!p.name_is("MATIC_ROOT_"));
        assert!(!p.name_is("MATIC_ROOT_AB"));
        assert!(!p.name_is("MATIC_ROOT_B"));
        let full = "X".repeat(36);
        let e2 = Entry {
            name: Entry::encode_name(&full).unwrap(),
            ..e
        };
        assert!(e2.name_is(&full));
        assert!(!e2.name_is(&"X".repeat(37)));
        assert!(Entry::encode_name(&"X".repeat(37)).is_none());
    }
}
