//! The agent's writing side of the boot history (crate `matic-history`,
//! docs/history.md): at start it opens the store, settles the boots before
//! this one (crash dumps, inferred endings) and begins or resumes this
//! boot's record; then [`kmsg_copy`] copies the kernel log into it,
//! [`service_logs`] the services' stamped lines, and the
//! agent adds its own marks and the ending of an API reboot or power-off.
//!
//! | module | what |
//! |---|---|
//! | [`facts`] | what a boot's record starts with |
//! | [`crashes`] | pstore's dumps to the boots they belong to |
//! | [`inferred`] | how an unrecorded boot ended, from its log and the watchdog |
//! | [`kmsg_copy`] | the kernel log into `kmsg.log`, and its marks |
//! | [`recorder`] | the running boot's shared writer |
//! | [`service_logs`] | the services' pipes handed by init, stamped into `services/<name>.log` |
//! | [`own_log`] | the agent's own stdout and stderr, on to init and stamped for the record |
//! | [`raw_lines`] | what init copied raw while no agent read the pipes, moved in at start |
//! | [`late`] | that writer for the API, which serves before the open is over |
//!
//! Must never: stop the agent (a store that cannot be opened — no
//! `MATIC_STATE`, a full or read-only disk — is logged and the agent runs
//! without history), or touch the boots before this one on a resume (the
//! agent restarted within the boot: they were settled at its first start).

pub mod crashes;
pub mod facts;
pub mod inferred;
pub mod kmsg_copy;
pub mod late;
pub mod own_log;
pub mod raw_lines;
pub mod recorder;
pub mod service_logs;

use std::io::Write;
use std::path::Path;

use matic_history::read;
use matic_history::store::{self, Store};
use matic_history::{Event, Started};

use crate::config::Config;
pub use late::LateRecorder;
pub use recorder::Recorder;

/// What [`open`] made of the store.
pub struct Opened {
    /// The running boot's record.
    pub recorder: Recorder,
    /// Whether it continues this kernel boot's record (agent restarted).
    pub resumed: bool,
}

/// Opens the history for this boot (module doc): `slot` and `os_version`
/// as the agent knows them (empty when unknown). `None`, after a log line
/// saying why, when there is no history to write this boot.
pub fn open(cfg: &Config, slot: String, os_version: String) -> Option<Opened> {
    match try_open(cfg, slot, os_version) {
        Ok(opened) => Some(opened),
        Err(e) => {
            eprintln!(
                "matic-agent: boot history off for this boot ({}): {e}",
                cfg.history_dir.display()
            );
            None
        }
    }
}

fn try_open(cfg: &Config, slot: String, os_version: String) -> Result<Opened, String> {
    let boot = facts::boot_id(&cfg.boot_id_path)?;
    let store = Store::open(&cfg.history_dir, cfg.history_cap).map_err(|e| e.to_string())?;
    let started = facts::started(boot, slot, os_version);
    let resumed = newest_started(&store).is_some_and(|s| s.boot == started.boot);
    if !resumed {
        settle_previous(cfg, &store);
    }
    let writer = store.resume_or_begin(started).map_err(|e| e.to_string())?;
    let recorder = Recorder::new(store, writer);
    if !resumed {
        // The kernel started this boot: the timeline's zero.
        recorder.mark("kernel", 0);
        // Kexec'd by the loader: its own part, on its own clock.
        let cmdline = std::fs::read_to_string(&cfg.cmdline).unwrap_or_default();
        match facts::loader_marks(&cmdline) {
            Some(Ok(marks)) => marks.iter().for_each(|(n, at)| recorder.mark(n, *at)),
            Some(Err(e)) => eprintln!("matic-agent: boot history: {e}"),
            None => {}
        }
    }
    announce(&cfg.kmsg, recorder.number());
    Ok(Opened { recorder, resumed })
}

/// The newest boot's `Started`, if it reads.
fn newest_started(store: &Store) -> Option<Started> {
    let newest = *store.numbers().ok()?.last()?;
    match read::events(store, newest)
        .ok()??
        .events
        .into_iter()
        .next()?
    {
        Event::Started(s) => Some(s),
        _ => None,
    }
}

/// Before a new boot begins: crash dumps to their boots, then the previous
/// boot's ending inferred if it recorded none. Failures are logged: they
/// cost that evidence, never this boot's record.
fn settle_previous(cfg: &Config, store: &Store) {
    let previous = store.numbers().ok().and_then(|n| n.last().copied());
    let placed = match crashes::take(store, &cfg.pstore_dir) {
        Ok(placed) => placed,
        Err(e) => {
            eprintln!("matic-agent: boot history: crash dumps: {e}");
            Vec::new()
        }
    };
    for p in &placed {
        eprintln!(
            "matic-agent: boot history: crash dump kept with boot {}{}{}",
            p.boot,
            if p.created {
                " (a boot that never reached the agent)"
            } else {
                ""
            },
            p.panic
                .as_deref()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        );
    }
    let Some(previous) = previous else { return };
    // A dump made a newer record: the watchdog's status is about that one.
    let crashed_since = placed.iter().any(|p| p.created);
    let watchdog = !crashed_since
        && std::fs::read_to_string(&cfg.watchdog_status)
            .is_ok_and(|s| inferred::watchdog_fired(&s));
    if let Err(e) = infer_ending(store, previous, watchdog) {
        eprintln!("matic-agent: boot history: boot {previous}: inferring its ending: {e}");
    }
}

