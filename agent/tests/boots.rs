//! The boot history read back over the API by the real agent (loopback,
//! mutual TLS, a reader's certificate): `Boots`, `BootTimeline`, and
//! `Dmesg` and `Logs` of earlier boots, against a history directory filled
//! beforehand through `matic_history`'s own writer, as the agent's
//! recorder fills it on a node.
mod common;

use std::path::Path;

use common::*;
use matic_history::journal::{Ending, Event, Started};
use matic_history::stamp::At;
use matic_history::{Store, pstore, store};
use matic_proto::v1::*;
use osctl::client::Client;
use osctl::pki::Role;
use tonic::Code;

/// The kernel's boot id of the running boot (the sandbox's `boot_id`).
const RUNNING_ID: &str = "6c1f0e4c-1d55-4a57-8f8e-3c0d1f3a2b13";
/// Boot 1's wall clock at its `started` event, and its uptime then.
const WALL_MS: u64 = 1_795_983_939_120;
const UPTIME_MS: u64 = 3_412;

fn started(boot: &str, slot: &str, version: &str, wall: Option<u64>) -> Started {
    Started {
        boot: boot.into(),
        slot: slot.into(),
        os_version: version.into(),
        kernel: "6.1.0-57-amd64".into(),
        wall_unix_ms: wall,
        uptime_ms: UPTIME_MS,
    }
}

fn mark(name: &str, at_ms: u64) -> Event {
    Event::Mark {
        name: name.into(),
        at_ms,
    }
}

/// Part1 of a kernel panic as ERST leaves it in pstore.
const PANIC_PART1: &str = "Panic#1 Part1\n\
    <6>[    2.023838] sysrq: Trigger a crash\n\
    <0>[    2.155872] Kernel panic - not syncing: sysrq triggered crash\n\
    <4>[    2.155990] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-57-amd64 #1\n";

