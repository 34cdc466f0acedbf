//! The kernel's lockdown level as securityfs shows it
//! (`/sys/kernel/security/lockdown`: `none [integrity] confidentiality`,
//! the current level in brackets), and whether stage 1 must raise it to
//! `integrity` before the slot's software runs (docs/security.md: the
//! loader's command line has no `lockdown=`, so stage 1 raises it when it
//! does not kexec).
//!
//! Pure parsing: it must never read or write the file (the binary's
//! `slotkernel.rs` does), and never ask to lower a level (the kernel
//! refuses that anyway).

/// The levels, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Integrity,
    Confidentiality,
}

/// What stage 1 writes to raise the level, and the level it wants.
pub const WANT: &[u8] = b"integrity";

/// The levels' words, weakest first (as [`Level`]).
const WORDS: [&[u8]; 3] = [b"none", b"integrity", b"confidentiality"];

/// The current level: the one bracketed word of the file; `None` for
/// anything else (no brackets, two, an unknown word).
pub fn current(text: &[u8]) -> Option<Level> {
    let at = text.iter().position(|&b| b == b'[')?;
    let rest = text.get(at + 1..)?;
    let end = rest.iter().position(|&b| b == b']')?;
    let (word, after) = rest.split_at(end);
    // A byte loop, not `contains` (which links `memchr`: docs/init.md "Size").
    #[allow(clippy::manual_contains)]
    if after.iter().any(|&b| b == b'[') {
        return None;
    }
    match WORDS.iter().position(|w| *w == word)? {
        0 => Some(Level::None),
        1 => Some(Level::Integrity),
        _ => Some(Level::Confidentiality),
    }
}

/// Whether `integrity` must be written: the level is below it. `None` when
/// the file is not understood.
pub fn must_raise(text: &[u8]) -> Option<bool> {
    current(text).map(|l| l < Level::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bracketed_level() {
        assert_eq!(
            current(b"[none] integrity confidentiality\n"),
            Some(Level::None)
        );
        assert_eq!(
            current(b"none [integrity] confidentiality\n"),
            Some(Level::Integrity)
        );
        assert_eq!(
            current(b"none integrity [confidentiality]"),
            Some(Level::Confidentiality)
        );
        for bad in [
            &b""[..],
            b"\n",
            b"none integrity confidentiality\n",
            b"[none] [integrity] confidentiality\n",
            b"none [integrity confidentiality\n",
            b"none [paranoid] confidentiality\n",
            b"none [] confidentiality\n",
            b"none [integrity [x]] confidentiality\n",
            b"none [integrity]] [confidentiality]\n",
        ] {
            assert_eq!(current(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn raised_only_from_below_integrity() {
        assert_eq!(
            must_raise(b"[none] integrity confidentiality\n"),
            Some(true)
        );
        assert_eq!(
            must_raise(b"none [integrity] confidentiality\n"),
            Some(false)
        );
        assert_eq!(
            must_raise(b"none integrity [confidentiality]\n"),
            Some(false),
            "never lowered"
        );
        assert_eq!(must_raise(b"garbage"), None);
    }
}
