//! Interop with the real `veritysetup` (Debian's cryptsetup-bin), the tool
//! that makes release payloads and whose format the kernel reads:
//! (a) the streaming verifier accepts what `veritysetup format` writes,
//! (b) the reference builder, given the same salt and UUID, writes the same
//! bytes, (c) `veritysetup verify` accepts what the builder writes (and
//! refuses it with one byte changed) and `veritysetup dump` reads our
//! geometry and salt from it.
//!
//! No `veritysetup` is a failure, not a skip: the release format is only
//! proven by this test.

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use matic_release::verity::stream::StreamVerifier;
use matic_release::verity::{Geometry, build};
use matic_release::{KeyId, Manifest, hex};

/// Runs `veritysetup <args>`; `FILE` in `args` stands for `file`.
fn veritysetup(args: &[&str], file: &Path) -> Output {
    // Root's tools are in /usr/sbin, which a user's PATH may lack.
    let tool = ["veritysetup", "/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .into_iter()
        .find(|t| Command::new(t).arg("--version").output().is_ok())
        .expect(
            "veritysetup is not installed: install Debian's cryptsetup-bin \
             (scripts/lib/deps.sh does); this interop test cannot pass without it",
        );
    let file = file.to_str().unwrap();
    Command::new(tool)
        .args(args.iter().map(|&a| if a == "FILE" { file } else { a }))
        .output()
        .unwrap()
}

/// The value of `Name:` in veritysetup's output.
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name:?} in veritysetup's output:\n{out}"))
        .trim()
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode(text.as_bytes(), &mut out).unwrap_or_else(|| panic!("not {N} hex bytes: {text}"));
    out
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn manifest(g: Geometry, salt: &[u8], root: [u8; 32]) -> Manifest {
    Manifest::new("interop", 1, [0; 32], g, salt, root, KeyId([0; 8])).unwrap()
}

fn check(blocks: u64) {
    let dir = tempfile::tempdir().unwrap();
    let data_len = blocks as usize * 4096;
    let offset = format!("--hash-offset={data_len}");
    let data = random(data_len, blocks);

    // veritysetup's payload.
    let theirs = dir.path().join("theirs");
    std::fs::write(&theirs, &data).unwrap();
    let out = veritysetup(
        &[
            "format",
            &offset,
            "--data-block-size=4096",
            "--hash-block-size=4096",
            "FILE",
            "FILE",
        ],
        &theirs,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "veritysetup format: {out:?}");
    let root: [u8; 32] = unhex(field(&text, "Root hash"));
    let salt: [u8; 32] = unhex(field(&text, "Salt"));
    let uuid: [u8; 16] = unhex(&field(&text, "UUID").replace('-', ""));
    let file = std::fs::read(&theirs).unwrap();

    // (a) The streaming verifier accepts it.
    let g = Geometry::new(blocks, 4096, 4096, data_len as u64 + 4096).unwrap();
    let m = manifest(g, &salt, root);
    assert_eq!(m.payload_size, file.len() as u64, "{blocks} blocks: size");
    let mut v = StreamVerifier::new(&m, 2).unwrap();
    let bytes = Bytes::from(file.clone());
    for at in (0..bytes.len()).step_by(100_003) {
        v.push(bytes.slice(at..(at + 100_003).min(bytes.len())))
            .unwrap();
    }
    assert_eq!(v.finish(), Ok(()), "{blocks} blocks: verifier");

    // (b) The builder writes the same bytes.
    let built = build::payload(&data, &salt, uuid);
    assert_eq!(built.root_hash, root, "{blocks} blocks: root hash");
    assert!(built.payload == file, "{blocks} blocks: builder differs");

    // (c) veritysetup reads what the builder writes, with another salt.
    let salt2 = random(19, blocks + 1);
    let ours = dir.path().join("ours");
    let built = build::payload(&data, &salt2, [0x42; 16]);
    std::fs::write(&ours, &built.payload).unwrap();
    let root2 = hex::string(&built.root_hash);
    let out = veritysetup(&["verify", &offset, "FILE", "FILE", &root2], &ours);
    assert!(out.status.success(), "veritysetup verify: {out:?}");
    let dump = veritysetup(&["dump", &offset, "FILE"], &ours);
    let text = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.status.success(), "veritysetup dump: {dump:?}");
    assert_eq!(field(&text, "Data blocks"), blocks.to_string());
    assert_eq!(field(&text, "Data block size"), "4096");
    assert_eq!(field(&text, "Hash block size"), "4096");
    assert_eq!(field(&text, "Hash algorithm"), "sha256");
    assert_eq!(field(&text, "Salt"), hex::string(&salt2));
    assert_eq!(
        field(&text, "Hash blocks"),
        built.geometry.tree_blocks().to_string()
    );
    // And it is really checking: one data byte changed is refused.
    let mut bad = built.payload.clone();
    bad[data_len - 1] ^= 1;
    std::fs::write(&ours, &bad).unwrap();
    let out = veritysetup(&["verify", &offset, "FILE", "FILE", &root2], &ours);
    assert!(
        !out.status.success(),
        "veritysetup verify accepted a change"
    );
}

#[test]
fn one_block() {
    check(1);
}

#[test]
fn one_full_leaf() {
    check(128);
}

#[test]
fn two_levels() {
    check(129);
}

#[test]
fn twenty_thousand_blocks() {
    check(20_000);
}

/// The manifest allows other hash block sizes (data blocks are always
/// 4 KiB); the verifier must read such a payload as veritysetup wrote it.
#[test]
fn other_hash_block_sizes() {
    for (hash_block, blocks) in [(512u64, 40u64), (1024, 300), (65536, 16 * 3)] {
        let dir = tempfile::tempdir().unwrap();
        let data_len = blocks * 4096;
        let path = dir.path().join("payload");
        std::fs::write(&path, random(data_len as usize, hash_block)).unwrap();
        let out = veritysetup(
            &[
                "format",
                &format!("--hash-offset={data_len}"),
                "--data-block-size=4096",
                &format!("--hash-block-size={hash_block}"),
                "FILE",
                "FILE",
            ],
            &path,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "veritysetup format: {out:?}");
        let root: [u8; 32] = unhex(field(&text, "Root hash"));
        let salt: [u8; 32] = unhex(field(&text, "Salt"));
        let g = Geometry::new(blocks, 4096, hash_block as u32, data_len + hash_block).unwrap();
        let m = manifest(g, &salt, root);
        let file = std::fs::read(&path).unwrap();
        assert_eq!(m.payload_size, file.len() as u64, "hash block {hash_block}");
        let bytes = Bytes::from(file);
        let mut v = StreamVerifier::new(&m, 2).unwrap();
        for at in (0..bytes.len()).step_by(7_777) {
            v.push(bytes.slice(at..(at + 7_777).min(bytes.len())))
                .unwrap();
        }
        assert_eq!(v.finish(), Ok(()), "hash block {hash_block}");
    }
}
