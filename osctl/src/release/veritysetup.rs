//! Runs the real `veritysetup format` (Debian's `cryptsetup-bin`) on a
//! padded SquashFS, so that what `osctl release sign` signs is exactly what
//! `veritysetup verify` and the kernel's dm-verity accept, and reads back
//! the root hash and salt it chose.
//!
//! Must never: write anywhere but the one file it is given (data and hash
//! "devices" are the same file, the tree at `hash_offset`), or guess a
//! value its output did not state.

use std::path::{Path, PathBuf};
use std::process::Command;

use matic_release::hex;
use matic_release::manifest::MAX_SALT;
use matic_release::verity::BLOCK;

use super::ReleaseError;

/// What `veritysetup format` reported.
#[derive(Debug, PartialEq, Eq)]
pub struct Formatted {
    pub root_hash: [u8; 32],
    pub salt: Vec<u8>,
}

/// The veritysetup binary: on `PATH`, else where Debian puts it
/// (`/usr/sbin` is not on an ordinary user's `PATH`).
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("veritysetup"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/veritysetup"))
}

/// `veritysetup format` of the `data_blocks` 4 KiB blocks at the start of
/// `file`, writing the superblock at `data_blocks * 4096` and the tree after
/// it; `salt` as given, else veritysetup's random one.
pub fn format(
    file: &Path,
    data_blocks: u64,
    salt: Option<&[u8]>,
) -> Result<Formatted, ReleaseError> {
    let hash_offset = data_blocks * u64::from(BLOCK);
    let mut cmd = Command::new(program());
    cmd.arg("format")
        .arg("--format=1")
        .arg("--hash=sha256")
        .arg(format!("--data-block-size={BLOCK}"))
        .arg(format!("--hash-block-size={BLOCK}"))
        .arg(format!("--data-blocks={data_blocks}"))
        .arg(format!("--hash-offset={hash_offset}"));
    if let Some(s) = salt {
        cmd.arg(format!("--salt={}", hex::string(s)));
    }
    cmd.arg(file).arg(file);
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ReleaseError::NoVeritysetup
        } else {
            ReleaseError::Veritysetup(format!("cannot run it: {e}"))
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(ReleaseError::Veritysetup(format!(
            "veritysetup format failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    parse(&String::from_utf8_lossy(&out.stdout), data_blocks)
}

/// Reads `Root hash:`, `Salt:` and `Data blocks:` from `veritysetup
/// format`'s report.
fn parse(text: &str, data_blocks: u64) -> Result<Formatted, ReleaseError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .ok_or_else(|| {
                ReleaseError::Veritysetup(format!("its output has no {name:?} line:\n{text}"))
            })
    };
    let blocks = field("Data blocks:")?;
    if blocks.parse::<u64>().ok() != Some(data_blocks) {
        return Err(ReleaseError::Veritysetup(format!(
            "it reports {blocks} data blocks, not {data_blocks}"
        )));
    }
    let mut root_hash = [0u8; 32];
    let root = field("Root hash:")?;
    hex::decode(root.as_bytes(), &mut root_hash).ok_or_else(|| {
        ReleaseError::Veritysetup(format!("root hash {root:?} is not 64 hex digits"))
    })?;
    let salt_text = field("Salt:")?;
    // veritysetup prints `-` for an empty salt.
    let salt = if salt_text == "-" {
        Vec::new()
    } else {
        parse_salt(salt_text).map_err(|e| ReleaseError::Veritysetup(format!("salt: {e}")))?
    };
    Ok(Formatted { root_hash, salt })
}

/// Parses a salt in hex (`--salt`, veritysetup's output): an even number
/// of hex digits, at most [`MAX_SALT`] bytes.
pub fn parse_salt(text: &str) -> Result<Vec<u8>, String> {
    let lower = text.to_ascii_lowercase();
    if !lower.len().is_multiple_of(2) || lower.len() / 2 > MAX_SALT {
        return Err(format!(
            "expected an even number of hex digits, at most {} ({MAX_SALT} bytes); got {} characters",
            MAX_SALT * 2,
            text.len()
        ));
    }
    let mut salt = vec![0u8; lower.len() / 2];
    hex::decode(lower.as_bytes(), &mut salt)
        .ok_or_else(|| format!("{text:?} is not hexadecimal"))?;
    Ok(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "VERITY header information for f
UUID:            \t1a898bf8-7c73-4e4f-8ec5-30862ead82f1
Hash type:       \t1
Data blocks:     \t10
Data block size: \t4096
Hash blocks:     \t1
Hash block size: \t4096
Hash algorithm:  \tsha256
Salt:            \t33a501ac7c5d2c885aded753df8c8b614e3434fb45f564eca1e6eaf75f5860f1
Root hash:      \t55dc0742fbcae4079cd523dfe37da247559eaa261b72091a7c9fa24d60e1ef69
";

    #[test]
    fn reads_veritysetups_report() {
        let f = parse(REPORT, 10).unwrap();
        assert_eq!(
            hex::string(&f.root_hash),
            "55dc0742fbcae4079cd523dfe37da247559eaa261b72091a7c9fa24d60e1ef69"
        );
        assert_eq!(
            hex::string(&f.salt),
            "33a501ac7c5d2c885aded753df8c8b614e3434fb45f564eca1e6eaf75f5860f1"
        );
        let e = parse(REPORT, 11).unwrap_err().to_string();
        assert!(e.contains("reports 10 data blocks, not 11"), "{e}");
        let e = parse(&REPORT.replace("Root hash:", "Root:"), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no \"Root hash:\" line"), "{e}");
        assert!(parse(&REPORT.replace("1ef69\n", "1ef6\n"), 10).is_err());
    }

    #[test]
    fn salts() {
        assert_eq!(parse_salt("00ABff").unwrap(), [0, 0xab, 0xff]);
        assert_eq!(parse_salt("").unwrap(), Vec::<u8>::new());
        assert!(parse_salt("abc").is_err());
        assert!(parse_salt("zz").is_err());
        assert!(parse_salt(&"ab".repeat(65)).is_err());
    }
}
