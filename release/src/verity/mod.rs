//! The slot payload's dm-verity hash tree, format 1, as `veritysetup
//! format` writes it and the kernel's dm-verity reads it.
//!
//! The payload is `data ‖ verity superblock ‖ tree`: the data blocks (the
//! SquashFS, padded to whole blocks), in the next hash block the 512-byte
//! superblock `veritysetup` writes ([`superblock`]; the kernel never reads
//! it), then the tree from `hash_start`, **top level first**, level 0 (the
//! digests of the data blocks) last ([`geometry`]). Every tree block holds
//! `hash_block_size / 32` SHA-256 digests, zero-filled after the last one; a
//! digest is `SHA-256(salt ‖ block)`; the root hash is the digest of the top
//! level's only block (of the only data block when there is one).
//!
//! Must never: accept a payload whose every byte has not been accounted
//! for: data and tree blocks by their digests up to the signed root hash,
//! the superblock by its fields.

pub mod geometry;
pub mod superblock;

#[cfg(feature = "std")]
pub mod build;
#[cfg(feature = "std")]
pub mod digest;
#[cfg(feature = "std")]
pub mod stream;

pub use geometry::{Geometry, GeometryError};

/// Bytes of a SHA-256 digest, the only algorithm MaticOS uses.
pub const DIGEST_LEN: usize = 32;
/// The block size MaticOS uses for data and hash blocks.
pub const BLOCK: u32 = 4096;
/// Most levels a tree may have (the kernel's `DM_VERITY_MAX_LEVELS`).
pub const MAX_LEVELS: usize = 63;
