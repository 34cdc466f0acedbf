//! What the differential tests and the fuzz run share: ring as the
//! reference, signing, and the special encodings (small-order points,
//! y ≥ p, S + L).
#![allow(dead_code)]

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// ring's verdict: the agent's and osctl's Ed25519, the reference.
pub fn ring_verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(msg, sig)
        .is_ok()
}

/// Public key and signature of `msg` under the key of `seed`, by ring.
pub fn sign(seed: &[u8; 32], msg: &[u8]) -> ([u8; 32], [u8; 64]) {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
    let public = pair.public_key().as_ref().try_into().unwrap();
    (public, pair.sign(msg).as_ref().try_into().unwrap())
}

/// The group order L, little-endian.
pub const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + L` as 256 bits (S < 2^253, so it never overflows).
pub fn plus_l(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + L[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

fn unhex32(s: &str) -> [u8; 32] {
    core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}

/// The encodings of the eight points of order dividing 8 (the identity,
/// order 2, two of order 4, four of order 8), each also with the sign bit
/// flipped where x = 0 (ring reads those as x = 0).
pub fn small_order() -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ]
    .iter()
    .map(|s| unhex32(s))
    .collect();
    // x = 0 with the sign bit set: "−0" of the identity and of (0, −1).
    v.push(unhex32(
        "0100000000000000000000000000000000000000000000000000000000000080",
    ));
    v.push(unhex32(
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ));
    v
}

/// The 19 values y = p + k (k = 0..18: every y in [p, 2^255)), each with
/// both sign bits: encodings a strict decoder refuses and ring reads as
/// y = k.
pub fn non_canonical_y() -> Vec<[u8; 32]> {
    let mut v = Vec::new();
    for k in 0..19u8 {
        let mut y = [0xff; 32];
        y[0] = 0xed + k;
        y[31] = 0x7f;
        v.push(y);
        y[31] = 0xff;
        v.push(y);
    }
    v
}

/// The base point's encoding: with S = 1 and a key whose [k]A is the
/// identity, (B, 1) is a valid signature of any message.
pub fn base() -> [u8; 32] {
    let mut b = [0x66; 32];
    b[0] = 0x58;
    b
}

pub fn sig(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}
