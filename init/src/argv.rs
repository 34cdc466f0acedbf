//! A service's argv: its path, its table entry's fixed arguments, then the
//! lines of its flags file (`ServiceSpec::args_file`: kubelet's, whose
//! rule, `matic_contract::kubelet::check`, is the agent's too), as C
//! strings made in place in one fixed buffer.
//!
//! Must never: read the file (stage 2 does, into a [`FileBuf`]), allocate,
//! or pass on a file `kubelet::check` refuses.

use core::ffi::CStr;
use matic_contract::kubelet::{self, FlagsError, MAX_EXTRA_FLAGS, MAX_FLAGS_FILE};

use crate::fmtbuf::{Show, Sink};

/// The most fixed arguments a table entry may have (`table::validate`).
pub const MAX_FIXED: usize = 8;
/// The most arguments a service gets: its path, its fixed ones, its file's.
pub const MAX_ARGS: usize = 1 + MAX_FIXED + MAX_EXTRA_FLAGS;

/// How many bytes of a flags file are read: one more than the largest
/// file accepted, so that a longer one is seen to be too long.
pub const READ_MAX: usize = MAX_FLAGS_FILE + 1;
/// The buffer a flags file is read into: [`READ_MAX`] bytes and room for
/// the NUL after its last line.
pub type FileBuf = [u8; READ_MAX + 1];

/// A service's arguments, `argv[0]` first, each as its bytes with their
/// terminating NUL (what `execve` is handed a pointer to; kept as bytes so
/// that no NUL is searched for again).
pub type Args<'a> = heapless::Vec<&'a [u8], MAX_ARGS>;

/// `path`, `fixed`, then each non-empty line of the file in `buf[..len]`
/// (`len` as read, at most [`READ_MAX`]), turned into C strings in place:
/// each newline becomes a NUL, and so does the byte after the file. A file
/// that `kubelet::check` refuses is refused as it says, and `buf` is left
/// as it was.
pub fn build<'a>(
    path: &'a CStr,
    fixed: &[&'a CStr],
    buf: &'a mut FileBuf,
    len: usize,
) -> Result<Args<'a>, FlagsError> {
    let len = len.min(READ_MAX);
    kubelet::check(&buf[..len])?;
    // `check` refused anything longer than MAX_FLAGS_FILE, so `buf[len]`
    // is within the buffer and past the file.
    buf[len] = b'\n';
    let mut args = Args::new();
    // `table::validate` bounds `fixed` by MAX_FIXED and `check` the lines
    // by MAX_EXTRA_FLAGS: every push fits.
    for a in core::iter::once(path).chain(fixed.iter().copied()) {
        let _ = args.push(a.to_bytes_with_nul());
    }
    for b in &mut buf[..=len] {
        if *b == b'\n' {
            *b = 0;
        }
    }
    // `check` refused a NUL inside a line: the NULs are the line ends.
    let buf: &'a [u8] = buf;
    let mut start = 0;
    for (i, &b) in buf[..=len].iter().enumerate() {
        if b == 0 {
            if i > start {
                let _ = args.push(&buf[start..=i]);
            }
            start = i + 1;
        }
    }
    Ok(args)
}

/// The refusal, in words for the log line (`kubelet: … refused (…)`).
impl Show for FlagsError {
    fn show(&self, out: &mut dyn Sink) {
        match *self {
            FlagsError::TooLong => out.put(b"over 4096 bytes"),
            FlagsError::TooMany => out.put(b"over 32 flags"),
            FlagsError::BadLine(n) => {
                crate::show!(out, "line {} is not a --flag", n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmtbuf::Buf;

    fn file(text: &[u8]) -> (FileBuf, usize) {
        let mut buf = [0xaa; READ_MAX + 1];
        let len = text.len().min(READ_MAX);
        buf[..len].copy_from_slice(&text[..len]);
        (buf, len)
    }

    fn strs(args: &Args<'_>) -> Vec<String> {
        args.iter()
            .map(|a| {
                let c = CStr::from_bytes_with_nul(a).expect("one NUL, at the end");
                c.to_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn path_then_fixed_then_the_files_lines() {
        let (mut buf, len) = file(b"--node-labels=a=b\n\n--max-pods=200\n--v=2");
        let args = build(c"/usr/bin/kubelet", &kubelet::FIXED_FLAGS, &mut buf, len).unwrap();
        let mut want = vec!["/usr/bin/kubelet".to_string()];
        want.extend(
            kubelet::FIXED_FLAGS
                .iter()
                .map(|f| f.to_str().unwrap().into()),
        );
        want.extend(["--node-labels=a=b", "--max-pods=200", "--v=2"].map(String::from));
        assert_eq!(strs(&args), want);
    }

    #[test]
    fn an_empty_file_or_none_gives_the_fixed_arguments() {
        let (mut buf, len) = file(b"");
        let args = build(c"/a", &[c"-x"], &mut buf, len).unwrap();
        assert_eq!(strs(&args), ["/a", "-x"]);
        let (mut buf, len) = file(b"\n\n");
        assert_eq!(strs(&build(c"/a", &[], &mut buf, len).unwrap()), ["/a"]);
    }

    #[test]
    fn the_most_the_contract_allows_fits() {
        // Pad the lines to exactly MAX_FLAGS_FILE bytes, no final newline.
        let per = MAX_FLAGS_FILE / MAX_EXTRA_FLAGS;
        let mut text = Vec::new();
        for i in 0..MAX_EXTRA_FLAGS {
            let mut l = format!("--f{i:02}=").into_bytes();
            l.resize(per - 1, b'x');
            text.extend_from_slice(&l);
            text.push(b'\n');
        }
        text.pop();
        text.push(b'y');
        assert_eq!(text.len(), MAX_FLAGS_FILE);
        let fixed = [c"-a"; MAX_FIXED];
        let (mut buf, len) = file(&text);
        let args = build(c"/p", &fixed, &mut buf, len).unwrap();
        assert_eq!(args.len(), MAX_ARGS);
        assert!(args[MAX_ARGS - 1].ends_with(b"xy\0"));
    }

    #[test]
    fn refused_files_are_refused_as_the_contract_says() {
        for (text, want) in [
            (&b"--a=1\nmax-pods=3\n"[..], FlagsError::BadLine(2)),
            (b"--a=\0\n", FlagsError::BadLine(1)),
            (&[b'-'; READ_MAX + 10][..], FlagsError::TooLong),
            (
                &b"--ab\n".repeat(MAX_EXTRA_FLAGS + 1)[..],
                FlagsError::TooMany,
            ),
        ] {
            let (mut buf, len) = file(text);
            let before = buf;
            assert_eq!(build(c"/p", &[], &mut buf, len), Err(want));
            assert_eq!(buf, before, "a refused file is left alone");
            assert_eq!(Err(want), kubelet::check(text).map(|_| ()));
        }
    }

    #[test]
    fn refusals_in_words() {
        let say = |e: FlagsError| {
            let mut b = Buf::<64>::new();
            e.show(&mut b);
            String::from_utf8(b.as_bytes().to_vec()).unwrap()
        };
        assert_eq!(say(FlagsError::BadLine(3)), "line 3 is not a --flag");
        assert_eq!(say(FlagsError::TooMany), "over 32 flags");
        assert_eq!(say(FlagsError::TooLong), "over 4096 bytes");
        assert_eq!((MAX_FLAGS_FILE, MAX_EXTRA_FLAGS), (4096, 32));
    }
}
