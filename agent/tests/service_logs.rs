//! The services' lines handed over by init (docs/init.md, "Logs";
//! `matic_contract::handoff`): the real agent started with FIFOs at
//! descriptors 3 and 4, as init starts it. Lines written to them come back
//! stamped from the running boot's record through `Logs` (boot 0, the
//! same as no boot); what init kept raw while no agent read the pipes is
//! moved into the boot before, between marker lines; a flood is bounded.
mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use matic_history::stamp;
use matic_history::store::{self, DEFAULT_CAP, Store};
use matic_history::{Event, Started};
use osctl::client::Client;
use osctl::pki::Role;

/// This boot's kernel boot id.
const BOOT_ID: &str = "11111111-2222-3333-4444-555555555555";

/// This boot's id, and boot 1 of another kernel boot already in the store
/// (the boot before this one, ended by a reboot).
fn previous_boot(dir: &Path) {
    fs::write(dir.join("boot_id"), format!("{BOOT_ID}\n")).unwrap();
    fs::write(dir.join("log/kubelet.log"), "").unwrap();
    fs::create_dir_all(dir.join("pstore")).unwrap();
    let s = Store::open(dir.join("boots"), DEFAULT_CAP).unwrap();
    let mut w = s
        .begin(Started {
            boot: "the-boot-before".into(),
            slot: "A".into(),
            os_version: "1.2.2".into(),
            kernel: "6.1.0-57-amd64".into(),
            wall_unix_ms: None,
            uptime_ms: 3_000,
        })
        .unwrap();
    w.event(&Event::Ended {
        ending: matic_history::Ending::Reboot { by: "init".into() },
        at_ms: 60_000,
    })
    .unwrap();
    w.close().unwrap();
}

fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pipe(node: &Node, service: &str) -> fs::File {
    fs::OpenOptions::new()
        .write(true)
        .open(node.dir.join(format!("{service}.pipe")))
        .unwrap()
}

