//! `/run/matic/boot`: written once by init stage 1 (which slot it booted,
//! from which disk, and whether that slot was already marked successful),
//! read by init stage 2 (boot deadline) and by the agent (which slot to
//! mark successful, which disk to update).
//!
//! The form is `key=value` lines, `slot=A|B`, `disk=/absolute/path`,
//! `successful=0|1`, in that order. Parsing ignores lines without `=` and
//! unknown keys (so stage 1 may add facts without breaking an older agent)
//! but refuses a missing or malformed known key: there is no partial
//! result, a reader either knows the running slot and its disk or neither.
//!
//! Must never: allocate, or accept a relative disk path (the agent opens
//! it as root).

use matic_boot::Slot;

use crate::Sink;

/// What stage 1 hands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootFile<'a> {
    /// The slot stage 1 booted.
    pub slot: Slot,
    /// The disk device, e.g. `/dev/vda` (bytes as found in `/dev`).
    pub disk: &'a [u8],
    /// Whether the slot was already marked successful before this boot.
    pub successful: bool,
}

/// Why a boot file was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFileError {
    /// No `slot=` line.
    MissingSlot,
    /// No `disk=` line.
    MissingDisk,
    /// No `successful=` line.
    MissingSuccessful,
    /// A known key has a value outside its form.
    BadValue,
}

impl BootFileError {
    /// What is wrong (init logs this without `core::fmt`).
    pub fn as_str(&self) -> &'static str {
        match self {
            BootFileError::MissingSlot => "no slot= line",
            BootFileError::MissingDisk => "no disk= line",
            BootFileError::MissingSuccessful => "no successful= line",
            BootFileError::BadValue => "a value is not valid",
        }
    }
}

impl core::fmt::Display for BootFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for BootFileError {}

impl<'a> BootFile<'a> {
    /// Writes the file's whole content.
    pub fn render(&self, out: &mut dyn Sink) {
        out.put(b"slot=");
        out.put(self.slot.as_str().as_bytes());
        out.put(b"\ndisk=");
        out.put(self.disk);
        out.put(if self.successful {
            b"\nsuccessful=1\n"
        } else {
            b"\nsuccessful=0\n"
        });
    }

    /// Parses the file (module doc: what is ignored, what is refused).
    pub fn parse(text: &'a [u8]) -> Result<BootFile<'a>, BootFileError> {
        let (mut slot, mut disk, mut ok) = (None, None, None);
        for line in text.split(|b| *b == b'\n') {
            let Some(eq) = line.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            // `==`, not slice patterns: those compile to a compare per byte.
            if k == b"slot" {
                slot = Some(match v {
                    [b'A'] => Slot::A,
                    [b'B'] => Slot::B,
                    _ => return Err(BootFileError::BadValue),
                });
            } else if k == b"disk" {
                if !v.starts_with(b"/") {
                    return Err(BootFileError::BadValue);
                }
                disk = Some(v);
            } else if k == b"successful" {
                ok = Some(match v {
                    [b'0'] => false,
                    [b'1'] => true,
                    _ => return Err(BootFileError::BadValue),
                });
            }
        }
        Ok(BootFile {
            slot: slot.ok_or(BootFileError::MissingSlot)?,
            disk: disk.ok_or(BootFileError::MissingDisk)?,
            successful: ok.ok_or(BootFileError::MissingSuccessful)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsink::render;
    use proptest::prelude::*;

    #[test]
    fn documented_form() {
        let b = BootFile {
            slot: Slot::A,
            disk: b"/dev/vda",
            successful: false,
        };
        let text = render(|o| b.render(o));
        assert_eq!(text, b"slot=A\ndisk=/dev/vda\nsuccessful=0\n");
        assert_eq!(BootFile::parse(&text), Ok(b));
        let ok = BootFile {
            slot: Slot::B,
            disk: b"/dev/nvme0n1",
            successful: true,
        };
        assert_eq!(
            render(|o| ok.render(o)),
            b"slot=B\ndisk=/dev/nvme0n1\nsuccessful=1\n"
        );
    }

    #[test]
    fn rejects_bad_files() {
        use BootFileError::*;
        let parse = BootFile::parse;
        assert_eq!(
            parse(b"slot=C\ndisk=/dev/vda\nsuccessful=0\n"),
            Err(BadValue)
        );
        assert_eq!(parse(b"slot=A\nsuccessful=1\n"), Err(MissingDisk));
        assert_eq!(parse(b"slot=B\ndisk=/dev/vda\n"), Err(MissingSuccessful));
        assert_eq!(parse(b"disk=/dev/vda\nsuccessful=1\n"), Err(MissingSlot));
        assert_eq!(parse(b""), Err(MissingSlot));
        assert_eq!(MissingSlot.as_str(), "no slot= line");
        assert_eq!(parse(b"slot=A\ndisk=vda\nsuccessful=1\n"), Err(BadValue));
        assert_eq!(
            parse(b"slot=A\ndisk=/dev/vda\nsuccessful=yes\n"),
            Err(BadValue)
        );
        assert_eq!(
            parse(b"slot=a\ndisk=/dev/vda\nsuccessful=1\n"),
            Err(BadValue)
        );
    }

    #[test]
    fn ignores_comments_and_unknown_keys() {
        let ok =
            BootFile::parse(b"# x\nslot=B\nfuture=1\ndisk=/dev/nvme0n1\nsuccessful=1").unwrap();
        assert_eq!(
            (ok.slot, ok.disk, ok.successful),
            (Slot::B, &b"/dev/nvme0n1"[..], true)
        );
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(
            b in any::<bool>(),
            disk in "/[a-z0-9/_.-]{0,40}",
            successful in any::<bool>(),
        ) {
            let f = BootFile {
                slot: if b { Slot::A } else { Slot::B },
                disk: disk.as_bytes(),
                successful,
            };
            let text = render(|o| f.render(o));
            prop_assert_eq!(BootFile::parse(&text), Ok(f));
        }

        #[test]
        fn parse_never_panics(text in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BootFile::parse(&text);
        }
    }
}
