//! `osctl release keygen|sign|verify|inspect` with the real binary and the
//! real `veritysetup` (Debian's cryptsetup-bin): keys are written 0600 and
//! never overwritten, a signed release verifies, one changed byte of the
//! payload or the manifest is refused with a sentence naming it, a key not
//! in `--keys` is refused, and `veritysetup verify`/`dump` agree with the
//! manifest.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("osctl-release-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

fn osctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osctl"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one `*.pub` file in `dir`.
fn public_key(dir: &Path) -> PathBuf {
    let pubs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    assert_eq!(pubs.len(), 1, "{pubs:?}");
    pubs[0].clone()
}

/// A 700,000-byte "SquashFS": 171 data blocks, a two-level tree
/// (payload: blocks 0..171 data, 171 superblock, 172 top level, 173..175
/// level 0).
fn squashfs(dir: &Path) -> PathBuf {
    let p = dir.join("root.squashfs");
    let mut data: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 251) as u8).collect();
    data[..4].copy_from_slice(b"hsqs");
    std::fs::write(&p, data).unwrap();
    p
}

fn keygen(d: &Path, name: &str) -> PathBuf {
    let keys = d.join(name);
    let o = osctl(&["release", "keygen", "--out", s(&keys)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    keys
}

fn sign(key_dir: &Path, sq: &Path, out: &Path, extra: &[&str]) -> Output {
    let key = key_dir.join("release.key");
    let mut args = vec![
        "release",
        "sign",
        "--key",
        s(&key),
        "--version",
        "1.4.0-rc1",
        "--counter",
        "3",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[s(sq), "--out", s(out)]);
    osctl(&args)
}

#[test]
fn keygen_writes_0600_and_refuses_to_overwrite() {
    let d = dir("keygen");
    let keys = d.0.join("keys");
    let o = osctl(&["release", "keygen", "--out", s(&keys)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let private = keys.join("release.key");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    let public = public_key(&keys);
    let id = public.file_stem().unwrap().to_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    let file = std::fs::read(&public).unwrap();
    let key = matic_release::key::parse_public(&file).expect("a public-key file");
    // The id is the first 8 bytes of the key's SHA-256.
    assert_eq!(matic_release::KeyId::of(&key).to_string(), id);
    let out = text(&o.stdout);
    assert!(out.ends_with(&format!("key id {id}\n")), "{out}");

    let before = std::fs::read(&private).unwrap();
    let o = osctl(&["release", "keygen", "--out", s(&keys)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: {} already exists; osctl release keygen never overwrites a key (choose another --out, or move the old key away yourself)\n",
            private.display()
        )
    );
    assert_eq!(
        std::fs::read(&private).unwrap(),
        before,
        "the key is untouched"
    );
    assert_eq!(public_key(&keys), public, "no second public key");
}

#[test]
fn sign_then_verify_and_inspect() {
    let d = dir("roundtrip");
    let keys = keygen(&d.0, "keys");
    let sq = squashfs(&d.0);
    let rel = d.0.join("r.release");
    let o = sign(&keys, &sq, &rel, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("version           1.4.0-rc1\n"), "{out}");
    assert!(out.contains("security counter  3\n"), "{out}");
    // No temporary files are left beside the release.
    let names: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    // The file: manifest block, then 175 blocks of payload.
    assert_eq!(std::fs::metadata(&rel).unwrap().len(), 4096 + 175 * 4096);

    let o = osctl(&["release", "verify", "--keys", s(&keys), s(&rel)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = public_key(&keys)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        text(&o.stdout).starts_with(&format!(
            "{}: signed by trusted key {id}; the payload (716800 bytes) matches its verity root hash and SHA-256\n",
            rel.display()
        )),
        "{}",
        text(&o.stdout)
    );

    let o = osctl(&["release", "inspect", s(&rel)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with(&format!(
            "{}: signature NOT checked (osctl release verify --keys DIR checks it)\n",
            rel.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("key id            {id}\n")), "{out}");
    assert!(
        out.contains(
            "payload           716800 bytes: 171 data blocks of 4096 bytes, verity superblock, tree from byte 704512\n"
        ),
        "{out}"
    );
    let o = osctl(&["release", "inspect", s(&rel), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signature_checked"], false);
    assert_eq!(v["manifest"]["version"], "1.4.0-rc1");
    assert_eq!(v["manifest"]["security_counter"], 3);
    assert_eq!(v["manifest"]["key_id"], id.as_str());
    assert_eq!(v["manifest"]["data_blocks"], 171);
    assert_eq!(v["manifest"]["salt"].as_str().unwrap().len(), 64);
    // The payload's SHA-256 is the manifest's.
    let file = std::fs::read(&rel).unwrap();
    use sha2::Digest;
    assert_eq!(
        v["manifest"]["payload_sha256"],
        matic_release::hex::string(&sha2::Sha256::digest(&file[4096..]))
    );
}

/// `release verify` on a copy of `rel` with the byte at file offset `at`
/// flipped: exit 1 and the one-line sentence.
fn verify_flipped(keys: &Path, rel: &Path, at: usize) -> String {
    let mut b = std::fs::read(rel).unwrap();
    b[at] ^= 0x01;
    let bad = rel.with_extension(format!("flip{at}"));
    std::fs::write(&bad, b).unwrap();
    let o = osctl(&["release", "verify", "--keys", s(keys), s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "byte {at} flipped was accepted");
    let e = text(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    e.replace(&format!("{}: ", bad.display()), "")
}

#[test]
fn verify_names_the_changed_block() {
    let d = dir("flip");
    let keys = keygen(&d.0, "keys");
    let rel = d.0.join("r.release");
    assert!(sign(&keys, &squashfs(&d.0), &rel, &[]).status.success());
    let m = 4096; // payload offset in the file
    assert_eq!(
        verify_flipped(&keys, &rel, m + 5 * 4096 + 10),
        "osctl: data block 5 (payload byte 20480) does not match its digest in the verity tree\n"
    );
    assert_eq!(
        verify_flipped(&keys, &rel, m + 171 * 4096 + 80),
        "osctl: the verity superblock (payload bytes 700416..704512) does not match the manifest's verity parameters\n"
    );
    assert_eq!(
        verify_flipped(&keys, &rel, m + 174 * 4096 + 3),
        "osctl: verity tree level 0 block 1 (payload byte 712704) does not match its digest in the level above\n"
    );
    assert_eq!(
        verify_flipped(&keys, &rel, m + 172 * 4096),
        "osctl: the top of the verity tree does not hash to the manifest's root hash\n"
    );
    // The manifest: a signed byte, a reserved byte.
    assert_eq!(
        verify_flipped(&keys, &rel, 16),
        format!(
            "osctl: the manifest's signature does not verify (key id {})\n",
            public_key(&keys).file_stem().unwrap().to_string_lossy()
        )
    );
    assert_eq!(
        verify_flipped(&keys, &rel, 3000),
        "osctl: a reserved byte of the manifest block is not zero (byte 3000)\n"
    );
}

#[test]
fn a_release_signed_by_another_key_is_refused() {
    let d = dir("otherkey");
    let ours = keygen(&d.0, "ours");
    let theirs = keygen(&d.0, "theirs");
    let rel = d.0.join("r.release");
    assert!(sign(&theirs, &squashfs(&d.0), &rel, &[]).status.success());
    let o = osctl(&["release", "verify", "--keys", s(&ours), s(&rel)]);
    assert_eq!(o.status.code(), Some(1));
    let id = public_key(&theirs)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: {}: the manifest is signed by a key that is not trusted (key id {id})\n",
            rel.display()
        )
    );
}

#[test]
fn sign_refuses_what_is_not_a_squashfs_and_bad_fields() {
    let d = dir("notsq");
    let keys = keygen(&d.0, "keys");
    let not = d.0.join("x.img");
    std::fs::write(&not, vec![0u8; 9000]).unwrap();
    let out = d.0.join("x.release");
    let o = sign(&keys, &not, &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "osctl: {} is not a SquashFS image (no `hsqs` magic); osctl release sign signs root images such as scripts/build-rootfs makes\n",
            not.display()
        )
    );
    assert!(!out.exists());
    let key = keys.join("release.key");
    let o = osctl(&[
        "release",
        "sign",
        "--key",
        s(&key),
        "--version",
        "1 2",
        "--counter",
        "1",
        s(&squashfs(&d.0)),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(
            "the manifest's version is empty, too long, or not printable ASCII without blanks"
        ),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists());
    // The public key is not a signing key.
    let o = osctl(&[
        "release",
        "sign",
        "--key",
        s(&public_key(&keys)),
        "--version",
        "1",
        "--counter",
        "1",
        s(&squashfs(&d.0)),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not a release signing key: not a PEM file"),
        "{}",
        text(&o.stderr)
    );
}

/// The payload is what `veritysetup` itself accepts: `verify` with the
/// manifest's root hash passes (and fails with another), `dump` shows the
/// manifest's data blocks and salt; a given `--salt` is used.
#[test]
fn veritysetup_agrees_with_the_manifest() {
    let d = dir("interop");
    let keys = keygen(&d.0, "keys");
    let rel = d.0.join("r.release");
    let salt = "5a".repeat(32);
    let o = sign(&keys, &squashfs(&d.0), &rel, &["--salt", &salt]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = osctl(&["release", "inspect", s(&rel), "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &v["manifest"];
    assert_eq!(m["salt"], salt.as_str());
    // The payload alone, as it will lie in a slot.
    let payload = d.0.join("payload");
    std::fs::write(&payload, &std::fs::read(&rel).unwrap()[4096..]).unwrap();
    let hash_offset = format!("--hash-offset={}", m["hash_start"].as_u64().unwrap() - 4096);
    let veritysetup = |args: &[&str]| {
        Command::new("veritysetup")
            .args(args)
            .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
            .output()
            .expect("veritysetup (Debian's cryptsetup-bin) runs")
    };
    let root = m["root_hash"].as_str().unwrap();
    let o = veritysetup(&["verify", &hash_offset, s(&payload), s(&payload), root]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let wrong = "00".repeat(32);
    let o = veritysetup(&["verify", &hash_offset, s(&payload), s(&payload), &wrong]);
    assert!(!o.status.success(), "a wrong root hash verifies");
    let o = veritysetup(&["dump", &hash_offset, s(&payload)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dump = text(&o.stdout);
    let field = |name: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("Data blocks:"), m["data_blocks"].to_string());
    assert_eq!(field("Salt:"), salt);
    assert_eq!(field("Hash algorithm:"), "sha256");
    assert_eq!(field("Data block size:"), "4096");
}
