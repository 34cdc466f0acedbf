//! Release signing keys on the operator's side: `osctl release keygen`
//! makes an Ed25519 key pair with `ring` and writes the private key (a
//! PKCS#8 document, PEM `PRIVATE KEY`, mode 0600) and the public-key file
//! nodes trust (`<key id>.pub`, [`matic_release::key`]'s format); `osctl
//! release sign` loads the private key back.
//!
//! Must never: overwrite a key file (a lost signing key cannot be made
//! again; a replaced one silently stops every node from trusting new
//! releases), write a private key readable by anyone but its owner, or
//! print a private key.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use matic_release::key::{self, KeyId, PublicKey};
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::ReleaseError;

/// The private key's file name in `keygen --out DIR`.
pub const PRIVATE_KEY_FILE: &str = "release.key";
/// The PEM tag of the private key (PKCS#8).
const PEM_TAG: &str = "PRIVATE KEY";

/// What `keygen` wrote.
#[derive(Debug)]
pub struct Generated {
    pub id: KeyId,
    pub private: PathBuf,
    pub public: PathBuf,
}

/// Makes a key pair and writes `out/release.key` (0600, never over an
/// existing file) and `out/<key id>.pub`.
pub fn generate(out: &Path) -> Result<Generated, ReleaseError> {
    let private = out.join(PRIVATE_KEY_FILE);
    // Refuse before generating anything: the common mistake is a second run.
    if private.exists() {
        return Err(ReleaseError::KeyExists(private));
    }
    std::fs::create_dir_all(out).map_err(|source| ReleaseError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| ReleaseError::Random)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ReleaseError::Random)?;
    let public: PublicKey = pair
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| ReleaseError::Random)?;
    let id = KeyId::of(&public);
    let pem = pem::encode_config(
        &pem::Pem::new(PEM_TAG, pkcs8.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    write_new(&private, pem.as_bytes(), 0o600)?;
    let public_path = out.join(std::str::from_utf8(&id.file_name()).unwrap_or_default());
    write_new(&public_path, &key::render_public(&public), 0o644)?;
    Ok(Generated {
        id,
        private,
        public: public_path,
    })
}

/// Creates `path` with `mode` (O_EXCL: an existing file is refused, a
/// symlink is not followed), writes `data` and syncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), ReleaseError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                ReleaseError::KeyExists(path.to_path_buf())
            } else {
                ReleaseError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|source| ReleaseError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// A loaded signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub id: KeyId,
    pub public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8 Ed25519) file.
    pub fn load(path: &Path) -> Result<Self, ReleaseError> {
        let bad = |reason: &str| ReleaseError::KeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let text = std::fs::read(path).map_err(|source| ReleaseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let pem = pem::parse(&text).map_err(|_| bad("not a PEM file"))?;
        if pem.tag() != PEM_TAG {
            return Err(bad(&format!(
                "a PEM {:?}, not a {PEM_TAG:?} (PKCS#8)",
                pem.tag()
            )));
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pem.contents())
            .map_err(|_| bad("not a PKCS#8 Ed25519 private key"))?;
        let public: PublicKey = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| bad("its public key is not 32 bytes"))?;
        Ok(Self {
            id: KeyId::of(&public),
            public,
            pair,
        })
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}
