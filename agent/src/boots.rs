//! Reading the boot history over the API: the `Boots` and `BootTimeline`
//! RPCs, and the earlier-boot forms of `Dmesg` and `Logs` (`boot != 0`).
//! It resolves the API's boot numbers (0 the running boot, negative
//! counted back from it, positive absolute) against the store and turns
//! what `matic_history` reads into the API's messages.
//!
//! Owns: what a boot number means on the API, which boot is the running
//! one (the newest held, when its `started` names the kernel's boot id: a
//! new boot is always numbered past every other), and the NOT_FOUND
//! sentences for boots the history does not hold.
//!
//! Must never: write, create or delete anything in the history (the
//! recorder owns it; a missing directory is an error here, not made),
//! be called on the async runtime's threads (every function does
//! synchronous file I/O: callers run it on the blocking pool), or fail a
//! listing because one boot's record is damaged.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use matic_history::pstore::Dump;
use matic_history::read::{BootSummary, Outcome};
use matic_history::{Ending, Store, kernel_line, store};
use matic_proto::v1::{
    BootMark, BootRecord, BootTimelineResponse, BootsResponse, CrashDump, DmesgResponse,
    KernelMessage,
};
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use crate::config::Config;

/// Boots listed when the request asks for 0.
pub const DEFAULT_LIMIT: u32 = 16;
/// A `Boots` answer stops before it passes this many bytes (tonic refuses
/// messages over 4 MiB; a boot is some 200 bytes, so only a history of
/// thousands of tiny boots reaches it).
pub const MAX_LIST_BYTES: usize = 2 << 20;
/// The longest stored kernel log line read whole (the kernel's records
/// are under 8 KiB).
const MAX_LINE: u64 = 64 << 10;
/// Messages per `DmesgResponse` of an earlier boot's kernel log.
const DMESG_BATCH: usize = crate::kmsg::BATCH;

/// Where the history is, and where the kernel's id of this boot is.
#[derive(Debug, Clone)]
pub struct History {
    pub dir: PathBuf,
    pub cap: u64,
    pub boot_id: PathBuf,
}

/// The history as found at one request: its boots and the running one.
struct Held {
    store: Store,
    /// Ascending.
    numbers: Vec<u64>,
    running: Option<u64>,
}

impl History {
    pub fn from_config(cfg: &Config) -> History {
        History {
            dir: cfg.history_dir.clone(),
            cap: cfg.history_cap,
            boot_id: cfg.boot_id_path.clone(),
        }
    }

    /// `Boots`: the newest `limit` boots (0: [`DEFAULT_LIMIT`]), newest first.
    pub fn list(&self, limit: u32) -> Result<BootsResponse, Status> {
        self.list_within(limit, MAX_LIST_BYTES)
    }

    /// [`History::list`], stopping before the answer passes `max_bytes`.
    fn list_within(&self, limit: u32, max_bytes: usize) -> Result<BootsResponse, Status> {
        let held = self.open()?;
        let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
        let summaries = held
            .store
            .boots(limit as usize, held.running)
            .map_err(history_status)?;
        let uptime = uptime_ms();
        let mut resp = BootsResponse {
            boots: Vec::new(),
            held: u32::try_from(held.numbers.len()).unwrap_or(u32::MAX),
        };
        for s in &summaries {
            resp.boots.push(record(s, uptime));
            if resp.encoded_len() > max_bytes {
                resp.boots.pop();
                break;
            }
        }
        Ok(resp)
    }

    /// `BootTimeline`: boot `boot`'s marks in the order recorded.
    pub fn timeline(&self, boot: i64) -> Result<BootTimelineResponse, Status> {
        let held = self.open()?;
        let number = held.resolve(boot)?;
        let marks = held.store.timeline(number).map_err(history_status)?;
        Ok(BootTimelineResponse {
            number,
            marks: marks
                .into_iter()
                .map(|m| BootMark {
                    name: m.name,
                    at_ms: m.at_ms,
                })
                .collect(),
        })
    }

