//! The `/run/matic/control` FIFO's framing: lines cut from a byte stream
//! with a fixed buffer, then parsed by the contract
//! (`matic_contract::control` owns the commands and [`MAX_LINE`]). Unknown,
//! over-long and stale partial lines are reported, never fatal; no line
//! ever runs into the next writer's command.
//!
//! Must never: allocate, block, or act on a line that did not arrive whole.

pub use matic_contract::control::{Command, MAX_LINE};

/// How long an unterminated line may wait for its newline. Init holds a
/// write end of the FIFO itself, so it never sees a writer close: without
/// this, the fragment of a writer that died mid-line (or wrote no newline)
/// would be glued onto the front of the next command (`rebo` + `reboot`).
/// Every writer sends a whole line in one `write(2)` (at most `PIPE_BUF`
/// bytes, so atomic), so a real command never takes anywhere near this.
pub const STALE_MS: u64 = 1_000;

/// Why a line was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum LineError<'a> {
    /// Longer than [`MAX_LINE`]; carries its first bytes.
    TooLong(&'a [u8]),
    /// Not a known command; carries the line.
    Unknown(&'a [u8]),
    /// An unterminated line got no newline within [`STALE_MS`] and was
    /// dropped when more bytes arrived; carries its first bytes (empty for
    /// the tail of an over-long line).
    Stale(&'a [u8]),
}

/// Parses one line (without its newline), as the contract does; an
/// unknown line is carried in the error for the log.
pub fn parse(line: &[u8]) -> Result<Command<'_>, LineError<'_>> {
    Command::parse(line).ok_or(LineError::Unknown(line))
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes, with a
/// fixed buffer. A line that overflows is reported once and the rest of it,
/// up to the next newline, is discarded. A line still unterminated
/// [`STALE_MS`] after its first byte is dropped (reported) before the next
/// bytes are framed, so it cannot corrupt a later command.
pub struct LineReader {
    buf: [u8; MAX_LINE],
    len: usize,
    overflowed: bool,
    /// When the pending fragment (bytes kept or being discarded) began.
    started_ms: u64,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReader {
    pub const fn new() -> Self {
        LineReader {
            buf: [0; MAX_LINE],
            len: 0,
            overflowed: false,
            started_ms: 0,
        }
    }

    /// Feeds bytes that arrived at `now_ms`; calls `on_line` for every
    /// complete line (empty lines are skipped), for every over-long line and
    /// for a stale fragment dropped first.
    pub fn push(
        &mut self,
        data: &[u8],
        now_ms: u64,
        mut on_line: impl FnMut(Result<Command<'_>, LineError<'_>>),
    ) {
        let pending = self.len > 0 || self.overflowed;
        if pending && now_ms.saturating_sub(self.started_ms) >= STALE_MS {
            on_line(Err(LineError::Stale(&self.buf[..self.len])));
            self.reset();
        }
        for &b in data {
            if self.len == 0 && !self.overflowed {
                self.started_ms = now_ms;
            }
            if b == b'\n' {
                if self.overflowed {
                    self.overflowed = false;
                } else if self.buf[..self.len]
                    .iter()
                    .any(|c| !c.is_ascii_whitespace())
                {
                    on_line(parse(&self.buf[..self.len]));
                }
                self.len = 0;
            } else if self.overflowed {
                // Discarding the tail of an over-long line.
            } else if self.len == MAX_LINE {
                self.overflowed = true;
                on_line(Err(LineError::TooLong(&self.buf[..])));
                self.len = 0;
            } else {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    /// Forgets an unterminated line, so a command is only ever acted on
    /// when it arrived whole.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &mut LineReader, data: &[u8]) -> Vec<String> {
        collect_at(r, data, 0)
    }

    fn collect_at(r: &mut LineReader, data: &[u8], now: u64) -> Vec<String> {
        let mut v = vec![];
        r.push(data, now, |res| {
            v.push(match res {
                Ok(Command::Reboot) => "reboot".to_string(),
                Ok(Command::Poweroff) => "poweroff".to_string(),
                Ok(Command::BootOk) => "boot-ok".to_string(),
                Ok(Command::Listening) => "listening".to_string(),
                Ok(Command::Restart(n)) => format!("restart:{}", String::from_utf8_lossy(n)),
                Err(LineError::TooLong(b)) => format!("toolong:{}", b.len()),
                Err(LineError::Unknown(b)) => format!("unknown:{}", String::from_utf8_lossy(b)),
                Err(LineError::Stale(b)) => format!("stale:{}", String::from_utf8_lossy(b)),
            })
        });
        v
    }

    #[test]
    fn commands() {
        assert_eq!(parse(b"reboot"), Ok(Command::Reboot));
        assert_eq!(parse(b"  poweroff\r"), Ok(Command::Poweroff));
        assert_eq!(parse(b"boot-ok"), Ok(Command::BootOk));
        assert_eq!(parse(b"listening"), Ok(Command::Listening));
        assert_eq!(
            parse(b"restart  kubelet "),
            Ok(Command::Restart(b"kubelet"))
        );
        assert_eq!(parse(b"restart"), Err(LineError::Unknown(b"restart")));
        assert_eq!(
            parse(b"restart a b"),
            Err(LineError::Unknown(b"restart a b"))
        );
        assert_eq!(parse(b"reboot now"), Err(LineError::Unknown(b"reboot now")));
        assert_eq!(parse(b"REBOOT"), Err(LineError::Unknown(b"REBOOT")));
        assert_eq!(parse(b"\xffreboot"), Err(LineError::Unknown(b"\xffreboot")));
    }

    #[test]
    fn framing_across_chunks() {
        let mut r = LineReader::new();
        assert!(collect(&mut r, b"rest").is_empty());
        assert_eq!(
            collect(&mut r, b"art containerd\n\nboot-ok\nx"),
            ["restart:containerd", "boot-ok"]
        );
        assert_eq!(collect(&mut r, b"yz\n"), ["unknown:xyz"]);
    }

    #[test]
    fn over_long_line_dropped_once_then_recovers() {
        let mut r = LineReader::new();
        let mut long = vec![b'r'; 200];
        long.extend_from_slice(b"\nreboot\n");
        assert_eq!(collect(&mut r, &long), ["toolong:64", "reboot"]);
        // Exactly MAX_LINE bytes is accepted (and here unknown).
        let mut exact = vec![b'a'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(
            collect(&mut r, &exact),
            [format!("unknown:{}", "a".repeat(64))]
        );
    }

    #[test]
    fn reset_drops_partial_line() {
        let mut r = LineReader::new();
        assert!(collect(&mut r, b"rebo").is_empty());
        r.reset();
        assert_eq!(collect(&mut r, b"ot\n"), ["unknown:ot"]);
    }

    #[test]
    fn stale_fragment_is_dropped_before_the_next_command() {
        let mut r = LineReader::new();
        assert!(collect_at(&mut r, b"rebo", 5_000).is_empty());
        // Completed in time: one command.
        assert_eq!(collect_at(&mut r, b"ot\n", 5_999), ["reboot"]);
        // A writer died mid-line; the agent's `poweroff` comes 1 s later.
        assert!(collect_at(&mut r, b"rest", 7_000).is_empty());
        assert_eq!(
            collect_at(&mut r, b"poweroff\n", 8_000),
            ["stale:rest", "poweroff"]
        );
        // Age counts from the fragment's first byte, not its last.
        assert!(collect_at(&mut r, b"bo", 10_000).is_empty());
        assert!(collect_at(&mut r, b"ot", 10_900).is_empty());
        assert_eq!(
            collect_at(&mut r, b"boot-ok\n", 11_000),
            ["stale:boot", "boot-ok"]
        );
    }

    #[test]
    fn stale_tail_of_an_over_long_line_stops_swallowing() {
        let mut r = LineReader::new();
        // 100 bytes, no newline: reported as too long, the rest discarded…
        assert_eq!(collect_at(&mut r, &[b'x'; 100], 1_000), ["toolong:64"]);
        // …but only until it is stale: the next command is not swallowed.
        assert_eq!(collect_at(&mut r, b"reboot\n", 2_500), ["stale:", "reboot"]);
        // Within the time, the tail is still discarded up to its newline.
        assert_eq!(collect_at(&mut r, &[b'y'; 70], 3_000), ["toolong:64"]);
        assert_eq!(collect_at(&mut r, b"yyy\nboot-ok\n", 3_100), ["boot-ok"]);
    }
}
