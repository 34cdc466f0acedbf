//! Crash dumps into the history, before a new boot begins: every file of
//! pstore is moved into the store, then each dump goes to the boot it
//! belongs to. A dump naming `matic-agent: history boot N` (the line the
//! agent writes to /dev/kmsg as soon as it begins a boot) belongs to N,
//! whose ending becomes its panic. A panic naming no boot in the store is
//! a boot that never reached the agent (a panic in stage 1, an `/sbin/init`
//! that exits): it gets a record of its own, made from the dump. So does a
//! dump init asked for before it rebooted on a failure (stage 1 giving a
//! slot up: [`SHUTDOWN_DUMP`]).
//!
//! Owns: attributing dumps to boots, and the records made from dumps.
//! Must never: unlink a dump that is not yet in the store (pstore::collect
//! moves first), overwrite an ending a boot recorded itself (a reboot that
//! panicked on the way down is still the reboot asked for), or run on a
//! resumed boot (the dumps then belong to the next one).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use matic_history::journal::PANIC_PREFIX;
use matic_history::kernel_line;
use matic_history::pstore::{self, Dump};
use matic_history::read;
use matic_history::store::{self, Store};
use matic_history::{Ending, Error, Event, Started};

use super::inferred;

/// The line the agent writes to the kernel log when it begins boot N.
pub const HISTORY_LINE: &str = "matic-agent: history boot ";

/// Where pstore's files wait in the store while they are attributed. Not
/// 10 digits: the store neither counts nor deletes it; it is emptied
/// before a boot begins (what is left of a failed attempt is retried).
pub const INCOMING: &str = ".pstore-incoming";

/// Where one dump went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The boot it was kept with.
    pub boot: u64,
    /// Whether that boot's record was made from the dump.
    pub created: bool,
    /// The panic line, if it was a panic.
    pub panic: Option<String>,
}

