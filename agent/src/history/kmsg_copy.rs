//! The kernel log copier: a thread of its own reading `/dev/kmsg` from the
//! start of the boot, appending every record to the boot's `kmsg.log` as
//! `[    5.140900] message`, writing the buffered lines out every second
//! (`flush_due`: a power cut loses at most the last second), and turning
//! known lines into timeline marks (init's stages, each service's first
//! start, `boot-ok`).
//!
//! Owns: the line form of `kmsg.log`, and which kernel and init lines are
//! marks. Must never: block the runtime (synchronous file I/O and fsync,
//! on its own thread), copy a record twice into one boot (a restarted
//! agent skips what the boot's log already holds), or stop for a bad
//! record or a failed write (logged once, then it carries on).

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use matic_history::{Event, kernel_line};

use super::facts::boottime_us;
use super::recorder::Recorder;
use crate::kmsg::{BATCH, Kmsg};

/// How often the copier looks for new records (and calls `flush_due`).
const POLL: Duration = Duration::from_millis(200);

/// The mark a kernel log message stands for, if any: `init` (the kernel
/// runs `/init`), `stage1`, `modules-loaded`, `root-verified` (stage 1's
/// last line before it mounts the verified root), `stage2`,
/// `service:<name>` (each start; the copier keeps the first of each
/// service), `boot-ok`.
pub fn mark_for(message: &str) -> Option<String> {
    if message.starts_with("Run /init as init process") {
        return Some("init".into());
    }
    let said = message.strip_prefix("matic-init: ")?;
    let name = if said.starts_with("stage 1: ") {
        "stage1"
    } else if said.starts_with("modules: ") && said.contains(" loaded or present") {
        "modules-loaded"
    } else if said.starts_with("slot ") && said.contains(") verified; ") {
        "root-verified"
    } else if said.starts_with("stage 2: ") {
        "stage2"
    } else if said.starts_with("control: boot-ok") {
        "boot-ok"
    } else {
        let (service, _) = said.split_once(": started, pid ")?;
        let ok = !service.is_empty()
            && service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        return ok.then(|| format!("service:{service}"));
    };
    Some(name.into())
}

/// The time stamp of the last line of a `kmsg.log` (µs), if it has one:
/// where a restarted agent's copy resumes.
pub fn last_stamp_us(path: &Path) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(16 << 10)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail);
    tail.lines()
        .rev()
        .find_map(|line| kernel_line::parse(line).map(|(us, _)| us))
}

