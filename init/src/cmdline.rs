//! Settings from the kernel command line, plus test-only overrides from
//! init's own argv.
//!
//! The kernel never passes a `key=value` parameter whose key contains a dot
//! to init (those are module parameters; undotted `k=v` go to the
//! environment, bare words to argv). So `matic.*=…` words in argv can only
//! come from a test harness that execs init itself: on a real machine they are
//! absent and the released behaviour holds.

use crate::backoff::Backoff;

/// Everything stage 2 reads from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Time a not-yet-successful slot has to be marked successful
    /// (`matic.boot_timeout`, seconds; 0 disables the deadline).
    pub boot_timeout_ms: u64,
    pub backoff: Backoff,
    /// Bound on the SIGTERM phase of shutdown, and on how long a service has
    /// to exit after `restart NAME` before SIGKILL.
    pub stop_timeout_ms: u64,
    /// Size at which `<name>.log` is rotated to `<name>.log.1`.
    pub log_limit_bytes: u64,
    /// At shutdown, once the services are gone, how long everything left
    /// (containers' processes, containerd's shims) has between SIGTERM and
    /// SIGKILL: a budget of its own, so a slow service never eats the
    /// containers' time. 30 s is Kubernetes' default
    /// `terminationGracePeriodSeconds`.
    pub container_stop_ms: u64,
}

impl Settings {
    pub const RELEASE: Settings = Settings {
        boot_timeout_ms: 120_000,
        backoff: Backoff::RELEASE,
        stop_timeout_ms: 10_000,
        log_limit_bytes: 4 << 20,
        container_stop_ms: 30_000,
    };

    /// Applies the kernel command line, then argv (`argv[0]` excluded).
    pub fn load<'a>(cmdline: &[u8], argv: impl Iterator<Item = &'a [u8]>) -> Settings {
        let mut s = Settings::RELEASE;
        for (k, v) in params(cmdline) {
            s.apply(k, v, false);
        }
        for word in argv {
            for (k, v) in params(word) {
                s.apply(k, v, true);
            }
        }
        s
    }

    fn apply(&mut self, key: &[u8], value: Option<&[u8]>, test: bool) {
        let Some(n) = value.and_then(parse_u64) else {
            return;
        };
        if key == b"matic.boot_timeout" {
            self.boot_timeout_ms = n.saturating_mul(1000);
            return;
        }
        // Test knobs, from init's argv only. Compared with `==` from a table
        // rather than matched as slice patterns, which compile to a compare
        // per byte (1.6 KB of PID 1 for these keys).
        const TEST_KNOBS: [&[u8]; 7] = [
            b"boot_timeout_ms",
            b"backoff_base_ms",
            b"backoff_cap_ms",
            b"stable_ms",
            b"stop_timeout_ms",
            b"log_limit_bytes",
            b"container_stop_ms",
        ];
        let Some(knob) = key.strip_prefix(b"matic.test.").filter(|_| test) else {
            return;
        };
        match TEST_KNOBS.iter().position(|k| *k == knob) {
            Some(0) => self.boot_timeout_ms = n,
            Some(1) => self.backoff.base_ms = n,
            Some(2) => self.backoff.cap_ms = n,
            Some(3) => self.backoff.stable_ms = n,
            Some(4) => self.stop_timeout_ms = n,
            Some(5) if n > 0 => self.log_limit_bytes = n,
            Some(6) => self.container_stop_ms = n,
            _ => {}
        }
    }
}

/// Decimal `u64` without sign, at most 19 digits.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0')))
}

/// The value of the last `key=value` for `key` (the kernel's rule: later
/// parameters win).
pub fn value<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    params(cmdline)
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v)
        .last()
}

/// Splits a command line into `(key, value)` words like the kernel does:
/// blank-separated, double quotes group blanks, `key="a b"` yields `a b`.
pub fn params(cmdline: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    let mut rest = cmdline;
    core::iter::from_fn(move || next_param(&mut rest))
}

/// One step of [`params`]; one out-of-line copy for its three users in PID 1.
#[inline(never)]
fn next_param<'a>(rest: &mut &'a [u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    Some(split_word(next_word(rest)?))
}

/// The next blank-separated word of a command line, as written (quotes
/// kept): double quotes group blanks, as the kernel's `next_arg` does.
pub fn next_word<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0)?;
    let from = rest.get(start..)?;
    let mut quoted = false;
    let mut end = from.len();
    for (i, &b) in from.iter().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && (b.is_ascii_whitespace() || b == 0) {
            end = i;
            break;
        }
    }
    let (word, after) = from.split_at(end);
    *rest = after;
    Some(word)
}

/// A word's key and value (`key="a b"` yields `a b`; a bare word has no
/// value).
pub fn split_word(word: &[u8]) -> (&[u8], Option<&[u8]>) {
    match word.iter().position(|b| *b == b'=') {
        Some(eq) => {
            let (k, v) = word.split_at(eq);
            (strip(k), Some(strip(v.get(1..).unwrap_or(&[]))))
        }
        None => (strip(word), None),
    }
}

fn strip(w: &[u8]) -> &[u8] {
    let w = w.strip_prefix(b"\"").unwrap_or(w);
    w.strip_suffix(b"\"").unwrap_or(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_params() {
        let c = b"BOOT_IMAGE=/vmlinuz root=x quiet matic.disk=/dev/vdb matic.boot_timeout=30 note=\"a b\" matic.disk=/dev/vdc\n";
        assert_eq!(value(c, b"matic.disk"), Some(&b"/dev/vdc"[..]));
        assert_eq!(value(c, b"note"), Some(&b"a b"[..]));
        assert_eq!(value(c, b"quiet"), None);
        assert_eq!(value(c, b"matic.ip"), None);
        let s = Settings::load(c, core::iter::empty());
        assert_eq!(s.boot_timeout_ms, 30_000);
        assert_eq!(s.backoff, Backoff::RELEASE);
    }

    #[test]
    fn defaults_and_garbage() {
        assert_eq!(Settings::load(b"", core::iter::empty()), Settings::RELEASE);
        assert_eq!(Settings::RELEASE.boot_timeout_ms, 120_000);
        for bad in [
            &b"matic.boot_timeout=-1"[..],
            b"matic.boot_timeout=",
            b"matic.boot_timeout=9x",
            b"matic.boot_timeout=99999999999999999999",
        ] {
            assert_eq!(
                Settings::load(bad, core::iter::empty()),
                Settings::RELEASE,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn test_knobs_only_from_argv() {
        let c = b"matic.test.backoff_base_ms=1 matic.test.stop_timeout_ms=5";
        assert_eq!(Settings::load(c, core::iter::empty()), Settings::RELEASE);
        let argv: [&[u8]; 5] = [
            b"matic.test.backoff_base_ms=50",
            b"matic.test.backoff_cap_ms=400",
            b"matic.test.stop_timeout_ms=1500",
            b"matic.test.container_stop_ms=2500",
            b"matic.boot_timeout=7",
        ];
        let s = Settings::load(b"matic.boot_timeout=30", argv.into_iter());
        assert_eq!(s.backoff.base_ms, 50);
        assert_eq!(s.backoff.cap_ms, 400);
        assert_eq!(s.backoff.stable_ms, Backoff::RELEASE.stable_ms);
        assert_eq!(s.stop_timeout_ms, 1500);
        assert_eq!(s.container_stop_ms, 2500);
        assert_eq!(s.boot_timeout_ms, 7_000, "argv overrides the command line");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(
            parse_u64(b"1234567890123456789"),
            Some(1_234_567_890_123_456_789)
        );
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
