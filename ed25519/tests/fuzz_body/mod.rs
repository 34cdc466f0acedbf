//! The fuzz body, shared by the stable harness (`tests/fuzz.rs`) and the
//! cargo-fuzz target (`fuzz/`): arbitrary bytes as (public key, signature,
//! message), our verdict must be ring's.

use ring::signature::{ED25519, UnparsedPublicKey};

/// Bytes 0–31 the key, 32–95 the signature (zero-filled when short), the
/// rest the message. Panics when matic-ed25519 and ring disagree; returns
/// the verdict.
pub fn exercise(data: &[u8]) -> bool {
    let mut head = [0u8; 96];
    let n = data.len().min(96);
    head[..n].copy_from_slice(&data[..n]);
    let msg = &data[n..];
    let key: [u8; 32] = head[..32].try_into().unwrap();
    let sig: [u8; 64] = head[32..].try_into().unwrap();
    let ours = matic_ed25519::verify(&key, msg, &sig);
    let ring = UnparsedPublicKey::new(&ED25519, key)
        .verify(msg, &sig)
        .is_ok();
    assert_eq!(ours, ring, "matic-ed25519 says {ours}, ring says {ring}");
    ours
}
