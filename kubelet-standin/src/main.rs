//! `/usr/bin/kubelet` in test images: runs the stand-in's checks
//! ([`matic_kubelet_standin::run`]) against the node, then its pods
//! ([`matic_kubelet_standin::run_pods`]: once the test workload image is
//! imported), and stays up as a kubelet would until SIGTERM (exit 0); a
//! failed check exits 1, so init's restart backoff shows it in `osctl
//! services`. A failed pod is a `pods: FAILED:` line, not an exit.

use std::time::Duration;

use matic_kubelet_standin::{Node, run, run_pods};

/// How long containerd may take to answer on its socket: init starts
/// kubelet right after it, and under emulation it takes seconds.
const RUNTIME_WAIT: Duration = Duration::from_secs(60);

fn main() {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("matic-kubelet-standin: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async {
        // Installed before the checks: a SIGTERM while they run still ends
        // the process with 0, as kubelet's would.
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("matic-kubelet-standin: SIGTERM handler: {e}");
                    return 1;
                }
            };
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let node = Node::real();
        let mut print = |l: &str| println!("{l}");
        let checks = run(&node, &args, RUNTIME_WAIT, &mut print);
        let passed = tokio::select! {
            p = checks => p,
            _ = term.recv() => {
                println!("matic-kubelet-standin: SIGTERM during the checks, stopping");
                return 0;
            }
        };
        if !passed {
            return 1;
        }
        tokio::select! {
            _ = run_pods(&node, &args, &mut print) => {}
            _ = term.recv() => {
                println!("matic-kubelet-standin: SIGTERM, stopping");
                return 0;
            }
        }
        term.recv().await;
        println!("matic-kubelet-standin: SIGTERM, stopping");
        0
    });
    std::process::exit(code);
}
