//! The body shared by the stable, time-bounded fuzz harness
//! (`tests/fuzz.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/manifest.rs`): arbitrary bytes as a manifest block.
//! Whatever the parser accepts must render back to exactly the same block
//! (no byte is ignored), hold a layout the verifier can use and rebuild
//! through `Manifest::new`; whatever it refuses must say why, in words.
//!
//! The signature check here is a stand-in (`Toy`: SHA-256 of the signed
//! bytes, twice), so the harness can re-sign a mutated block and reach
//! every check behind the signature, as the GPT harness fixes CRCs.
#![allow(dead_code)]

use matic_release::key::PublicKey;
use matic_release::manifest::{BLOCK_LEN, ManifestError, SIGNED_LEN, SignatureCheck};
use matic_release::verity::Geometry;
use matic_release::{KeyId, Manifest};
use sha2::{Digest, Sha256};

pub struct Toy;

pub fn toy_sign(message: &[u8]) -> [u8; 64] {
    let d: [u8; 32] = Sha256::digest(message).into();
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(&d);
    s[32..].copy_from_slice(&d);
    s
}

impl SignatureCheck for Toy {
    fn verify(&self, _: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        toy_sign(message) == *signature
    }
}

/// The key every seed names; any other id is unknown.
pub const KEY_ID: KeyId = KeyId([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80]);

/// Parses `data` as a manifest block; panics on any violated expectation
/// (that is the finding). Returns whether it verified.
pub fn exercise(data: &[u8]) -> bool {
    let parsed = Manifest::parse_unverified(data);
    let verified = Manifest::verify(data, |id| (id == KEY_ID).then_some([1; 32]), &Toy);
    let m = match parsed {
        Err(e) => {
            assert_eq!(verified, Err(e), "verify and parse disagree");
            assert!(!e.describe().is_empty() && !e.to_string().is_empty());
            if let ManifestError::Short(n) = e {
                assert!(n < BLOCK_LEN && n == data.len());
            } else {
                assert!(data.len() >= BLOCK_LEN, "a short block refused as {e:?}");
            }
            return false;
        }
        Ok(m) => m,
    };
    // No byte is ignored: the fields render back to the very block.
    assert_eq!(&m.render_block()[..], &data[..BLOCK_LEN]);
    // The layout the verifier relies on.
    let g = m.geometry;
    assert_eq!(Some(m.payload_size), g.payload_len());
    assert_eq!(g.hash_start(), g.data_len() + u64::from(g.hash_block_size));
    assert_eq!(
        Geometry::new(
            g.data_blocks,
            g.data_block_size,
            g.hash_block_size,
            g.hash_start()
        ),
        Ok(g)
    );
    assert!(!m.version().is_empty() && m.salt().len() <= 64);
    // The same fields through the constructor give the same manifest.
    let mut again = Manifest::new(
        m.version(),
        m.counter,
        m.payload_sha256,
        g,
        m.salt(),
        m.root_hash,
        m.key_id,
    )
    .expect("fields the parser accepted are valid");
    again.signature = m.signature;
    assert_eq!(again, m);
    // The signature decides the rest.
    let good = m.key_id == KEY_ID && toy_sign(&data[..SIGNED_LEN]) == m.signature;
    match verified {
        Ok(v) => {
            assert!(good, "a bad signature verified");
            assert_eq!(v, m);
        }
        Err(ManifestError::UnknownKey(id)) => assert!(id != KEY_ID && id == m.key_id),
        Err(ManifestError::BadSignature(_)) => assert!(!good),
        Err(e) => panic!("parsed, then refused as {e:?}"),
    }
    good
}

