//! The commands the agent writes to init's control FIFO
//! (`/run/matic/control`), one per line: `reboot`, `poweroff`, `boot-ok`,
//! `listening`, `restart NAME`.
//!
//! Owns the words and the longest line ([`MAX_LINE`]). Words are separated
//! by blanks (space, tab, `\r`); surrounding blanks are ignored; case
//! matters. The line framing (newline, stale fragments, over-long lines)
//! is init's (`init/src/control.rs`).
//!
//! Must never: allocate, or parse a line into a command it was not (a
//! prefix, a different case, extra words are all unknown).

use crate::Sink;

/// Longest line init accepts, newline excluded.
pub const MAX_LINE: usize = 64;

/// A control command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Shut the services down and reboot.
    Reboot,
    /// Shut the services down and power off.
    Poweroff,
    /// `restart NAME`: restart one service now.
    Restart(&'a [u8]),
    /// The agent marked the running slot successful: drop the boot deadline.
    BootOk,
    /// The agent serves its API: start the services held until then
    /// (containerd; docs/init.md, "Held until the agent listens").
    Listening,
}

/// A blank between words.
fn blank(b: &u8) -> bool {
    matches!(*b, b' ' | b'\t' | b'\r')
}

impl<'a> Command<'a> {
    /// Writes the line, newline excluded. A `restart` name with blanks (or
    /// a newline) would not parse back: [`Command::fits`] checks that.
    pub fn render(&self, out: &mut dyn Sink) {
        match self {
            Command::Reboot => out.put(b"reboot"),
            Command::Poweroff => out.put(b"poweroff"),
            Command::BootOk => out.put(b"boot-ok"),
            Command::Listening => out.put(b"listening"),
            Command::Restart(name) => {
                out.put(b"restart ");
                out.put(name);
            }
        }
    }

    /// Whether the rendered line parses back to `self` and fits in
    /// [`MAX_LINE`]: a `restart` name is one non-empty word of printable
    /// bytes.
    pub fn fits(&self) -> bool {
        match self {
            Command::Restart(name) => {
                !name.is_empty()
                    && b"restart ".len() + name.len() <= MAX_LINE
                    && name.iter().all(|b| b.is_ascii_graphic() || *b >= 0x80)
            }
            _ => true,
        }
    }

    /// Parses one line (without its newline); `None` for anything that is
    /// not exactly one command.
    pub fn parse(line: &'a [u8]) -> Option<Command<'a>> {
        let mut words = line.split(blank).filter(|w| !w.is_empty());
        // `==` guards, not slice patterns: those compile to a compare per byte.
        Some(match (words.next(), words.next(), words.next()) {
            (Some(w), None, None) if w == b"reboot" => Command::Reboot,
            (Some(w), None, None) if w == b"poweroff" => Command::Poweroff,
            (Some(w), None, None) if w == b"boot-ok" => Command::BootOk,
            (Some(w), None, None) if w == b"listening" => Command::Listening,
            (Some(w), Some(name), None) if w == b"restart" => Command::Restart(name),
            _ => return None,
        })
    }
}

/// The line as text (for the agent's messages; non-UTF-8 bytes as U+FFFD).
impl core::fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name: &[u8] = match self {
            Command::Reboot => return f.write_str("reboot"),
            Command::Poweroff => return f.write_str("poweroff"),
            Command::BootOk => return f.write_str("boot-ok"),
            Command::Listening => return f.write_str("listening"),
            Command::Restart(name) => name,
        };
        f.write_str("restart ")?;
        for chunk in name.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsink::render;
    use proptest::prelude::*;
    use std::string::ToString;

    #[test]
    fn words() {
        let p = Command::parse;
        assert_eq!(p(b"reboot"), Some(Command::Reboot));
        assert_eq!(p(b"  poweroff\r"), Some(Command::Poweroff));
        assert_eq!(p(b"boot-ok"), Some(Command::BootOk));
        assert_eq!(p(b" listening "), Some(Command::Listening));
        assert_eq!(p(b"restart  kubelet "), Some(Command::Restart(b"kubelet")));
        assert_eq!(p(b"\trestart\tkubelet"), Some(Command::Restart(b"kubelet")));
        for bad in [
            &b"restart"[..],
            b"restart a b",
            b"reboot now",
            b"REBOOT",
            b"\xffreboot",
            b"rebo",
            b"listen",
            b"listening now",
            b"",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rendered_lines() {
        for (c, s) in [
            (Command::Reboot, "reboot"),
            (Command::Poweroff, "poweroff"),
            (Command::BootOk, "boot-ok"),
            (Command::Listening, "listening"),
            (Command::Restart(b"containerd"), "restart containerd"),
        ] {
            assert_eq!(render(|o| c.render(o)), s.as_bytes());
            assert_eq!(c.to_string(), s);
            assert!(c.fits());
        }
        assert!(!Command::Restart(b"").fits());
        assert!(!Command::Restart(b"a b").fits());
        assert!(!Command::Restart(b"a\nreboot").fits());
        assert!(Command::Restart(&[b'x'; MAX_LINE - 8]).fits());
        assert!(!Command::Restart(&[b'x'; MAX_LINE - 7]).fits());
        assert_eq!(Command::Restart(b"a\xff").to_string(), "restart a\u{FFFD}");
    }

    fn command() -> impl Strategy<Value = std::vec::Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..80)
    }

    proptest! {
        /// Every command that fits renders to a line that parses back to it
        /// and is within the limit.
        #[test]
        fn render_then_parse_is_identity(kind in 0u8..5, name in command()) {
            let c = match kind {
                0 => Command::Reboot,
                1 => Command::Poweroff,
                2 => Command::BootOk,
                3 => Command::Listening,
                _ => Command::Restart(&name),
            };
            prop_assume!(c.fits());
            let line = render(|o| c.render(o));
            prop_assert!(line.len() <= MAX_LINE);
            prop_assert_eq!(Command::parse(&line), Some(c));
        }

        /// Whatever parses renders back to the same command.
        #[test]
        fn parse_then_render_is_stable(line in command()) {
            if let Some(c) = Command::parse(&line) {
                let again = render(|o| c.render(o));
                prop_assert_eq!(Command::parse(&again), Some(c));
            }
        }
    }
}
