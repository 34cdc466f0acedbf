//! Checks a release's payload against its manifest, in one pass over the
//! file: the exact size, the SHA-256 of every byte, and the dm-verity tree
//! (every data block's digest in level 0, every tree block's digest in the
//! level above, the top block's digest equal to the signed root hash, the
//! superblock byte for byte but its UUID). `osctl release verify` runs it
//! after the signature; `osctl release sign` runs it on what `veritysetup`
//! wrote before it signs.
//!
//! Must never: accept a payload on fewer checks than these, or hold the
//! data in memory (only the data blocks' digests and the tree, about 1/128
//! of the data, are kept).

use std::io::Read;
use std::path::Path;

use matic_release::hex;
use matic_release::manifest::Manifest;
use matic_release::verity::build::salted_digest;
use matic_release::verity::{DIGEST_LEN, superblock};
use sha2::{Digest, Sha256};

/// Why a payload does not match its manifest; each names the block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the payload is {got} bytes, the manifest says {want}")]
    Size { got: u64, want: u64 },
    #[error("the payload's SHA-256 is {got}, not the manifest's {want}")]
    Sha256 { got: String, want: String },
    #[error(
        "the verity superblock (payload bytes {at}..{end}) does not match the manifest's data blocks, block sizes and salt"
    )]
    Superblock { at: u64, end: u64 },
    #[error(
        "data block {block} (payload bytes {at}..{end}) does not match its digest in the verity tree"
    )]
    DataBlock { block: u64, at: u64, end: u64 },
    #[error(
        "verity tree level {level} block {block} (payload bytes {at}..{end}) does not match its digest in the level above"
    )]
    TreeBlock {
        level: usize,
        block: u64,
        at: u64,
        end: u64,
    },
    #[error(
        "the verity tree's top block (payload bytes {at}..{end}) does not hash to the manifest's root hash {want}"
    )]
    Root { at: u64, end: u64, want: String },
    #[error("reading the payload: {0}")]
    Read(String),
}

/// Checks the `manifest.payload_size` bytes of `path` from `offset`: size,
/// verity tree and superblock, then SHA-256.
pub fn check_payload(path: &Path, offset: u64, manifest: &Manifest) -> Result<(), PayloadError> {
    let got = check_tree(path, offset, manifest)?;
    if got != manifest.payload_sha256 {
        return Err(PayloadError::Sha256 {
            got: hex::string(&got),
            want: hex::string(&manifest.payload_sha256),
        });
    }
    Ok(())
}

/// The size, superblock and verity checks of [`check_payload`]; the
/// payload's SHA-256, which is not compared (`osctl release sign` puts it
/// into the manifest it signs).
pub fn check_tree(path: &Path, offset: u64, manifest: &Manifest) -> Result<[u8; 32], PayloadError> {
    let read = |e: std::io::Error| PayloadError::Read(e.to_string());
    let mut f = std::fs::File::open(path).map_err(read)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).map_err(read)?;
    let len = f.metadata().map_err(read)?.len().saturating_sub(offset);
    if len != manifest.payload_size {
        return Err(PayloadError::Size {
            got: len,
            want: manifest.payload_size,
        });
    }
    let g = &manifest.geometry;
    let salt = manifest.salt();
    let block = g.data_block_size as usize;
    let mut sha = Sha256::new();
    let mut f = std::io::BufReader::with_capacity(1 << 20, f);
    let mut buf = vec![0u8; block];
    let mut fill = |buf: &mut [u8], sha: &mut Sha256| -> Result<(), PayloadError> {
        f.read_exact(buf).map_err(read)?;
        sha.update(&*buf);
        Ok(())
    };
    // The data blocks: only their digests are kept.
    let mut data_digests: Vec<[u8; DIGEST_LEN]> = Vec::with_capacity(g.data_blocks as usize);
    for _ in 0..g.data_blocks {
        fill(&mut buf, &mut sha)?;
        data_digests.push(salted_digest(salt, &buf));
    }
    let hash_block = g.hash_block_size as u64;
    let sb_at = g.data_len();
    let mut sb = vec![0u8; g.hash_block_size as usize];
    fill(&mut sb, &mut sha)?;
    let superblock_ok = superblock::check(&sb, g, salt);
    // The tree, top level first as it lies in the payload.
    let tree_len = (g.payload_len().unwrap_or(0) - g.hash_start()) as usize;
    let mut tree = vec![0u8; tree_len];
    fill(&mut tree, &mut sha)?;
    if !superblock_ok {
        return Err(PayloadError::Superblock {
            at: sb_at,
            end: sb_at + hash_block,
        });
    }
    // From the top down, as the kernel checks a read: the top block against
    // the signed root hash, each tree block against its digest in the level
    // above, each data block against its digest in level 0. A changed byte
    // is so blamed on the block it is in, not on the one it describes.
    let hb = g.hash_block_size as usize;
    let first = g.hash_start_block;
    let tree_block = |level: usize, i: u64| {
        let start = (g.level_start(level) + i - first) as usize * hb;
        &tree[start..start + hb]
    };
    let entry = |level: usize, i: u64| {
        let (blk, off) = g.digest_position(level, i);
        let at = (blk - first) as usize * hb + off;
        &tree[at..at + DIGEST_LEN]
    };
    let block_bytes = |level: usize, i: u64| {
        let b = g.level_start(level) + i;
        (b * hash_block, (b + 1) * hash_block)
    };
    let top = match g.levels {
        0 => data_digests[0],
        n => salted_digest(salt, tree_block(n - 1, 0)),
    };
    if top != manifest.root_hash {
        let (at, end) = match g.levels {
            0 => (0, block as u64),
            n => block_bytes(n - 1, 0),
        };
        return Err(PayloadError::Root {
            at,
            end,
            want: hex::string(&manifest.root_hash),
        });
    }
    for level in (1..g.levels).rev() {
        for i in 0..g.level_blocks(level - 1) {
            if salted_digest(salt, tree_block(level - 1, i))[..] != *entry(level, i) {
                let (at, end) = block_bytes(level - 1, i);
                return Err(PayloadError::TreeBlock {
                    level: level - 1,
                    block: i,
                    at,
                    end,
                });
            }
        }
    }
    if g.levels > 0 {
        for (i, digest) in data_digests.iter().enumerate() {
            let i = i as u64;
            if digest[..] != *entry(0, i) {
                return Err(PayloadError::DataBlock {
                    block: i,
                    at: i * block as u64,
                    end: (i + 1) * block as u64,
                });
            }
        }
    }
    // A block-level failure above names the block; the digest is compared
    // after it (a digest that differs with every block in place would be
    // the signer's error).
    Ok(sha.finalize().into())
}
