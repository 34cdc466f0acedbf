//! Restart backoff: immediate after a first crash, then doubling, capped,
//! forgotten after a stable run.

/// Restart policy. Times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the restart that follows the second consecutive crash.
    pub base_ms: u64,
    /// Upper bound of the delay.
    pub cap_ms: u64,
    /// A run at least this long resets the crash count: the next crash is
    /// treated as a first crash again.
    pub stable_ms: u64,
}

impl Backoff {
    /// The released policy (stated in the README): 0, 1, 2, 4, 8, 16, 32,
    /// 60, 60, … seconds; a run of 60 s counts as stable.
    pub const RELEASE: Backoff = Backoff {
        base_ms: 1_000,
        cap_ms: 60_000,
        stable_ms: 60_000,
    };

    /// Delay before restarting after the `crashes`-th consecutive crash
    /// (1-based): 0 for the first, then `base·2^(crashes-2)`, capped.
    pub fn delay_ms(&self, crashes: u32) -> u64 {
        if crashes <= 1 {
            return 0;
        }
        let shift = crashes - 2;
        let d = if shift >= 63 {
            u64::MAX
        } else {
            self.base_ms.saturating_mul(1u64 << shift)
        };
        d.min(self.cap_ms)
    }

    /// The crash count after a run of `ran_ms` that ended in a crash, given
    /// the count before it.
    pub fn next_crash_count(&self, previous: u32, ran_ms: u64) -> u32 {
        if ran_ms >= self.stable_ms {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_sequence() {
        let b = Backoff::RELEASE;
        let seq: Vec<u64> = (1..=10).map(|n| b.delay_ms(n)).collect();
        assert_eq!(
            seq,
            [
                0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
    }

    #[test]
    fn huge_counts_saturate_at_cap() {
        let b = Backoff {
            base_ms: 3,
            cap_ms: 1_000,
            stable_ms: 10,
        };
        assert_eq!(b.delay_ms(0), 0);
        assert_eq!(b.delay_ms(64), 1_000);
        assert_eq!(b.delay_ms(u32::MAX), 1_000);
    }

    #[test]
    fn stable_run_resets() {
        let b = Backoff::RELEASE;
        assert_eq!(b.next_crash_count(5, 59_999), 6);
        assert_eq!(b.next_crash_count(5, 60_000), 1);
        assert_eq!(b.next_crash_count(u32::MAX, 0), u32::MAX);
        assert_eq!(b.delay_ms(b.next_crash_count(7, 61_000)), 0);
    }
}
