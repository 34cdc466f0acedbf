//! Test support: run one of this binary's own unit tests again in a child
//! process under `strace`, so a test can check which system calls a piece
//! of agent code makes (a directory fsync, how often a disk is opened).
//!
//! Test-only (`#[cfg(test)]`); it must never be part of the agent binary.
//! Needs `strace`, which `scripts/lib/deps.sh` installs: a missing one
//! fails the calling test, it never skips it.
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The environment variable that tells the re-run test it is the child,
/// and where its work directory is.
pub const CHILD: &str = "MATIC_STRACE_TEST_CHILD";

/// In the child: the work directory the parent passed, else `None`.
pub fn child_dir() -> Option<OsString> {
    std::env::var_os(CHILD)
}

/// Re-runs the unit test `test` (its full path, e.g.
/// `slots::tests::write_version_fsyncs_the_directory_after_the_rename`)
/// under `strace -f -e trace=SYSCALLS` with `dir` as its work directory,
/// asserts that it passed, and returns the trace.
pub fn trace_test(test: &str, syscalls: &str, dir: &Path) -> String {
    let trace = dir.join("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={syscalls}"), "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads", "1"])
        .env(CHILD, dir)
        .output()
        .expect("running strace (scripts/lib/deps.sh installs it)");
    assert!(
        out.status.success(),
        "{test} under strace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&trace).unwrap()
}
