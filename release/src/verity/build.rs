//! Builds a payload (`data ‖ superblock ‖ tree`) in memory, one core, the
//! plain way: the reference the streaming verifier and `veritysetup` are
//! tested against, and the fixtures of the agent's and osctl's tests.
//! Releases themselves are made by `veritysetup format` (`osctl release
//! sign`).
//!
//! Must never: be used where speed matters (it holds the whole payload).

use super::digest::Salted;
pub use super::digest::salted_digest;
use super::{BLOCK, DIGEST_LEN, Geometry, superblock};

/// A payload and what a manifest says of it.
pub struct Built {
    pub geometry: Geometry,
    pub payload: Vec<u8>,
    pub root_hash: [u8; DIGEST_LEN],
}

/// `data` zero-padded to whole 4 KiB blocks, the superblock (`uuid`,
/// `salt`) and the tree. `data` must not be empty.
pub fn payload(data: &[u8], salt: &[u8], uuid: [u8; 16]) -> Built {
    let block = BLOCK as usize;
    let data_blocks = data.len().div_ceil(block).max(1) as u64;
    let data_len = data_blocks as usize * block;
    let geometry = Geometry::new(data_blocks, BLOCK, BLOCK, (data_len + block) as u64)
        .expect("a 4 KiB geometry of a non-empty payload");
    let tree_len = geometry.tree_blocks() as usize * block;
    let mut payload = vec![0u8; data_len + block + tree_len];
    payload[..data.len()].copy_from_slice(data);
    payload[data_len..data_len + superblock::LEN]
        .copy_from_slice(&superblock::render(&geometry, salt, uuid));
    // Level by level from the data up: the digests of the level below go
    // into this level's blocks.
    let salted = Salted::new(salt);
    let mut below: Vec<[u8; DIGEST_LEN]> = payload[..data_len]
        .chunks_exact(block)
        .map(|b| salted.digest(b))
        .collect();
    for level in 0..geometry.levels {
        for (i, digest) in below.iter().enumerate() {
            let (blk, off) = geometry.digest_position(level, i as u64);
            let at = blk as usize * block + off;
            payload[at..at + DIGEST_LEN].copy_from_slice(digest);
        }
        let start = geometry.level_start(level) as usize * block;
        let len = geometry.level_blocks(level) as usize * block;
        below = payload[start..start + len]
            .chunks_exact(block)
            .map(|b| salted.digest(b))
            .collect();
    }
    debug_assert_eq!(below.len(), 1);
    Built {
        geometry,
        payload,
        root_hash: below[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_root_is_its_digest_and_two_blocks_have_one_level() {
        let one = payload(b"hello", &[1, 2], [0; 16]);
        assert_eq!(one.geometry.levels, 0);
        assert_eq!(one.payload.len(), 2 * 4096);
        let mut padded = vec![0u8; 4096];
        padded[..5].copy_from_slice(b"hello");
        assert_eq!(one.root_hash, salted_digest(&[1, 2], &padded));

        let two = payload(&[7u8; 4097], &[], [0; 16]);
        assert_eq!(two.geometry.levels, 1);
        assert_eq!(two.payload.len(), 4 * 4096);
        let leaf = &two.payload[3 * 4096..];
        assert_eq!(leaf[..32], salted_digest(&[], &two.payload[..4096]));
        assert_eq!(leaf[32..64], salted_digest(&[], &two.payload[4096..8192]));
        assert!(leaf[64..].iter().all(|&b| b == 0));
        assert_eq!(two.root_hash, salted_digest(&[], leaf));
    }
}