/// The texts of stamped lines; panics on a line without a stamp.
fn texts(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| {
            let p = stamp::parse(l);
            let at =
                p.at.unwrap_or_else(|| panic!("unstamped line {l:?} in:\n{log}"));
            assert!(at.boot_us > 0, "{l}");
            p.text.to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_lines_are_stamped_into_this_boot_and_raw_ones_into_the_boot_before() {
    let mut node = Node::start(
        "svclog",
        NodeOpts {
            prepare: Some(previous_boot),
            handed_pipes: true,
            ..Default::default()
        },
    );
    node.wait_log("service logs: stamping containerd, kubelet");
    // Node::start left log/containerd.log (five lines) as init would have
    // written it raw: moved into boot 1, the file gone.
    node.wait_log("service logs: 5 lines init kept while no agent read them moved into boot 1");
    assert!(!node.dir.join("log/containerd.log").exists());
    // kubelet's was empty (init makes the file before the handoff): no
    // marker lines for it, and the file is gone too.
    assert!(!node.dir.join("log/kubelet.log").exists());

    let mut c = pipe(&node, "containerd");
    c.write_all(b"hello 1\nhello 2\npart").unwrap();
    c.write_all(b"ial line\n").unwrap();
    pipe(&node, "kubelet").write_all(b"k1\n").unwrap();

    let mut client = node.client(Role::Reader).await;
    let want = ["hello 1", "hello 2", "partial line"];
    let now = wait_lines(&mut client, "containerd", want.len()).await;
    assert_eq!(texts(&now), want, "{now}");
    // `--boot 0` is the running boot's record, and so is the file on disk.
    let on_disk = fs::read_to_string(
        node.dir
            .join("boots/0000000002")
            .join(store::SERVICES)
            .join("containerd.log"),
    )
    .unwrap();
    assert_eq!(on_disk, now);
    // kubelet's pipe may be read a round after containerd's.
    assert_eq!(texts(&wait_lines(&mut client, "kubelet", 1).await), ["k1"]);
    assert_eq!(
        logs_of(&mut client, "kubelet", -1, 0)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound,
        "nothing moved from an empty file"
    );

    // The agent's own lines: on to its stderr (init's pipe) as before, and
    // stamped into the record, from its first line on.
    let own = eventually(
        "the agent's own lines in the record",
        Duration::from_secs(10),
        || {
            let log = fs::read_to_string(
                node.dir
                    .join("boots/0000000002")
                    .join(store::SERVICES)
                    .join("matic-agent.log"),
            )
            .ok()?;
            log.contains("service logs: stamping containerd, kubelet")
                .then_some(log)
        },
    );
    let own_texts = texts(&own);
    assert!(
        own_texts[0].starts_with("matic-agent: descriptor limit"),
        "the record starts with the agent's first line: {own}"
    );
    assert!(
        own_texts.iter().any(|t| t.contains(" listening on ")),
        "{own}"
    );
    assert_eq!(
        texts(&logs_of(&mut client, "matic-agent", 0, 0).await.unwrap())[..own_texts.len()],
        own_texts[..],
        "Logs matic-agent of the running boot reads the record"
    );
    // And on to init: the node's stderr (what init reads) has it too.
    node.wait_log(" listening on ");

    // The boot before: init's raw lines, each stamped when moved, between
    // the two marker lines.
    let before = logs_of(&mut client, "containerd", -1, 0).await.unwrap();
    let raw = node.dir.join("log/containerd.log");
    assert_eq!(
        texts(&before),
        [
            format!(
                "matic-agent: lines written while the agent was not reading follow (from {}); stamped when moved",
                raw.display()
            )
            .as_str(),
            "one",
            "two",
            "three",
            "four",
            "five",
            &format!("matic-agent: end of the lines from {} (5 lines)", raw.display()),
        ],
        "{before}"
    );

    // Stopped by SIGTERM (init's shutdown): the agent's last lines, the
    // signal's included, are in the record before it is closed.
    drop(client);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(node.pid() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(node.wait_exit(Duration::from_secs(15)).is_some());
    let last = fs::read_to_string(
        node.dir
            .join("boots/0000000002")
            .join(store::SERVICES)
            .join("matic-agent.log"),
    )
    .unwrap();
    assert!(
        texts(&last)
            .iter()
            .any(|t| t == "matic-agent: SIGTERM, stopping"),
        "{last}"
    );
}

/// The running boot's log of `service` once it holds `n` lines (or what
/// it holds after 10 s): the reader takes the pipes in rounds.
async fn wait_lines(client: &mut Client, service: &str, n: usize) -> String {
    let mut got = String::new();
    for _ in 0..100 {
        got = logs_of(client, service, 0, 0).await.unwrap_or_default();
        if got.lines().count() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_read_within_the_bounds_of_the_record_and_of_memory() {
    let node = Node::start(
        "svcflood",
        NodeOpts {
            prepare: Some(|d| {
                fs::write(d.join("boot_id"), format!("{BOOT_ID}\n")).unwrap();
            }),
            handed_pipes: true,
            // The smallest cap: the running boot's service logs get 256 KiB.
            agent_args: vec!["--history-cap", "1048576"],
            ..Default::default()
        },
    );
    node.wait_log("service logs: stamping containerd, kubelet");
    let rss_before = vm_rss_kib(node.pid());
    // 32 MiB: lines of 100 bytes, and one of 1 MiB without a newline
    // (cut into 4 KiB lines). The writes finish only if the agent reads.
    let mut c = pipe(&node, "containerd");
    let line = [vec![b'x'; 99], b"\n".to_vec()].concat();
    let block = line.repeat(10_486); // whole lines, 1 MiB and a bit
    c.write_all(&vec![b'y'; 1 << 20]).unwrap();
    c.write_all(b"\n").unwrap();
    for _ in 0..31 {
        c.write_all(&block).unwrap();
    }
    c.write_all(b"the end\n").unwrap();
    let s = Store::open(node.dir.join("boots"), 1 << 20).unwrap();
    let services = s.boot_dir(1).join(store::SERVICES);
    let log = eventually(
        "the last line in the record",
        Duration::from_secs(60),
        || {
            let log = fs::read_to_string(services.join("containerd.log")).ok()?;
            log.ends_with(" the end\n").then_some(log)
        },
    );
    let bound = s.limits().services;
    assert!(
        log.len() as u64 <= bound,
        "containerd.log is {} bytes, over its bound {bound}",
        log.len()
    );
    assert!(
        log.lines().all(|l| l.len() <= 4096 + 64),
        "a line over 4 KiB"
    );
    assert!(s.total().unwrap() <= s.limits().cap);
    let rss_after = vm_rss_kib(node.pid());
    // Everything the agent holds for the pipes is a read buffer and a
    // partial line; 32 MiB through it must not show in its memory.
    assert!(
        rss_after < rss_before + 16 * 1024,
        "the agent grew from {rss_before} KiB to {rss_after} KiB reading a 32 MiB flood"
    );
}
