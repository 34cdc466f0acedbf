//! Stage 1's Ed25519 check of a release manifest: `matic-ed25519` (our own
//! verify-only Ed25519, no_std, no allocator, written for size) behind
//! `matic_release::manifest::SignatureCheck`, and the reading of a trusted
//! key file's bytes.
//!
//! Pure: it must never open a file (the binary reads
//! `/usr/share/matic/release-keys/<key id>.pub` and hands the bytes here),
//! and never sign anything.

use matic_release::key::{self, PublicKey};
use matic_release::manifest::SignatureCheck;

/// Longest key file read: one byte more than a valid one, so that a longer
/// file is refused by `key::parse_public` instead of being cut to fit.
pub const KEY_FILE_MAX: usize = key::PUBLIC_KEY_FILE_LEN + 1;

/// Ed25519 (RFC 8032) signature verification, strict about the encoding of
/// the signature's scalar and with ring's verdicts (matic-ed25519's rules).
pub struct Ed25519;

impl SignatureCheck for Ed25519 {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        matic_ed25519::verify(key, message, signature)
    }
}

/// The public key in a trusted key file's bytes (at most [`KEY_FILE_MAX`]
/// of them were read), or `None` when the file is not one.
pub fn key_from_file(bytes: &[u8]) -> Option<PublicKey> {
    key::parse_public(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use matic_release::KeyId;
    use matic_release::hex;
    use matic_release::manifest::{BLOCK_LEN, Manifest, ManifestError};
    use matic_release::verity::{BLOCK, Geometry};
    use ring::signature::KeyPair;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode(s.as_bytes(), &mut out).unwrap();
        out
    }

    /// A signature made by OpenSSL 3 (`openssl pkeyutl -sign -rawin`), an
    /// implementation independent of the verifier's.
    #[test]
    fn accepts_an_openssl_signature_and_nothing_else() {
        let key: PublicKey =
            unhex("482b64976d073f4d1cbce58391b511ff7e656315349b8b9a8975d17aaf563ac3");
        let sig: [u8; 64] = unhex(
            "ed2a4e69c38614234eee35c6afcc0be4d8afa25993cd48052fffc6261e4f0c2b\
             ac38db1ab5c42de7ab19dc451809f9216afdad179a8a983b0a95006211236106",
        );
        let msg = b"MaticOS stage 1";
        assert!(Ed25519.verify(&key, msg, &sig));
        assert!(!Ed25519.verify(&key, b"MaticOS stage 2", &sig), "message");
        for bit in [0, 7, 255, 256, 511] {
            let mut s = sig;
            s[bit / 8] ^= 1 << (bit % 8);
            assert!(!Ed25519.verify(&key, msg, &s), "signature bit {bit}");
        }
        let mut k = key;
        k[3] ^= 0x10;
        assert!(!Ed25519.verify(&k, msg, &sig), "key");
    }

    fn signed_manifest(seed: u8) -> (PublicKey, [u8; BLOCK_LEN]) {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let public: PublicKey = pair.public_key().as_ref().try_into().unwrap();
        let id = KeyId([seed; 8]);
        let g = Geometry::new(300, BLOCK, BLOCK, 301 * 4096).unwrap();
        let mut m = Manifest::new("1.2.3", 7, [9; 32], g, &[5; 32], [6; 32], id).unwrap();
        m.sign(|msg| pair.sign(msg).as_ref().try_into().unwrap());
        (public, m.render_block())
    }

    #[test]
    fn a_manifest_verifies_with_its_key_only() {
        let (public, block) = signed_manifest(1);
        let id = KeyId([1; 8]);
        let key_for = |want: KeyId| (want == id).then_some(public);
        let m = Manifest::verify(&block, key_for, &Ed25519).unwrap();
        assert_eq!((m.version(), m.counter), ("1.2.3", 7));

        let (other, _) = signed_manifest(2);
        assert_eq!(
            Manifest::verify(&block, |_| Some(other), &Ed25519),
            Err(ManifestError::BadSignature(id))
        );
        assert_eq!(
            Manifest::verify(&block, |_| None, &Ed25519),
            Err(ManifestError::UnknownKey(id))
        );
        // The counter (byte 16) is signed: raising it breaks the signature.
        let mut raised = block;
        raised[16] ^= 0x80;
        assert_eq!(
            Manifest::verify(&raised, key_for, &Ed25519),
            Err(ManifestError::BadSignature(id))
        );
    }

    #[test]
    fn key_files_parse_strictly() {
        let key: PublicKey = core::array::from_fn(|i| i as u8);
        let file = key::render_public(&key);
        assert_eq!(key_from_file(&file), Some(key));
        let mut long = [b'\n'; KEY_FILE_MAX];
        long[..file.len()].copy_from_slice(&file);
        assert_eq!(key_from_file(&long), None, "a second line");
        assert_eq!(key_from_file(&file[..40]), None, "truncated");
        assert_eq!(key_from_file(b""), None, "empty");
    }
}
