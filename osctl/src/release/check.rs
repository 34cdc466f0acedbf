//! Checks a release's payload against its manifest, in one pass over the
//! file: `matic-release`'s [`StreamVerifier`] on every core (every data and
//! tree block by digest up to the signed root hash, the superblock byte for
//! byte but its UUID, the length exactly the manifest's), and beside it the
//! SHA-256 of every byte. `osctl release verify` runs it after the
//! signature; `osctl release sign` runs it on what `veritysetup` wrote,
//! before it signs (and takes the SHA-256 from it).
//!
//! Must never: accept a payload on fewer checks than these, hold the
//! payload in memory, or carry verity logic of its own (one verifier, the
//! crate's, is what the agent runs too).

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use matic_release::hex;
use matic_release::manifest::Manifest;
use matic_release::verity::stream::{StreamVerifier, VerityError};
use sha2::{Digest, Sha256};

/// Bytes read and pushed at a time.
const CHUNK: usize = 1 << 20;

/// Why a payload does not match its manifest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("{0}")]
    Verity(#[from] VerityError),
    #[error("the payload's SHA-256 is {got}, not the manifest's {want}")]
    Sha256 { got: String, want: String },
    #[error("reading the payload: {0}")]
    Read(String),
}

/// Checks the `manifest.payload_size` bytes of `path` from `offset` (and
/// whatever follows them: a longer file is refused): the verity tree, then
/// the SHA-256.
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

/// The verity and length checks of [`check_payload`]; returns the
/// payload's SHA-256 without comparing it (`osctl release sign` puts it
/// into the manifest it signs).
pub fn check_tree(path: &Path, offset: u64, manifest: &Manifest) -> Result<[u8; 32], PayloadError> {
    let read = |e: std::io::Error| PayloadError::Read(e.to_string());
    let mut f = std::fs::File::open(path).map_err(read)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).map_err(read)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut verifier = StreamVerifier::new(manifest, threads)?;
    let mut sha = Sha256::new();
    loop {
        let mut buf = Vec::with_capacity(CHUNK);
        (&f).take(CHUNK as u64)
            .read_to_end(&mut buf)
            .map_err(read)?;
        if buf.is_empty() {
            break;
        }
        // This thread hashes while the verifier's workers hash the blocks.
        sha.update(&buf);
        verifier.push(Bytes::from(buf))?;
    }
    verifier.finish()?;
    Ok(sha.finalize().into())
}
