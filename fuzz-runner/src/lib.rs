//! The stable-Rust fuzz runner that `boot/tests/fuzz.rs`,
//! `release/tests/fuzz.rs` and `ed25519/tests/fuzz.rs` share: the loop
//! that feeds inputs to a crate's fuzz body under `catch_unwind` and saves
//! the one that fails, and the environment of the bounded and replay runs
//! (`MATIC_FUZZ_SECS`, `MATIC_FUZZ_SEED`, `MATIC_FUZZ_INPUT`). What the
//! inputs are (seeds, mutations) and what a body checks stay with each
//! crate's `tests/fuzz_body`, which its cargo-fuzz target shares; the
//! xorshift that drives the mutations ([`Rng`]) is here.
//!
//! Test support only, no dependencies. Must never: be a dependency of
//! anything but tests, or swallow a failing input (it is saved, then the
//! run panics naming it).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: the inputs' randomness, reproducible from the printed
/// seed. (boot's and release's `fuzz_body` keep their own copy: their
/// cargo-fuzz targets compile that file alone.)
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Feeds inputs made by `next` to `exercise` until `deadline` or `max`
/// inputs; returns how many ran and how many `exercise` passed (returned
/// true: verified, opened...). An input whose `exercise` panics is written
/// to `$TMPDIR/matic-<name>-fuzz-<seed>-<n>.bin`, then this panics with
/// that path.
pub fn run(
    name: &str,
    seed: u64,
    deadline: Instant,
    max: u64,
    mut next: impl FnMut() -> Vec<u8>,
    exercise: impl Fn(&[u8]) -> bool,
) -> (u64, u64) {
    let (mut n, mut passed) = (0, 0);
    while n < max && Instant::now() < deadline {
        let input = next();
        match catch_unwind(AssertUnwindSafe(|| exercise(&input))) {
            Ok(true) => passed += 1,
            Ok(false) => {}
            Err(_) => {
                let path = saved_input_path(name, seed, n);
                if let Err(e) = std::fs::write(&path, &input) {
                    panic!(
                        "fuzz input {n} (seed {seed}) failed, and saving it to {} failed: {e}",
                        path.display()
                    );
                }
                panic!(
                    "fuzz input {n} (seed {seed}) failed; saved to {}",
                    path.display()
                );
            }
        }
        n += 1;
    }
    (n, passed)
}

/// Where [`run`] saves input `n` of the run from `seed`.
pub fn saved_input_path(name: &str, seed: u64, n: u64) -> PathBuf {
    std::env::temp_dir().join(format!("matic-{name}-fuzz-{seed}-{n}.bin"))
}

/// A bounded run's seed and length: `MATIC_FUZZ_SEED` (default: from the
/// clock) and `MATIC_FUZZ_SECS` (default `default_secs`), printed so that
/// a failing run can be replayed. A value that does not parse panics
/// naming the variable.
pub fn bounded(default_secs: u64) -> (u64, Duration) {
    let secs: u64 = std::env::var("MATIC_FUZZ_SECS")
        .ok()
        .map(|s| s.parse().expect("MATIC_FUZZ_SECS is a number of seconds"))
        .unwrap_or(default_secs);
    let seed: u64 = std::env::var("MATIC_FUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("MATIC_FUZZ_SEED is a u64"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("fuzz: seed {seed}, {secs} s");
    (seed, Duration::from_secs(secs))
}

/// The bytes of the saved input `MATIC_FUZZ_INPUT` names (a replay).
pub fn replay_input() -> Vec<u8> {
    let path = std::env::var("MATIC_FUZZ_INPUT").expect("set MATIC_FUZZ_INPUT to a saved input");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inputs_and_passes_and_stops_at_max() {
        let mut i = 0u8;
        let (n, passed) = run(
            "runner-test",
            1,
            Instant::now() + Duration::from_secs(60),
            10,
            || {
                i += 1;
                vec![i]
            },
            |d| d[0] % 2 == 0,
        );
        assert_eq!((n, passed), (10, 5));
    }

    #[test]
    fn a_failing_input_is_saved_and_named() {
        let seed = u64::from(std::process::id());
        let r = catch_unwind(|| {
            run(
                "runner-test",
                seed,
                Instant::now() + Duration::from_secs(60),
                10,
                || vec![7, 7],
                |d| {
                    assert_ne!(d, [7, 7], "the planted failure");
                    true
                },
            )
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        let path = saved_input_path("runner-test", seed, 0);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), [7, 7]);
        std::fs::remove_file(&path).unwrap();
    }
}
