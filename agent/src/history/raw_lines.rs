//! The lines init copied raw into `/var/log/matic/<service>.log` (and
//! `.log.1`) while no agent read the handed pipes (the agent down, or the
//! end of an earlier boot), moved into the boot history when the agent
//! starts (docs/interfaces.md, "Service log handoff"): cut as the pipes'
//! lines are ([`Splitter`]), stamped with the time they are moved, and
//! framed by two marker lines, since their own time is unknown.
//!
//! Owns: which boot they go to, the marker lines, and deleting the raw
//! files. Must never: delete a raw file before its lines are written and
//! fsynced, or touch `matic-agent`'s own raw log (never handed, never
//! moved).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use matic_contract::handoff::HANDED;
use matic_history::{BootWriter, Store};

use super::recorder::Recorder;
use super::service_logs::{Splitter, now};

/// Bytes read from a raw file at once.
const READ: usize = 64 << 10;

/// What [`move_raw`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// The boot the lines went to.
    pub boot: u64,
    /// Lines moved, over all files.
    pub lines: u64,
}

/// Moves what init copied raw into `<log_dir>/<name>.log.1` and
/// `<name>.log` (oldest first) of every handed service into the history,
/// then deletes those files. Into the running boot when the agent was
/// restarted within it (`resumed`: the lines are this boot's); else into
/// the boot before it (the lines were written after its agent stopped),
/// or this one if there is none. Each file's lines are stamped with the
/// time they are moved, between the lines `matic-agent: lines written
/// while the agent was not reading follow (from PATH); stamped when moved`
/// and `matic-agent: end of the lines from PATH (N lines)` (an empty file
/// is deleted without them). A file is
/// deleted only once its lines are written and fsynced (a crash in
/// between moves them again at the next start).
pub fn move_raw(rec: &Recorder, log_dir: &Path, resumed: bool) -> Result<Moved, String> {
    let store: &Store = rec.store();
    let previous = if resumed {
        None
    } else {
        store
            .numbers()
            .map_err(|e| e.to_string())?
            .into_iter()
            .rfind(|n| *n < rec.number())
    };
    let mut moved = Moved {
        boot: previous.unwrap_or(rec.number()),
        lines: 0,
    };
    let mut earlier: Option<BootWriter> = None;
    for name in HANDED {
        for file in [format!("{name}.log.1"), format!("{name}.log")] {
            let path = log_dir.join(file);
            let Ok(raw) = File::open(&path) else { continue };
            if raw.metadata().is_ok_and(|m| m.len() == 0) {
                // Made by init before it handed the pipe, never written.
                std::fs::remove_file(&path)
                    .map_err(|e| format!("removing {}: {e}", path.display()))?;
                continue;
            }
            let n = match previous {
                Some(number) => {
                    if earlier.is_none() {
                        earlier = Some(store.reopen(number).map_err(|e| e.to_string())?);
                    }
                    let w = earlier.as_mut().expect("opened above");
                    let n = move_file(w, name, &path, raw)?;
                    w.sync().map_err(|e| e.to_string())?;
                    n
                }
                None => rec
                    .with_writer(|w| {
                        let n = move_file(w, name, &path, raw)?;
                        w.sync().map_err(|e| e.to_string())?;
                        Ok::<u64, String>(n)
                    })
                    .unwrap_or_else(|| Err("the boot history is closed".into()))?,
            };
            moved.lines += n;
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    if let Some(w) = earlier {
        w.close().map_err(|e| e.to_string())?;
    }
    Ok(moved)
}

/// One raw file's lines into `w`, between the marker lines; their count.
fn move_file(w: &mut BootWriter, name: &str, path: &Path, mut raw: File) -> Result<u64, String> {
    let at = now();
    let fail = |e: matic_history::Error| e.to_string();
    w.service_line(
        name,
        at,
        format!(
            "matic-agent: lines written while the agent was not reading follow (from {}); stamped when moved",
            path.display()
        ),
    )
    .map_err(fail)?;
    let mut lines = Splitter::default();
    let mut count = 0u64;
    let mut buf = vec![0u8; READ];
    loop {
        let n = raw
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        lines
            .push(&buf[..n], |l| {
                count += 1;
                w.service_line(name, at, l)
            })
            .map_err(fail)?;
    }
    lines
        .finish(|l| {
            count += 1;
            w.service_line(name, at, l)
        })
        .map_err(fail)?;
    w.service_line(
        name,
        at,
        format!(
            "matic-agent: end of the lines from {} ({count} lines)",
            path.display()
        ),
    )
    .map_err(fail)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(boot: &str) -> matic_history::Started {
        matic_history::Started {
            boot: boot.into(),
            slot: "A".into(),
            os_version: String::new(),
            kernel: String::new(),
            wall_unix_ms: None,
            uptime_ms: 1,
        }
    }

    #[test]
    fn raw_lines_go_to_the_boot_before_or_after_a_restart_to_this_one() {
        let dir = std::env::temp_dir().join(format!("matic-svclog-move-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (boots, raw) = (dir.join("boots"), dir.join("log"));
        std::fs::create_dir_all(&raw).unwrap();
        let store = Store::open(&boots, matic_history::store::DEFAULT_CAP).unwrap();
        store.begin(started("before")).unwrap().close().unwrap();
        let rec = Recorder::new(store.clone(), store.begin(started("now")).unwrap());
        let log_of = |n: u64| {
            let lines = store.service_log(n, "containerd").unwrap();
            lines.into_iter().map(|l| l.text).collect::<Vec<_>>()
        };

        // A new boot: init's lines (rotated file first) are the boot before's.
        std::fs::write(raw.join("containerd.log.1"), "old\n").unwrap();
        std::fs::write(raw.join("containerd.log"), "a\nb").unwrap();
        std::fs::write(raw.join("kubelet.log"), "").unwrap();
        let moved = move_raw(&rec, &raw, false).unwrap();
        assert_eq!(moved, Moved { boot: 1, lines: 3 });
        let texts = log_of(1);
        assert_eq!(texts.len(), 7, "{texts:?}");
        assert!(
            texts[0].contains("containerd.log.1); stamped when moved"),
            "{texts:?}"
        );
        assert_eq!(texts[1], "old");
        assert!(texts[2].contains("end of the lines") && texts[2].contains("(1 lines)"));
        assert_eq!(texts[4..6], ["a", "b"], "a partial last line is kept");
        assert!(texts[6].contains("(2 lines)"), "{texts:?}");
        assert!(
            std::fs::read_dir(&raw).unwrap().next().is_none(),
            "every raw file deleted"
        );
        assert!(log_of(2).is_empty(), "nothing in this boot");

        // The agent restarted within this boot: they are this boot's.
        std::fs::write(raw.join("containerd.log"), "c\n").unwrap();
        let moved = move_raw(&rec, &raw, true).unwrap();
        assert_eq!(moved, Moved { boot: 2, lines: 1 });
        assert_eq!(log_of(2)[1], "c");
        assert_eq!(log_of(1).len(), 7, "the boot before untouched");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