/// Records boot `n`'s inferred ending, unless it recorded one.
fn infer_ending(store: &Store, n: u64, watchdog: bool) -> Result<(), matic_history::Error> {
    // Unreadable events: inferred all the same (the ending is still news).
    let events = read::events(store, n)
        .ok()
        .flatten()
        .unwrap_or_default()
        .events;
    if events.iter().any(|e| matches!(e, Event::Ended { .. })) {
        return Ok(());
    }
    let last_ms = events
        .iter()
        .map(|e| match e {
            Event::Started(s) => s.uptime_ms,
            Event::Mark { at_ms, .. }
            | Event::Successful { at_ms }
            | Event::Ended { at_ms, .. } => *at_ms,
        })
        .max()
        .unwrap_or(0);
    let kmsg = tail(&store.boot_dir(n).join(store::KMSG));
    let ending = inferred::infer(&kmsg, watchdog);
    if watchdog && ending == matic_history::Ending::Watchdog {
        store.note_watchdog_reset(n)?;
    }
    let mut w = store.reopen(n)?;
    w.event(&Event::Ended {
        ending,
        at_ms: last_ms,
    })?;
    w.close()
}

/// The last 64 KiB of a text file (empty if it cannot be read).
fn tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let _ = file
        .seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
        .and_then(|_| file.read_to_end(&mut bytes));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes `matic-agent: history boot N` to the kernel log, so a crash dump
/// of this boot names its record (crashes.rs). A failure is logged.
fn announce(kmsg: &Path, number: u64) {
    let line = format!("<6>{}{number}\n", crashes::HISTORY_LINE);
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(kmsg)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("matic-agent: writing to {}: {e}", kmsg.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::fs;
    use std::path::PathBuf;

    fn sandbox(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("matic-hist-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pstore")).unwrap();
        fs::write(dir.join("boot_id"), "this-boot\n").unwrap();
        fs::write(dir.join("kmsg"), "6,1,1000,-;Linux version 6.1.0\n").unwrap();
        dir
    }

    fn config(dir: &Path) -> Config {
        let p = |name: &str| dir.join(name).display().to_string();
        Config::parse_from([
            "matic-agent".to_owned(),
            "--history-dir".into(),
            p("boots"),
            "--pstore-dir".into(),
            p("pstore"),
            "--boot-id".into(),
            p("boot_id"),
            "--kmsg".into(),
            p("kmsg"),
            "--watchdog-status".into(),
            p("bootstatus"),
        ])
    }

    fn panic_dump(dir: &Path) {
        fs::write(
            dir.join("pstore/dmesg-erst-1"),
            "Panic#1 Part1\n<0>[    9.100000] Kernel panic - not syncing: x\n",
        )
        .unwrap();
    }

    #[test]
    fn a_restarted_agent_resumes_its_boot_and_leaves_the_dumps_alone() {
        let dir = sandbox("resume");
        let cfg = config(&dir);
        let first = open(&cfg, "A".into(), "1.0".into()).unwrap();
        assert!(!first.resumed);
        assert_eq!(first.recorder.number(), 1);
        first.recorder.close();
        // A dump appearing now is not this boot's business: the next
        // boot's start attributes it.
        panic_dump(&dir);
        let again = open(&cfg, "A".into(), "1.0".into()).unwrap();
        assert!(again.resumed);
        assert_eq!(again.recorder.number(), 1);
        assert!(dir.join("pstore/dmesg-erst-1").exists());
        let s = again.recorder.store().clone();
        assert_eq!(s.numbers().unwrap(), [1]);
        let kernel_marks = s
            .timeline(1)
            .unwrap()
            .iter()
            .filter(|m| m.name == "kernel")
            .count();
        assert_eq!(kernel_marks, 1, "the kernel mark once per boot");
        // Announced at each start.
        let kmsg = fs::read_to_string(dir.join("kmsg")).unwrap();
        assert_eq!(kmsg.matches("matic-agent: history boot 1\n").count(), 2);

        // The next kernel boot takes the dump (it names no boot: its own record).
        fs::write(dir.join("boot_id"), "next-boot\n").unwrap();
        let next = open(&cfg, "B".into(), "1.1".into()).unwrap();
        assert!(!next.resumed);
        assert_eq!(next.recorder.number(), 3);
        assert!(!dir.join("pstore/dmesg-erst-1").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kexecd_boot_starts_with_the_loaders_marks_once() {
        let dir = sandbox("loader");
        fs::write(
            dir.join("cmdline"),
            "console=ttyS0 matic.slot=B lockdown=integrity matic.loader_ms=1480,3612\n",
        )
        .unwrap();
        let mut cfg = config(&dir);
        cfg.cmdline = dir.join("cmdline");
        let names = |o: &Opened| -> Vec<(String, u64)> {
            let s = o.recorder.store().clone();
            let mut m: Vec<_> = s
                .timeline(1)
                .unwrap()
                .into_iter()
                .map(|m| (m.name, m.at_ms))
                .collect();
            m.sort();
            m
        };
        let want: Vec<(String, u64)> = [
            ("kernel", 0),
            ("loader:/init", 1480),
            ("loader:kernel", 0),
            ("loader:kexec", 3612),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), *t))
        .collect();
        let first = open(&cfg, "B".into(), "1.0".into()).unwrap();
        assert_eq!(names(&first), want);
        first.recorder.close();
        // A restarted agent adds none again.
        let again = open(&cfg, "B".into(), "1.0".into()).unwrap();
        assert!(again.resumed);
        assert_eq!(names(&again), want);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_boot_id_no_history() {
        let dir = sandbox("noid");
        fs::remove_file(dir.join("boot_id")).unwrap();
        assert!(open(&config(&dir), "A".into(), String::new()).is_none());
        assert!(!dir.join("boots").exists(), "nothing written");
        fs::remove_dir_all(&dir).unwrap();
    }
}