/// The running copier.
pub struct Copier {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Copier {
    /// Starts copying `path` (the kernel log device, or a file in tests)
    /// into `rec`'s boot. Records stamped at or before `after_us` are
    /// skipped (a restarted agent: the boot's log already has them).
    pub fn spawn(path: PathBuf, rec: Recorder, after_us: Option<u64>) -> std::io::Result<Copier> {
        let kmsg = Kmsg::open(&path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("matic-kmsg-copy".into())
            .spawn(move || run(kmsg, &path, &rec, after_us, &stopping))?;
        Ok(Copier { stop, thread })
    }

    /// Copies what is left, writes everything out and stops (SIGTERM: init
    /// is shutting down, its last lines should be in the log).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn run(mut kmsg: Kmsg, path: &Path, rec: &Recorder, after_us: Option<u64>, stop: &AtomicBool) {
    let mut started = BTreeSet::new();
    let mut last_problem = String::new();
    let mut report = |p: String| {
        if p != last_problem {
            eprintln!("matic-agent: boot history: {p}");
            last_problem = p;
        }
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        loop {
            let messages = match kmsg.read_available(BATCH) {
                Ok(m) => m,
                Err(e) => {
                    report(format!("reading {}: {e}", path.display()));
                    break;
                }
            };
            if messages.is_empty() {
                break;
            }
            let result = rec.with_writer(|w| -> Result<(), matic_history::Error> {
                for m in messages {
                    if after_us.is_some_and(|after| m.timestamp_usec <= after) {
                        continue;
                    }
                    w.kmsg_line(kernel_line::format(m.timestamp_usec, &m.message))?;
                    if let Some(name) = mark_for(&m.message)
                        && (!name.starts_with("service:") || started.insert(name.clone()))
                    {
                        w.event(&Event::Mark {
                            name,
                            at_ms: m.timestamp_usec / 1000,
                        })?;
                    }
                }
                Ok(())
            });
            match result {
                None => return,
                Some(Err(e)) => report(e.to_string()),
                Some(Ok(())) => {}
            }
        }
        if let Some(Err(e)) = rec.with_writer(|w| w.flush_due(boottime_us())) {
            report(e.to_string());
        }
        if stopping {
            rec.close();
            return;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_dmesg() {
        assert_eq!(
            kernel_line::format(5_140_900, "NET: Registered"),
            "[    5.140900] NET: Registered"
        );
        assert_eq!(kernel_line::format(0, "x"), "[    0.000000] x");
        assert_eq!(
            kernel_line::format(123_456_000_001, "x"),
            "[123456.000001] x"
        );
    }

    #[test]
    fn init_and_kernel_lines_are_marks() {
        let cases = [
            ("Run /init as init process", Some("init")),
            ("matic-init: stage 1: from the initramfs", Some("stage1")),
            (
                "matic-init: modules: 14 loaded or present, 0 failed",
                Some("modules-loaded"),
            ),
            (
                "matic-init: slot A: release 0.1.0 (counter 5, key id 1, root ab…) verified; matic-root-A is /dev/dm-0",
                Some("root-verified"),
            ),
            (
                "matic-init: stage 2: supervising 3 services",
                Some("stage2"),
            ),
            (
                "matic-init: containerd: started, pid 312",
                Some("service:containerd"),
            ),
            (
                "matic-init: control: boot-ok, boot deadline cleared",
                Some("boot-ok"),
            ),
            (
                "matic-init: control: boot-ok (no deadline was held)",
                Some("boot-ok"),
            ),
            ("matic-init: control: restart containerd", None),
            ("matic-init: a b: started, pid 1", None),
            ("containerd: started, pid 1", None),
            ("stage 2: supervising", None),
        ];
        for (message, want) in cases {
            assert_eq!(mark_for(message).as_deref(), want, "{message}");
        }
    }

    #[test]
    fn a_resumed_copy_copies_each_record_once() {
        use matic_history::Store;
        let dir = std::env::temp_dir().join(format!("matic-kmsg-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kmsg = dir.join("kmsg");
        std::fs::write(
            &kmsg,
            "6,1,1000,-;one\n14,2,4100000,-;matic-init: stage 2: x\n",
        )
        .unwrap();
        let store = Store::open(dir.join("boots"), matic_history::store::DEFAULT_CAP).unwrap();
        let started = super::super::facts::started("b".into(), "A".into(), "1".into());
        let start = |after| {
            let w = store.resume_or_begin(started.clone()).unwrap();
            let rec = Recorder::new(store.clone(), w);
            Copier::spawn(kmsg.clone(), rec, after).unwrap()
        };
        start(None).stop();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&kmsg)
            .unwrap();
        std::io::Write::write_all(&mut f, b"6,3,5000000,-;three\n").unwrap();
        let log = store.boot_dir(1).join(matic_history::store::KMSG);
        start(last_stamp_us(&log)).stop();
        assert_eq!(
            store.kmsg(1).unwrap(),
            "[    0.001000] one\n[    4.100000] matic-init: stage 2: x\n[    5.000000] three\n"
        );
        let marks: Vec<String> = store
            .timeline(1)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(marks, ["stage2"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_stamp_of_a_log() {
        let dir = std::env::temp_dir().join(format!("matic-kmsg-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kmsg.log");
        assert_eq!(last_stamp_us(&path), None);
        std::fs::write(&path, "[    1.000001] a\n[   12.500000] b\n").unwrap();
        assert_eq!(last_stamp_us(&path), Some(12_500_000));
        std::fs::write(&path, "[    1.000001] a\ntorn line without a stamp").unwrap();
        assert_eq!(last_stamp_us(&path), Some(1_000_001));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
