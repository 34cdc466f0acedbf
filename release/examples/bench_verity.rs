//! Measures the streaming verifier against the floor it must beat: one
//! serial SHA-256 pass over the same payload on one core.
//!
//! `cargo run --release -p matic-release --features ring --example bench_verity -- [MiB]`
//!
//! Builds a payload of `MiB` (default 512) of data in memory with the
//! reference builder, then prints the one-core SHA-256 time of the whole
//! payload and, for 1 and 2 worker threads, the verifier's wall time, its
//! CPU time (user + system of the process, from /proc/self/stat, 10 ms
//! ticks) and the ratio of its wall time to the floor. Chunks of 256 KiB, as
//! the agent receives them. Each figure is the best of 3 runs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use matic_release::verity::build;
use matic_release::verity::stream::StreamVerifier;
use matic_release::{KeyId, Manifest};
use sha2::{Digest, Sha256};

const CHUNK: usize = 256 * 1024;
const RUNS: usize = 3;

/// User + system CPU time of this process (all threads, joined ones too).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // Fields after the command name (which may hold blanks) in parentheses.
    let rest = &stat[stat.rfind(')').expect("a /proc stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here;
    // USER_HZ is 100 on Linux.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut wall = Duration::MAX;
    let mut cpu = Duration::MAX;
    for _ in 0..RUNS {
        let (c, t) = (cpu_time(), Instant::now());
        std::hint::black_box(f());
        wall = wall.min(t.elapsed());
        cpu = cpu.min(cpu_time() - c);
    }
    (wall, cpu)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("the payload's data size in MiB"))
        .unwrap_or(512);
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let salt = [0x5a; 32];
    let built = build::payload(&data, &salt, [7; 16]);
    drop(data);
    let manifest = Manifest::new(
        "bench",
        1,
        [0; 32],
        built.geometry,
        &salt,
        built.root_hash,
        KeyId([0; 8]),
    )
    .expect("a manifest for the built payload");
    let payload = Bytes::from(built.payload);
    let total = payload.len();
    println!(
        "payload: {mib} MiB of data, {} bytes with superblock and tree, chunks of {} KiB, best of {RUNS}",
        total,
        CHUNK / 1024
    );

    let (floor, floor_cpu) = best(|| Sha256::digest(&payload[..]));
    println!(
        "one-core SHA-256 of the payload (floor): wall {:>7.3} s  cpu {:>6.2} s",
        floor.as_secs_f64(),
        floor_cpu.as_secs_f64()
    );
    for threads in [1, 2] {
        let (wall, cpu) = best(|| {
            let mut v = StreamVerifier::new(&manifest, threads).unwrap();
            for at in (0..total).step_by(CHUNK) {
                v.push(payload.slice(at..(at + CHUNK).min(total))).unwrap();
            }
            v.finish().unwrap()
        });
        println!(
            "StreamVerifier, {threads} thread(s):          wall {:>7.3} s  cpu {:>6.2} s  wall/floor {:.2}x",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            wall.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
