//! On-disk GPT structures: the protective MBR, the header and the partition
//! entries. Pure parsing and serialisation over byte slices; no I/O.

pub mod entry;
pub mod header;
pub mod mbr;

/// Largest partition entry array this crate holds: 128 entries of 128 bytes
/// (what sgdisk, fdisk and the UEFI spec's minimum use). Fixed so the table
/// lives in one stack/static buffer with no allocator.
pub const MAX_ENTRIES_BYTES: usize = 16 * 1024;
