//! Ed25519 signature **verification** (RFC 8032, 5.1.7), and nothing else:
//! written for PID 1's manifest check, where size counts (docs/init.md
//! "Size": about a third of `ed25519-compact`'s bytes) and speed hardly
//! does (one verification per boot).
//!
//! Semantics are ring's (the agent's and osctl's verifier; docs/security.md):
//! cofactorless `[S]B = R + [k]A` checked by encoding `[S]B − [k]A` and
//! comparing it with the signature's `R` bytes; `S ≥ L` refused; a public
//! key that does not decode refused, one with y ≥ p read as y − p; an `R`
//! that is not a canonical encoding never matches. The tests compare every
//! verdict with ring's (`tests/differential.rs`, `tests/fuzz.rs`).
//!
//! Everything here is variable time: the inputs of a verification (key,
//! message, signature) are public, so timing reveals nothing. This crate
//! must therefore never sign, derive keys or hold a secret of any kind; use
//! ring for that. No allocation, no `unsafe`, no dependencies.
#![no_std]
#![forbid(unsafe_code)]

mod field;
mod point;
mod scalar;
pub mod sha512;

/// Whether `signature` (R ‖ S) is `public_key`'s Ed25519 signature of
/// `message`.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    let Some(s) = scalar::canonical(&s) else {
        return false;
    };
    // −A: what the loop adds is [S]B + [k](−A).
    let Some(neg_a) = point::decode(public_key, true) else {
        return false;
    };
    let Some(b) = point::decode(&point::BASE, false) else {
        return false;
    };
    let k = scalar::reduce(&sha512::digest(&[&r, public_key, message]));
    // [S]B − [k]A, both scalars below L < 2^253, most significant bit first.
    let mut p = point::IDENTITY;
    for i in (0..253).rev() {
        p = point::add(&p, &p);
        if scalar::bit(&s, i) {
            p = point::add(&p, &b);
        }
        if scalar::bit(&k, i) {
            p = point::add(&p, &neg_a);
        }
    }
    point::encode(&p) == r
}
