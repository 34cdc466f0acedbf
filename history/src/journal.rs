//! The on-disk record of one boot's events (`events.jsonl`): JSON Lines,
//! each line `<crc32 of the JSON, 8 lowercase hex> <json>\n`.
//!
//! Owns: the [`Event`] and [`Ending`] types, their JSON form, the line
//! framing and its checksum. A reader skips (and counts) a line whose
//! checksum does not match, that is not valid JSON of a known event, or
//! that has no newline (the torn last record of a power cut), and reads
//! every other line: one bad line never hides the rest of a boot.
//!
//! Must never: panic on any bytes, or touch a file (the writer and the
//! readers own I/O).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The first event of every boot, written by [`crate::Store::begin`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): tells a
    /// restarted agent whether it is still in the same boot.
    pub boot: String,
    /// The root slot this boot runs (`A` or `B`).
    pub slot: String,
    /// The OS version of that slot.
    pub os_version: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The wall clock (Unix ms) when this event was written, if it was
    /// known then (no RTC and no NTP yet: `None`).
    pub wall_unix_ms: Option<u64>,
    /// CLOCK_BOOTTIME (ms since the kernel started) when it was written.
    pub uptime_ms: u64,
}

/// One record of `events.jsonl`. All times are ms since the kernel
/// started (CLOCK_BOOTTIME), so they order a boot without a wall clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The boot began (always the first line).
    Started(Started),
    /// A point of the boot timeline: `/init`, `root-mounted`, `stage2`,
    /// `service:containerd`, `agent-listening`, ...
    Mark { name: String, at_ms: u64 },
    /// The boot was marked successful (`boot-ok`).
    Successful { at_ms: u64 },
    /// The boot ended in a way someone saw coming and recorded.
    Ended { ending: Ending, at_ms: u64 },
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    /// A reboot was requested; `by` says by whom (`<client CN> over the
    /// API`, `init`, ...).
    Reboot { by: String },
    /// A power-off was requested; `by` says by whom.
    Poweroff { by: String },
    /// The kernel panicked: the `Kernel panic - not syncing: ...` line
    /// (level and timestamp stripped), found in the crash dump.
    KernelPanic { first_line: String },
    /// The hardware watchdog reset the machine.
    Watchdog,
    /// Init rebooted because the boot was not marked successful in time.
    BootDeadline,
    /// Stage 1 could not mount the root and rebooted.
    UnmountableRoot,
    /// Nothing was recorded and no crash dump was found (only ever
    /// inferred by [`crate::ending::classify`], never written).
    PowerLossOrReset,
}

/// The prefix of the kernel's panic line; [`Ending`]'s `Display` leaves it
/// out since the words already say "kernel panic".
pub const PANIC_PREFIX: &str = "Kernel panic - not syncing:";

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Reboot { by } => write!(f, "reboot requested by {by}"),
            Ending::Poweroff { by } => write!(f, "poweroff requested by {by}"),
            Ending::KernelPanic { first_line } => {
                let why = first_line.strip_prefix(PANIC_PREFIX).unwrap_or(first_line);
                write!(f, "kernel panic: {}", why.trim_start())
            }
            Ending::Watchdog => f.write_str("watchdog"),
            Ending::BootDeadline => f.write_str("boot deadline"),
            Ending::UnmountableRoot => f.write_str("unmountable root"),
            Ending::PowerLossOrReset => f.write_str("power loss or hard reset"),
        }
    }
}

/// `event` as one journal line, newline included.
pub fn encode(event: &Event) -> Vec<u8> {
    // Serializing these types cannot fail: plain strings, integers and
    // options, no maps with non-string keys.
    let json = serde_json::to_vec(event).expect("Event serializes");
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// What a journal holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// Every line that read whole, in file order.
    pub events: Vec<Event>,
    /// Lines skipped: bad checksum, not a known event, or torn.
    pub skipped: usize,
}

/// Reads a journal's bytes: every good line, and how many were skipped.
pub fn read(bytes: &[u8]) -> Journal {
    let mut journal = Journal::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // No newline: the record was cut while being written.
            journal.skipped += 1;
            break;
        };
        match decode(&rest[..end]) {
            Some(event) => journal.events.push(event),
            None => journal.skipped += 1,
        }
        rest = &rest[end + 1..];
    }
    journal
}

/// One line without its newline, if its checksum matches and it is an event.
fn decode(line: &[u8]) -> Option<Event> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line[8] != b' ' || !crc.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_form_is_crc_space_json_newline() {
        let line = encode(&Event::Successful { at_ms: 3600 });
        let json = br#"{"event":"successful","at_ms":3600}"#;
        let mut want = format!("{:08x} ", crc32fast::hash(json)).into_bytes();
        want.extend_from_slice(json);
        want.push(b'\n');
        assert_eq!(line, want);
    }

    #[test]
    fn uppercase_hex_is_not_the_form() {
        // An event whose checksum has a letter in it, so upper case differs.
        let line = (0..)
            .map(|at_ms| encode(&Event::Successful { at_ms }))
            .find(|l| l[..8].iter().any(u8::is_ascii_alphabetic))
            .unwrap();
        let mut upper = line.clone();
        upper[..8].make_ascii_uppercase();
        assert_eq!(read(&line).events.len(), 1);
        assert_eq!(
            read(&upper),
            Journal {
                events: vec![],
                skipped: 1
            }
        );
    }

    #[test]
    fn display_words() {
        let panic = Ending::KernelPanic {
            first_line: "Kernel panic - not syncing: sysrq triggered crash".into(),
        };
        assert_eq!(panic.to_string(), "kernel panic: sysrq triggered crash");
        assert_eq!(
            Ending::Reboot {
                by: "api:admin".into()
            }
            .to_string(),
            "reboot requested by api:admin"
        );
        assert_eq!(
            Ending::PowerLossOrReset.to_string(),
            "power loss or hard reset"
        );
    }
}
