//! Signed test releases: a release key from a fixed seed, a release file
//! (manifest block ‖ payload) built from any data with the reference
//! builder `matic_release::verity::build::payload`, the key's public file in
//! a trusted-keys directory, and a release put into a slot of a test disk
//! the way an install leaves it (payload from the slot's first byte,
//! manifest block at the start of the slot's last 64 KiB).
//!
//! Test support only: the seeds are public, so these keys must never be
//! trusted by a real node.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use matic_boot::{Disk, Slot};
use matic_release::Manifest;
use matic_release::key::{self, KeyId};
use matic_release::manifest::{BLOCK_LEN, SLOT_RESERVE};
use matic_release::verity::build;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// An Ed25519 release key made from a 32-byte seed of `seed` bytes.
pub struct TestKey {
    pair: Ed25519KeyPair,
    pub id: KeyId,
}

impl TestKey {
    pub fn from_seed(seed: u8) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("an Ed25519 seed");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        let id = KeyId::of(&public);
        Self { pair, id }
    }

    /// The 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("32 bytes")
    }

    /// Writes `<key id>.pub` into `dir` (created if missing); returns its path.
    pub fn trust_in(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let name = self.id.file_name();
        let path = dir.join(std::str::from_utf8(&name).unwrap());
        std::fs::write(&path, key::render_public(&self.public())).unwrap();
        path
    }

    /// The Ed25519 signature of `message` (for `Manifest::sign`).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair
            .sign(message)
            .as_ref()
            .try_into()
            .expect("64 bytes")
    }
}

/// A signed release: its manifest, the manifest block and the payload.
pub struct Release {
    pub manifest: Manifest,
    pub block: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Release {
    /// `data` (not empty) as a release `version` with security `counter`,
    /// signed by `key`. The salt and the superblock UUID derive from the
    /// version, so two builds of the same inputs are the same bytes.
    pub fn build(key: &TestKey, version: &str, counter: u64, data: &[u8]) -> Self {
        let salt: [u8; 32] = Sha256::digest(version.as_bytes()).into();
        let uuid: [u8; 16] = salt[..16].try_into().unwrap();
        let built = build::payload(data, &salt, uuid);
        let mut manifest = Manifest::new(
            version,
            counter,
            Sha256::digest(&built.payload).into(),
            built.geometry,
            &salt,
            built.root_hash,
            key.id,
        )
        .expect("a valid test manifest");
        manifest.sign(|m| key.sign(m));
        Self {
            block: manifest.render_block().to_vec(),
            manifest,
            payload: built.payload,
        }
    }

    /// The release file: the manifest block, then the payload.
    pub fn file(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(BLOCK_LEN + self.payload.len());
        f.extend_from_slice(&self.block);
        f.extend_from_slice(&self.payload);
        f
    }

    /// Writes the payload from `slot`'s first byte and the manifest block at
    /// the start of its last 64 KiB, as an install leaves them (slot state
    /// is the caller's, through matic-boot's transitions).
    pub fn put_in_slot(&self, disk: &mut Disk<File>, slot: Slot) {
        let p = disk.slot_partition(slot);
        assert!(
            self.payload.len() as u64 <= p.size() - SLOT_RESERVE,
            "a {}-byte payload does not fit slot {slot}",
            self.payload.len()
        );
        let f = disk.device();
        f.write_all_at(&self.payload, p.start()).unwrap();
        f.write_all_at(&self.block, p.start() + p.size() - SLOT_RESERVE)
            .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_release::trusted::TrustedKeys;

    #[test]
    fn a_built_release_verifies_with_its_key_only() {
        let dir = std::env::temp_dir().join(format!("matic-tests-release-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = TestKey::from_seed(1);
        key.trust_in(&dir);
        let r = Release::build(&key, "1.4", 3, &[5u8; 10_000]);
        let m = TrustedKeys::new(&dir).verify(&r.block).unwrap();
        assert_eq!((m.version(), m.counter), ("1.4", 3));
        assert_eq!(m.payload_size, r.payload.len() as u64);
        assert_eq!(r.file().len(), BLOCK_LEN + r.payload.len());
        let other = Release::build(&TestKey::from_seed(2), "1.4", 3, &[5u8; 10_000]);
        assert!(TrustedKeys::new(&dir).verify(&other.block).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
