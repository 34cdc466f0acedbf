//! Benchmark driver for `scripts/bench-install` (figures, not asserts):
//! starts the real (release) agent against a file-backed disk, then
//! - writes the same image to the same slot offset with
//!   `dd bs=1M conv=fsync` and with `Install` over loopback mTLS (osctl's
//!   client and request stream), alternating,
//!   and prints MiB/s of each and the time ratio;
//! - measures `Version` latency on a warm connection (p50/p99);
//! - samples the agent's RSS idle and (peak) during an install;
//! - prints two floors no Install can beat here: one core's SHA-256 of the
//!   image, and the CPU both processes used divided by the cores.
//!
//! Usage: bench_install AGENT_BIN WORK_DIR [IMAGE_MIB] [ROUNDS]
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use matic_boot::{Disk, Guid, Layout, Slot};
use matic_proto::v1::{InstallHeader, VersionRequest};
use osctl::client::{Credentials, Options};
use osctl::pki::{Ca, Role};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of waited-for children (dd), from getrusage(RUSAGE_CHILDREN).
fn children_cpu() -> f64 {
    // /proc/self/stat fields cutime + cstime (16, 17).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(13) + t(14)) / 100.0
}

/// utime + stime of a process in seconds (clock ticks at 100 Hz).
fn cpu_secs(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Writes everything back and evicts the disk file from the page cache, so
/// dd and Install both start as an install on a node does: the inactive
/// slot is not cached. Without this, whichever ran last leaves the slot's
/// pages cached for the other (the agent drops them after an install, dd
/// does not). The pause lets a VM's free-page reporting hand the freed
/// memory back to the host (virtio-balloon; this build VM does), so both
/// writers then pay the same first-touch cost for fresh pages instead of
/// one of them reusing pages freed a moment earlier.
fn settle(disk: &Path) {
    let _ = Command::new("sync").status();
    let f = std::fs::File::open(disk).unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    std::thread::sleep(Duration::from_secs(3));
}

/// `dd bs=1M conv=fsync` of the image over slot B.
fn dd(image: &Path, disk: &Path, b_offset: u64) {
    let st = Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", disk.display()))
        .args([
            "bs=1M",
            "conv=fsync,notrunc",
            "oflag=seek_bytes",
            "status=none",
        ])
        .arg(format!("seek={b_offset}"))
        .status()
        .unwrap();
    assert!(st.success(), "dd failed");
}

fn make_image(path: &Path, mib: u64) -> Vec<u8> {
    let mut f = std::fs::File::create(path).unwrap();
    let mut h = Sha256::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; MIB as usize];
    for i in 0..mib {
        for w in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        if i == 0 {
            buf[..4].copy_from_slice(b"hsqs");
        }
        std::io::Write::write_all(&mut f, &buf).unwrap();
        h.update(&buf);
    }
    f.sync_all().unwrap();
    h.finalize().to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agent_bin = PathBuf::from(&args[1]);
    let dir = PathBuf::from(&args[2]);
    let mib: u64 = args.get(3).map_or(512, |s| s.parse().unwrap());
    let rounds: usize = args.get(4).map_or(3, |s| s.parse().unwrap());
    let chunk_kib = osctl::image::CHUNK >> 10;
    osctl::install_crypto_provider();
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["pki", "run", "log", "state"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let ca = Ca::generate("bench CA").unwrap();
    std::fs::write(dir.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
    ca.server_cert(&["127.0.0.1".into()])
        .unwrap()
        .write(&dir.join("pki"), "server")
        .unwrap();
    let admin = ca.client_cert("bench", Role::Admin).unwrap();
    let creds = Credentials {
        ca_pem: ca.cert.cert_pem.clone().into_bytes(),
        crt_pem: admin.cert_pem.into_bytes(),
        key_pem: admin.key_pem.into_bytes(),
    };

    // Disk: slots of image size + 64 MiB; slot A running.
    let disk = dir.join("disk.img");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&disk)
        .unwrap();
    let slot_bytes = (mib + 64) * MIB;
    // Allocate every block up front (zeros), so neither dd nor the agent pays
    // for ext4 block allocation and both overwrite the same kind of blocks.
    {
        let zeros = vec![0u8; MIB as usize];
        let mut w = std::io::BufWriter::new(&f);
        for _ in 0..(2 * slot_bytes / MIB + 16) {
            std::io::Write::write_all(&mut w, &zeros).unwrap();
        }
        std::io::Write::flush(&mut w).unwrap();
        f.sync_all().unwrap();
    }
    let layout = Layout {
        esp_bytes: MIB,
        slot_bytes,
        state_bytes: Some(MIB),
        disk_guid: Guid([9; 16]),
    };
    let mut d = Disk::create(f, &layout).unwrap();
    d.finish_update(Slot::A, 3).unwrap();
    d.choose_boot_slot().unwrap();
    d.write().unwrap();
    let b_offset = d.slot_partition(Slot::B).start();
    drop(d);
    std::fs::write(
        dir.join("run/boot"),
        format!("slot=A\ndisk={}\nsuccessful=0\n", disk.display()),
    )
    .unwrap();
    std::fs::write(dir.join("run/services"), "# matic-init services v1\n").unwrap();

    let image = dir.join("image.squashfs");
    eprintln!("writing a {mib} MiB test image ...");
    let digest = make_image(&image, mib);

    let mut agent = matic_tests::agent::command(&agent_bin, &dir)
        .arg("--no-boot-ok")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt
        .block_on(osctl::client::connect(&addr, &creds, &Options::default()))
        .unwrap()
        .client;
    rt.block_on(client.version(VersionRequest {})).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_kib(pid);

    // Version latency, warm connection.
    for _ in 0..200 {
        rt.block_on(client.version(VersionRequest {})).unwrap();
    }
    let mut lat: Vec<Duration> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            rt.block_on(client.version(VersionRequest {})).unwrap();
            t.elapsed()
        })
        .collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];

    let peak = Arc::new(AtomicU64::new(0));
    let (mut agent_cpu, mut client_cpu, mut dd_cpu, mut dd_cached_cpu) = (0.0, 0.0, 0.0, 0.0);
    let mut dd_times = Vec::new();
    let mut dd_cached_times = Vec::new();
    let mut api_times = Vec::new();
    for round in 0..rounds {
        // dd as on a node (target slot not cached), then again at once:
        // rewriting the pages it just cached, dd's best case.
        settle(&disk);
        let dd_cpu0 = children_cpu();
        let t = Instant::now();
        dd(&image, &disk, b_offset);
        dd_times.push(t.elapsed());
        dd_cpu += children_cpu() - dd_cpu0;
        let dd_cpu0 = children_cpu();
        let t = Instant::now();
        dd(&image, &disk, b_offset);
        dd_cached_times.push(t.elapsed());
        dd_cached_cpu += children_cpu() - dd_cpu0;

        settle(&disk);
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let header = InstallHeader {
            size: mib * MIB,
            sha256: digest.clone(),
            version: format!("bench-{round}"),
        };
        let (a0, c0) = (cpu_secs(&pid.to_string()), cpu_secs("self"));
        let t = Instant::now();
        // osctl's own request stream: what `osctl install` sends.
        let failure = osctl::image::ReadFailure::default();
        let stream = osctl::image::request_stream(image.clone(), header, |_| {}, failure.clone());
        let r = rt.block_on(client.install(stream)).unwrap().into_inner();
        assert!(
            failure.lock().unwrap().is_none(),
            "reading the image failed"
        );
        api_times.push(t.elapsed());
        agent_cpu += cpu_secs(&pid.to_string()) - a0;
        client_cpu += cpu_secs("self") - c0;
        sampling.store(false, Ordering::Relaxed);
        sampler.join().unwrap();
        assert_eq!(r.bytes_written, mib * MIB);
    }
    let _ = agent.kill();
    let _ = agent.wait();

    // Floors: what no implementation of Install can beat on this machine.
    // The digest is one SHA-256 over the image in order, so one core; and
    // the client and agent share the machine's cores.
    let sha_time = {
        let mut f = std::fs::File::open(&image).unwrap();
        let mut buf = vec![0u8; MIB as usize];
        let t = Instant::now();
        let mut h = Sha256::new();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        assert_eq!(h.finalize().to_vec(), digest);
        t.elapsed()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    let best = |v: &[Duration]| *v.iter().min().unwrap();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average during the run: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "image: {mib} MiB, chunks of {chunk_kib} KiB, {rounds} rounds each (alternating), target: file-backed slot on {}",
        dir.display()
    );
    for (i, ((dd, ddc), api)) in dd_times
        .iter()
        .zip(&dd_cached_times)
        .zip(&api_times)
        .enumerate()
    {
        println!(
            "  round {i}: dd {:.2} s ({:.0} MiB/s), again cached {:.2} s ({:.0} MiB/s)   Install {:.2} s ({:.0} MiB/s)",
            dd.as_secs_f64(),
            rate(*dd),
            ddc.as_secs_f64(),
            rate(*ddc),
            api.as_secs_f64(),
            rate(*api)
        );
    }
    let (dd_m, ddc_m, api_m) = (
        median(&dd_times),
        median(&dd_cached_times),
        median(&api_times),
    );
    println!(
        "dd bs=1M conv=fsync      median {:.2} s  {:.0} MiB/s  (best {:.0} MiB/s)",
        dd_m.as_secs_f64(),
        rate(dd_m),
        rate(best(&dd_times))
    );
    println!(
        "  same, slot cached      median {:.2} s  {:.0} MiB/s  (best {:.0} MiB/s)",
        ddc_m.as_secs_f64(),
        rate(ddc_m),
        rate(best(&dd_cached_times))
    );
    println!(
        "Install over mTLS        median {:.2} s  {:.0} MiB/s  (best {:.0} MiB/s)",
        api_m.as_secs_f64(),
        rate(api_m),
        rate(best(&api_times))
    );
    println!(
        "ratio Install/dd time    {:.2}x (target <= 1.25x); vs dd into a cached slot {:.2}x",
        api_m.as_secs_f64() / dd_m.as_secs_f64(),
        api_m.as_secs_f64() / ddc_m.as_secs_f64()
    );
    println!(
        "floors: SHA-256 of the image on one core {:.2} s ({:.2}x dd); (agent + client CPU) / {cores} cores {:.2} s ({:.2}x dd)",
        sha_time.as_secs_f64(),
        sha_time.as_secs_f64() / dd_m.as_secs_f64(),
        (agent_cpu + client_cpu) / rounds as f64 / cores as f64,
        (agent_cpu + client_cpu) / rounds as f64 / cores as f64 / dd_m.as_secs_f64()
    );
    println!(
        "Version latency (warm, 2000 calls)  p50 {:.0} us  p99 {:.0} us",
        p(0.50).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
    println!(
        "CPU per write (mean): dd {:.2} s (slot cached: {:.2} s); Install: agent {:.2} s + bench client {:.2} s, wall {:.2} s ({} cores)",
        dd_cpu / rounds as f64,
        dd_cached_cpu / rounds as f64,
        agent_cpu / rounds as f64,
        client_cpu / rounds as f64,
        api_times.iter().map(Duration::as_secs_f64).sum::<f64>() / rounds as f64,
        cores
    );
    println!(
        "agent RSS idle {} KiB, peak during install {} KiB",
        rss_idle,
        peak.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
