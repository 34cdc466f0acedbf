//! The tree's geometry: how many levels, how many blocks each has and where
//! each level starts in the payload, as the kernel's dm-verity computes it.
//!
//! Must never: hash, or accept a geometry the kernel would read
//! differently: [`Geometry::new`] refuses what dm-verity would refuse.

use super::{DIGEST_LEN, MAX_LEVELS};

/// Where a tree's levels are, in hash blocks from the start of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub data_blocks: u64,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    /// First hash block of the tree, in hash blocks from the payload's start.
    pub hash_start_block: u64,
    /// `log2(hash_block_size / DIGEST_LEN)`: digests per tree block.
    per_block_bits: u32,
    pub levels: usize,
}

/// Why a geometry cannot be a dm-verity tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// A block size that is not a power of two from 512 to 64 KiB.
    BlockSize,
    /// No data blocks.
    NoData,
    /// The tree would start inside the data.
    HashStart,
    /// More than [`MAX_LEVELS`] levels, or sizes that overflow.
    TooLarge,
}

impl GeometryError {
    /// The words init and the agent print.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BlockSize => "a verity block size is not a power of two from 512 to 65536",
            Self::NoData => "the verity tree covers no data blocks",
            Self::HashStart => "the verity tree starts inside the data",
            Self::TooLarge => "the verity tree is too large",
        }
    }
}

fn block_size_ok(n: u32) -> bool {
    n.is_power_of_two() && (512..=65536).contains(&n)
}

impl Geometry {
    /// The tree of `data_blocks` blocks of `data_block_size`, starting at
    /// byte `hash_start` of the payload, checked as the kernel checks it.
    pub fn new(
        data_blocks: u64,
        data_block_size: u32,
        hash_block_size: u32,
        hash_start: u64,
    ) -> Result<Self, GeometryError> {
        if !block_size_ok(data_block_size) || !block_size_ok(hash_block_size) {
            return Err(GeometryError::BlockSize);
        }
        if data_blocks == 0 {
            return Err(GeometryError::NoData);
        }
        if !hash_start.is_multiple_of(u64::from(hash_block_size)) {
            return Err(GeometryError::HashStart);
        }
        let data_end = data_blocks
            .checked_mul(u64::from(data_block_size))
            .ok_or(GeometryError::TooLarge)?;
        if hash_start < data_end {
            return Err(GeometryError::HashStart);
        }
        let per_block_bits = (hash_block_size / DIGEST_LEN as u32).trailing_zeros();
        // The kernel's rule: the fewest levels whose fan-out covers every
        // data block (0 levels for a single block: the root is its digest).
        let mut levels = 0usize;
        while (per_block_bits as usize) * levels < 64
            && (data_blocks - 1) >> (per_block_bits as usize * levels) != 0
        {
            levels += 1;
        }
        if levels > MAX_LEVELS {
            return Err(GeometryError::TooLarge);
        }
        let g = Self {
            data_blocks,
            data_block_size,
            hash_block_size,
            hash_start_block: hash_start / u64::from(hash_block_size),
            per_block_bits,
            levels,
        };
        g.payload_len().ok_or(GeometryError::TooLarge)?;
        Ok(g)
    }

    /// Digests per tree block.
    pub fn digests_per_block(&self) -> u64 {
        1 << self.per_block_bits
    }

    /// Blocks of level `level` (0 = the digests of the data blocks).
    pub fn level_blocks(&self, level: usize) -> u64 {
        let shift = self.per_block_bits as usize * (level + 1);
        if shift >= 64 {
            return 1;
        }
        self.data_blocks.div_ceil(1u64 << shift)
    }

    /// First hash block of `level`, counted from the start of the payload:
    /// the top level comes first.
    pub fn level_start(&self, level: usize) -> u64 {
        let above: u64 = (level + 1..self.levels).map(|l| self.level_blocks(l)).sum();
        self.hash_start_block + above
    }

    /// Hash blocks in the whole tree.
    pub fn tree_blocks(&self) -> u64 {
        (0..self.levels).map(|l| self.level_blocks(l)).sum()
    }

    /// Byte offset of the tree's first block in the payload.
    pub fn hash_start(&self) -> u64 {
        self.hash_start_block * u64::from(self.hash_block_size)
    }

    /// Bytes of data the tree covers.
    pub fn data_len(&self) -> u64 {
        self.data_blocks * u64::from(self.data_block_size)
    }

    /// Bytes of the whole payload: up to the end of the tree.
    pub fn payload_len(&self) -> Option<u64> {
        self.hash_start_block
            .checked_add(self.tree_blocks())?
            .checked_mul(u64::from(self.hash_block_size))
    }

    /// Where the digest of block `index` of level `level - 1` (of data block
    /// `index` when `level` is 0) is kept: (hash block from the payload's
    /// start, byte offset in it).
    pub fn digest_position(&self, level: usize, index: u64) -> (u64, usize) {
        let block = self.level_start(level) + (index >> self.per_block_bits);
        let offset = (index & (self.digests_per_block() - 1)) as usize * DIGEST_LEN;
        (block, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verity::BLOCK;

    #[test]
    fn levels_follow_the_kernel() {
        let g = |n| Geometry::new(n, BLOCK, BLOCK, n * 4096 + 4096).unwrap();
        assert_eq!(g(1).levels, 0, "one block: the root is its digest");
        assert_eq!(g(2).levels, 1);
        assert_eq!(g(128).levels, 1);
        assert_eq!(g(129).levels, 2);
        assert_eq!(g(128 * 128).levels, 2);
        assert_eq!(g(128 * 128 + 1).levels, 3);
        // 512 MiB of data: 131072 blocks, 1024 + 8 + 1 tree blocks.
        let big = g(131_072);
        assert_eq!(big.levels, 3);
        assert_eq!(
            (
                big.level_blocks(0),
                big.level_blocks(1),
                big.level_blocks(2)
            ),
            (1024, 8, 1)
        );
        // Top level first, right after the superblock.
        assert_eq!(big.level_start(2), 131_073);
        assert_eq!(big.level_start(1), 131_074);
        assert_eq!(big.level_start(0), 131_082);
        assert_eq!(big.payload_len(), Some((131_082 + 1024) * 4096));
        assert_eq!(big.digest_position(0, 0), (131_082, 0));
        assert_eq!(big.digest_position(0, 129), (131_083, 32));
        assert_eq!(big.digest_position(2, 7), (131_073, 7 * 32));
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        assert_eq!(
            Geometry::new(0, BLOCK, BLOCK, 4096),
            Err(GeometryError::NoData)
        );
        assert_eq!(
            Geometry::new(4, 3000, BLOCK, 65536),
            Err(GeometryError::BlockSize)
        );
        assert_eq!(
            Geometry::new(4, BLOCK, BLOCK, 8192),
            Err(GeometryError::HashStart)
        );
        assert_eq!(
            Geometry::new(4, BLOCK, BLOCK, 16385),
            Err(GeometryError::HashStart)
        );
        assert_eq!(
            Geometry::new(u64::MAX, BLOCK, BLOCK, u64::MAX / 4096 * 4096),
            Err(GeometryError::TooLarge)
        );
    }
}
