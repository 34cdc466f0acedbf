//! Stage 1's root through dm-verity, the decisions: where a slot keeps its
//! manifest block, whether the verified manifest's payload fits the slot,
//! the trusted key file a manifest names, the mapped device's name and its
//! `verity` table (the kernel's `Documentation/admin-guide/device-mapper/
//! verity.rst`), and the console words for a slot whose manifest is refused.
//!
//! Pure: it must never read a device or a file, or issue an ioctl (the
//! binary's `rootdev.rs` does), and it must never build a table from a
//! manifest whose signature was not checked (it takes a `Manifest`, which
//! only `Manifest::verify` makes from bytes).

use crate::fmtbuf::{Buf, Printable, Show, Sink};
use crate::show;
use matic_boot::Slot;
use matic_release::KeyId;
use matic_release::hex;
use matic_release::key::TRUSTED_KEYS_DIR;
use matic_release::manifest::{BLOCK_LEN, Manifest, ManifestError, SLOT_RESERVE};
use rustix::io::Errno;

/// The target type.
pub const TARGET: &[u8] = b"verity";
/// Bytes per sector in a DM table.
const SECTOR: u64 = 512;
/// The table's parameter text: at most 2 × 11 (devices) + 2 × 20 (block
/// numbers) + 64 (root) + 128 (salt) + about 60 bytes of words.
pub type Params = Buf<384>;

/// Where a slot partition of `part_len` bytes keeps its manifest block:
/// the start of its last [`SLOT_RESERVE`] bytes; `None` when the partition
/// is too small to hold one.
pub fn manifest_offset(part_len: u64) -> Option<u64> {
    let at = part_len.checked_sub(SLOT_RESERVE)?;
    (at + BLOCK_LEN as u64 <= part_len).then_some(at)
}

/// Why a slot's manifest is refused: each is the slot's image's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestProblem {
    /// The partition (`part_len` bytes) is smaller than the tail reserved
    /// for the manifest.
    SlotTooSmall { part_len: u64 },
    /// The block at the slot's tail is not a valid, signed manifest.
    Invalid(ManifestError),
    /// The manifest's payload does not end before the slot's tail.
    PayloadTooLarge { payload: u64, room: u64 },
}

impl ManifestProblem {
    /// The console words (the values are added by [`Show`]).
    pub fn describe(&self) -> &'static str {
        match self {
            Self::SlotTooSmall { .. } => "the slot is too small to hold a release manifest",
            Self::Invalid(e) => e.describe(),
            Self::PayloadTooLarge { .. } => "the manifest's payload is larger than the slot",
        }
    }
}

impl Show for ManifestProblem {
    fn show(&self, out: &mut dyn Sink) {
        out.put(self.describe().as_bytes());
        // The key id tells which key file is missing or which key did not
        // sign; the sizes of a slot that does not fit are in the GPT.
        if let Self::Invalid(ManifestError::UnknownKey(id) | ManifestError::BadSignature(id)) = self
        {
            show!(out, " (key id {})", Printable(&id.hex()))
        }
    }
}

/// Checks that the verified manifest's payload fits a slot of `part_len`
/// bytes before its manifest block (what the agent checked at install; a
/// slot read back with a different size is not the image it installed).
pub fn check_fits(m: &Manifest, part_len: u64) -> Result<(), ManifestProblem> {
    let room = manifest_offset(part_len).ok_or(ManifestProblem::SlotTooSmall { part_len })?;
    if m.payload_size > room {
        return Err(ManifestProblem::PayloadTooLarge {
            payload: m.payload_size,
            room,
        });
    }
    Ok(())
}

/// `TRUSTED_KEYS_DIR/<key id>.pub`, the one file that may hold the key.
pub fn key_path(id: KeyId) -> Buf<64> {
    let mut b = Buf::new();
    b.push_bytes(TRUSTED_KEYS_DIR.as_bytes());
    b.push_bytes(b"/");
    b.push_bytes(&id.file_name());
    b
}

/// The mapped device's name, `matic-root-<slot>`: the agent reports the
/// root as verified by it.
pub fn device_name(slot: Slot) -> &'static [u8] {
    match slot {
        Slot::A => b"matic-root-A",
        Slot::B => b"matic-root-B",
    }
}

