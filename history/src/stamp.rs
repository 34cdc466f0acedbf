//! The stamped service log line: `<boot seconds> <wall clock> <line>`,
//! e.g. `5.120417 2026-11-29T20:25:39.120417Z containerd: serving...`.
//! Boot seconds are CLOCK_BOOTTIME with 6 decimals; the wall clock is RFC
//! 3339 UTC with microseconds, or `-` while it is unknown (no RTC, no NTP
//! yet).
//!
//! Owns: formatting a stamp and parsing one back. The parser is total: a
//! line that is not exactly this form is returned whole as text.
//!
//! Must never: fail or panic on any input, or read a clock (callers pass
//! the times, so the format is testable and the writer deterministic).

/// Microseconds in a second.
const US: u64 = 1_000_000;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_DAYS: i64 = 719_468;
/// The last instant the 4-digit year of RFC 3339 can write (9999-12-31T23:59:59.999999Z).
const MAX_WALL_US: u64 = 253_402_300_799_999_999;

/// The times a line is stamped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    /// Microseconds since the kernel started (CLOCK_BOOTTIME).
    pub boot_us: u64,
    /// Microseconds since the Unix epoch, if the wall clock is known.
    pub wall_unix_us: Option<u64>,
}

/// A line read back: its stamp, if it had one, and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped<'a> {
    /// The stamp; `None` when the line was not in the stamped form.
    pub at: Option<At>,
    /// The service's own text (the whole line when unstamped).
    pub text: &'a str,
}

/// The stamp and the separating space, ready to prefix a line.
pub fn prefix(at: At) -> String {
    let wall = match at.wall_unix_us {
        Some(us) if us <= MAX_WALL_US => rfc3339(us),
        _ => "-".to_owned(),
    };
    format!("{}.{:06} {wall} ", at.boot_us / US, at.boot_us % US)
}

/// `text` stamped with `at` (no newline).
pub fn format(at: At, text: &str) -> String {
    prefix(at) + text
}

/// Parses a stamped line (without its newline). Never fails: a line not
/// in the form comes back with `at: None` and all of it as `text`.
pub fn parse(line: &str) -> Stamped<'_> {
    parse_stamp(line).unwrap_or(Stamped {
        at: None,
        text: line,
    })
}

fn parse_stamp(line: &str) -> Option<Stamped<'_>> {
    let (boot, rest) = line.split_once(' ')?;
    let (wall, text) = rest.split_once(' ')?;
    let (secs, micros) = boot.split_once('.')?;
    let boot_us = digits(secs)?
        .checked_mul(US)?
        .checked_add(fixed(micros, 6)?)?;
    let wall_unix_us = match wall {
        "-" => None,
        _ => Some(parse_rfc3339(wall)?),
    };
    Some(Stamped {
        at: Some(At {
            boot_us,
            wall_unix_us,
        }),
        text,
    })
}

/// A non-empty run of at most 19 ASCII digits (fits a u64).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Exactly `n` ASCII digits.
fn fixed(s: &str, n: usize) -> Option<u64> {
    if s.len() != n {
        return None;
    }
    digits(s)
}

/// `2026-11-29T20:25:39.120417Z` for a time in Unix microseconds.
fn rfc3339(us: u64) -> String {
    let secs = us / US;
    let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        us % US
    )
}

/// The inverse of [`rfc3339`]; only that exact form.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 27
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[26] != b'Z'
    {
        return None;
    }
    let field = |from: usize, n: usize| fixed(s.get(from..from + n)?, n);
    let (y, mo, d) = (field(0, 4)?, field(5, 2)?, field(8, 2)?);
    let (h, mi, sec, us) = (field(11, 2)?, field(14, 2)?, field(17, 2)?, field(20, 6)?);
    if y < 1970 || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32) as u64;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * US) + us)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - EPOCH_DAYS
}

/// The date of a day since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_DAYS;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        let at = At {
            boot_us: 5_120_417,
            wall_unix_us: Some(1_795_983_939_120_417),
        };
        assert_eq!(
            format(at, "hello"),
            "5.120417 2026-11-29T20:25:39.120417Z hello"
        );
        let at = At {
            boot_us: 7,
            wall_unix_us: None,
        };
        assert_eq!(format(at, ""), "0.000007 - ");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400 * US), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(MAX_WALL_US), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn not_the_form_is_text() {
        for line in [
            "",
            "plain text",
            "5.12 - short decimals",
            "5.120417 2026-02-30T00:00:00.000000Z no such day",
            "5.120417 2026-11-29T20:25:39Z no micros",
            "5.120417 2026-11-29 20:25:39.120417Z",
            "-1.000000 - negative",
            "5.120417 -",
            "99999999999999999999.000000 - overflow",
        ] {
            assert_eq!(
                parse(line),
                Stamped {
                    at: None,
                    text: line
                },
                "{line:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(boot_us: u64, wall in proptest::option::of(0..=MAX_WALL_US), text in ".*") {
            prop_assume!(!text.contains('\n'));
            let at = At { boot_us, wall_unix_us: wall };
            let line = format(at, &text);
            prop_assert_eq!(parse(&line), Stamped { at: Some(at), text: &text });
        }

        #[test]
        fn parse_is_total(line in ".*") {
            let got = parse(&line);
            if got.at.is_none() {
                prop_assert_eq!(got.text, line.as_str());
            } else {
                prop_assert!(line.ends_with(got.text));
            }
        }
    }
}