    /// What `Dmesg` of an earlier boot sends: boot `boot`'s `kmsg.log`
    /// (read as it is streamed, by [`send_kernel_log`]) and the crash
    /// dumps kept with it (small: pstore holds a few records of some KiB).
    pub fn kernel_log(&self, boot: i64) -> Result<StoredKernelLog, Status> {
        let held = self.open()?;
        let number = held.resolve(boot)?;
        let path = held.store.boot_dir(number).join(store::KMSG);
        let dumps = held.store.crash_dumps(number).map_err(history_status)?;
        let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        if empty && dumps.is_empty() {
            return Err(Status::not_found(format!(
                "boot {number} kept no kernel log and no crash dump in the history"
            )));
        }
        Ok(StoredKernelLog { path, dumps })
    }

    /// Where `Logs` of an earlier boot reads: service `name`'s log in boot
    /// `boot` (its lines are stored stamped, so they are sent as they are).
    pub fn service_log_path(&self, boot: i64, name: &str) -> Result<PathBuf, Status> {
        if !matic_history::writer::valid_service_name(name) {
            return Err(history_status(matic_history::Error::BadServiceName {
                name: name.to_owned(),
            }));
        }
        let held = self.open()?;
        let number = held.resolve(boot)?;
        let names = held.store.services(number).map_err(history_status)?;
        if !names.iter().any(|n| n == name) {
            let logged = if names.is_empty() {
                "no service logged in it".to_owned()
            } else {
                format!("services that logged in it: {}", names.join(", "))
            };
            return Err(Status::not_found(format!(
                "boot {number} has no log of {name:?} in the history ({logged})"
            )));
        }
        Ok(held
            .store
            .boot_dir(number)
            .join(store::SERVICES)
            .join(format!("{name}.log")))
    }

    /// The store, its boots and the running one. The directory must exist.
    fn open(&self) -> Result<Held, Status> {
        if !self.dir.is_dir() {
            return Err(Status::failed_precondition(format!(
                "no boot history at {} (the agent keeps one there when MATIC_STATE is mounted)",
                self.dir.display()
            )));
        }
        let store = Store::open(&self.dir, self.cap)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let numbers = store.numbers().map_err(history_status)?;
        // An unreadable boot id only means no boot is known as running:
        // absolute numbers still work.
        let running = match std::fs::read_to_string(&self.boot_id) {
            Ok(id) => {
                let newest = store.boots(1, None).map_err(history_status)?;
                newest
                    .first()
                    .filter(|s| s.boot_id.as_deref() == Some(id.trim()))
                    .map(|s| s.number)
            }
            Err(_) => None,
        };
        Ok(Held {
            store,
            numbers,
            running,
        })
    }
}

impl Held {
    /// The absolute number of API boot number `boot`.
    fn resolve(&self, boot: i64) -> Result<u64, Status> {
        match boot {
            0 => self.running.ok_or_else(|| {
                Status::not_found(format!(
                    "boot 0: the running boot has no record in the history ({})",
                    held_words(&self.numbers)
                ))
            }),
            n if n > 0 => {
                let n = n as u64;
                if self.numbers.binary_search(&n).is_ok() {
                    Ok(n)
                } else {
                    Err(Status::not_found(format!(
                        "no boot {n} in the history ({})",
                        held_words(&self.numbers)
                    )))
                }
            }
            n => {
                // Counted back from the running boot; with none known, every
                // boot held is an earlier one.
                let before = match self.running {
                    Some(r) => &self.numbers[..self.numbers.partition_point(|&x| x < r)],
                    None => &self.numbers[..],
                };
                let back = n.unsigned_abs();
                let from = match self.running {
                    Some(r) => format!("before the running boot {r}"),
                    None => "and the running boot has no record".to_owned(),
                };
                usize::try_from(back)
                    .ok()
                    .and_then(|back| before.len().checked_sub(back))
                    .map(|i| before[i])
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "no boot {n}: the history holds {} boot{} {from}{}",
                            before.len(),
                            if before.len() == 1 { "" } else { "s" },
                            span(before).map_or(String::new(), |s| format!(" ({s})")),
                        ))
                    })
            }
        }
    }
}