/// Sectors of the mapped device: the data the tree covers.
pub fn data_sectors(m: &Manifest) -> u64 {
    m.geometry.data_len() / SECTOR
}

/// What the kernel does when a block read from the root does not match the
/// tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCorruption {
    /// `restart_on_corruption`: restart the machine. For a slot on trial:
    /// each restart spends one of its tries, so the previous slot boots
    /// when they run out.
    Restart,
    /// The kernel's default: the read fails with EIO (and is logged). For
    /// a slot already marked successful, which has no tries to spend: a
    /// restart would come back to the same slot and the same block forever,
    /// locking the admin out; failing the read keeps the node up (what does
    /// not read the bad block runs, the agent included) so the API can
    /// roll back.
    Eio,
}

impl OnCorruption {
    /// The mode for a slot: restart while it is on trial, EIO once proven.
    pub fn for_slot(successful: bool) -> Self {
        if successful { Self::Eio } else { Self::Restart }
    }
}

/// The `verity` target's parameters for manifest `m` over the slot
/// partition `dev` (`(major, minor)`), data and tree on the same device:
/// `1 <dev> <dev> <data block size> <hash block size> <data blocks>
/// <hash start block> sha256 <root> <salt or -> [1 restart_on_corruption]`
/// (docs/init.md, "A corrupted block").
pub fn table_params(m: &Manifest, dev: (u32, u32), on_corruption: OnCorruption) -> Params {
    let g = &m.geometry;
    let mut p = Params::new();
    let (major, minor) = dev;
    show!(
        &mut p,
        "1 {}:{} {}:{} {} {} {} {} sha256 ",
        major,
        minor,
        major,
        minor,
        g.data_block_size,
        g.hash_block_size,
        g.data_blocks,
        g.hash_start_block
    );
    push_hex(&mut p, &m.root_hash);
    p.push_bytes(b" ");
    if m.salt().is_empty() {
        p.push_bytes(b"-");
    } else {
        push_hex(&mut p, m.salt());
    }
    if on_corruption == OnCorruption::Restart {
        p.push_bytes(b" 1 restart_on_corruption");
    }
    p
}

fn push_hex<const N: usize>(out: &mut Buf<N>, bytes: &[u8]) {
    let mut text = [0u8; 2 * matic_release::manifest::MAX_SALT];
    if let Some(t) = hex::encode(bytes, &mut text) {
        out.push_bytes(t);
    }
}

/// The first 16 hex digits of the root hash, for the console line.
pub fn root_prefix(m: &Manifest) -> [u8; 16] {
    let mut out = [0u8; 16];
    let _ = hex::encode(&m.root_hash[..8], &mut out);
    out
}

/// The errno by which a refused manifest is judged (`slotfault`):
/// `EBADMSG`, what Linux returns for data that fails its integrity check.
pub const REFUSED: Errno = Errno::BADMSG;

#[cfg(test)]
mod tests {
    use super::*;
    use matic_release::verity::{BLOCK, Geometry};

    /// A 300-block image laid out as `veritysetup format
    /// --hash-offset=<data bytes>` writes it: the superblock in block 300,
    /// the tree from block 301 (the root hash is an arbitrary value).
    fn manifest(salt: &[u8]) -> Manifest {
        let g = Geometry::new(300, BLOCK, BLOCK, 301 * 4096).unwrap();
        let mut root = [0u8; 32];
        hex::decode(
            b"9f1d6f6e4aa0d3e5c2a7f0b1d4e3c2b1a0f9e8d7c6b5a4938271605f4e3d2c1b",
            &mut root,
        )
        .unwrap();
        Manifest::new("0.4.0", 3, [0; 32], g, salt, root, KeyId([0xab; 8])).unwrap()
    }

