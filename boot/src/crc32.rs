//! CRC-32 (IEEE 802.3, the GPT's and zlib's) over header and entry bytes.
//!
//! One 256-entry table (1 KiB, built at compile time by the `crc` crate):
//! the GPT checks a few 16 KiB arrays per boot, so a bytewise table is
//! fast enough, and PID 1 links this code — a slice-by-16 table would be
//! 16 KiB of its 64 KiB budget. Owns no state and never allocates.

use crc::{CRC_32_ISO_HDLC, Crc, Digest, Table};

const CRC32: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISO_HDLC);

/// The CRC-32 of `bytes`.
pub(crate) fn hash(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// An incremental CRC-32, for data that is not in one slice.
pub(crate) struct Hasher(Digest<'static, u32, Table<1>>);

impl Hasher {
    pub(crate) fn new() -> Hasher {
        Hasher(CRC32.digest())
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value_and_crc32fast() {
        // The catalogue's check value: CRC-32 of "123456789".
        assert_eq!(hash(b"123456789"), 0xcbf4_3926);
        let data: [u8; 1000] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        assert_eq!(hash(&data), crc32fast::hash(&data));
        let mut h = Hasher::new();
        for part in data.chunks(333) {
            h.update(part);
        }
        assert_eq!(h.finalize(), crc32fast::hash(&data));
    }
}