/// An earlier boot's kernel log to send: its file and its crash dumps.
#[derive(Debug)]
pub struct StoredKernelLog {
    path: PathBuf,
    dumps: Vec<Dump>,
}

/// Sends `log` as `DmesgResponse`s of [`DMESG_BATCH`] messages: the file
/// read a line at a time (a line of more than [`MAX_LINE`] bytes, only
/// ever a damaged one, comes in pieces), then each dump's lines marked
/// with it. At most the channel's few batches are held, whatever the
/// file's size. Returns when done, on a read error (sent as INTERNAL
/// naming the file), or when the receiver has gone (the client left).
/// Blocking: run it on the blocking pool.
pub fn send_kernel_log(log: StoredKernelLog, tx: &mpsc::Sender<Result<DmesgResponse, Status>>) {
    let mut batch = Vec::with_capacity(DMESG_BATCH);
    // Sends a full batch (or, with `all`, what there is); false: stop.
    let flush = |batch: &mut Vec<KernelMessage>, all: bool| -> bool {
        let send = batch.len() >= DMESG_BATCH || (all && !batch.is_empty());
        if !send {
            return true;
        }
        let messages = std::mem::replace(batch, Vec::with_capacity(DMESG_BATCH));
        tx.blocking_send(Ok(DmesgResponse { messages })).is_ok()
    };
    match std::fs::File::open(&log.path) {
        Ok(file) => {
            let mut reader = std::io::BufReader::new(file);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let msg = format!("reading {}: {e}", log.path.display());
                        let _ = tx.blocking_send(Err(Status::internal(msg)));
                        return;
                    }
                }
                let text = String::from_utf8_lossy(&line);
                batch.extend(stored_message(text.trim_end_matches('\n')));
                if !flush(&mut batch, false) {
                    return;
                }
            }
        }
        // No kernel log kept (a record made from a crash dump may have only that).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let msg = format!("reading {}: {e}", log.path.display());
            let _ = tx.blocking_send(Err(Status::internal(msg)));
            return;
        }
    }
    for (i, dump) in log.dumps.iter().enumerate() {
        let tag = CrashDump {
            index: u32::try_from(i + 1).unwrap_or(u32::MAX),
            reason: dump.reason.clone(),
        };
        for mut m in dump.text.lines().filter_map(stored_message) {
            m.crash_dump = Some(tag.clone());
            batch.push(m);
            if !flush(&mut batch, false) {
                return;
            }
        }
    }
    flush(&mut batch, true);
}

/// `it holds boots 12 to 40 (29 boots)`, or that it holds none.
fn held_words(numbers: &[u64]) -> String {
    match span(numbers) {
        None => "the history holds no boots".to_owned(),
        Some(s) => format!("it holds {s}, {} in all", numbers.len()),
    }
}

/// `boots 12 to 40`, `boot 12`, or `None` for no boots.
fn span(numbers: &[u64]) -> Option<String> {
    match (numbers.first(), numbers.last()) {
        (Some(a), Some(b)) if a == b => Some(format!("boot {a}")),
        (Some(a), Some(b)) => Some(format!("boots {a} to {b}")),
        _ => None,
    }
}

/// A listed boot as the API sends it; `uptime_ms` is the running boot's
/// duration so far.
pub fn record(s: &BootSummary, uptime_ms: u64) -> BootRecord {
    let running = s.ending == Outcome::Running;
    let ending_kind = match &s.ending {
        Outcome::Running => "running",
        Outcome::Unknown => "unknown",
        Outcome::Ended(e) => ending_kind(e),
    };
    BootRecord {
        number: s.number,
        slot: s.slot.clone().unwrap_or_default(),
        os_version: s.os_version.clone().unwrap_or_default(),
        kernel: s.kernel.clone().unwrap_or_default(),
        start_wall_unix_ms: s.start_wall_unix_ms,
        start_uptime_ms: s.started_uptime_ms,
        duration_ms: if running {
            Some(uptime_ms)
        } else {
            s.duration_ms
        },
        ending: s.ending.to_string(),
        ending_kind: ending_kind.to_owned(),
        successful: s.successful,
        running,
        damaged_records: u32::try_from(s.skipped_lines).unwrap_or(u32::MAX),
    }
}

