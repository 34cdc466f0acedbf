//! The agent records every boot (docs/history.md): the real `matic-agent`
//! against a temporary history directory, a file as the kernel log and a
//! temporary directory as pstore. Each test puts the previous boots and
//! crash dumps in place before the agent starts, then reads the store back
//! through `matic-history`, as the reading side does.
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use matic_history::read::Outcome;
use matic_history::store::{DEFAULT_CAP, EVENTS, PSTORE};
use matic_history::{Ending, Event, Started, Store};
use matic_proto::v1::*;
use osctl::pki::Role;

/// This boot's kernel boot id (the sandbox's `boot_id`).
const BOOT_ID: &str = "11111111-2222-3333-4444-555555555555";

fn store(dir: &Path) -> Store {
    Store::open(dir.join("boots"), DEFAULT_CAP).unwrap()
}

fn started(boot: &str, slot: &str) -> Started {
    Started {
        boot: boot.into(),
        slot: slot.into(),
        os_version: "1.2.2".into(),
        kernel: "6.1.0-57-amd64".into(),
        wall_unix_ms: Some(1_795_983_939_120),
        uptime_ms: 3_412,
    }
}

/// The sandbox's boot id and an empty pstore.
fn this_boot(dir: &Path) {
    fs::write(dir.join("boot_id"), format!("{BOOT_ID}\n")).unwrap();
    fs::create_dir_all(dir.join("pstore")).unwrap();
}

/// The events boot `n` recorded (read whole, none skipped).
fn events(dir: &Path, n: u64) -> Vec<Event> {
    let bytes = fs::read(store(dir).boot_dir(n).join(EVENTS)).unwrap();
    let journal = matic_history::journal::read(&bytes);
    assert_eq!(journal.skipped, 0, "boot {n}: damaged lines");
    journal.events
}

fn recorded_ending(dir: &Path, n: u64) -> Option<Ending> {
    events(dir, n).into_iter().find_map(|e| match e {
        Event::Ended { ending, .. } => Some(ending),
        _ => None,
    })
}

/// Waits until `check` holds (the agent writes on its own threads).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never happened: {what}");
}

/// A two-part ERST panic dump whose log holds `lines` (already in the
/// `<level>[time] text` form), ending with `panic`.
fn write_dump(pstore: &Path, id: u64, lines: &str, panic: &str) {
    fs::write(
        pstore.join(format!("dmesg-erst-{}", id + 1)),
        format!(
            "Panic#1 Part2\n<5>[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\n{lines}"
        ),
    )
    .unwrap();
    fs::write(
        pstore.join(format!("dmesg-erst-{id}")),
        format!(
            "Panic#1 Part1\n<0>[    9.100000] Kernel panic - not syncing: {panic}\n<4>[    9.100100] CPU: 0 PID: 1 Comm: init\n"
        ),
    )
    .unwrap();
}

// ------------------------------------------------ crash dumps

/// Boot 1 reached the agent (which wrote its history line to the kernel
/// log) and then panicked: its dump is in pstore.
fn prepare_panic_of_boot_one(dir: &Path) {
    this_boot(dir);
    let s = store(dir);
    let mut w = s.begin(started("boot-one", "A")).unwrap();
    w.event(&Event::Mark {
        name: "agent-listening".into(),
        at_ms: 3_500,
    })
    .unwrap();
    w.close().unwrap();
    write_dump(
        &dir.join("pstore"),
        7713669033488285697,
        "<6>[    3.400000] matic-agent: history boot 1\n<4>[    8.000000] oops in a driver\n",
        "stack-protector: Kernel stack is corrupted in: x",
    );
}

