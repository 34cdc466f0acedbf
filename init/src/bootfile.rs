//! `/run/matic/boot`, written once by stage 1 and read by stage 2 and the
//! agent (docs/interfaces.md).

use crate::fmtbuf::Sink;

/// The facts stage 1 hands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo<'a> {
    /// `A` or `B`.
    pub slot: u8,
    /// The disk device, e.g. `/dev/vda`.
    pub disk: &'a [u8],
    /// Whether the slot was already marked successful before this boot.
    pub successful: bool,
}

/// Why a boot file was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum BootFileError {
    MissingSlot,
    MissingDisk,
    MissingSuccessful,
    BadValue,
}

impl BootFileError {
    /// What is wrong, for the log.
    pub fn as_str(&self) -> &'static str {
        match self {
            BootFileError::MissingSlot => "no slot= line",
            BootFileError::MissingDisk => "no disk= line",
            BootFileError::MissingSuccessful => "no successful= line",
            BootFileError::BadValue => "a value is not valid",
        }
    }
}

impl BootInfo<'_> {
    /// Writes the file's content.
    pub fn render(&self, out: &mut dyn Sink) {
        out.put(b"slot=");
        out.put(&[self.slot]);
        out.put(b"\ndisk=");
        out.put(self.disk);
        out.put(if self.successful {
            b"\nsuccessful=1\n"
        } else {
            b"\nsuccessful=0\n"
        });
    }
}

/// Parses the file. Unknown keys are ignored (forward compatibility).
pub fn parse(text: &[u8]) -> Result<BootInfo<'_>, BootFileError> {
    let (mut slot, mut disk, mut ok) = (None, None, None);
    for line in text.split(|b| *b == b'\n') {
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (k, v) = (&line[..eq], &line[eq + 1..]);
        // `==`, not slice patterns: those compile to a compare per byte.
        if k == b"slot" {
            slot = Some(match v {
                [c @ (b'A' | b'B')] => *c,
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
    Ok(BootInfo {
        slot: slot.ok_or(BootFileError::MissingSlot)?,
        disk: disk.ok_or(BootFileError::MissingDisk)?,
        successful: ok.ok_or(BootFileError::MissingSuccessful)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_matches_documented_form() {
        let b = BootInfo {
            slot: b'A',
            disk: b"/dev/vda",
            successful: false,
        };
        let mut s = crate::fmtbuf::Buf::<64>::new();
        b.render(&mut s);
        assert_eq!(s.as_bytes(), b"slot=A\ndisk=/dev/vda\nsuccessful=0\n");
        assert_eq!(parse(s.as_bytes()), Ok(b));
        let ok = BootInfo {
            slot: b'B',
            disk: b"/dev/nvme0n1",
            successful: true,
        };
        s.clear();
        ok.render(&mut s);
        assert_eq!(s.as_bytes(), b"slot=B\ndisk=/dev/nvme0n1\nsuccessful=1\n");
    }

    #[test]
    fn rejects_bad_files() {
        assert_eq!(
            parse(b"slot=C\ndisk=/dev/vda\nsuccessful=0\n"),
            Err(BootFileError::BadValue)
        );
        assert_eq!(
            parse(b"slot=A\nsuccessful=1\n"),
            Err(BootFileError::MissingDisk)
        );
        assert_eq!(
            parse(b"slot=B\ndisk=/dev/vda\n"),
            Err(BootFileError::MissingSuccessful)
        );
        assert_eq!(parse(b""), Err(BootFileError::MissingSlot));
        assert_eq!(BootFileError::MissingSlot.as_str(), "no slot= line");
        assert_eq!(
            parse(b"slot=A\ndisk=vda\nsuccessful=1\n"),
            Err(BootFileError::BadValue)
        );
        let ok = parse(b"# x\nslot=B\nfuture=1\ndisk=/dev/nvme0n1\nsuccessful=1").unwrap();
        assert_eq!(
            (ok.slot, ok.disk, ok.successful),
            (b'B', &b"/dev/nvme0n1"[..], true)
        );
    }
}
