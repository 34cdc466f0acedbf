//! The benchmark driver behind `scripts/bench-init`: matic-init side by side
//! with Debian's tini (static build), catatonit and dumb-init, each run as
//! PID 1 of a fresh PID + mount namespace chrooted into a test root, with
//! this program standing in for the service.
//!
//! Usage: `matic-init-testsvc bench <matic-init> <work dir> [orphans] [runs]`

use super::harness::{Running, TestRoot, events, install, wait_until};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Peer {
    name: &'static str,
    bin: &'static str,
    /// Arguments before the service's path.
    args: &'static [&'static str],
}

const PEERS: &[Peer] = &[
    Peer {
        name: "tini-static",
        bin: "/usr/bin/tini-static",
        args: &["--"],
    },
    Peer {
        name: "catatonit",
        bin: "/usr/bin/catatonit",
        args: &["--"],
    },
    Peer {
        name: "dumb-init",
        bin: "/usr/bin/dumb-init",
        args: &[],
    },
];

#[derive(Default)]
struct Row {
    name: String,
    size: u64,
    anon_kb: Option<u64>,
    reap_ms: Vec<f64>,
    respawn_us: Option<(f64, f64, usize)>,
}

pub fn main(args: Vec<String>) {
    let init = PathBuf::from(
        args.first()
            .expect("usage: bench <matic-init> <work dir> [orphans] [runs]"),
    );
    let work = PathBuf::from(args.get(1).expect("work dir"));
    let orphans: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let helper = std::env::current_exe().unwrap();
    std::fs::create_dir_all(&work).unwrap();

    let mut rows = vec![];
    // matic-init: the service table with containerd sleeping and the
    // measured service as matic-agent; kubelet absent (skipped).
    let mut r = Row {
        name: "matic-init".into(),
        size: size(&init),
        ..Row::default()
    };
    {
        let root = TestRoot::new(
            &work,
            "matic-init",
            &init,
            &helper,
            &[("matic-agent", "sleep"), ("containerd", "sleep")],
            None,
        );
        let ns = root.start(&[]);
        r.anon_kb = settle_anon(&ns, 2);
        drop(ns);
        for _ in 0..runs {
            std::fs::write(
                root.path("etc/testsvc/matic-agent"),
                format!("orphans {orphans}"),
            )
            .unwrap();
            let _ = std::fs::remove_file(root.path("var/log/matic/matic-agent.log"));
            let _ = std::fs::remove_file(root.path("tmp/orphans.events"));
            let ns = root.start(&[]);
            r.reap_ms.push(reap(&root, &ns, 2));
        }
    }
    // Respawn: a static probe as the service, crashing after 20 ms runs
    // (longer than the stable threshold set here, so every crash is a
    // "first crash", restarted at once). Reference: the same probe in a
    // busybox `sh` loop, the least a supervisor can do.
    let probe = helper.with_file_name("matic-init-probe");
    let mut respawn = vec![];
    for (cpu, run_ms) in [(None, 20), (None, 0), (Some(0), 0)] {
        for who in ["matic-init", "busybox sh loop"] {
            let root = TestRoot::new(
                &work,
                "respawn",
                &init,
                &helper,
                &[("containerd", "sleep")],
                None,
            );
            let root = TestRoot { cpu, ..root };
            let _run = TmpfsRun::mount(&root);
            install(&root.dir, &probe, "/usr/bin/matic-agent");
            std::fs::write(root.path("etc/probe-run-ms"), run_ms.to_string()).unwrap();
            let ns = if who == "matic-init" {
                root.start(&[if run_ms > 0 {
                    "matic.test.stable_ms=10"
                } else {
                    "matic.test.stable_ms=0"
                }])
            } else {
                install(&root.dir, Path::new("/bin/busybox"), "/busybox");
                root.start_program(
                    "/busybox",
                    &["sh", "-c", "while :; do /usr/bin/matic-agent; done"],
                )
            };
            let samples = wait_until(Duration::from_secs(60), || {
                let s = std::fs::read_to_string(root.path("run/respawn.samples")).ok()?;
                let v: Vec<f64> = s
                    .lines()
                    .filter_map(|l| l.parse::<f64>().ok())
                    .map(|ns| ns / 1e3)
                    .collect();
                (v.len() >= 300).then_some(v)
            })
            .expect("respawn samples");
            drop(ns);
            let fig = (pct(&samples, 50.0), pct(&samples, 99.0), samples.len());
            if who == "matic-init" && cpu.is_none() && run_ms == 20 {
                r.respawn_us = Some(fig);
            }
            respawn.push((who, cpu, run_ms, fig));
        }
    }
    rows.push(r);

    for p in PEERS {
        if !Path::new(p.bin).exists() {
            println!("{}: {} not installed, skipped", p.name, p.bin);
            continue;
        }
        let mut r = Row {
            name: p.name.into(),
            size: size(Path::new(p.bin)),
            ..Row::default()
        };
        let root = TestRoot::new(
            &work,
            p.name,
            &init,
            &helper,
            &[("matic-agent", "sleep")],
            None,
        );
        let me = format!("/sbin/{}", p.name);
        install(&root.dir, Path::new(p.bin), &me);
        let mut args: Vec<&str> = p.args.to_vec();
        args.push("/usr/bin/matic-agent");
        let ns = root.start_program(&me, &args);
        r.anon_kb = settle_anon(&ns, 1);
        drop(ns);
        for _ in 0..runs {
            std::fs::write(
                root.path("etc/testsvc/matic-agent"),
                format!("orphans {orphans}"),
            )
            .unwrap();
            // The peers pass the service's stdout through: read it from
            // init's captured output file.
            let _ = std::fs::remove_file(root.path("tmp/orphans.events"));
            let ns = root.start_program(&me, &args);
            r.reap_ms.push(reap(&root, &ns, 1));
        }
        rows.push(r);
    }

    println!();
    println!(
        "{:<12} {:>12} {:>10} {:>24} {:>26}",
        "init",
        "binary",
        "anon RSS",
        &format!("reap {orphans} orphans"),
        "respawn median / p99"
    );
    for r in &rows {
        let reap = {
            let mut v = r.reap_ms.clone();
            v.sort_by(f64::total_cmp);
            let all: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
            format!("{:.0} ms (runs: {})", pct(&v, 50.0), all.join("/"))
        };
        let respawn = match r.respawn_us {
            Some((m, p99, n)) => format!("{m:.0} µs / {p99:.0} µs (n={n})"),
            None => "n/a (exits with child)".to_string(),
        };
        let anon = r.anon_kb.map_or("?".to_string(), |k| format!("{k} kB"));
        println!(
            "{:<12} {:>12} {:>10} {:>24} {:>26}",
            r.name,
            format!("{} B", r.size),
            anon,
            reap,
            respawn
        );
    }
    println!("respawn latency, median / p99 (n samples):");
    for (who, cpu, run_ms, (m, p99, n)) in &respawn {
        let pin = cpu.map_or("all CPUs".to_string(), |c| format!("pinned to CPU {c}"));
        println!(
            "  {who:<16} {pin:<16} runs of {run_ms:>2} ms  {m:>6.0} µs / {p99:>6.0} µs (n={n})"
        );
    }
    println!();
    println!(
        "reap = from the last orphan's parent exiting (all {orphans} already zombies) to init having"
    );
    println!(
        "no child but its service(s); respawn = a static probe service stamping just before exit(1)"
    );
    println!("to the next instance's first instruction (crash, SIGCHLD, reap, fork, exec); the table shows
the 20 ms-runs, all-CPUs case (idle CPUs between crashes: wake-up cost included). /run is a
tmpfs as on a node. The busybox loop is the floor any supervisor pays on this machine.");
}

/// `/run` of a test root as a tmpfs, as on a node: init's status file and
/// the probe's stamps must not pay ext4's rename/truncate flushes.
struct TmpfsRun(PathBuf);

impl TmpfsRun {
    fn mount(root: &TestRoot) -> TmpfsRun {
        let run = root.path("run");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&run)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", run.display());
        std::fs::create_dir_all(run.join("matic")).unwrap();
        TmpfsRun(run)
    }
}

