//! Benchmark driver for `scripts/bench-load` (figures, not asserts): admin
//! `BootStatus` latency while a reader loads the agent (issue 10, item 2).
//! Starts the real (release) agent with the descriptor limits init gives a
//! service (soft 1024), then measures an admin's `BootStatus`, p50/p99, on a
//! warm connection and on a fresh connection each (as `osctl boot-status`
//! does), in three phases:
//! 1. idle;
//! 2. a reader holding 1,000 follow streams (`Logs`, every tenth `Dmesg`)
//!    over 40 connections while the log grows, and 3,000 idle TCP
//!    connections that never start TLS;
//! 3. the same plus the reader flooding `BootStatus` on its 40 connections
//!    (32 calls in flight on each).
//!
//! and prints the agent's threads, descriptors, CPU and RSS in each.
//!
//! Usage: bench_load AGENT_BIN WORK_DIR [CALLS]
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use matic_boot::Slot;
use matic_proto::v1::{BootStatusRequest, DmesgRequest, LogsRequest};
use osctl::client::{Client, Credentials, Options};
use osctl::pki::{Ca, Role};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

fn status_field(pid: u32, name: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// utime + stime of a process in seconds (clock ticks at 100 Hz).
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn creds(ca: &Ca, role: Role) -> Credentials {
    let k = ca.client_cert(&format!("bench {role}"), role).unwrap();
    Credentials {
        ca_pem: ca.cert.cert_pem.clone().into_bytes(),
        crt_pem: k.cert_pem.into_bytes(),
        key_pem: k.key_pem.into_bytes(),
    }
}

async fn client(addr: &str, c: &Credentials) -> Client {
    osctl::client::connect(addr, c, &Options::default())
        .await
        .unwrap()
        .client
}

fn pct(lat: &mut [Duration], q: f64) -> Duration {
    lat.sort();
    lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)]
}

