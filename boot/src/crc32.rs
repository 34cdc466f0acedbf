//! CRC-32 (IEEE 802.3, the GPT's and zlib's) over header and entry bytes.
//!
//! Bit by bit, no table (the `crc` crate's `NoTable`): PID 1 links this
//! code and every byte of its 64 KiB budget counts (the 256-entry table
//! cost 880 bytes of init; crc32fast's slice-by-16 one would be 16 KiB).
//! The GPT checks a few 16 KiB arrays per boot: about 2 ms each under
//! load, against 0.12 ms with the table (docs/init.md "Size"). This
//! crate's own tests hash far more, so the dev profile builds it
//! optimised (the workspace Cargo.toml). Owns no state and never allocates.

use crc::{CRC_32_ISO_HDLC, Crc, Digest, NoTable};

const CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);

/// The CRC-32 of `bytes`.
pub(crate) fn hash(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// An incremental CRC-32, for data that is not in one slice.
pub(crate) struct Hasher(Digest<'static, u32, NoTable>);

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
