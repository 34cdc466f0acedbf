//! Releases on the operator's side: `osctl release keygen`, `sign`,
//! `verify` and `inspect`, and the release file `osctl install` sends. The
//! format itself (manifest layout, key files, verity geometry) is the
//! `matic-release` crate's; this module makes, checks and opens files in
//! it.
//!
//! - [`keys`]: the Ed25519 signing key and the public-key file.
//! - [`veritysetup`]: runs `veritysetup format`.
//! - [`sign`]: SquashFS → signed release file.
//! - [`check`]: a payload against its manifest (size, verity, SHA-256).
//! - [`file`]: opening a release file (manifest block, payload range).
//!
//! Must never: send anything to a node (that is `osctl install`'s), or
//! treat a manifest as trusted without [`matic_release::trusted`].

pub mod check;
pub mod file;
pub mod keys;
pub mod sign;
pub mod veritysetup;

use std::path::PathBuf;

use matic_release::manifest::ManifestError;
use matic_release::trusted::TrustError;

/// Every failure of the release commands, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a MaticOS release (no MATICREL manifest at its start); make one from a SquashFS root image with `osctl release sign`"
    )]
    NotRelease(PathBuf),
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error(
        "{path} is {len} bytes, but its manifest says {want} (the 4096-byte manifest block and the payload): truncated or extended"
    )]
    Length { path: PathBuf, len: u64, want: u64 },
    #[error(
        "{0} already exists; osctl release keygen never overwrites a key (choose another --out, or move the old key away yourself)"
    )]
    KeyExists(PathBuf),
    #[error("{path} is not a release signing key: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("the system's random number generator failed while making a key")]
    Random,
    #[error(
        "{0} is not a SquashFS image (no `hsqs` magic); osctl release sign signs root images such as scripts/build-rootfs makes"
    )]
    NotSquashfs(PathBuf),
    #[error(
        "veritysetup not found: install Debian's cryptsetup-bin package (apt-get install cryptsetup-bin)"
    )]
    NoVeritysetup,
    #[error("veritysetup: {0}")]
    Veritysetup(String),
    #[error("{path}: {source}")]
    Trust { path: PathBuf, source: TrustError },
    #[error("{path}: {source}")]
    Payload {
        path: PathBuf,
        source: check::PayloadError,
    },
}