/// Admin BootStatus: `calls` on one warm connection, then `calls / 10`
/// each on a fresh connection. Prints p50/p99 of both.
async fn measure(phase: &str, addr: &str, admin: &Credentials, calls: usize, pid: u32) {
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let mut c = client(addr, admin).await;
    c.boot_status(BootStatusRequest {}).await.unwrap();
    let mut warm = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        c.boot_status(BootStatusRequest {}).await.unwrap();
        warm.push(t.elapsed());
    }
    let mut fresh = Vec::new();
    for _ in 0..(calls / 10).max(10) {
        let t = Instant::now();
        let mut c = client(addr, admin).await;
        c.boot_status(BootStatusRequest {}).await.unwrap();
        fresh.push(t.elapsed());
    }
    let cpu = (cpu_secs(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let us = |d: Duration| d.as_micros();
    println!(
        "{phase:<34} warm p50 {:>6} us  p99 {:>6} us | fresh connection p50 {:>6} us  p99 {:>6} us | agent: {} threads, {} fds, {:.0}% CPU, RSS {} KiB",
        us(pct(&mut warm, 0.5)),
        us(pct(&mut warm, 0.99)),
        us(pct(&mut fresh, 0.5)),
        us(pct(&mut fresh, 0.99)),
        status_field(pid, "Threads:"),
        fds(pid),
        cpu,
        status_field(pid, "VmRSS:"),
    );
}

fn setup(dir: &Path) -> Ca {
    let _ = std::fs::remove_dir_all(dir);
    for d in ["pki", "run", "log", "state"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let ca = Ca::generate("bench CA").unwrap();
    std::fs::write(dir.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
    ca.server_cert(&["127.0.0.1".into()])
        .unwrap()
        .write(&dir.join("pki"), "server")
        .unwrap();
    let disk = dir.join("disk.img");
    let mut d = matic_tests::disk::create(&disk, 9);
    d.finish_update(Slot::A, 3).unwrap();
    d.choose_boot_slot().unwrap();
    d.write().unwrap();
    drop(d);
    std::fs::write(
        dir.join("run/boot"),
        format!("slot=A\ndisk={}\nsuccessful=0\n", disk.display()),
    )
    .unwrap();
    std::fs::write(dir.join("run/services"), "# matic-init services v1\n").unwrap();
    let lines: String = (0..1000)
        .map(|i| format!("containerd line {i}\n"))
        .collect();
    std::fs::write(dir.join("log/containerd.log"), lines).unwrap();
    let kmsg: String = (1..200)
        .map(|i| format!("6,{i},{},-;kernel line {i}\n", i * 1000))
        .collect();
    std::fs::write(dir.join("kmsg"), kmsg).unwrap();
    ca
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agent_bin = PathBuf::from(&args[1]);
    let dir = PathBuf::from(&args[2]);
    let calls: usize = args.get(3).map_or(500, |s| s.parse().unwrap());
    osctl::install_crypto_provider();
    let ca = setup(&dir);
    let admin = creds(&ca, Role::Admin);
    let reader = creds(&ca, Role::Reader);

    // The agent starts as under init (soft 1024); this process needs more.
    let before = getrlimit(Resource::Nofile);
    let set = |soft: u64| {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: before.maximum,
            },
        )
        .unwrap()
    };
    set(1024);
    let mut agent = matic_tests::agent::command(&agent_bin, &dir)
        .arg("--no-boot-ok")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set(before.maximum.unwrap_or(65536).min(65536));
    let pid = agent.id();
    let mut stderr = std::io::BufReader::new(agent.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            panic!("agent exited");
        }
        if let Some(addr) = matic_tests::agent::listening_addr(&line) {
            break addr.to_string();
        }
    };
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(stderr) {
                let Ok(line) = line else { break };
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        measure("idle", &addr, &admin, calls, pid).await;

        let mut readers = Vec::new();
        for _ in 0..40 {
            readers.push(client(&addr, &reader).await);
        }
        let received = Arc::new(AtomicU64::new(0));
        let mut follows = Vec::new();
        for i in 0..1000 {
            let mut c = readers[i % 40].clone();
            let received = received.clone();
            follows.push(tokio::spawn(async move {
                if i % 10 == 9 {
                    let mut s = c.dmesg(DmesgRequest { follow: true, boot: 0 }).await?.into_inner();
                    while let Ok(Some(_)) = s.message().await {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    let r = LogsRequest {
                        service: "containerd".into(),
                        tail_lines: 10,
                        follow: true,
                        boot: 0,
                    };
                    let mut s = c.logs(r).await?.into_inner();
                    while let Ok(Some(_)) = s.message().await {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, tonic::Status>(())
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let refused = follows.iter().filter(|t| t.is_finished()).count();
        // What waiting costs: the followers with nothing new to read.
        let (cpu0, t0) = (cpu_secs(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "{} idle followers (log not growing): agent {:.1}% CPU, {} threads",
            1000 - refused,
            (cpu_secs(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0,
            status_field(pid, "Threads:")
        );
        // The log grows while followed: every follower has work.
        let appending = Arc::new(AtomicBool::new(true));
        let appender = {
            let (appending, path) = (appending.clone(), dir.join("log/containerd.log"));
            std::thread::spawn(move || {
                let mut f = OpenOptions::new().append(true).open(path).unwrap();
                let mut i = 0u64;
                while appending.load(Ordering::Relaxed) {
                    writeln!(f, "appended line {i}").unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let mut idle = Vec::new();
        let a: std::net::SocketAddr = addr.parse().unwrap();
        let t = Instant::now();
        while idle.len() < 3000 {
            match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => idle.push(s),
                Err(e) => {
                    println!("idle connection {}: {e}", idle.len());
                    break;
                }
            }
        }
        let opening = t.elapsed();
        println!(
            "reader: {} follow streams open ({refused} refused), {} idle TCP connections (opened in {:.2} s)",
            1000 - refused,
            idle.len(),
            opening.as_secs_f64()
        );
        measure("1000 follows + 3000 idle TCP", &addr, &admin, calls, pid).await;

        let flooding = Arc::new(AtomicBool::new(true));
        let flood_calls = Arc::new(AtomicU64::new(0));
        let mut flood = Vec::new();
        for r in &readers {
            for _ in 0..32 {
                let (mut c, flooding, n) = (r.clone(), flooding.clone(), flood_calls.clone());
                flood.push(tokio::spawn(async move {
                    while flooding.load(Ordering::Relaxed) {
                        if c.boot_status(BootStatusRequest {}).await.is_ok() {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (n0, t0) = (flood_calls.load(Ordering::Relaxed), Instant::now());
        measure("+ reader BootStatus flood", &addr, &admin, calls, pid).await;
        let rate = (flood_calls.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
        println!("reader flood: {rate:.0} BootStatus/s answered meanwhile");
        flooding.store(false, Ordering::Relaxed);
        for f in flood {
            let _ = f.await;
        }
        appending.store(false, Ordering::Relaxed);
        appender.join().unwrap();
        println!(
            "follow stream messages received: {}",
            received.load(Ordering::Relaxed)
        );
        drop(idle);
        for f in follows {
            f.abort();
        }
    });
    let _ = agent.kill();
    let _ = agent.wait();
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap();
    let emfile = log.matches("Too many open files").count();
    println!("agent log lines: {}, EMFILE: {emfile}", log.lines().count());
    if std::env::var_os("BENCH_SHOW_LOG").is_some() {
        print!("{log}");
    }
}