/// The word for an ending: the `kind` of its record in `events.jsonl`.
fn ending_kind(e: &Ending) -> &'static str {
    match e {
        Ending::Reboot { .. } => "reboot",
        Ending::Poweroff { .. } => "poweroff",
        Ending::KernelPanic { .. } => "kernel_panic",
        Ending::Watchdog => "watchdog",
        Ending::BootDeadline => "boot_deadline",
        Ending::UnmountableRoot => "unmountable_root",
        Ending::PowerLossOrReset => "power_loss_or_reset",
    }
}

/// A stored kernel log line (`[    2.155872] text`) as a message; a line
/// without that stamp comes whole, marked `no_timestamp`. Blank lines
/// carry nothing and are left out.
pub fn stored_message(line: &str) -> Option<KernelMessage> {
    if line.trim().is_empty() {
        return None;
    }
    let mut m = KernelMessage {
        message: line.to_owned(),
        no_timestamp: true,
        ..Default::default()
    };
    if let Some((usec, text)) = kernel_line::parse(line) {
        (m.timestamp_usec, m.message, m.no_timestamp) = (usec, text.to_owned(), false);
    }
    Some(m)
}

/// CLOCK_BOOTTIME in ms: how long the running boot has run.
fn uptime_ms() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let ms = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(ms)
}

/// The API status for a history error: the sentence names the file.
fn history_status(e: matic_history::Error) -> Status {
    use matic_history::Error as E;
    match e {
        E::NoSuchBoot { .. } => Status::not_found(e.to_string()),
        E::BadServiceName { .. } => Status::invalid_argument(e.to_string()),
        _ => Status::internal(format!("boot history: {e}")),
    }
}

