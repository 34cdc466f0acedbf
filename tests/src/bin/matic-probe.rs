//! `matic-probe`: a test-only helper that reports, through its own service
//! log, what the smoke test cannot ask the API for without a shell on the
//! node: the listening TCP sockets (`/proc/net/tcp`, `/proc/net/tcp6`) and
//! whether `/` is mounted and behaves read-only. `scripts/build-rootfs
//! --with-probe` installs it in the `kubelet` slot of init's service table;
//! the release image never contains it.
//!
//! It prints one report, then another every few seconds (services that start
//! later show up), each ending in `matic-probe: end`, and never exits, so init
//! does not restart it.

use std::time::Duration;

use matic_tests::probe;

fn main() {
    loop {
        let report = probe::report(
            std::path::Path::new("/"),
            std::path::Path::new("/etc/resolv.conf"),
        );
        // One write per report so lines of two reports never interleave.
        print!("{report}");
        std::thread::sleep(Duration::from_secs(3));
    }
}