/// Three boots: 1 rebooted over the API after being marked successful,
/// with two containerd lines (one before the wall clock was known); 2
/// panicked (its crash dump moved out of pstore into it), no wall clock;
/// 3 is running (its `started` names the sandbox's boot id).
fn fill_history(dir: &Path) {
    let s = Store::open(dir.join("boots"), store::DEFAULT_CAP).unwrap();

    let mut w = s
        .begin(started("id-1", "A", "1.0.0", Some(WALL_MS)))
        .unwrap();
    for (name, at) in [("/init", 2210), ("stage2", 3210), ("agent-listening", 3520)] {
        w.event(&mark(name, at)).unwrap();
    }
    w.event(&Event::Successful { at_ms: 5800 }).unwrap();
    w.kmsg_line("[    0.000000] Linux version 6.1.0-57-amd64")
        .unwrap();
    let early = At {
        boot_us: 7,
        wall_unix_us: None,
    };
    let later = At {
        boot_us: 5_120_417,
        wall_unix_us: Some(1_795_983_939_120_417),
    };
    w.service_line("containerd", early, "starting").unwrap();
    w.service_line(
        "containerd",
        later,
        "serving... address=/run/containerd/containerd.sock",
    )
    .unwrap();
    let ending = Ending::Reboot {
        by: "admin over the API".into(),
    };
    w.event(&Event::Ended {
        ending,
        at_ms: 61_000,
    })
    .unwrap();
    w.close().unwrap();

    let mut w = s.begin(started("id-2", "B", "1.1.0", None)).unwrap();
    w.event(&mark("/init", 2100)).unwrap();
    w.kmsg_line("[    0.000000] Linux version 6.1.0-57-amd64\n[    1.900000] matic-init: stage 1")
        .unwrap();
    w.close().unwrap();
    let src = dir.join("pstore-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("dmesg-erst-7713669033488285697"), PANIC_PART1).unwrap();
    pstore::collect(&src, &s.boot_dir(2).join(store::PSTORE)).unwrap();

    let mut w = s
        .begin(started(RUNNING_ID, "A", "1.2.0", Some(WALL_MS + 90_000)))
        .unwrap();
    w.event(&mark("/init", 2000)).unwrap();
    w.close().unwrap();
    std::fs::write(dir.join("boot_id"), format!("{RUNNING_ID}\n")).unwrap();
}

fn history_node(tag: &str) -> Node {
    Node::start(
        tag,
        NodeOpts {
            prepare: Some(fill_history),
            ..NodeOpts::default()
        },
    )
}

async fn dmesg_of(c: &mut Client, boot: i64) -> Result<Vec<KernelMessage>, tonic::Status> {
    let mut s = c
        .dmesg(DmesgRequest {
            follow: false,
            boot,
        })
        .await?
        .into_inner();
    let mut all = Vec::new();
    while let Some(m) = s.message().await? {
        all.extend(m.messages);
    }
    Ok(all)
}

fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, want: &str) {
    let s = r.expect_err("call should fail");
    assert_eq!((s.code(), s.message()), (code, want), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_boots_and_timelines_for_a_reader() {
    let node = history_node("boots");
    let mut c = node.client(Role::Reader).await;

    let r = c
        .boots(BootsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.held, 3);
    let view: Vec<_> = r
        .boots
        .iter()
        .map(|b| {
            (
                b.number,
                b.slot.as_str(),
                b.os_version.as_str(),
                b.ending_kind.as_str(),
                b.ending.as_str(),
                b.successful,
                b.running,
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (3, "A", "1.2.0", "running", "running", false, true),
            (
                2,
                "B",
                "1.1.0",
                "kernel_panic",
                "kernel panic: sysrq triggered crash",
                false,
                false
            ),
            (
                1,
                "A",
                "1.0.0",
                "reboot",
                "reboot requested by admin over the API",
                true,
                false
            ),
        ]
    );
    let one = &r.boots[2];
    assert_eq!(one.kernel, "6.1.0-57-amd64");
    assert_eq!(one.start_wall_unix_ms, Some(WALL_MS - UPTIME_MS));
    assert_eq!(one.duration_ms, Some(61_000));
    // No wall clock in boot 2: the uptime its record began at instead.
    assert_eq!(
        (r.boots[1].start_wall_unix_ms, r.boots[1].start_uptime_ms),
        (None, Some(UPTIME_MS))
    );
    assert_eq!(r.boots[1].duration_ms, Some(UPTIME_MS));

    let r = c
        .boots(BootsRequest { limit: 2 })
        .await
        .unwrap()
        .into_inner();
    let numbers: Vec<u64> = r.boots.iter().map(|b| b.number).collect();
    assert_eq!((numbers, r.held), (vec![3, 2], 3));

    // Relative and absolute numbers name the same boot.
    for boot in [-2, 1] {
        let t = c
            .boot_timeline(BootTimelineRequest { boot })
            .await
            .unwrap()
            .into_inner();
        let marks: Vec<_> = t.marks.iter().map(|m| (m.name.as_str(), m.at_ms)).collect();
        assert_eq!(
            (t.number, marks),
            (
                1,
                vec![("/init", 2210), ("stage2", 3210), ("agent-listening", 3520)]
            ),
            "boot {boot}"
        );
    }
    let t = c
        .boot_timeline(BootTimelineRequest { boot: 0 })
        .await
        .unwrap();
    assert_eq!(t.get_ref().number, 3);
    assert_eq!(t.get_ref().marks[0].name, "/init");

    assert_status(
        c.boot_timeline(BootTimelineRequest { boot: 9 }).await,
        Code::NotFound,
        "no boot 9 in the history (it holds boots 1 to 3, 3 in all)",
    );
    assert_status(
        c.boot_timeline(BootTimelineRequest { boot: -3 }).await,
        Code::NotFound,
        "no boot -3: the history holds 2 boots before the running boot 3 (boots 1 to 2)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_dmesg_and_logs_of_earlier_boots() {
    let node = history_node("bootlogs");
    let mut c = node.client(Role::Reader).await;

    // The boot before: its kernel log, then its crash dump, marked.
    let msgs = dmesg_of(&mut c, -1).await.unwrap();
    let view: Vec<_> = msgs
        .iter()
        .map(|m| {
            (
                m.timestamp_usec,
                m.message.as_str(),
                m.crash_dump.as_ref().map(|d| (d.index, d.reason.as_str())),
            )
        })
        .collect();
    let dump = Some((1, "Panic"));
    assert_eq!(
        view,
        [
            (0, "Linux version 6.1.0-57-amd64", None),
            (1_900_000, "matic-init: stage 1", None),
            (2_023_838, "sysrq: Trigger a crash", dump),
            (
                2_155_872,
                "Kernel panic - not syncing: sysrq triggered crash",
                dump
            ),
            (
                2_155_990,
                "CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-57-amd64 #1",
                dump
            ),
        ]
    );
    assert!(msgs.iter().all(|m| !m.no_timestamp && m.level == 0));
    // By its absolute number, the same.
    assert_eq!(dmesg_of(&mut c, 2).await.unwrap(), msgs);
    // 0 is still the live log.
    let live = dmesg_of(&mut c, 0).await.unwrap();
    assert_eq!(live[0].message, "Linux version 6.1.0");
    assert_eq!(live[0].sequence, 1);
    assert_status(
        dmesg_of(&mut c, 7).await,
        Code::NotFound,
        "no boot 7 in the history (it holds boots 1 to 3, 3 in all)",
    );
    let follow = c
        .dmesg(DmesgRequest {
            follow: true,
            boot: -1,
        })
        .await;
    assert_status(
        follow,
        Code::InvalidArgument,
        "follow needs the running log (boot 0); boot -1's record is read as it is",
    );

    // Boot 1's containerd log: every line with both clocks (or `-`).
    let want = "0.000007 - starting\n\
                5.120417 2026-11-29T20:25:39.120417Z serving... address=/run/containerd/containerd.sock\n";
    assert_eq!(logs_of(&mut c, "containerd", -2, 0).await.unwrap(), want);
    assert_eq!(logs_of(&mut c, "containerd", 1, 0).await.unwrap(), want);
    assert_eq!(
        logs_of(&mut c, "containerd", 1, 1).await.unwrap(),
        want.lines().nth(1).unwrap().to_owned() + "\n"
    );
    // 0 is still the running log in --log-dir.
    assert_eq!(
        logs_of(&mut c, "containerd", 0, 2).await.unwrap(),
        "four\nfive\n"
    );
    assert_status(
        logs_of(&mut c, "containerd", 2, 0).await,
        Code::NotFound,
        "boot 2 has no log of \"containerd\" in the history (no service logged in it)",
    );
    assert_status(
        logs_of(&mut c, "kubelet", 1, 0).await,
        Code::NotFound,
        "boot 1 has no log of \"kubelet\" in the history (services that logged in it: containerd)",
    );
    assert_status(
        logs_of(&mut c, "../run/boot", 1, 0).await,
        Code::InvalidArgument,
        "service name \"../run/boot\" is not 1-64 characters of [A-Za-z0-9._-] not starting with '.'",
    );
    assert_status(
        logs_of(&mut c, "containerd", -5, 0).await,
        Code::NotFound,
        "no boot -5: the history holds 2 boots before the running boot 3 (boots 1 to 2)",
    );
    let follow = c
        .logs(LogsRequest {
            service: "containerd".into(),
            tail_lines: 0,
            follow: true,
            boot: 1,
        })
        .await;
    assert_status(
        follow,
        Code::InvalidArgument,
        "follow needs the running log (boot 0); boot 1's record is read as it is",
    );
    let mut node = node;
    assert!(node.alive());
}
