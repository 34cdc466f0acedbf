//! Stable-Rust differential fuzzing against ring: inputs made from ring's
//! valid signatures (and the valid special cases: a key with y ≥ p, small-
//! order keys) by bit flips, interesting bytes, special keys and R, S + L,
//! shorter or longer messages and noise; every verdict must be ring's
//! (`fuzz_body::exercise`).
//!
//! `fuzz_smoke` runs 2,000 inputs in every `cargo test`; `fuzz_bounded`
//! (ignored) runs for `MATIC_FUZZ_SECS` seconds (default 20) from
//! `MATIC_FUZZ_SEED` (default: time-based, printed) and is what
//! `scripts/test.d/12-ed25519-fuzz` runs. A failing input is saved to
//! `$TMPDIR/matic-ed25519-fuzz-*.bin`; replay it with `fuzz_replay` or the
//! cargo-fuzz target (`ed25519/fuzz`).

mod common;
mod fuzz_body;

use std::time::{Duration, Instant};

use common::*;
use fuzz_body::exercise;
use matic_fuzz_runner::Rng;

fn input(key: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> Vec<u8> {
    [&key[..], &sig[..], msg].concat()
}

/// Valid inputs: ring's signatures of several lengths, and signatures that
/// verify under special keys (the identity as y = p + 1, small-order keys
/// with (identity, 0) for a message whose k suits them).
fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (i, len) in [0usize, 1, 32, 111, 112, 200, 4096].into_iter().enumerate() {
        let msg: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
        let (key, sig) = sign(&[i as u8 + 1; 32], &msg);
        v.push(input(&key, &sig, &msg));
    }
    let mut one = [0u8; 32];
    one[0] = 1;
    v.push(input(
        &non_canonical_y()[2],
        &common::sig(&base(), &one),
        b"any",
    ));
    let identity_sig = common::sig(&small_order()[0], &[0; 32]);
    for key in small_order() {
        if let Some(n) = (0..=255u8).find(|&n| ring_verify(&key, &[n], &identity_sig)) {
            v.push(input(&key, &identity_sig, &[n]));
        }
    }
    for s in &v {
        assert!(exercise(s), "a seed does not verify");
    }
    v
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut d = base.to_vec();
    let special = [small_order(), non_canonical_y()].concat();
    for _ in 0..=rng.below(2) {
        match rng.below(9) {
            0..=2 => {
                let bit = rng.below(d.len() as u64 * 8) as usize;
                d[bit / 8] ^= 1 << (bit % 8);
            }
            3 => {
                let at = rng.below(d.len() as u64) as usize;
                d[at] = [0, 0xff, 0x7f, 0x80, 0xed, 0x10][rng.below(6) as usize];
            }
            4 => {
                // A special encoding as the key or as R.
                let enc = special[rng.below(special.len() as u64) as usize];
                let at = [0, 32][rng.below(2) as usize];
                d[at..at + 32].copy_from_slice(&enc);
            }
            5 => {
                let s = plus_l(&d[64..96]);
                d[64..96].copy_from_slice(&s);
            }
            6 => d.truncate(96 + rng.below(d.len() as u64 - 95) as usize),
            7 => d.push(rng.next_u64() as u8),
            _ => {
                let at = rng.below(d.len() as u64) as usize;
                for b in &mut d[at..] {
                    *b = rng.next_u64() as u8;
                }
            }
        }
    }
    d
}

/// Runs until `deadline` or `max` inputs; returns how many ran and verified.
fn run(seed: u64, deadline: Instant, max: u64) -> (u64, u64) {
    let seeds = seeds();
    let mut rng = Rng(seed | 1);
    let next = || {
        let base = &seeds[rng.below(seeds.len() as u64) as usize];
        if rng.below(8) == 0 {
            base.clone()
        } else {
            mutate(&mut rng, base)
        }
    };
    matic_fuzz_runner::run("ed25519", seed, deadline, max, next, exercise)
}

#[test]
fn fuzz_smoke() {
    let (n, verified) = run(0x5eed, Instant::now() + Duration::from_secs(600), 2_000);
    assert_eq!(n, 2_000);
    // Unmutated seeds and harmless mutations (a message bit of a
    // small-order key's input) verify: the harness reaches the end.
    assert!(verified > 100, "only {verified} of {n} inputs verified");
}

#[test]
#[ignore = "long-running; scripts/test.d/12-ed25519-fuzz runs it"]
fn fuzz_bounded() {
    let (seed, secs) = matic_fuzz_runner::bounded(20);
    let (n, verified) = run(seed, Instant::now() + secs, u64::MAX);
    println!("fuzz: {n} inputs, {verified} verified, every verdict ring's (seed {seed})");
}

/// Replays one saved input: `MATIC_FUZZ_INPUT=path cargo test -p
/// matic-ed25519 --test fuzz fuzz_replay -- --ignored`.
#[test]
#[ignore = "replays MATIC_FUZZ_INPUT"]
fn fuzz_replay() {
    println!("verified: {}", exercise(&matic_fuzz_runner::replay_input()));
}
