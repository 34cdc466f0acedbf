//! A kernel log line as the records keep it and pstore dumps carry it:
//! `[%5u.%06u] text` (seconds and microseconds since boot, as the kernel's
//! own console prints them). The one writer and the one reader of that
//! stamp, for `kmsg.log`, pstore dumps and `Dmesg`.
//!
//! Must never: do I/O, or fail on a line without a stamp (that is `None`).

/// `[secs.micros] text`, the form `kmsg.log` stores.
pub fn format(ts_usec: u64, text: &str) -> String {
    format!(
        "[{:5}.{:06}] {text}",
        ts_usec / 1_000_000,
        ts_usec % 1_000_000
    )
}

/// `[  secs.micros] text` → (µs, text): seconds in digits (leading spaces
/// allowed), exactly six digits of microseconds (what the kernel prints; a
/// shorter fraction is a damaged line); one space after `]` is dropped
/// from the text.
pub fn parse(line: &str) -> Option<(u64, &str)> {
    let (time, text) = line.strip_prefix('[')?.split_once(']')?;
    let (secs, micros) = time.trim_start().split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(micros) || micros.len() != 6 {
        return None;
    }
    let usec = secs
        .parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros.parse().ok()?)?;
    Some((usec, text.strip_prefix(' ').unwrap_or(text)))
}

/// The line without its stamp, or the whole line when it has none.
pub fn text(line: &str) -> &str {
    parse(line).map_or(line, |(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stamps() {
        assert_eq!(format(0, "x"), "[    0.000000] x");
        assert_eq!(format(123_456_000_001, "x"), "[123456.000001] x");
        assert_eq!(parse("[    4.500100] x y"), Some((4_500_100, "x y")));
        assert_eq!(parse("[    4.500100]x"), Some((4_500_100, "x")));
        assert_eq!(parse("[4.500100] "), Some((4_500_100, "")));
        for bad in [
            "",
            "x",
            "[    4.5001] short micros",
            "[    4.5001000] long micros",
            "[    .500100] no seconds",
            "[    4,500100] comma",
            "[ -4.500100] sign",
            "[    4.500100 no bracket",
            "[99999999999999999999.000000] overflow",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
            assert_eq!(text(bad), bad);
        }
        assert_eq!(text("[    4.500100] Kernel panic"), "Kernel panic");
    }

    proptest! {
        #[test]
        fn format_then_parse(us in 0u64..u64::MAX / 2, t in "[^\n]{0,40}") {
            let line = format(us, &t);
            prop_assert_eq!(parse(&line), Some((us, t.as_str())));
        }
    }
}
