//! Property tests of the streaming verifier against the reference builder:
//! any payload the builder makes is accepted in any chunking and with any
//! thread count; any single changed byte (but the superblock's UUID), any
//! truncation and any extension is refused with the error that names it.

use bytes::Bytes;
use matic_release::verity::build::{self, Built, salted_digest};
use matic_release::verity::stream::{StreamVerifier, VerityError};
use matic_release::{KeyId, Manifest};
use proptest::prelude::*;

fn manifest(built: &Built, salt: &[u8], root: [u8; 32]) -> Manifest {
    Manifest::new("t1", 3, [0; 32], built.geometry, salt, root, KeyId([9; 8])).unwrap()
}

/// Pushes `payload` cut at `cuts` (sizes, cycled) into a verifier.
fn stream(
    payload: &[u8],
    m: &Manifest,
    cuts: &[usize],
    threads: usize,
) -> Result<(), VerityError> {
    let mut v = StreamVerifier::new(m, threads)?;
    let bytes = Bytes::copy_from_slice(payload);
    let (mut at, mut i) = (0, 0);
    while at < payload.len() {
        let n = cuts[i % cuts.len()].max(1).min(payload.len() - at);
        v.push(bytes.slice(at..at + n))?;
        at += n;
        i += 1;
    }
    v.finish()
}

/// Data of `len` bytes (1 to ~300 blocks), a salt of 0..=64 bytes.
fn inputs() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, [u8; 16])> {
    (
        1usize..300 * 4096,
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..=64),
        any::<[u8; 16]>(),
    )
        .prop_map(|(len, seed, salt, uuid)| {
            let mut x = seed | 1;
            let data = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (data, salt, uuid)
        })
}

/// The error a changed byte at `at` of `built`'s payload must give.
fn expected(built: &Built, at: usize) -> Option<VerityError> {
    let g = built.geometry;
    let block = 4096usize;
    let data_len = g.data_len() as usize;
    if at < data_len {
        let index = (at / block) as u64;
        return Some(if g.levels == 0 {
            VerityError::Root
        } else {
            VerityError::DataBlock {
                index,
                offset: index * 4096,
            }
        });
    }
    if at < data_len + block {
        let in_sb = at - data_len;
        if (16..32).contains(&in_sb) {
            return None; // the UUID is free
        }
        return Some(VerityError::Superblock {
            offset: data_len as u64,
            block_len: 4096,
        });
    }
    let blk = (at / block) as u64;
    let level = (0..g.levels)
        .find(|&l| (g.level_start(l)..g.level_start(l) + g.level_blocks(l)).contains(&blk))
        .unwrap();
    Some(if level + 1 == g.levels {
        VerityError::Root
    } else {
        VerityError::TreeBlock {
            level,
            index: blk - g.level_start(level),
            offset: blk * 4096,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn accepts_any_chunking_with_the_builders_root_and_no_other(
        (data, salt, uuid) in inputs(),
        cuts in prop::collection::vec(1usize..20_000, 1..8),
        threads in 1usize..4,
        bit in 0usize..256,
    ) {
        let built = build::payload(&data, &salt, uuid);
        let m = manifest(&built, &salt, built.root_hash);
        prop_assert_eq!(stream(&built.payload, &m, &cuts, threads), Ok(()));
        let mut other = built.root_hash;
        other[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(
            stream(&built.payload, &manifest(&built, &salt, other), &cuts, threads),
            Err(VerityError::Root)
        );
    }

    #[test]
    fn every_changed_byte_is_refused_by_name(
        (data, salt, uuid) in inputs(),
        region in 0usize..3,
        pick in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        chunk in 1usize..70_000,
    ) {
        let built = build::payload(&data, &salt, uuid);
        let g = built.geometry;
        let (data_len, tree_start) = (g.data_len() as usize, g.hash_start() as usize);
        // A third of the cases in each region; the tree may be empty (one block).
        let range = match region {
            0 => 0..data_len,
            1 => data_len..tree_start,
            _ if tree_start < built.payload.len() => tree_start..built.payload.len(),
            _ => 0..data_len,
        };
        let at = range.start + pick.index(range.len());
        let mut payload = built.payload.clone();
        payload[at] ^= xor;
        let m = manifest(&built, &salt, built.root_hash);
        let got = stream(&payload, &m, &[chunk], 2);
        match expected(&built, at) {
            Some(e) => prop_assert_eq!(got, Err(e), "byte {} changed", at),
            None => prop_assert_eq!(got, Ok(()), "UUID byte {} changed", at),
        }
    }

    #[test]
    fn truncated_and_extended_payloads_are_refused(
        (data, salt, uuid) in inputs(),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..9000),
        chunk in 1usize..70_000,
    ) {
        let built = build::payload(&data, &salt, uuid);
        let m = manifest(&built, &salt, built.root_hash);
        let short = cut.index(built.payload.len());
        let got = stream(&built.payload[..short], &m, &[chunk], 2);
        // Every byte pushed is right: only the length can refuse it.
        prop_assert_eq!(
            got,
            Err(VerityError::TooShort { received: short as u64, size: m.payload_size })
        );
        let mut long = built.payload.clone();
        long.extend_from_slice(&extra);
        prop_assert_eq!(
            stream(&long, &m, &[chunk], 2),
            Err(VerityError::TooLong { size: m.payload_size })
        );
    }
}

#[test]
fn twenty_thousand_blocks() {
    let data: Vec<u8> = (0..20_000 * 4096 - 100)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let salt = [0xa5; 32];
    let built = build::payload(&data, &salt, [4; 16]);
    assert_eq!(built.geometry.levels, 3);
    let m = manifest(&built, &salt, built.root_hash);
    assert_eq!(stream(&built.payload, &m, &[65_536, 1, 100_003], 2), Ok(()));
    let mut bad = built.payload.clone();
    bad[19_999 * 4096] ^= 1;
    assert_eq!(
        stream(&bad, &m, &[1 << 20], 2),
        Err(VerityError::DataBlock {
            index: 19_999,
            offset: 19_999 * 4096
        })
    );
}

/// A tree block whose digests are right but whose padding after the last
/// digest is not zero, under a root that covers it: refused by name (the
/// kernel would not notice; every byte of a payload must be accounted for).
#[test]
fn tree_padding_must_be_zero() {
    let built = build::payload(&[1u8; 3 * 4096], &[], [0; 16]);
    assert_eq!(built.geometry.levels, 1);
    let mut payload = built.payload.clone();
    let leaf = built.geometry.hash_start() as usize;
    payload[leaf + 3 * 32] = 1;
    let root = salted_digest(&[], &payload[leaf..leaf + 4096]);
    let m = manifest(&built, &[], root);
    assert_eq!(
        stream(&payload, &m, &[4096], 1),
        Err(VerityError::TreePadding {
            level: 0,
            index: 0,
            offset: leaf as u64
        })
    );
}