/// A valid, toy-signed manifest block of `data_blocks` blocks with a salt
/// of `salt_len` bytes and the version `version`.
pub fn seed_block(data_blocks: u64, salt_len: usize, version: &str) -> Vec<u8> {
    let g = Geometry::new(data_blocks, 4096, 4096, (data_blocks + 1) * 4096).unwrap();
    let salt: Vec<u8> = (0..salt_len as u8)
        .map(|i| i.wrapping_mul(37) | 1)
        .collect();
    let mut m = Manifest::new(version, 5, [0xab; 32], g, &salt, [0xcd; 32], KEY_ID).unwrap();
    m.sign(toy_sign);
    m.render_block().to_vec()
}

/// Re-signs a (mutated) block so the checks behind the signature are reached.
pub fn resign(block: &mut [u8]) {
    if block.len() >= SIGNED_LEN + 64 {
        let s = toy_sign(&block[..SIGNED_LEN]);
        block[SIGNED_LEN..SIGNED_LEN + 64].copy_from_slice(&s);
    }
}

/// The mutations' xorshift (the stable runner's, so the three fuzz runs
/// share one).
pub use matic_fuzz_runner::Rng;

/// One mutated input derived from a seed block.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    // Mostly the record (512 bytes), sometimes the zero tail.
    let offset = |rng: &mut Rng| -> usize {
        if rng.below(8) == 0 {
            rng.below(BLOCK_LEN as u64) as usize
        } else {
            rng.below(512) as usize
        }
    };
    let u64s = [
        0u64,
        1,
        2,
        127,
        128,
        129,
        4095,
        4096,
        4097,
        1 << 32,
        u64::MAX,
        u64::MAX / 4096,
    ];
    let u32s = [
        0u32,
        1,
        2,
        256,
        511,
        512,
        4096,
        8192,
        65536,
        131_072,
        u32::MAX,
    ];
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 => {
                let o = offset(rng);
                b[o] ^= 1 << rng.below(8);
            }
            1 => {
                let o = offset(rng);
                b[o] = [0, 0xff, 0x7f, 0x80, 1, b' ', b'a', 64, 65][rng.below(9) as usize];
            }
            2 => {
                // counter, payload size, data blocks, hash start
                let o = [16, 24, 64, 80][rng.below(4) as usize];
                let v = u64s[rng.below(u64s.len() as u64) as usize];
                b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 => {
                // format, flags, block sizes
                let o = [8, 12, 72, 76][rng.below(4) as usize];
                let v = u32s[rng.below(u32s.len() as u64) as usize];
                b[o..o + 4].copy_from_slice(&v.to_le_bytes());
            }
            4 => {
                // A consistent geometry: data blocks, hash start and payload
                // size moved together, to reach past the layout checks.
                let bits = rng.below(40) + 1;
                let n = 1 + rng.below(1 << bits);
                let size = Geometry::new(n, 4096, 4096, (n + 1) * 4096)
                    .ok()
                    .and_then(|g| g.payload_len());
                b[64..72].copy_from_slice(&n.to_le_bytes());
                b[80..88].copy_from_slice(&((n + 1) * 4096).to_le_bytes());
                if let Some(size) = size {
                    b[24..32].copy_from_slice(&size.to_le_bytes());
                }
            }
            5 => {
                // salt or version length
                let o = [89, 90][rng.below(2) as usize];
                b[o] = rng.below(70) as u8;
            }
            _ => {
                let o = offset(rng);
                let n = (rng.below(32) as usize).min(b.len() - o);
                for x in &mut b[o..o + n] {
                    *x = rng.next_u64() as u8;
                }
            }
        }
    }
    if rng.below(4) != 0 {
        resign(&mut b);
    }
    match rng.below(12) {
        0 => b.truncate(rng.below(BLOCK_LEN as u64 + 1) as usize),
        1 => b.resize(BLOCK_LEN + rng.below(4096) as usize, rng.next_u64() as u8),
        2 => {
            let n = rng.below(2 * BLOCK_LEN as u64) as usize;
            b = (0..n).map(|_| rng.next_u64() as u8).collect();
        }
        _ => {}
    }
    b
}
