//! A slot's signed release manifest: where it lives (the manifest block at
//! the start of the slot's last [`SLOT_RESERVE`] bytes), reading and
//! verifying it with the node's trusted keys (`--release-keys`), writing it
//! after an install, and its API form ([`SlotRelease`]).
//!
//! A slot without a manifest that verifies has no release: BootStatus says
//! why, and for anti-rollback its security counter is 0 (an image from
//! before signed releases, or a damaged tail, can be replaced by any signed
//! release). A manifest block of zeros is its own case, [`ReleaseError::Empty`]:
//! a slot never written (a new disk's B), or one whose install did not
//! finish (an install zeroes the block before the payload's first byte and
//! writes the manifest last) — nothing there, rather than "an unsigned
//! image".
//!
//! Must never: hand out a [`Manifest`] that has not been verified with a
//! trusted key, write anywhere but a slot's manifest block, or change slot
//! state (that is [`crate::slots`]').
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use matic_boot::Slot;
use matic_proto::v1::SlotRelease;
use matic_release::hex;
use matic_release::manifest::{BLOCK_LEN, SLOT_RESERVE};
use matic_release::trusted::{TrustError, TrustedKeys};
use matic_release::{Manifest, ManifestError};

use crate::slots::SlotInfo;

/// Why a slot has no verified release, or its manifest block could not be
/// written.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("slot {slot} of {len} bytes is smaller than the {SLOT_RESERVE}-byte manifest reserve")]
    SlotTooSmall { slot: Slot, len: u64 },
    #[error("{op} the manifest block of slot {slot} on {path}: {source}")]
    Io {
        op: &'static str,
        slot: Slot,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no release key is trusted: {0} does not exist (every release is refused until it holds the release keys)"
    )]
    NoKeys(PathBuf),
    #[error("{0}")]
    Trust(#[from] TrustError),
    /// The manifest block is all zeros: nothing installed, or an install
    /// that did not finish.
    #[error("nothing installed (no release, or an install that did not finish)")]
    Empty,
}

impl ReleaseError {
    /// The manifest's own refusal, when that is what this is.
    pub fn manifest(&self) -> Option<&ManifestError> {
        match self {
            ReleaseError::Trust(TrustError::Manifest(m)) => Some(m),
            _ => None,
        }
    }

    /// The slot holds no manifest that verifies, for a reason in its bytes
    /// (none at all, or one refused) rather than the node's: such a slot
    /// fixes no security counter.
    pub fn slot_has_none(&self) -> bool {
        matches!(self, ReleaseError::Empty) || self.manifest().is_some()
    }
}

/// Byte offset on the disk of `slot`'s manifest block.
pub fn tail_offset(slot: Slot, info: &SlotInfo) -> Result<u64, ReleaseError> {
    info.len
        .checked_sub(SLOT_RESERVE)
        .map(|rest| info.offset + rest)
        .ok_or(ReleaseError::SlotTooSmall {
            slot,
            len: info.len,
        })
}

/// Checks a manifest block with `keys`; a missing key directory is its own
/// refusal (no key is trusted), not "unknown key".
pub fn verify(keys: &TrustedKeys, block: &[u8]) -> Result<Manifest, ReleaseError> {
    if !keys.dir().is_dir() {
        // The structure first, as `TrustedKeys::verify` does: an unsigned
        // image is "not a signed release" whatever the node trusts.
        Manifest::parse_unverified(block).map_err(TrustError::from)?;
        return Err(ReleaseError::NoKeys(keys.dir().to_owned()));
    }
    Ok(keys.verify(block)?)
}

/// Reads `slot`'s manifest block through `file` (the disk at `path`) and
/// verifies it.
pub fn read_slot(
    file: &File,
    path: &Path,
    slot: Slot,
    info: &SlotInfo,
    keys: &TrustedKeys,
) -> Result<Manifest, ReleaseError> {
    let at = tail_offset(slot, info)?;
    let mut block = vec![0u8; BLOCK_LEN];
    file.read_exact_at(&mut block, at)
        .map_err(|source| ReleaseError::Io {
            op: "reading",
            slot,
            path: path.to_owned(),
            source,
        })?;
    if block.iter().all(|&b| b == 0) {
        return Err(ReleaseError::Empty);
    }
    verify(keys, &block)
}