impl Drop for TmpfsRun {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Anonymous RSS of init once its `children` services are up and idle.
fn settle_anon(ns: &Running, children: usize) -> Option<u64> {
    wait_until(Duration::from_secs(10), || {
        (ns.children().len() >= children).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    ns.anon_kb()
}

/// Milliseconds from the helper's "orphans-released" to init having only
/// its `baseline` service children left (every orphan reaped).
fn reap(root: &TestRoot, ns: &Running, baseline: usize) -> f64 {
    let t_end = std::time::Instant::now() + Duration::from_secs(120);
    let released = loop {
        let ev =
            events(&std::fs::read_to_string(root.path("tmp/orphans.events")).unwrap_or_default());
        if ev.iter().any(|e| e.0 == "orphans-reparented") {
            break ev
                .into_iter()
                .find(|e| e.0 == "orphans-released")
                .map(|e| e.1)
                .expect("released stamp");
        }
        assert!(std::time::Instant::now() < t_end, "orphans never released");
        std::thread::sleep(Duration::from_micros(200));
    };
    let end = std::time::Instant::now() + Duration::from_secs(120);
    let done = loop {
        if ns.children().len() <= baseline {
            break super::mono_ns();
        }
        assert!(
            std::time::Instant::now() < end,
            "orphans not reaped in 120 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    done.saturating_sub(released) as f64 / 1e6
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}
