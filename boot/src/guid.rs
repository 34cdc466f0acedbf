//! GUIDs as GPT stores them: 16 bytes, the first three fields little-endian.
//!
//! [`Guid`] keeps the on-disk byte order and converts to and from the usual
//! text form (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`) that `sgdisk` prints.
//! Never generates random GUIDs (no RNG in `no_std`): callers pass bytes.

use core::fmt;

/// A GUID in on-disk (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

/// Position of each text hex pair in the on-disk byte array (the first three
/// fields are little-endian on disk, the last two big-endian).
const TEXT_ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Guid {
    /// The all-zero GUID, which marks an unused partition entry.
    pub const ZERO: Guid = Guid([0; 16]);

    /// Parses the text form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`
    /// (case-insensitive). `const` so type GUIDs can be constants.
    pub const fn parse(s: &str) -> Option<Guid> {
        Self::parse_bytes(s.as_bytes())
    }

    /// [`Guid::parse`] of bytes that may not be UTF-8 (a kernel command
    /// line): anything but the text form is `None`, as there. It lets
    /// matic-init do without `str::from_utf8` (docs/init.md "Size").
    pub const fn parse_bytes(b: &[u8]) -> Option<Guid> {
        if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        let mut out = [0u8; 16];
        let mut text_byte = 0;
        let mut i = 0;
        while i < 36 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                i += 1;
                continue;
            }
            let (hi, lo) = match (hex_val(b[i]), hex_val(b[i + 1])) {
                (Some(h), Some(l)) => (h, l),
                _ => return None,
            };
            out[TEXT_ORDER[text_byte]] = (hi << 4) | lo;
            text_byte += 1;
            i += 2;
        }
        Some(Guid(out))
    }

    /// True for the all-zero GUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Derives a GUID from `seed` and a small index, deterministically.
    ///
    /// There is no random number generator in `no_std`, so partition GUIDs
    /// are derived from the (caller-chosen, ideally random) disk GUID: four
    /// CRC32s over `seed || index || word` give 128 bits, then the RFC 4122
    /// version-4 and variant bits are set so the result looks like any other
    /// random GUID. Different indices give different GUIDs for one seed.
    pub fn derive(seed: &Guid, index: u8) -> Guid {
        let mut out = [0u8; 16];
        for word in 0..4u8 {
            let mut h = crate::crc32::Hasher::new();
            h.update(&seed.0);
            h.update(&[index, word, 0x4d, 0x41]);
            let v = h.finalize().to_le_bytes();
            out[usize::from(word) * 4..usize::from(word) * 4 + 4].copy_from_slice(&v);
        }
        // On disk, byte 7 holds the high byte of the third (little-endian)
        // field, whose top nibble is the version; byte 8 holds the variant.
        out[7] = (out[7] & 0x0f) | 0x40;
        out[8] = (out[8] & 0x3f) | 0x80;
        Guid(out)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &pos) in TEXT_ORDER.iter().enumerate() {
            if i == 4 || i == 6 || i == 8 || i == 10 {
                f.write_str("-")?;
            }
            write!(f, "{:02X}", self.0[pos])?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl core::str::FromStr for Guid {
    type Err = ParseGuidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guid::parse(s).ok_or(ParseGuidError)
    }
}

/// The text was not a GUID of the form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseGuidError;

impl fmt::Display for ParseGuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a GUID (expected XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)")
    }
}

impl core::error::Error for ParseGuidError {}

const fn must(g: Option<Guid>) -> Guid {
    match g {
        Some(g) => g,
        None => panic!("bad GUID constant"),
    }
}

/// EFI System Partition type.
pub const ESP_TYPE: Guid = must(Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"));
/// Linux root (x86-64), Discoverable Partitions Specification.
pub const ROOT_X86_64_TYPE: Guid = must(Guid::parse("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"));
/// Linux filesystem data.
pub const LINUX_FS_TYPE: Guid = must(Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4"));

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn esp_type_has_known_on_disk_bytes() {
        // The bytes every GPT on earth stores for the ESP type.
        assert_eq!(
            ESP_TYPE.0,
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
    }

    #[test]
    fn text_round_trip() {
        let s = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
        assert_eq!(Guid::parse(s).unwrap().to_string(), s);
        assert_eq!(Guid::parse(&s.to_lowercase()).unwrap(), ROOT_X86_64_TYPE);
    }

    #[test]
    fn rejects_malformed() {
        assert!(Guid::parse("").is_none());
        assert!(Guid::parse("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B70").is_none());
        assert!(Guid::parse("4F68BCE3xE8CD-4DB1-96E7-FBCAF984B709").is_none());
        assert!(Guid::parse("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B7G9").is_none());
        // Bytes: the same answers, and 36 bytes that are not text are none.
        let s = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
        assert_eq!(Guid::parse_bytes(s.as_bytes()), Guid::parse(s));
        assert!(Guid::parse_bytes(b"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B7\xff9").is_none());
    }

    #[test]
    fn derived_guids_are_distinct_v4() {
        let seed = Guid([7; 16]);
        let a = Guid::derive(&seed, 1);
        let b = Guid::derive(&seed, 2);
        assert_ne!(a, b);
        assert_eq!(a, Guid::derive(&seed, 1));
        let t = a.to_string();
        assert_eq!(&t[14..15], "4", "version nibble in {t}");
        assert!(
            matches!(&t[19..20], "8" | "9" | "A" | "B"),
            "variant in {t}"
        );
    }
}