/// Writes `block` as `slot`'s manifest block through `file` and makes it
/// durable (the payload before it must already be).
pub fn write_slot(
    file: &File,
    path: &Path,
    slot: Slot,
    info: &SlotInfo,
    block: &[u8],
) -> Result<(), ReleaseError> {
    let at = tail_offset(slot, info)?;
    let io = |op| {
        move |source| ReleaseError::Io {
            op,
            slot,
            path: path.to_owned(),
            source,
        }
    };
    file.write_all_at(block, at).map_err(io("writing"))?;
    file.sync_data().map_err(io("syncing"))
}

/// The API form of a verified manifest.
pub fn to_proto(m: &Manifest) -> SlotRelease {
    SlotRelease {
        version: m.version().to_owned(),
        security_counter: m.counter,
        key_id: m.key_id.to_string(),
        root_hash: hex::string(&m.root_hash),
        payload_size: m.payload_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_block_is_the_start_of_the_last_64_kib() {
        let info = SlotInfo {
            attrs: matic_boot::SlotAttrs::new(0, 0, false).unwrap(),
            offset: 1 << 20,
            len: 8 << 20,
        };
        assert_eq!(
            tail_offset(Slot::B, &info).unwrap(),
            (1 << 20) + (8 << 20) - 65536
        );
        let tiny = SlotInfo { len: 4096, ..info };
        let e = tail_offset(Slot::A, &tiny).unwrap_err().to_string();
        assert!(e.contains("slot A of 4096 bytes"), "{e}");
    }

    #[test]
    fn a_missing_key_directory_trusts_nothing_and_says_so() {
        use matic_tests::release::{Release, TestKey};
        let dir = std::env::temp_dir().join(format!("matic-release-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = TestKey::from_seed(4);
        let r = Release::build(&key, "2.0", 1, &[1u8; 5000]);
        let keys = TrustedKeys::new(&dir);
        let e = verify(&keys, &r.block).unwrap_err();
        assert!(matches!(e, ReleaseError::NoKeys(_)), "{e}");
        assert!(e.to_string().contains("no release key is trusted"), "{e}");
        // An unsigned image is that, whatever the node trusts.
        let e = verify(&keys, &[0u8; BLOCK_LEN]).unwrap_err();
        assert!(matches!(e.manifest(), Some(ManifestError::Magic)), "{e}");
        // With the key's file in place the same block verifies.
        key.trust_in(&dir);
        assert_eq!(verify(&keys, &r.block).unwrap(), r.manifest);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_slot_of_zeros_holds_nothing_and_one_changed_byte_is_not_a_manifest() {
        use matic_tests::release::{Release, TestKey};
        let dir = std::env::temp_dir().join(format!("matic-release-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = TestKey::from_seed(5);
        key.trust_in(&dir);
        let keys = TrustedKeys::new(&dir);
        let disk = dir.join("disk");
        let info = SlotInfo {
            attrs: matic_boot::SlotAttrs::new(0, 0, false).unwrap(),
            offset: 4096,
            len: 4 * 65536,
        };
        std::fs::write(&disk, vec![0u8; (info.offset + info.len) as usize]).unwrap();
        let file = File::options().read(true).write(true).open(&disk).unwrap();
        // Never written (a new disk's B, or an install cut after it zeroed
        // the block): nothing there, and no counter.
        let e = read_slot(&file, &disk, Slot::B, &info, &keys).unwrap_err();
        assert!(matches!(e, ReleaseError::Empty), "{e}");
        assert!(e.to_string().starts_with("nothing installed"), "{e}");
        assert!(e.slot_has_none());
        // One byte that is not zero: a block that is not a manifest.
        let at = tail_offset(Slot::B, &info).unwrap();
        file.write_all_at(&[1], at + 100).unwrap();
        let e = read_slot(&file, &disk, Slot::B, &info, &keys).unwrap_err();
        assert!(matches!(e.manifest(), Some(ManifestError::Magic)), "{e}");
        assert!(e.slot_has_none());
        // A real one, written as an install writes it, reads back verified.
        let r = Release::build(&key, "2.1", 3, &[7u8; 5000]);
        write_slot(&file, &disk, Slot::B, &info, &r.block).unwrap();
        assert_eq!(
            read_slot(&file, &disk, Slot::B, &info, &keys).unwrap(),
            r.manifest
        );
        // A node without keys is the node's reason, not the slot's.
        let none = TrustedKeys::new(dir.join("absent"));
        let e = read_slot(&file, &disk, Slot::B, &info, &none).unwrap_err();
        assert!(!e.slot_has_none(), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