    #[test]
    fn the_table_names_the_partition_twice_and_the_signed_values() {
        let mut salt = [0u8; 32];
        hex::decode(
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            &mut salt,
        )
        .unwrap();
        let m = manifest(&salt);
        let p = table_params(&m, (254, 2), OnCorruption::Restart);
        assert_eq!(
            core::str::from_utf8(p.as_bytes()).unwrap(),
            "1 254:2 254:2 4096 4096 300 301 sha256 \
             9f1d6f6e4aa0d3e5c2a7f0b1d4e3c2b1a0f9e8d7c6b5a4938271605f4e3d2c1b \
             00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \
             1 restart_on_corruption"
        );
        assert!(!p.truncated());
        assert_eq!(data_sectors(&m), 300 * 8);
    }

    /// A slot on trial restarts on a corrupted block (its tries count the
    /// restarts down); a proven slot fails the read instead, so a bad block
    /// cannot restart the node forever.
    #[test]
    fn only_a_slot_on_trial_restarts_on_corruption() {
        let m = manifest(&[]);
        assert_eq!(OnCorruption::for_slot(false), OnCorruption::Restart);
        assert_eq!(OnCorruption::for_slot(true), OnCorruption::Eio);
        let trial = table_params(&m, (8, 16), OnCorruption::for_slot(false));
        let proven = table_params(&m, (8, 16), OnCorruption::for_slot(true));
        assert!(trial.as_bytes().ends_with(b" - 1 restart_on_corruption"));
        assert!(proven.as_bytes().ends_with(
            b" sha256 9f1d6f6e4aa0d3e5c2a7f0b1d4e3c2b1a0f9e8d7c6b5a4938271605f4e3d2c1b -"
        ));
    }

    #[test]
    fn no_salt_is_a_dash_and_the_longest_salt_fits() {
        let p = table_params(&manifest(&[]), (8, 16), OnCorruption::Restart);
        assert!(p.as_bytes().ends_with(b" - 1 restart_on_corruption"));
        let long = manifest(&[0xee; 64]);
        let p = table_params(&long, (4095, 1_048_575), OnCorruption::Restart);
        assert!(!p.truncated(), "{}", p.as_bytes().len());
        assert!(p.as_bytes().ends_with(b" 1 restart_on_corruption"));
        let b = crate::dm::IoctlBuf::table(b"matic-root-B", 8, TARGET, p.as_bytes());
        assert!(b.is_some(), "the longest table fits the ioctl buffer");
    }

    #[test]
    fn the_manifest_is_in_the_last_64_kib() {
        let mib = 1 << 20;
        assert_eq!(manifest_offset(256 * mib), Some(256 * mib - 65_536));
        assert_eq!(manifest_offset(65_536), Some(0));
        assert_eq!(manifest_offset(65_535), None);
        assert_eq!(manifest_offset(0), None);
    }

    #[test]
    fn a_payload_must_end_before_the_manifest() {
        let m = manifest(&[]);
        let need = m.payload_size + SLOT_RESERVE;
        assert_eq!(check_fits(&m, need), Ok(()));
        assert_eq!(
            check_fits(&m, need - 4096),
            Err(ManifestProblem::PayloadTooLarge {
                payload: m.payload_size,
                room: m.payload_size - 4096
            })
        );
        assert_eq!(
            check_fits(&m, 4096),
            Err(ManifestProblem::SlotTooSmall { part_len: 4096 })
        );
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(device_name(Slot::A), b"matic-root-A");
        assert_eq!(device_name(Slot::B), b"matic-root-B");
        assert_eq!(
            key_path(KeyId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])).as_bytes(),
            b"/usr/share/matic/release-keys/0123456789abcdef.pub"
        );
        assert_eq!(&root_prefix(&manifest(&[])), b"9f1d6f6e4aa0d3e5");
    }

    #[test]
    fn refusals_read_as_sentences() {
        let mut b = Buf::<200>::new();
        show!(
            &mut b,
            "{}",
            ManifestProblem::Invalid(ManifestError::UnknownKey(KeyId([0xab; 8])))
        );
        assert_eq!(
            b.as_bytes(),
            b"the manifest is signed by a key that is not trusted (key id abababababababab)"
        );
        b.clear();
        show!(&mut b, "{}", ManifestProblem::Invalid(ManifestError::Magic));
        assert_eq!(b.as_bytes(), b"no release manifest (an unsigned image?)");
    }
}
