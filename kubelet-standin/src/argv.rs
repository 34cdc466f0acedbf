//! The `argv` check: init starts kubelet with the contract's fixed flags
//! ([`contract::FIXED_FLAGS`]) then the flags file's lines
//! ([`contract::extra_flags`]), and nothing else (docs/init.md, "Service
//! table"). A flag missing, repeated, reordered or added is a failure.
//!
//! Must never: accept a flags file init's own rule ([`contract::check`])
//! refuses.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use matic_contract::kubelet as contract;

/// What the argv should be for the flags file `file`.
pub fn expected(file: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    contract::check(file).map_err(|e| {
        format!(
            "{}: init's rule refuses it: {e:?}",
            contract::FLAGS_PATH.to_string_lossy()
        )
    })?;
    Ok(contract::FIXED_FLAGS
        .iter()
        .map(|f| f.to_bytes().to_vec())
        .chain(contract::extra_flags(file).map(<[u8]>::to_vec))
        .collect())
}

/// Compares `args` (without argv[0]) with what the flags file `file` asks.
pub fn compare(args: &[OsString], file: &[u8]) -> Result<(), String> {
    let want = expected(file)?;
    let got: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let show = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    for (i, w) in want.iter().enumerate() {
        match got.get(i) {
            Some(g) if *g == w.as_slice() => {}
            Some(g) => {
                return Err(format!(
                    "argument {}: {:?}, expected {:?}",
                    i + 1,
                    show(g),
                    show(w)
                ));
            }
            None => {
                return Err(format!(
                    "argument {} missing: expected {:?}",
                    i + 1,
                    show(w)
                ));
            }
        }
    }
    if let Some(extra) = got.get(want.len()) {
        return Err(format!(
            "argument {}: {:?} is more than the fixed flags and the flags file give",
            want.len() + 1,
            show(extra)
        ));
    }
    Ok(())
}

/// The check on the node: reads the flags file, compares.
pub fn check(node: &crate::Node, args: &[OsString]) -> Result<(), String> {
    let path = contract::FLAGS_PATH.to_string_lossy();
    let file = node
        .read(&*path)
        .map_err(|e| format!("{e} (init starts kubelet only while it exists)"))?;
    compare(args, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn fixed() -> Vec<&'static str> {
        contract::FIXED_FLAGS
            .iter()
            .map(|f| f.to_str().unwrap())
            .collect()
    }

    #[test]
    fn the_fixed_flags_then_the_files_lines() {
        let file = b"--node-labels=a=b\n\n--max-pods=50\n";
        let mut a = fixed();
        a.extend(["--node-labels=a=b", "--max-pods=50"]);
        assert_eq!(compare(&args(&a), file), Ok(()));
        // An empty file: the fixed flags alone.
        assert_eq!(compare(&args(&fixed()), b""), Ok(()));
    }

    #[test]
    fn anything_else_fails_naming_the_argument() {
        let file = b"--max-pods=50\n";
        // The file's line missing.
        let e = compare(&args(&fixed()), file).unwrap_err();
        assert!(
            e.contains("argument 5 missing") && e.contains("--max-pods=50"),
            "{e}"
        );
        // One more than asked.
        let mut a = fixed();
        a.extend(["--max-pods=50", "--v=2"]);
        let e = compare(&args(&a), file).unwrap_err();
        assert!(e.contains("argument 6: \"--v=2\""), "{e}");
        // Reordered fixed flags.
        let mut a = fixed();
        a.swap(0, 1);
        a.push("--max-pods=50");
        let e = compare(&args(&a), file).unwrap_err();
        assert!(e.starts_with("argument 1:"), "{e}");
        // No arguments at all (kubelet started the old way).
        let e = compare(&[], b"").unwrap_err();
        assert!(e.contains("argument 1 missing"), "{e}");
        // A file init would refuse.
        let e = compare(&args(&fixed()), b"max-pods=3\n").unwrap_err();
        assert!(e.contains("BadLine(1)"), "{e}");
    }

    #[test]
    fn the_file_is_read_on_the_node() {
        let dir = std::env::temp_dir().join(format!("standin-argv-{}", std::process::id()));
        let node = crate::Node { root: dir.clone() };
        let e = check(&node, &args(&fixed())).unwrap_err();
        assert!(e.contains("/var/lib/kubelet/matic-flags"), "{e}");
        std::fs::create_dir_all(dir.join("var/lib/kubelet")).unwrap();
        std::fs::write(dir.join("var/lib/kubelet/matic-flags"), "--a=1\n").unwrap();
        let mut a = fixed();
        a.push("--a=1");
        assert_eq!(check(&node, &args(&a)), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
