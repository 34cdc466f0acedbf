//! Benchmark driver for `scripts/bench-pods`, the host half (figures, not
//! asserts): pod-start latency (`RunPodSandbox` sent → `StartContainer`
//! answered) of N pods on this machine, through Debian's containerd and
//! runc run as an ordinary process by the tests' harness
//! (`matic_tests::containerd`, as agent/tests/workloads.rs runs it). The
//! pods are the stand-in kubelet's benchmark ([`pods::bench`]), the very
//! code the stand-in runs on a node in QEMU for the other half: only the
//! CRI socket differs.
//!
//! Usage: bench_pods N WORK_DIR   (root; the work dir is emptied first)
use std::path::PathBuf;
use std::time::{Duration, Instant};

use matic_kubelet_standin::pods;
use matic_tests::containerd::{Containerd, PAUSE_IMAGE, image_archives, missing};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(dir)) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1).map(PathBuf::from),
    ) else {
        eprintln!("usage: bench_pods N WORK_DIR");
        std::process::exit(2);
    };
    if let Some(why) = missing() {
        eprintln!("bench_pods: {why}");
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (pause_tar, workload_tar) = image_archives(&dir.join("images"));
    let socket = dir.join("containerd.sock");
    let ctd = Containerd::start(&dir.join("ctd"), &socket, PAUSE_IMAGE);
    let until = Instant::now() + Duration::from_secs(60);
    let ch = loop {
        match matic_cri::connect(&socket, Duration::from_secs(30)).await {
            Ok(ch) => break ch,
            Err(e) if Instant::now() >= until => {
                eprintln!("bench_pods: {e}: {}\n{}", e.source, ctd.log());
                std::process::exit(1);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    for tar in [pause_tar, workload_tar] {
        if let Err(e) = matic_agent::workloads::import::import_file(&ch, tar.clone()).await {
            eprintln!("bench_pods: importing {}: {}", tar.display(), e.message());
            std::process::exit(1);
        }
    }
    let r = pods::bench(&ch, n, &dir.join("pods"), &mut |l| println!("{l}")).await;
    drop(ctd);
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(s) => println!("{}", s.line()),
        Err(e) => {
            eprintln!("bench_pods: {e}");
            std::process::exit(1);
        }
    }
}
