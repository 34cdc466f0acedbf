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

#[cfg(test)]
mod tests {
    //! Mixed-order keys and `R` (a point of order 8 added to a real one):
    //! the case where cofactorless and cofactored verifiers part, so the
    //! one where "ring's verdicts" says the most. Here, not in `tests/`,
    //! because building them needs the crate's own point arithmetic.
    use super::*;
    use ring::signature::{ED25519, UnparsedPublicKey};

    /// [n]P by double-and-add over n's 253 low bits.
    fn times(n: &scalar::Scalar, p: &point::Point) -> point::Point {
        let mut q = point::IDENTITY;
        for i in (0..253).rev() {
            q = point::add(&q, &q);
            if scalar::bit(n, i) {
                q = point::add(&q, p);
            }
        }
        q
    }

    fn bytes(s: &scalar::Scalar) -> [u8; 32] {
        core::array::from_fn(|i| (s[i / 8] >> (8 * (i % 8))) as u8)
    }

    /// [i]T8 for a point T8 of order 8: i = 0..8 gives every point of
    /// order dividing 8 (the torsion group is cyclic).
    fn torsion(i: usize) -> point::Point {
        let hex = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05";
        let enc: [u8; 32] =
            core::array::from_fn(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).unwrap());
        let t8 = point::decode(&enc, false).expect("T8 decodes");
        (0..i).fold(point::IDENTITY, |q, _| point::add(&q, &t8))
    }

    #[test]
    fn the_torsion_points_are_eight_distinct_ones() {
        let mut encodings: [[u8; 32]; 8] = core::array::from_fn(|i| point::encode(&torsion(i)));
        encodings.sort();
        assert!(encodings.windows(2).all(|w| w[0] != w[1]), "T8 has order 8");
        assert_eq!(point::encode(&torsion(8)), point::encode(&point::IDENTITY));
    }

    /// Key A' = B + T (secret scalar 1 plus a torsion part), R = [r]B + T_R,
    /// S = r + k mod L: [S]B − [k]A' = [r]B − [k]T, which is R exactly when
    /// T_R = −[k]T. A cofactorless verifier (ring, this crate) accepts only
    /// then; a cofactored one would accept every pair. Every (T, T_R) pair,
    /// over several messages, gets ring's verdict, and our own prediction.
    #[test]
    fn mixed_order_keys_and_r_get_rings_verdict() {
        let b = point::decode(&point::BASE, false).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for t in 0..8 {
            let key = point::encode(&point::add(&b, &torsion(t)));
            for tr in 0..8 {
                for n in 0..3u8 {
                    let msg = [n, t as u8, tr as u8];
                    let r = scalar::reduce(&sha512::digest(&[b"r", &msg]));
                    let big_r = point::encode(&point::add(&times(&r, &b), &torsion(tr)));
                    let k = scalar::reduce(&sha512::digest(&[&big_r, &key, &msg]));
                    // r + k < 2L < 2^254: reduced as a 512-bit number.
                    let mut wide = [0u8; 64];
                    let mut carry = 0u16;
                    for (i, (x, y)) in bytes(&r).iter().zip(bytes(&k)).enumerate() {
                        let v = *x as u16 + y as u16 + carry;
                        wide[i] = v as u8;
                        carry = v >> 8;
                    }
                    wide[32] = carry as u8;
                    let mut sig = [0u8; 64];
                    sig[..32].copy_from_slice(&big_r);
                    sig[32..].copy_from_slice(&bytes(&scalar::reduce(&wide)));

                    let ring = UnparsedPublicKey::new(&ED25519, key)
                        .verify(&msg, &sig)
                        .is_ok();
                    let ours = verify(&key, &msg, &sig);
                    assert_eq!(ours, ring, "T {t}, T_R {tr}, message {n}: ring says {ring}");
                    // T_R + [k]T is the identity exactly when it verifies.
                    let sum = point::add(&torsion(tr), &times(&k, &torsion(t)));
                    let predicted = point::encode(&sum) == point::encode(&point::IDENTITY);
                    assert_eq!(ours, predicted, "T {t}, T_R {tr}, message {n}");
                    if ours {
                        accepted += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        // T = T_R = identity always verifies; most mixed pairs do not.
        assert!(
            accepted > 3 && refused > accepted,
            "{accepted} accepted, {refused} refused"
        );
    }
}