#[test]
fn a_dump_naming_a_boot_is_attached_to_it_with_its_panic() {
    let node = Node::start(
        "hist-attach",
        NodeOpts {
            prepare: Some(prepare_panic_of_boot_one),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 2");
    let panic = Ending::KernelPanic {
        first_line: "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: x"
            .into(),
    };
    assert_eq!(recorded_ending(&node.dir, 1), Some(panic.clone()));
    let s = store(&node.dir);
    assert_eq!(s.numbers().unwrap(), [1, 2], "no record made from the dump");
    let kept = fs::read_dir(s.boot_dir(1).join(PSTORE)).unwrap().count();
    assert_eq!(kept, 2, "both parts kept with boot 1");
    assert_eq!(fs::read_dir(node.dir.join("pstore")).unwrap().count(), 0);
    let report = s.panic(1).unwrap().unwrap();
    assert!(report.text.contains("oops in a driver"), "{}", report.text);
    let boots = s.boots(4, Some(2)).unwrap();
    assert_eq!(boots[0].ending, Outcome::Running);
    assert_eq!(boots[0].boot_id.as_deref(), Some(BOOT_ID));
    assert_eq!(boots[1].ending, Outcome::Ended(panic));
    // This boot names its record in the kernel log, for its own dump.
    assert!(node.read("kmsg").contains("matic-agent: history boot 2\n"));
}

/// This boot's sandbox, and boot 1 in the store, which ended in a reboot
/// over the API.
fn boot_one_rebooted_over_the_api(dir: &Path) {
    this_boot(dir);
    let s = store(dir);
    let mut w = s.begin(started("boot-one", "A")).unwrap();
    w.event(&Event::Ended {
        ending: Ending::Reboot {
            by: "op over the API".into(),
        },
        at_ms: 60_000,
    })
    .unwrap();
    w.close().unwrap();
}

/// Boot 1 ended normally; then a boot panicked in stage 2's first second
/// (its init exited) without ever reaching the agent.
fn prepare_panic_before_the_agent(dir: &Path) {
    boot_one_rebooted_over_the_api(dir);
    write_dump(
        &dir.join("pstore"),
        7713669076437958657,
        "<6>[    3.210000] matic-init: stage 1: from the initramfs\n\
         <6>[    3.900000] matic-init: slot B chosen (priority 15, tries 2) on /dev/vda (GUID 0FC6)\n\
         <6>[    4.000000] matic-init: slot B: release 1.3.0 (counter 6, key id 1, root ab) verified; matic-root-B is /dev/dm-0\n",
        "Attempted to kill init! exitcode=0x00000100",
    );
}

#[test]
fn a_dump_of_a_boot_that_never_reached_the_agent_becomes_its_own_record() {
    let node = Node::start(
        "hist-early",
        NodeOpts {
            prepare: Some(prepare_panic_before_the_agent),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 3");
    let s = store(&node.dir);
    assert_eq!(s.numbers().unwrap(), [1, 2, 3]);
    // Boot 1 keeps its own ending; the dump is not its.
    assert_eq!(
        recorded_ending(&node.dir, 1),
        Some(Ending::Reboot {
            by: "op over the API".into()
        })
    );
    let boots = s.boots(4, Some(3)).unwrap();
    let crashed = &boots[1];
    assert_eq!(crashed.number, 2);
    assert_eq!(crashed.slot.as_deref(), Some("B"));
    assert_eq!(crashed.kernel.as_deref(), Some("6.1.0-57-amd64"));
    assert_eq!(crashed.os_version.as_deref(), Some("1.3.0"));
    assert_eq!(
        crashed.ending,
        Outcome::Ended(Ending::KernelPanic {
            first_line: "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"
                .into()
        })
    );
    let kmsg = s.kmsg(2).unwrap();
    assert!(kmsg.starts_with("[    0.000000] Linux version"), "{kmsg}");
    assert!(
        kmsg.contains("Kernel panic - not syncing: Attempted"),
        "{kmsg}"
    );
    assert_eq!(s.crash_dumps(2).unwrap().len(), 1);
    assert_eq!(boots[0].ending, Outcome::Running);
}

/// Boot 1 ended normally; then stage 1 gave a slot up and rebooted before
/// any agent ran: init asked for a dump on its way down (a `Shutdown` dump,
/// one part, naming no boot).
fn prepare_slot_given_up(dir: &Path) {
    boot_one_rebooted_over_the_api(dir);
    fs::write(
        dir.join("pstore").join("dmesg-erst-7713669076437958700"),
        "Shutdown#1 Part1\n\
         <5>[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\n\
         <6>[    3.900000] matic-init: slot B chosen (priority 15, tries 2) on /dev/vda (GUID 0FC6)\n\
         <3>[    4.100000] matic-init: slot B: mounting its squashfs failed: os error 22\n\
         <3>[    4.100300] matic-init: slot B: its image cannot boot; slot given up, rebooting\n\
         <5>[    4.210000] reboot: Restarting system\n",
    )
    .unwrap();
}

#[test]
fn a_slot_given_up_in_stage_1_is_a_boot_of_its_own_from_inits_dump() {
    let node = Node::start(
        "hist-given-up",
        NodeOpts {
            prepare: Some(prepare_slot_given_up),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 3");
    let s = store(&node.dir);
    assert_eq!(s.numbers().unwrap(), [1, 2, 3]);
    let boots = s.boots(4, Some(3)).unwrap();
    let given_up = &boots[1];
    assert_eq!(given_up.number, 2);
    assert_eq!(given_up.slot.as_deref(), Some("B"));
    assert_eq!(given_up.ending, Outcome::Ended(Ending::UnmountableRoot));
    let kmsg = s.kmsg(2).unwrap();
    assert!(kmsg.contains("slot given up, rebooting"), "{kmsg}");
    assert_eq!(s.crash_dumps(2).unwrap().len(), 1);
    assert_eq!(
        recorded_ending(&node.dir, 1),
        Some(Ending::Reboot {
            by: "op over the API".into()
        })
    );
}

// ------------------------------------------------ endings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_reboot_is_recorded_before_init_is_asked() {
    let node = Node::start(
        "hist-reboot",
        NodeOpts {
            prepare: Some(this_boot),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 1");
    let mut op = node.client(Role::Operator).await;
    op.reboot(RebootRequest {}).await.unwrap();
    node.expect_fifo("reboot");
    // Already on disk when init got the command.
    let by = format!("{} user over the API", Role::Operator);
    assert_eq!(recorded_ending(&node.dir, 1), Some(Ending::Reboot { by }));

    let mut admin = node.client(Role::Admin).await;
    admin.shutdown(ShutdownRequest {}).await.unwrap();
    node.expect_fifo("poweroff");
    let endings: Vec<Ending> = events(&node.dir, 1)
        .into_iter()
        .filter_map(|e| match e {
            Event::Ended { ending, .. } => Some(ending),
            _ => None,
        })
        .collect();
    assert_eq!(
        endings.last(),
        Some(&Ending::Poweroff {
            by: format!("{} user over the API", Role::Admin)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_reboots_is_recorded_as_a_reboot_over_the_api() {
    let node = Node::start(
        "hist-rollback",
        NodeOpts {
            b_bootable: true,
            prepare: Some(this_boot),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 1");
    let mut admin = node.client(Role::Admin).await;
    admin
        .rollback(RollbackRequest { no_reboot: false })
        .await
        .unwrap();
    node.expect_fifo("reboot");
    let by = format!("{} user over the API (rollback to slot B)", Role::Admin);
    assert_eq!(recorded_ending(&node.dir, 1), Some(Ending::Reboot { by }));
}

/// Boot 1 recorded no ending; its kernel log ends with init's deadline.
fn prepare_deadline(dir: &Path) {
    this_boot(dir);
    let mut w = store(dir).begin(started("boot-one", "B")).unwrap();
    w.kmsg_line("[    4.100000] matic-init: stage 2: supervising 3 services")
        .unwrap();
    w.kmsg_line(
        "[   64.100000] matic-init: boot deadline: slot not marked successful in time, rebooting",
    )
    .unwrap();
    w.kmsg_line("[   64.100100] matic-init: shutdown for reboot: stopping services in reverse order (up to 10000 ms)")
        .unwrap();
    w.event(&Event::Mark {
        name: "stage2".into(),
        at_ms: 4_100,
    })
    .unwrap();
    w.close().unwrap();
}

#[test]
fn an_unrecorded_boot_that_hit_the_deadline_is_recorded_so() {
    let node = Node::start(
        "hist-deadline",
        NodeOpts {
            prepare: Some(prepare_deadline),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 2");
    assert_eq!(recorded_ending(&node.dir, 1), Some(Ending::BootDeadline));
}

/// Boot 1 recorded no ending and its log just stops; the watchdog says
/// nothing.
fn prepare_power_cut(dir: &Path) {
    this_boot(dir);
    fs::write(dir.join("watchdog-bootstatus"), "0\n").unwrap();
    let mut w = store(dir).begin(started("boot-one", "A")).unwrap();
    w.kmsg_line("[    4.200000] matic-init: containerd: started, pid 312")
        .unwrap();
    w.close().unwrap();
}

#[test]
fn an_unrecorded_boot_whose_log_just_stops_was_a_power_loss() {
    let node = Node::start(
        "hist-power",
        NodeOpts {
            prepare: Some(prepare_power_cut),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 2");
    assert_eq!(
        recorded_ending(&node.dir, 1),
        Some(Ending::PowerLossOrReset)
    );
}

/// As [`prepare_power_cut`], but the watchdog reports `WDIOF_CARDRESET`.
fn prepare_watchdog(dir: &Path) {
    prepare_power_cut(dir);
    fs::write(dir.join("watchdog-bootstatus"), "32\n").unwrap();
}

#[test]
fn an_unrecorded_boot_the_watchdog_reset_is_recorded_so() {
    let node = Node::start(
        "hist-watchdog",
        NodeOpts {
            prepare: Some(prepare_watchdog),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 2");
    assert_eq!(recorded_ending(&node.dir, 1), Some(Ending::Watchdog));
    assert!(store(&node.dir).boot_dir(1).join("watchdog-reset").exists());
}

// ------------------------------------------------ this boot

#[test]
fn the_kernel_log_is_copied_with_its_marks_and_the_agents_own() {
    let node = Node::start(
        "hist-kmsg",
        NodeOpts {
            prepare: Some(this_boot),
            // Healthy without containerd: the agent marks the boot successful.
            boot_ok: true,
            services: Some("matic-agent running 123 0 - 5\n".into()),
            ..Default::default()
        },
    );
    node.wait_log("recording boot 1");
    node.expect_fifo("boot-ok");
    node.append(
        "kmsg",
        "6,3,3200000,-;Run /init as init process\n\
         14,4,4100000,-;matic-init: stage 2: supervising 3 services\n\
         14,5,4200000,-;matic-init: containerd: started, pid 312\n\
         14,6,9000000,-;matic-init: containerd: started, pid 400\n",
    );
    let s = store(&node.dir);
    eventually("the kernel log copied", || {
        s.kmsg(1).unwrap().contains("containerd: started, pid 400")
    });
    let kmsg = s.kmsg(1).unwrap();
    assert!(
        kmsg.starts_with("[    0.001000] Linux version 6.1.0\n[    0.002000] warning here\n"),
        "{kmsg}"
    );
    assert!(kmsg.contains("[    3.200000] Run /init as init process\n"));
    let marks: Vec<(String, u64)> = s
        .timeline(1)
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.at_ms))
        .collect();
    for want in [
        ("kernel", 0),
        ("init", 3_200),
        ("stage2", 4_100),
        ("service:containerd", 4_200),
    ] {
        assert!(
            marks.contains(&(want.0.to_owned(), want.1)),
            "{want:?} in {marks:?}"
        );
    }
    assert_eq!(
        marks.iter().filter(|m| m.0 == "service:containerd").count(),
        1,
        "a service's first start only"
    );
    for agent_mark in [
        "agent-main",
        "agent-tls-loaded",
        "agent-listening",
        "healthy",
        "marked-successful",
    ] {
        assert!(
            marks.iter().any(|m| m.0 == agent_mark),
            "{agent_mark} in {marks:?}"
        );
    }
    // The agent's start-up marks, in the order it passes them.
    let at = |name: &str| marks.iter().find(|m| m.0 == name).unwrap().1;
    assert!(
        at("agent-main") <= at("agent-tls-loaded")
            && at("agent-tls-loaded") <= at("agent-listening"),
        "start-up marks out of order: {marks:?}"
    );
    assert!(s.boots(1, Some(1)).unwrap()[0].successful);
}

// ------------------------------------------------ no history

/// A history directory in which nothing can be created, even by root:
/// `boots` is a link to /proc/self, a directory that refuses every new
/// entry (a read-only directory that root cannot override with chmod).
fn prepare_unwritable(dir: &Path) {
    this_boot(dir);
    std::os::unix::fs::symlink("/proc/self", dir.join("boots")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_written_does_not_stop_the_agent() {
    let node = Node::start(
        "hist-readonly",
        NodeOpts {
            prepare: Some(prepare_unwritable),
            ..Default::default()
        },
    );
    node.wait_log("boot history off for this boot");
    assert!(
        node.log.lock().unwrap().contains("boots): "),
        "the path is named"
    );
    let mut c = node.client(Role::Reader).await;
    let v = c.version(VersionRequest {}).await.unwrap().into_inner();
    assert_eq!(v.os_version, "1.2.3");
    let mut op = node.client(Role::Operator).await;
    op.reboot(RebootRequest {}).await.unwrap();
    node.expect_fifo("reboot");
}

// ------------------------------------------------ serving first

/// This boot's history cannot open yet: `boot_id` is a FIFO nobody writes,
/// so reading it blocks (as a slow `MATIC_STATE` would hold the open).
/// A kernel log that blocks the history's open: the agent's `history boot
/// N` line is written to it before the open is over, and a FIFO with no
/// reader blocks that write (nothing else the agent does before it serves
/// touches the kernel log; the machine configuration reads the boot id,
/// so blocking that would block more than the history).
fn a_kmsg_that_blocks(dir: &Path) {
    this_boot(dir);
    let _ = fs::remove_file(dir.join("kmsg"));
    let st = std::process::Command::new("mkfifo")
        .arg(dir.join("kmsg"))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Lets the blocked open go on: a reader for the kernel log FIFO.
fn unblock_kmsg(dir: &Path) {
    let kmsg = dir.join("kmsg");
    std::thread::spawn(move || fs::read(kmsg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_before_the_history_opens_and_a_reboot_waits_for_it() {
    let node = Node::start(
        "hist-late",
        NodeOpts {
            prepare: Some(a_kmsg_that_blocks),
            ..Default::default()
        },
    );
    // Served while the history's open is still blocked.
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut op = node.client(Role::Operator).await;
        let v = op.version(VersionRequest {}).await.unwrap().into_inner();
        (op, v)
    })
    .await;
    let (mut op, v) = answered.expect("the API did not answer while the history was opening");
    assert_eq!(v.os_version, "1.2.3");
    assert!(!node.log.lock().unwrap().contains("recording boot"));

    // A reboot asked now waits for the open, so its ending is recorded
    // before init is asked.
    let reboot = tokio::spawn(async move { op.reboot(RebootRequest {}).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !reboot.is_finished(),
        "the reboot did not wait for the history"
    );
    node.expect_fifo_silent(Duration::from_millis(100));
    unblock_kmsg(&node.dir);
    reboot.await.unwrap().unwrap();
    node.expect_fifo("reboot");
    node.wait_log("recording boot 1");
    let by = format!("{} user over the API", Role::Operator);
    assert_eq!(recorded_ending(&node.dir, 1), Some(Ending::Reboot { by }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_never_opens_does_not_stop_a_reboot() {
    let node = Node::start(
        "hist-hung",
        NodeOpts {
            prepare: Some(a_kmsg_that_blocks),
            ..Default::default()
        },
    );
    let mut op = node.client(Role::Operator).await;
    let asked = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), op.reboot(RebootRequest {})).await;
    r.expect("the reboot waited for the history for ever")
        .unwrap();
    node.expect_fifo("reboot");
    let waited = asked.elapsed();
    assert!(
        waited >= matic_agent::service::HISTORY_OPEN_WAIT,
        "it gave the open its time: {waited:?}"
    );
    node.wait_log("boot history still opening after 5 s: this ending (reboot requested by");
    assert!(!node.log.lock().unwrap().contains("recording boot"));
    // Unblock the history's thread so the agent can be stopped cleanly.
    unblock_kmsg(&node.dir);
}
