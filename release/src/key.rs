//! Release keys: the public-key file format, where trusted keys live, and
//! key ids.
//!
//! A trusted key is the file `TRUSTED_KEYS_DIR/<key id>.pub` holding one
//! line, `matic-release-key ed25519 <64 hex digits>\n`. A manifest names
//! its signer by key id, so a reader opens exactly one file (init has no
//! directory listing and no allocator). Several files may be present: any of
//! them may sign, which is how keys rotate (docs/security.md).
//!
//! Must never: hold or parse a private key (osctl's business), or decide
//! trust by anything but the presence of the file under the trusted
//! directory.

use crate::hex;

/// Where the initramfs and the image keep the trusted public keys.
pub const TRUSTED_KEYS_DIR: &str = "/usr/share/matic/release-keys";
/// The first word of a public-key file.
pub const PUBLIC_KEY_TAG: &[u8] = b"matic-release-key ed25519 ";
/// Length of a public-key file: tag, 64 hex digits, newline.
pub const PUBLIC_KEY_FILE_LEN: usize = PUBLIC_KEY_TAG.len() + 64 + 1;

/// An Ed25519 public key.
pub type PublicKey = [u8; 32];

/// Names a release key: the first 8 bytes of the SHA-256 of its 32-byte
/// public key (the caller hashes; this crate carries no SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of the key whose public key hashes (SHA-256) to `digest`.
    pub fn from_sha256(digest: &[u8; 32]) -> Self {
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }

    /// The id of `public`: hashes it (programs with `std`; init never
    /// derives ids, it opens the file a manifest names).
    #[cfg(feature = "std")]
    pub fn of(public: &PublicKey) -> Self {
        use sha2::{Digest, Sha256};
        Self::from_sha256(&Sha256::digest(public).into())
    }

    /// 16 lower-case hex digits.
    pub fn hex(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex::encode(&self.0, &mut out);
        out
    }

    /// Parses 16 lower-case hex digits.
    pub fn parse_hex(text: &[u8]) -> Option<Self> {
        let mut id = [0u8; 8];
        hex::decode(text, &mut id)?;
        Some(Self(id))
    }

    /// The file name of this key under [`TRUSTED_KEYS_DIR`]: `<hex>.pub`.
    pub fn file_name(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..16].copy_from_slice(&self.hex());
        out[16..].copy_from_slice(b".pub");
        out
    }
}

#[cfg(feature = "std")]
impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::string(&self.0))
    }
}

/// The contents of a public-key file for `key`.
pub fn render_public(key: &PublicKey) -> [u8; PUBLIC_KEY_FILE_LEN] {
    let mut out = [0u8; PUBLIC_KEY_FILE_LEN];
    let tag = PUBLIC_KEY_TAG.len();
    out[..tag].copy_from_slice(PUBLIC_KEY_TAG);
    hex::encode(key, &mut out[tag..tag + 64]);
    out[tag + 64] = b'\n';
    out
}

/// Parses a public-key file: the tag, 64 lower-case hex digits, and one
/// optional final newline; nothing else.
pub fn parse_public(file: &[u8]) -> Option<PublicKey> {
    let file = file.strip_suffix(b"\n").unwrap_or(file);
    let digits = file.strip_prefix(PUBLIC_KEY_TAG)?;
    let mut key = [0u8; 32];
    hex::decode(digits, &mut key)?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_file_round_trips_and_refuses_variants() {
        let key: PublicKey = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let file = render_public(&key);
        assert_eq!(parse_public(&file), Some(key));
        assert_eq!(
            parse_public(&file[..file.len() - 1]),
            Some(key),
            "no newline"
        );
        assert_eq!(parse_public(&file[..file.len() - 2]), None, "short");
        let mut extra = file.to_vec();
        extra.extend_from_slice(b"\n");
        assert_eq!(parse_public(&extra), None, "two newlines");
        let mut other = file;
        other[0] = b'M';
        assert_eq!(parse_public(&other), None, "wrong tag");
    }

    #[test]
    fn key_id_names_its_file() {
        let digest: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(17));
        let id = KeyId::from_sha256(&digest);
        assert_eq!(&id.hex(), b"0011223344556677");
        assert_eq!(&id.file_name(), b"0011223344556677.pub");
        assert_eq!(KeyId::parse_hex(&id.hex()), Some(id));
    }
}