/// The refusal of `follow` on an earlier boot's log.
pub fn no_follow(boot: i64) -> Status {
    Status::invalid_argument(format!(
        "follow needs the running log (boot 0); boot {boot}'s record is read as it is"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(numbers: &[u64], running: Option<u64>) -> Held {
        let dir = std::env::temp_dir().join(format!("matic-boots-unit-{}", std::process::id()));
        Held {
            store: Store::open(&dir, matic_history::store::DEFAULT_CAP).unwrap(),
            numbers: numbers.to_vec(),
            running,
        }
    }

    #[test]
    fn boot_numbers_resolve() {
        let h = held(&[3, 4, 6, 7], Some(7));
        assert_eq!(h.resolve(0).unwrap(), 7);
        assert_eq!(h.resolve(-1).unwrap(), 6);
        assert_eq!(h.resolve(-3).unwrap(), 3);
        assert_eq!(h.resolve(4).unwrap(), 4);
        let e = h.resolve(5).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(
            e.message(),
            "no boot 5 in the history (it holds boots 3 to 7, 4 in all)"
        );
        let e = h.resolve(-4).unwrap_err();
        assert_eq!(
            e.message(),
            "no boot -4: the history holds 3 boots before the running boot 7 (boots 3 to 6)"
        );
        assert_eq!(
            h.resolve(i64::MIN).unwrap_err().code(),
            tonic::Code::NotFound
        );
        // No running boot known: every boot held is an earlier one.
        let h = held(&[3], None);
        assert_eq!(h.resolve(-1).unwrap(), 3);
        let e = h.resolve(0).unwrap_err();
        assert_eq!(
            e.message(),
            "boot 0: the running boot has no record in the history (it holds boot 3, 1 in all)"
        );
        let e = held(&[], None).resolve(1).unwrap_err();
        assert_eq!(
            e.message(),
            "no boot 1 in the history (the history holds no boots)"
        );
    }

    fn history(dir: &std::path::Path) -> History {
        History {
            dir: dir.join("history"),
            cap: matic_history::store::DEFAULT_CAP,
            boot_id: dir.join("boot_id"),
        }
    }

    #[test]
    fn a_missing_history_is_an_error_and_is_not_created() {
        let tmp = std::env::temp_dir().join(format!("matic-boots-none-{}", std::process::id()));
        let h = history(&tmp);
        let e = h.list(0).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            e.message(),
            format!(
                "no boot history at {} (the agent keeps one there when MATIC_STATE is mounted)",
                h.dir.display()
            )
        );
        assert!(!h.dir.exists());
    }

    #[test]
    fn a_list_stops_before_its_byte_budget() {
        let tmp = std::env::temp_dir().join(format!("matic-boots-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let h = history(&tmp);
        let store = Store::open(&h.dir, h.cap).unwrap();
        for id in ["a", "b", "c"] {
            let started = matic_history::Started {
                boot: id.into(),
                slot: "A".into(),
                os_version: "1.0".into(),
                kernel: "6.1".into(),
                wall_unix_ms: None,
                uptime_ms: 1,
            };
            store.begin(started).unwrap().close().unwrap();
        }
        let all = h.list(0).unwrap();
        assert_eq!((all.boots.len(), all.held), (3, 3));
        // Room for two records but not three.
        let two = BootsResponse {
            boots: all.boots[..2].to_vec(),
            held: 3,
        };
        let cut = h.list_within(0, two.encoded_len()).unwrap();
        assert_eq!(cut, two);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_stored_kernel_log_is_sent_in_batches_then_its_dumps() {
        let path = std::env::temp_dir().join(format!("matic-boots-kmsg-{}", std::process::id()));
        let mut text: String = (0..300)
            .map(|i| format!("[{i:5}.000000] line {i}\n"))
            .collect();
        // A damaged line longer than MAX_LINE, without its newline.
        text.push_str(&"x".repeat(100 << 10));
        std::fs::write(&path, &text).unwrap();
        let log = || StoredKernelLog {
            path: path.clone(),
            dumps: vec![Dump {
                reason: "Panic".into(),
                text: "[    2.155872] Kernel panic - not syncing: x\n".into(),
            }],
        };
        let (tx, mut rx) = mpsc::channel(2);
        let first = log();
        let sender = std::thread::spawn(move || send_kernel_log(first, &tx));
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            let batch = batch.unwrap().messages;
            sizes.push(batch.len());
            all.extend(batch);
        }
        sender.join().unwrap();
        assert_eq!(sizes, [256, 47]);
        assert_eq!(
            (all[299].timestamp_usec, all[299].message.as_str()),
            (299_000_000, "line 299")
        );
        let pieces: Vec<usize> = all[300..302].iter().map(|m| m.message.len()).collect();
        assert_eq!(pieces, [64 << 10, 36 << 10]);
        assert!(all[300].no_timestamp && all[..300].iter().all(|m| m.crash_dump.is_none()));
        let last = &all[302];
        assert_eq!(last.crash_dump.as_ref().unwrap().reason, "Panic");
        assert_eq!(last.message, "Kernel panic - not syncing: x");

        // The client gone: it stops instead of reading on.
        let (tx, rx) = mpsc::channel(2);
        drop(rx);
        send_kernel_log(log(), &tx);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn stored_lines() {
        let m = stored_message("[    2.155872] Kernel panic - not syncing: x").unwrap();
        assert_eq!(
            (m.timestamp_usec, m.message.as_str(), m.no_timestamp),
            (2_155_872, "Kernel panic - not syncing: x", false)
        );
        let m = stored_message("[12345.000001] a] b").unwrap();
        assert_eq!(
            (m.timestamp_usec, m.message.as_str()),
            (12_345_000_001, "a] b")
        );
        for damaged in [
            "[    2.15",
            "plain",
            "[x.000000] y",
            "[1.5] short",
            "[.000000] z",
        ] {
            let m = stored_message(damaged).unwrap();
            assert_eq!(
                (m.timestamp_usec, m.message.as_str(), m.no_timestamp),
                (0, damaged, true),
                "{damaged}"
            );
        }
        assert_eq!(stored_message("  "), None);
    }
}
