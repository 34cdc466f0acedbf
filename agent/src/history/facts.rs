//! The facts a boot's record starts with ([`Started`]): the kernel's boot
//! id, slot, OS version, kernel release, the clocks.
//!
//! Owns: reading those facts and deciding whether the wall clock can be
//! believed. Must never: write anything, or fail for a fact that is merely
//! unknown (an empty string says so) — except the boot id, without which
//! a restarted agent could not tell its own boot from a new one.

use std::path::Path;

use matic_history::Started;

/// Unix ms of 2020-01-01T00:00:00Z: a wall clock before it is a machine
/// without a set clock (no RTC, no NTP yet), not a date.
pub const PLAUSIBLE_WALL_MS: u64 = 1_577_836_800_000;

/// CLOCK_BOOTTIME in microseconds: the kernel log's own time base.
pub fn boottime_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1000
}

/// CLOCK_BOOTTIME in ms.
pub fn boottime_ms() -> u64 {
    boottime_us() / 1000
}

/// The wall clock in Unix ms, if it is plausible ([`PLAUSIBLE_WALL_MS`]).
pub fn wall_ms() -> Option<u64> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    plausible(u64::try_from(ms).ok()?)
}

/// `ms` if it is after [`PLAUSIBLE_WALL_MS`].
pub fn plausible(ms: u64) -> Option<u64> {
    (ms >= PLAUSIBLE_WALL_MS).then_some(ms)
}

/// The kernel's boot id from `path`, trimmed; an error naming the path if
/// it cannot be read or is empty.
pub fn boot_id(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the boot id {}: {e}", path.display()))?;
    let id = text.trim();
    if id.is_empty() {
        return Err(format!("the boot id {} is empty", path.display()));
    }
    Ok(id.to_owned())
}

/// The `Started` of this boot: `slot` as init's boot file gave it (empty
/// when unknown), `os_version` from os-release, the clocks read now.
pub fn started(boot: String, slot: String, os_version: String) -> Started {
    Started {
        boot,
        slot,
        os_version,
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        wall_unix_ms: wall_ms(),
        uptime_ms: boottime_ms(),
    }
}

/// The key stage 1 adds to the command line of a kernel it kexecs.
pub const LOADER_KEY: &str = "matic.loader_ms=";

/// The loader's part of a kexec'd boot (docs/history.md, "A kexec'd
/// boot"), from this kernel's command line: the marks `loader:kernel`,
/// `loader:/init` and `loader:kexec`, in ms of the *loader's* clock
/// (stage 1 there started at I and kexec'd at K: `matic.loader_ms=I,K`).
/// `None` for a boot the loader did not kexec, or a value that is not two
/// numbers in order (logged by the caller, never guessed).
pub fn loader_marks(cmdline: &str) -> Option<Result<[(&'static str, u64); 3], String>> {
    let value = cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(LOADER_KEY))?;
    let parsed = value
        .split_once(',')
        .and_then(|(i, k)| Some((i.parse::<u64>().ok()?, k.parse::<u64>().ok()?)));
    Some(match parsed {
        Some((init, kexec)) if init <= kexec => Ok([
            ("loader:kernel", 0),
            ("loader:/init", init),
            ("loader:kexec", kexec),
        ]),
        _ => Err(format!(
            "{LOADER_KEY}{value}: not two ms values I,K with I <= K"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_before_2020_is_not_believed() {
        assert_eq!(plausible(0), None);
        assert_eq!(plausible(PLAUSIBLE_WALL_MS - 1), None);
        assert_eq!(plausible(1_795_983_939_120), Some(1_795_983_939_120));
    }

    #[test]
    fn boot_id_is_trimmed_and_an_empty_one_refused() {
        let dir = std::env::temp_dir().join(format!("matic-facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("boot_id");
        std::fs::write(&path, "6c1f0e4c-1d55\n").unwrap();
        assert_eq!(boot_id(&path).unwrap(), "6c1f0e4c-1d55");
        std::fs::write(&path, "\n").unwrap();
        assert!(boot_id(&path).unwrap_err().contains("boot_id"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(boot_id(&path).unwrap_err().contains("boot_id"));
    }

    #[test]
    fn the_loaders_marks_from_the_command_line() {
        let line = "console=ttyS0 matic.slot=B lockdown=integrity matic.loader_ms=1480,3612 -- x\n";
        assert_eq!(
            loader_marks(line),
            Some(Ok([
                ("loader:kernel", 0),
                ("loader:/init", 1480),
                ("loader:kexec", 3612)
            ]))
        );
        // Not kexec'd by a loader: nothing.
        assert_eq!(loader_marks("console=ttyS0 matic.slot=A\n"), None);
        assert_eq!(loader_marks("xmatic.loader_ms=1,2"), None);
        for bad in ["1480", "1480,", "a,2", "3612,1480", "1,2,3", "-1,2", ""] {
            let got = loader_marks(&format!("quiet matic.loader_ms={bad}"));
            assert!(
                matches!(&got, Some(Err(e)) if e.contains(bad)),
                "{bad:?}: {got:?}"
            );
        }
    }
}
