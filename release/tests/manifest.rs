//! The manifest parser under arbitrary input, and a real Ed25519 round trip
//! through `ring` and [`TrustedKeys`] over a key directory.

use matic_release::key::{self, PublicKey};
use matic_release::manifest::{self, BLOCK_LEN, ManifestError, SignatureCheck};
use matic_release::trusted::{RingEd25519, TrustError, TrustedKeys};
use matic_release::verity::Geometry;
use matic_release::{KeyId, Manifest};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// A fresh Ed25519 key pair, its public key and id.
fn keypair() -> (Ed25519KeyPair, PublicKey, KeyId) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public: PublicKey = pair.public_key().as_ref().try_into().unwrap();
    let id = KeyId::of(&public);
    (pair, public, id)
}

/// A key directory holding `public` under its id's file name.
fn key_dir(public: &PublicKey, id: KeyId) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let name = String::from_utf8(id.file_name().to_vec()).unwrap();
    std::fs::write(dir.path().join(name), key::render_public(public)).unwrap();
    dir
}

fn signed(pair: &Ed25519KeyPair, id: KeyId, data_blocks: u64) -> Manifest {
    let g = Geometry::new(data_blocks, 4096, 4096, (data_blocks + 1) * 4096).unwrap();
    let mut m = Manifest::new("2.0.1", 7, [0x11; 32], g, &[0x22; 32], [0x33; 32], id).unwrap();
    m.sign(|msg| pair.sign(msg).as_ref().try_into().unwrap());
    m
}

/// Key rotation (docs/security.md, "Keys"): while both keys' files are
/// trusted, a release signed by either verifies; once the old key's file is
/// dropped, its releases are refused by name and the new key's still pass.
#[test]
fn rotation_two_trusted_keys_either_signs_and_a_dropped_key_is_refused() {
    let (old, old_public, old_id) = keypair();
    let (new, new_public, new_id) = keypair();
    let dir = key_dir(&old_public, old_id);
    let new_name = String::from_utf8(new_id.file_name().to_vec()).unwrap();
    std::fs::write(dir.path().join(&new_name), key::render_public(&new_public)).unwrap();
    let keys = TrustedKeys::new(dir.path());
    let by_old = signed(&old, old_id, 64).render_block();
    let by_new = signed(&new, new_id, 64).render_block();
    assert_eq!(keys.verify(&by_old).unwrap().key_id, old_id);
    assert_eq!(keys.verify(&by_new).unwrap().key_id, new_id);

    let old_name = String::from_utf8(old_id.file_name().to_vec()).unwrap();
    std::fs::remove_file(dir.path().join(old_name)).unwrap();
    assert!(matches!(
        keys.verify(&by_old),
        Err(TrustError::Manifest(ManifestError::UnknownKey(k))) if k == old_id
    ));
    assert_eq!(keys.verify(&by_new).unwrap().key_id, new_id);
}

/// Accepts every signature: lets arbitrary bytes reach every structural
/// check without a key.
struct AnySignature;
impl SignatureCheck for AnySignature {
    fn verify(&self, _: &PublicKey, _: &[u8], _: &[u8; 64]) -> bool {
        true
    }
}

