//! A release file as osctl reads it: the 4096-byte manifest block, then
//! exactly the payload the manifest's size names. `osctl install`, `osctl
//! release verify` and `inspect` all open releases through here.
//!
//! Must never: vouch for a manifest (it is parsed, not verified: osctl
//! holds no trusted keys unless `release verify --keys` hands it some, and
//! the node checks the signature before it touches a slot), or read the
//! payload (a release can be hundreds of MiB).

use std::io::Read;
use std::path::{Path, PathBuf};

use matic_release::manifest::{self, Manifest, ManifestError};

use super::ReleaseError;

/// An opened release: its manifest block, what the block says (signature
/// not checked), and where the payload lies in the file.
#[derive(Debug)]
pub struct ReleaseFile {
    pub path: PathBuf,
    /// The manifest block, [`manifest::BLOCK_LEN`] bytes, as in the file.
    pub block: Vec<u8>,
    /// The block's fields; its signature is NOT checked.
    pub unverified: Manifest,
}

impl ReleaseFile {
    /// Reads the manifest block of `path` and checks the file's length is
    /// the block plus the payload size the manifest names.
    pub fn open(path: &Path) -> Result<Self, ReleaseError> {
        let read = |source| ReleaseError::Read {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read)?;
        let len = f.metadata().map_err(read)?.len();
        let mut block = Vec::with_capacity(manifest::BLOCK_LEN);
        f.take(manifest::BLOCK_LEN as u64)
            .read_to_end(&mut block)
            .map_err(read)?;
        let unverified = match Manifest::parse_unverified(&block) {
            Ok(m) => m,
            // Too short to hold a manifest, or no magic: not a release at all.
            Err(ManifestError::Magic | ManifestError::Short(_)) => {
                return Err(ReleaseError::NotRelease(path.to_path_buf()));
            }
            Err(source) => {
                return Err(ReleaseError::Manifest {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let want = manifest::BLOCK_LEN as u64 + unverified.payload_size;
        if len != want {
            return Err(ReleaseError::Length {
                path: path.to_path_buf(),
                len,
                want,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            block,
            unverified,
        })
    }

    /// `(offset, length)` of the payload in the file.
    pub fn payload_range(&self) -> (u64, u64) {
        (manifest::BLOCK_LEN as u64, self.unverified.payload_size)
    }
}
