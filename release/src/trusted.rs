//! The trusted keys of a program with `std` (agent, osctl): the directory
//! of public-key files ([`crate::key::TRUSTED_KEYS_DIR`] on a node), looked
//! up by the manifest's key id, and `ring`'s Ed25519 as the signature check.
//!
//! Must never: trust a key by anything but its file under the directory,
//! or read anything but the one file the key id names.

use std::path::{Path, PathBuf};

use crate::key::{self, KeyId, PublicKey};
use crate::manifest::{Manifest, ManifestError, SignatureCheck};

/// A directory of trusted public-key files.
#[derive(Clone, Debug)]
pub struct TrustedKeys {
    dir: PathBuf,
}

/// Why a manifest could not be checked or was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading trusted release key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "trusted release key {path} is not a public-key file (`matic-release-key ed25519 <64 hex digits>`)"
    )]
    Malformed { path: PathBuf },
    #[error("{0}")]
    Manifest(#[from] ManifestError),
}

impl TrustedKeys {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public key named `id`, `None` when there is no such file.
    pub fn get(&self, id: KeyId) -> Result<Option<PublicKey>, TrustError> {
        let name = id.file_name();
        let path = self
            .dir
            .join(std::str::from_utf8(&name).unwrap_or_default());
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TrustError::Read { path, source }),
        };
        key::parse_public(&text)
            .map(Some)
            .ok_or(TrustError::Malformed { path })
    }

    /// Checks a manifest block against these keys with `ring`'s Ed25519.
    #[cfg(feature = "ring")]
    pub fn verify(&self, block: &[u8]) -> Result<Manifest, TrustError> {
        self.verify_with(block, &RingEd25519)
    }

    /// Checks a manifest block against these keys with `check`.
    pub fn verify_with(
        &self,
        block: &[u8],
        check: &dyn SignatureCheck,
    ) -> Result<Manifest, TrustError> {
        // The structure first: a non-manifest names no key worth opening.
        let id = Manifest::parse_unverified(block)?.key_id;
        let public = self.get(id)?;
        Ok(Manifest::verify(block, |_| public, check)?)
    }
}

/// `ring`'s Ed25519 verification.
#[cfg(feature = "ring")]
pub struct RingEd25519;

#[cfg(feature = "ring")]
impl SignatureCheck for RingEd25519 {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message, signature)
            .is_ok()
    }
}
