//! Time per Ed25519 verification of a 4 KiB message (a manifest block's
//! size): matic-ed25519 beside ring and ed25519-compact, in ns/verify.
//!
//! `cargo run --release -p matic-ed25519 --example bench_verify [ROUNDS]`;
//! under QEMU TCG: `qemu-x86_64 $CARGO_TARGET_DIR/release/examples/bench_verify`.
//! The release profile builds this crate at its own opt-level (as init
//! links it), so the figure is the shipped code's.

use std::hint::black_box;
use std::time::Instant;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

fn time(name: &str, rounds: u32, mut f: impl FnMut() -> bool) {
    assert!(f(), "{name}: the signature must verify");
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(black_box(f()));
    }
    let ns = start.elapsed().as_nanos() / rounds as u128;
    println!("{name:<16} {ns:>10} ns/verify ({rounds} rounds)");
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .map_or(200, |a| a.parse().expect("ROUNDS"));
    let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let msg = vec![0x5a; 4096];
    let sig: [u8; 64] = pair.sign(&msg).as_ref().try_into().unwrap();

    time("matic-ed25519", rounds, || {
        matic_ed25519::verify(black_box(&public), black_box(&msg), black_box(&sig))
    });
    let ring_key = UnparsedPublicKey::new(&ED25519, public);
    time("ring", rounds, || {
        ring_key.verify(black_box(&msg), black_box(&sig)).is_ok()
    });
    let compact_key = ed25519_compact::PublicKey::new(public);
    let compact_sig = ed25519_compact::Signature::new(sig);
    time("ed25519-compact", rounds, || {
        compact_key.verify(black_box(&msg), &compact_sig).is_ok()
    });
}
