//! The 512-byte verity superblock `veritysetup format` writes in the hash
//! block before the tree (cryptsetup's `struct verity_sb`, little-endian):
//!
//! ```text
//! offset len  field
//!      0   8  "verity\0\0"
//!      8   4  version, 1
//!     12   4  hash type, 1 (salt before the block)
//!     16  16  UUID (random unless --uuid is given)
//!     32  32  algorithm, "sha256", zero-padded
//!     64   4  data block size
//!     68   4  hash block size
//!     72   8  data blocks
//!     80   2  salt size
//!     82   6  zero
//!     88 256  salt, zero-padded
//!    344 168  zero
//! ```
//! The rest of its hash block is zero. The kernel never reads it;
//! `veritysetup dump` and `verify` do. The signed manifest does not cover
//! these bytes with a digest, so [`check`] holds every one of them to the
//! manifest's values (only the UUID is free).
//!
//! Must never: accept a superblock that disagrees with the manifest.

use super::Geometry;

/// Bytes of the superblock record.
pub const LEN: usize = 512;
const SIGNATURE: &[u8; 8] = b"verity\0\0";
const ALGORITHM: &[u8] = b"sha256";

/// The superblock record for `geometry` and `salt`, with `uuid`.
pub fn render(geometry: &Geometry, salt: &[u8], uuid: [u8; 16]) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(SIGNATURE);
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[12..16].copy_from_slice(&1u32.to_le_bytes());
    b[16..32].copy_from_slice(&uuid);
    b[32..32 + ALGORITHM.len()].copy_from_slice(ALGORITHM);
    b[64..68].copy_from_slice(&geometry.data_block_size.to_le_bytes());
    b[68..72].copy_from_slice(&geometry.hash_block_size.to_le_bytes());
    b[72..80].copy_from_slice(&geometry.data_blocks.to_le_bytes());
    let salt = &salt[..salt.len().min(256)];
    b[80..82].copy_from_slice(&(salt.len() as u16).to_le_bytes());
    b[88..88 + salt.len()].copy_from_slice(salt);
    b
}

/// Whether `block` (the whole hash block before the tree) is the
/// superblock of `geometry` and `salt` with some UUID, zero after it.
pub fn check(block: &[u8], geometry: &Geometry, salt: &[u8]) -> bool {
    if block.len() != geometry.hash_block_size as usize || block.len() < LEN {
        return false;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&block[16..32]);
    block[..LEN] == render(geometry, salt, uuid) && block[LEN..].iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_any_uuid_and_nothing_else() {
        let g = Geometry::new(100, 4096, 4096, 101 * 4096).unwrap();
        let salt = [9u8; 32];
        let mut block = [0u8; 4096];
        block[..LEN].copy_from_slice(&render(&g, &salt, [3; 16]));
        assert!(check(&block, &g, &salt));
        let mut other_uuid = block;
        other_uuid[20] ^= 0xff;
        assert!(check(&other_uuid, &g, &salt));
        for at in (0..16).chain(32..4096) {
            let mut b = block;
            b[at] ^= 1;
            assert!(!check(&b, &g, &salt), "byte {at} changed was accepted");
        }
        assert!(!check(&block, &g, &[9u8; 31]), "other salt");
        assert!(!check(&block[..4095], &g, &salt), "short block");
    }
}