#[test]
fn ed25519_round_trip_and_refusals() {
    let (pair, public, id) = keypair();
    let dir = key_dir(&public, id);
    let keys = TrustedKeys::new(dir.path());
    let m = signed(&pair, id, 1000);
    let block = m.render_block();
    assert_eq!(keys.verify(&block).unwrap(), m);

    // Unknown key: signed by a key that has no file in the directory.
    let (other, _, other_id) = keypair();
    let stranger = signed(&other, other_id, 1000).render_block();
    assert!(matches!(
        keys.verify(&stranger),
        Err(TrustError::Manifest(ManifestError::UnknownKey(k))) if k == other_id
    ));

    // Bad signature: the right key id, the signature of other bytes.
    let mut forged = block;
    forged[manifest::SIGNED_LEN + 5] ^= 0x40;
    assert!(matches!(
        keys.verify(&forged),
        Err(TrustError::Manifest(ManifestError::BadSignature(k))) if k == id
    ));
    // A signed field changed: refused the same way.
    let mut bumped = block;
    bumped[16] = 8;
    assert!(matches!(
        keys.verify(&bumped),
        Err(TrustError::Manifest(ManifestError::BadSignature(_)))
    ));
    // Signed by the other key but naming ours: the signature is checked
    // with the named key, so it fails.
    let mut wrong = signed(&other, id, 1000).render_block();
    wrong[..manifest::SIGNED_LEN].copy_from_slice(&block[..manifest::SIGNED_LEN]);
    assert!(matches!(
        keys.verify(&wrong),
        Err(TrustError::Manifest(ManifestError::BadSignature(_)))
    ));

    // Malformed key file under the right name.
    let name = String::from_utf8(id.file_name().to_vec()).unwrap();
    let path = dir.path().join(&name);
    let mut text = key::render_public(&public).to_vec();
    text[30] = b'G';
    std::fs::write(&path, &text).unwrap();
    match keys.verify(&block) {
        Err(TrustError::Malformed { path: p }) => assert_eq!(p, path),
        other => panic!("malformed key file accepted or misnamed: {other:?}"),
    }
    let message = keys.verify(&block).unwrap_err().to_string();
    assert!(message.contains(&name), "{message}");
}

#[test]
fn every_truncation_is_refused() {
    let (pair, _, id) = keypair();
    let block = signed(&pair, id, 5).render_block();
    for n in 0..BLOCK_LEN {
        assert_eq!(
            Manifest::parse_unverified(&block[..n]),
            Err(ManifestError::Short(n))
        );
    }
}

fn version() -> impl Strategy<Value = String> {
    prop::collection::vec(0x21u8..0x7f, 1..=64).prop_map(|v| String::from_utf8(v).unwrap())
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..5000)) {
        let parsed = Manifest::parse_unverified(&bytes);
        let verified = Manifest::verify(&bytes, |_| Some([0; 32]), &AnySignature);
        prop_assert_eq!(parsed, verified);
        if let Err(e) = parsed {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn changed_valid_blocks_never_panic_and_reparse_exactly(
        at in prop::collection::vec((0usize..BLOCK_LEN, any::<u8>()), 1..6),
    ) {
        let (pair, _, id) = keypair();
        let mut block = signed(&pair, id, 300).render_block();
        for (i, v) in at {
            block[i] = v;
        }
        // Whatever parses renders back to the same bytes: no byte is ignored.
        if let Ok(m) = Manifest::verify(&block, |_| Some([0; 32]), &AnySignature) {
            prop_assert_eq!(m.render_block(), block);
        }
    }

    #[test]
    fn valid_fields_round_trip(
        version in version(),
        counter in any::<u64>(),
        sha in any::<[u8; 32]>(),
        data_blocks in 1u64..(1 << 40),
        salt in prop::collection::vec(any::<u8>(), 0..=64),
        root in any::<[u8; 32]>(),
    ) {
        let (pair, public, id) = keypair();
        let g = Geometry::new(data_blocks, 4096, 4096, (data_blocks + 1) * 4096).unwrap();
        let mut m = Manifest::new(&version, counter, sha, g, &salt, root, id).unwrap();
        m.sign(|msg| pair.sign(msg).as_ref().try_into().unwrap());
        let back = Manifest::verify(&m.render_block(), |k| (k == id).then_some(public), &RingEd25519)
            .unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(back.version(), version.as_str());
        prop_assert_eq!(back.salt(), &salt[..]);
        prop_assert_eq!((back.counter, back.payload_sha256, back.root_hash), (counter, sha, root));
        prop_assert_eq!(back.payload_size, g.payload_len().unwrap());
    }
}