/// Moves pstore's dumps into the store and attributes them (module doc).
/// Files that are not kernel log dumps (`console-*`, an unreadable dump)
/// and dumps that are neither panics nor init's failure dumps and name no
/// boot are kept with the newest boot. Returns where each dump went, oldest first.
pub fn take(store: &Store, pstore_dir: &Path) -> Result<Vec<Placed>, Error> {
    let incoming = store.dir().join(INCOMING);
    match pstore::collect(pstore_dir, &incoming) {
        Ok(_) => {}
        // No pstore mounted (a machine without a backend): nothing to take,
        // but a previous attempt's files may still wait.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let files = read::regular_files(&incoming)?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut placed = Vec::new();
    for (dump, parts) in pstore::dumps_with_files(&files) {
        let panic = panic_line(&dump.text);
        let ending = match &panic {
            Some(line) => Some(ended(line, &dump)),
            None => init_failure(&dump),
        };
        let named = named_boot(&dump.text).filter(|&n| store.boot_dir(n).is_dir());
        let (boot, created) = match (named, ending) {
            (Some(n), ending) => {
                if let Some(ending) = ending
                    && !has_ending(store, n)?
                {
                    let mut w = store.reopen(n)?;
                    w.event(&ending)?;
                    w.close()?;
                }
                (n, false)
            }
            (None, Some(ending)) => {
                let mut w = store.begin(started_from(&dump, &parts))?;
                w.kmsg_line(&dump.text)?;
                w.event(&ending)?;
                let n = w.number();
                w.close()?;
                (n, true)
            }
            // Neither a panic nor init's failure, and no boot named: stays
            // for the newest boot.
            (None, None) => continue,
        };
        move_into(&parts, &store.boot_dir(boot).join(store::PSTORE))?;
        placed.push(Placed {
            boot,
            created,
            panic,
        });
    }
    let rest = read::regular_files(&incoming)?;
    if let (false, Some(&newest)) = (rest.is_empty(), store.numbers()?.last()) {
        move_into(&rest, &store.boot_dir(newest).join(store::PSTORE))?;
    }
    store.enforce(None)?;
    Ok(placed)
}

/// The boot a dump names: the number on its last `matic-agent: history
/// boot N` line.
pub fn named_boot(text: &str) -> Option<u64> {
    text.lines().rev().find_map(|line| {
        let (_, rest) = line.split_once(HISTORY_LINE)?;
        rest.trim().parse().ok()
    })
}

/// The first `Kernel panic - not syncing:` line, without its time stamp.
pub fn panic_line(text: &str) -> Option<String> {
    text.lines()
        .map(|l| without_time(l).1)
        .find(|l| l.starts_with(PANIC_PREFIX))
        .map(str::to_owned)
}

/// A line's `[    2.155872] ` stamp in ms, and the rest.
fn without_time(line: &str) -> (Option<u64>, &str) {
    match kernel_line::parse(line) {
        Some((us, text)) => (Some(us / 1000), text),
        None => (None, line),
    }
}

/// The `Ended` event of a panic: its line, at its time stamp.
fn ended(line: &str, dump: &Dump) -> Event {
    let at_ms = dump
        .text
        .lines()
        .map(without_time)
        .find(|(_, text)| *text == line)
        .and_then(|(at, _)| at)
        .unwrap_or(0);
    Event::Ended {
        ending: Ending::KernelPanic {
            first_line: line.to_owned(),
        },
        at_ms,
    }
}

/// The `Started` of a boot known only from its dump: kernel from `Linux
/// version X`, slot from init's `slot X chosen` / `slot X given by
/// matic.slot=` line, OS version from its `slot X: release V (` line; the
/// boot id names the dump (it never equals a kernel's boot id, so no
/// agent ever resumes it). Unknown facts are empty.
pub fn started_from(dump: &Dump, parts: &[PathBuf]) -> Started {
    let first = parts
        .first()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut started = Started {
        boot: format!("crash dump {first}"),
        slot: String::new(),
        os_version: String::new(),
        kernel: String::new(),
        wall_unix_ms: None,
        uptime_ms: 0,
    };
    for line in dump.text.lines() {
        let text = without_time(line).1;
        if started.kernel.is_empty()
            && let Some(rest) = text.strip_prefix("Linux version ")
        {
            started.kernel = rest.split_whitespace().next().unwrap_or("").to_owned();
        }
        let Some(rest) = text.strip_prefix("matic-init: slot ") else {
            continue;
        };
        let (slot, after) = rest.split_at(rest.find([' ', ':']).unwrap_or(rest.len()));
        if after.starts_with(" chosen") || after.starts_with(" given by matic.slot=") {
            started.slot = slot.to_owned();
        }
        if let Some(release) = after.strip_prefix(": release ") {
            started.os_version = release.split(" (").next().unwrap_or("").to_owned();
        }
    }
    started.uptime_ms = dump
        .text
        .lines()
        .find_map(|l| without_time(l).0)
        .unwrap_or(0);
    started
}

/// The reason pstore gives a dump taken on a restart or power-off. Init
/// asks for one only when a failure stops the boot (`reboot_now` sets
/// `printk.always_kmsg_dump`, docs/history.md), so such a dump is a boot
/// that init ended: in stage 1 (the slot given up, no disk) the only trace
/// of it.
pub const SHUTDOWN_DUMP: &str = "Shutdown";

/// The `Ended` event of a boot init stopped (a [`SHUTDOWN_DUMP`]): what its
/// log's end says (inferred.rs: a root that would not mount, the boot
/// deadline), else a reboot by init after its last `rebooting` line, at
/// the last time stamp. `None` for any other dump.
fn init_failure(dump: &Dump) -> Option<Event> {
    if dump.reason != SHUTDOWN_DUMP {
        return None;
    }
    let lines = || dump.text.lines().rev().map(without_time);
    let at_ms = lines().find_map(|(at, _)| at).unwrap_or(0);
    let ending = match inferred::infer(&dump.text, false) {
        Ending::PowerLossOrReset => {
            let why = lines()
                .map(|(_, text)| text)
                .find(|t| t.starts_with("matic-init: ") && t.contains("rebooting"))
                .map(|t| format!("init ({})", t.trim_start_matches("matic-init: ")))
                .unwrap_or_else(|| "init".into());
            Ending::Reboot { by: why }
        }
        ending => ending,
    };
    Some(Event::Ended { ending, at_ms })
}

/// Whether boot `n` recorded an `ended` event.
fn has_ending(store: &Store, n: u64) -> Result<bool, Error> {
    Ok(read::events(store, n)?
        .is_some_and(|j| j.events.iter().any(|e| matches!(e, Event::Ended { .. }))))
}

/// Renames `files` into `dest` (created if missing), never over an
/// existing file (`name.1`, `.2`, ...), and makes both directories durable.
fn move_into(files: &[PathBuf], dest: &Path) -> Result<(), Error> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { op, path, source }
    };
    fs::create_dir_all(dest).map_err(io("create", dest))?;
    for from in files {
        let name = from.file_name().unwrap_or_default().to_string_lossy();
        let mut to = dest.join(&*name);
        let mut n = 0;
        while to.exists() {
            n += 1;
            to = dest.join(format!("{name}.{n}"));
        }
        fs::rename(from, &to).map_err(io("rename", from))?;
    }
    for dir in [
        Some(dest),
        dest.parent(),
        files.first().and_then(|f| f.parent()),
    ]
    .into_iter()
    .flatten()
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGE1_PANIC: &str = "[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12)\n\
        [    3.210000] matic-init: stage 1: from the initramfs\n\
        [    3.900000] matic-init: slot B chosen (priority 15, tries 2) on /dev/vda (GUID 0FC6)\n\
        [    4.000000] matic-init: slot B: release 0.2.0 (counter 6, key id 1, root ab…) verified; matic-root-B is /dev/dm-0\n\
        [    4.500000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n\
        [    4.500100] CPU: 0 PID: 1 Comm: init\n";

    #[test]
    fn a_dump_names_its_boot_by_the_last_history_line() {
        let text = "[    5.000000] matic-agent: history boot 41\n[    9.000000] x\n[   12.000000] matic-agent: history boot 42\n";
        assert_eq!(named_boot(text), Some(42));
        assert_eq!(
            named_boot("[    5.000000] matic-agent: history boot x\n"),
            None
        );
        assert_eq!(named_boot(STAGE1_PANIC), None);
    }

    #[test]
    fn the_panic_line_and_its_time() {
        assert_eq!(
            panic_line(STAGE1_PANIC).as_deref(),
            Some("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
        );
        assert_eq!(without_time("[    4.500100] x"), (Some(4500), "x"));
        assert_eq!(without_time("[   12.500999] x"), (Some(12_500), "x"));
        assert_eq!(without_time("[mem 0x0] x"), (None, "[mem 0x0] x"));
        assert_eq!(without_time("[1.é] x"), (None, "[1.é] x"));
    }

    #[test]
    fn inits_failure_dump_says_how_the_boot_ended() {
        let dump = |reason: &str, text: &str| Dump {
            reason: reason.into(),
            text: text.into(),
        };
        let given_up = "[    4.100000] matic-init: slot B: its image cannot boot; slot given up, rebooting\n\
            [    4.200000] reboot: Restarting system\n";
        assert_eq!(
            init_failure(&dump("Shutdown", given_up)),
            Some(Event::Ended {
                ending: Ending::UnmountableRoot,
                at_ms: 4200
            })
        );
        let no_disk = "[    3.000000] matic-init: stage 1: from the initramfs\n\
            [    9.500000] matic-init: no disk carries a MaticOS partition table, rebooting\n";
        assert_eq!(
            init_failure(&dump("Shutdown", no_disk)),
            Some(Event::Ended {
                ending: Ending::Reboot {
                    by: "init (no disk carries a MaticOS partition table, rebooting)".into()
                },
                at_ms: 9500
            })
        );
        // Only init's restart dumps: an oops is no ending, a panic has its own.
        assert_eq!(init_failure(&dump("Oops", given_up)), None);
        assert_eq!(init_failure(&dump("Panic", given_up)), None);
    }

    #[test]
    fn a_boot_known_only_from_its_dump() {
        let dump = Dump {
            reason: "Panic".into(),
            text: STAGE1_PANIC.into(),
        };
        let s = started_from(&dump, &[PathBuf::from("/x/dmesg-erst-77")]);
        assert_eq!(s.boot, "crash dump dmesg-erst-77");
        assert_eq!(s.kernel, "6.1.0-57-amd64");
        assert_eq!(s.slot, "B");
        assert_eq!(s.os_version, "0.2.0");
        assert_eq!(s.wall_unix_ms, None);
        let given = Dump {
            reason: "Panic".into(),
            text:
                "[    3.900000] matic-init: slot A given by matic.slot= (priority 1) on /dev/vda\n"
                    .into(),
        };
        assert_eq!(started_from(&given, &[]).slot, "A");
        let ended = ended(panic_line(STAGE1_PANIC).as_deref().unwrap(), &dump);
        assert!(
            matches!(ended, Event::Ended { at_ms: 4500, .. }),
            "{ended:?}"
        );
    }
}
