//! matic-ed25519 against ring, verdict for verdict: ring's signatures
//! verify, every single-bit flip and the known edge cases (S + L, keys
//! with y ≥ p, small-order keys and R) get ring's answer.

mod common;

use common::*;
use matic_ed25519::verify;
use proptest::prelude::*;

fn same_verdict(public: &[u8; 32], msg: &[u8], sig: &[u8; 64], what: &str) -> bool {
    let want = ring_verify(public, msg, sig);
    assert_eq!(verify(public, msg, sig), want, "{what}: ring says {want}");
    want
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ring_signatures_verify(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (public, sig) = sign(&seed, &msg);
        prop_assert!(verify(&public, &msg, &sig));
    }

    #[test]
    fn one_flipped_bit_anywhere_gets_rings_verdict(
        seed in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 1..200),
        which in 0..3usize,
        bit in any::<usize>(),
    ) {
        let (mut public, mut sig) = sign(&seed, &msg);
        let mut msg = msg;
        match which {
            0 => sig[bit % 512 / 8] ^= 1 << (bit % 8),
            1 => public[bit % 256 / 8] ^= 1 << (bit % 8),
            _ => { let n = msg.len() * 8; msg[bit % n / 8] ^= 1 << (bit % 8) }
        }
        prop_assert_eq!(verify(&public, &msg, &sig), ring_verify(&public, &msg, &sig));
    }
}

#[test]
fn every_single_bit_flip_of_signature_key_and_message_gets_rings_verdict() {
    for seed in [[1u8; 32], [0x9c; 32], core::array::from_fn(|i| i as u8)] {
        let msg: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(seed[0])).collect();
        let (public, sig) = sign(&seed, &msg);
        assert!(same_verdict(&public, &msg, &sig, "unaltered"));
        let mut accepted = 0;
        for bit in 0..512 {
            let mut s = sig;
            s[bit / 8] ^= 1 << (bit % 8);
            accepted += same_verdict(&public, &msg, &s, &format!("signature bit {bit}")) as u32;
        }
        for bit in 0..256 {
            let mut k = public;
            k[bit / 8] ^= 1 << (bit % 8);
            accepted += same_verdict(&k, &msg, &sig, &format!("key bit {bit}")) as u32;
        }
        for bit in 0..msg.len() * 8 {
            let mut m = msg.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            accepted += same_verdict(&public, &m, &sig, &format!("message bit {bit}")) as u32;
        }
        assert_eq!(accepted, 0, "no flip verifies");
    }
}

#[test]
fn s_plus_l_is_refused_as_ring_refuses_it() {
    for n in 0..32u8 {
        let msg = [n; 20];
        let (public, sig) = sign(&[n.wrapping_add(3); 32], &msg);
        let malleated = common::sig(sig[..32].try_into().unwrap(), &plus_l(&sig[32..]));
        assert!(!same_verdict(&public, &msg, &malleated, "S + L"));
        // L itself and all-ones, too.
        let l = common::sig(sig[..32].try_into().unwrap(), &L);
        assert!(!same_verdict(&public, &msg, &l, "S = L"));
        let ones = common::sig(sig[..32].try_into().unwrap(), &[0xff; 32]);
        assert!(!same_verdict(&public, &msg, &ones, "S = 2^256 − 1"));
    }
}

/// Keys encoded with y ≥ p: ring reads y − p, and so must we; with the
/// signature (B, 1) the identity's non-canonical encoding verifies any
/// message, so these cases are accepted, not only refused alike.
#[test]
fn keys_with_y_at_or_above_p_get_rings_verdict() {
    let mut one = [0u8; 32];
    one[0] = 1;
    let (mut accepted, mut refused) = (0, 0);
    for key in non_canonical_y() {
        for n in 0..8u8 {
            let msg = [n; 9];
            for sig in [
                common::sig(&base(), &one),
                common::sig(&small_order()[0], &[0; 32]),
                sign(&[n; 32], &msg).1,
            ] {
                if same_verdict(&key, &msg, &sig, &format!("key {key:02x?}")) {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    assert!(
        accepted >= 8 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

/// Small-order keys: [k]A is the identity for some messages only, so
/// (identity, 0) verifies for those, as in ring; a small-order R never
/// matches a real key's [S]B − [k]A.
#[test]
fn small_order_keys_and_r_get_rings_verdict() {
    let identity = small_order()[0];
    for (i, key) in small_order().iter().enumerate() {
        let mut accepted = 0;
        for n in 0..64u8 {
            let msg = [n, i as u8];
            accepted += same_verdict(
                key,
                &msg,
                &common::sig(&identity, &[0; 32]),
                "small-order key",
            ) as u32;
        }
        // Each is of small order: some message's k is a multiple of it.
        assert!(accepted > 0, "key {i} never accepted: not of small order?");
        let (public, real) = sign(&[i as u8; 32], b"m");
        assert!(!same_verdict(
            &public,
            b"m",
            &common::sig(key, real[32..].try_into().unwrap()),
            "small-order R"
        ));
    }
}
