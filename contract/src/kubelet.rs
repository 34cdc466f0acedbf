//! How init starts kubelet (docs/config.md, "kubelet"): the fixed flags
//! pointing at the files the agent renders from the machine configuration,
//! and the flags file that carries the rest and marks them complete.
//!
//! The agent writes `config.yaml`, the bootstrap kubeconfig and the CA
//! first and [`FLAGS_PATH`] last (atomically); init starts kubelet only
//! while [`FLAGS_PATH`] exists (else the service is `waiting`), with
//! argv = path, [`FIXED_FLAGS`], then the file's lines. The stand-in
//! kubelet of the tests checks exactly this argv.
//!
//! Must never: do I/O or allocate (init links it).

use core::ffi::CStr;

/// The flags file: one `--name=value` a line, written last by the agent.
pub const FLAGS_PATH: &CStr = c"/var/lib/kubelet/matic-flags";

/// The KubeletConfiguration the agent renders.
pub const CONFIG_PATH: &str = "/var/lib/kubelet/config.yaml";
/// The bootstrap kubeconfig (mode 0600: it holds the token).
pub const BOOTSTRAP_KUBECONFIG_PATH: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Where kubelet writes its own kubeconfig once the bootstrap is done.
pub const KUBECONFIG_PATH: &str = "/etc/kubernetes/kubelet.conf";
/// Where kubelet keeps its client and serving certificates.
pub const CERT_DIR: &str = "/var/lib/kubelet/pki";

/// The flags every kubelet on a node gets, before the file's lines.
pub const FIXED_FLAGS: [&CStr; 4] = [
    c"--config=/var/lib/kubelet/config.yaml",
    c"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    c"--kubeconfig=/etc/kubernetes/kubelet.conf",
    c"--cert-dir=/var/lib/kubelet/pki",
];

/// The most bytes the flags file may hold (init reads it into a fixed buffer).
pub const MAX_FLAGS_FILE: usize = 4096;
/// The most lines (flags) it may hold.
pub const MAX_EXTRA_FLAGS: usize = 32;

/// Why a flags file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagsError {
    /// More than [`MAX_FLAGS_FILE`] bytes.
    TooLong,
    /// More than [`MAX_EXTRA_FLAGS`] flags.
    TooMany,
    /// A line (1-based) that is not `--name...` or holds a NUL.
    BadLine(usize),
}

/// The flags of a flags file, in order: its non-empty lines.
pub fn extra_flags(file: &[u8]) -> impl Iterator<Item = &[u8]> {
    file.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Checks a flags file: size, count, and that every non-empty line is a
/// `--flag` without a NUL. Returns the number of flags.
///
/// One pass over the bytes, no line iterator: init links this, and the
/// `split` form of the same rule was about 800 bytes of PID 1 (the tests
/// hold that form as the reference).
pub fn check(file: &[u8]) -> Result<usize, FlagsError> {
    if file.len() > MAX_FLAGS_FILE {
        return Err(FlagsError::TooLong);
    }
    // `col`: bytes of the current line so far; `bad`: it does not start
    // with `--` or holds a NUL.
    let (mut n, mut line, mut col, mut bad) = (0, 1, 0, false);
    for i in 0..=file.len() {
        // A newline past the end closes the last line.
        let b = file.get(i).copied().unwrap_or(b'\n');
        if b != b'\n' {
            bad |= b == 0 || (col < 2 && b != b'-');
            col += 1;
            continue;
        }
        if col > 0 {
            if bad || col < 3 {
                return Err(FlagsError::BadLine(line));
            }
            n += 1;
            if n > MAX_EXTRA_FLAGS {
                return Err(FlagsError::TooMany);
            }
        }
        (line, col, bad) = (line + 1, 0, false);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule as first written, line by line: `check` must agree with it.
    fn reference(file: &[u8]) -> Result<usize, FlagsError> {
        if file.len() > MAX_FLAGS_FILE {
            return Err(FlagsError::TooLong);
        }
        let mut n = 0;
        for (i, line) in file.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            if line.len() < 3 || !line.starts_with(b"--") || line.contains(&0) {
                return Err(FlagsError::BadLine(i + 1));
            }
            n += 1;
            if n > MAX_EXTRA_FLAGS {
                return Err(FlagsError::TooMany);
            }
        }
        Ok(n)
    }

    proptest! {
        #[test]
        fn check_is_the_line_rule(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just(std::vec::Vec::new()),
                    "--[a-z-]{0,6}(=[a-z0-9,=]{0,5})?".prop_map(|s| s.into_bytes()),
                    proptest::collection::vec(
                        prop_oneof![Just(b'-'), Just(0u8), Just(b'a'), any::<u8>()],
                        0..6,
                    ),
                ],
                0..40,
            ),
            trailing_newline: bool,
        ) {
            let mut file = lines.join(&b'\n');
            if trailing_newline {
                file.push(b'\n');
            }
            prop_assert_eq!(check(&file), reference(&file));
        }
    }

    #[test]
    fn fixed_flags_name_the_paths() {
        let f: [&str; 4] = FIXED_FLAGS.map(|c| c.to_str().unwrap());
        assert_eq!(f[0].strip_prefix("--config="), Some(CONFIG_PATH));
        assert_eq!(
            f[1].strip_prefix("--bootstrap-kubeconfig="),
            Some(BOOTSTRAP_KUBECONFIG_PATH)
        );
        assert_eq!(f[2].strip_prefix("--kubeconfig="), Some(KUBECONFIG_PATH));
        assert_eq!(f[3].strip_prefix("--cert-dir="), Some(CERT_DIR));
        assert!(
            FLAGS_PATH
                .to_str()
                .unwrap()
                .starts_with("/var/lib/kubelet/")
        );
    }

    #[test]
    fn flags_file_lines() {
        let file = b"--node-labels=a=b,c=\n\n--max-pods=200\n";
        assert_eq!(check(file), Ok(2));
        let got: [&[u8]; 2] = {
            let mut it = extra_flags(file);
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, [&b"--node-labels=a=b,c="[..], b"--max-pods=200"]);
        assert_eq!(check(b""), Ok(0));
    }

    #[test]
    fn bad_flags_files() {
        assert_eq!(check(b"--a=1\nmax-pods=3\n"), Err(FlagsError::BadLine(2)));
        assert_eq!(check(b"--\n"), Err(FlagsError::BadLine(1)));
        assert_eq!(check(b"--a=\0\n"), Err(FlagsError::BadLine(1)));
        let mut many = [0u8; 33 * 5];
        for c in many.chunks_mut(5) {
            c.copy_from_slice(b"--ab\n");
        }
        assert_eq!(check(&many), Err(FlagsError::TooMany));
        assert_eq!(check(&[b'-'; MAX_FLAGS_FILE + 1]), Err(FlagsError::TooLong));
    }
}
