//! The `matic-disk` binary, as the image builder and end-to-end tests use it.

use std::path::PathBuf;
use std::process::{Command, Output};

struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("matic-disk-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        Tmp(p)
    }
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matic-disk"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs and returns stdout, asserting success.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "matic-disk {args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs, asserting exit status `code`; returns stderr.
fn fails(code: i32, args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(code), "matic-disk {args:?}");
    String::from_utf8(o.stderr).unwrap()
}

#[test]
fn create_and_layout_with_defaults() {
    let img = Tmp::new("defaults.img");
    ok(&["create", img.s(), "--size", "1G"]);
    assert_eq!(std::fs::metadata(&img.0).unwrap().len(), 1 << 30);
    assert_eq!(
        ok(&["layout", img.s()]),
        "ESP 1048576 67108864\n\
         MATIC_ROOT_A 68157440 268435456\n\
         MATIC_ROOT_B 336592896 268435456\n\
         MATIC_STATE 605028352 467664896\n"
    );
    assert_eq!(
        ok(&["status", img.s()]),
        "A priority=0 tries=0 successful=0 bootable=0\n\
         B priority=0 tries=0 successful=0 bootable=0\n\
         next=none\n"
    );
}

#[test]
fn create_with_sizes_and_fixed_guid() {
    let img = Tmp::new("sizes.img");
    let guid = "6B1E4C2A-9D3F-4E8B-A1C5-0F2D3E4A5B6C";
    ok(&[
        "create",
        img.s(),
        "--size",
        "64M",
        "--esp",
        "1M",
        "--slot",
        "8M",
        "--disk-guid",
        guid,
    ]);
    let layout = ok(&["layout", img.s()]);
    assert_eq!(
        layout.lines().nth(1).unwrap(),
        "MATIC_ROOT_A 2097152 8388608"
    );
    assert_eq!(
        layout.lines().nth(3).unwrap(),
        "MATIC_STATE 18874368 47185920"
    );
    let d = matic_boot::Disk::open(std::fs::File::open(&img.0).unwrap()).unwrap();
    assert_eq!(d.disk_guid().to_string(), guid);
}

#[test]
fn simulated_boots_spend_tries_and_fall_back() {
    let img = Tmp::new("boots.img");
    ok(&[
        "create",
        img.s(),
        "--size",
        "64M",
        "--esp",
        "1M",
        "--slot",
        "8M",
    ]);
    ok(&[
        "set",
        img.s(),
        "A",
        "--priority",
        "1",
        "--tries",
        "0",
        "--successful",
        "1",
    ]);
    ok(&["finish-update", img.s(), "B", "--tries", "2"]);
    let st = ok(&["status", img.s()]);
    assert!(
        st.contains("B priority=2 tries=2 successful=0 bootable=1\n"),
        "{st}"
    );
    assert!(st.ends_with("next=B\n"), "{st}");
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    // B never succeeded: given up, A (successful) boots.
    assert_eq!(ok(&["choose", img.s()]), "A\n");
    assert_eq!(
        ok(&["status", img.s()]),
        "A priority=1 tries=0 successful=1 bootable=1\n\
         B priority=0 tries=0 successful=0 bootable=0\n\
         next=A\n"
    );
    let err = fails(1, &["mark-successful", img.s(), "B"]);
    assert!(err.contains("refusing to mark slot B successful"), "{err}");
    let err = fails(1, &["rollback", img.s(), "A"]);
    assert!(err.contains("refusing to roll back to slot B"), "{err}");
}

#[test]
fn update_cycle_and_rollback() {
    let img = Tmp::new("update.img");
    ok(&[
        "create",
        img.s(),
        "--size",
        "64M",
        "--esp",
        "1M",
        "--slot",
        "8M",
    ]);
    ok(&["finish-update", img.s(), "A", "--tries", "3"]);
    assert_eq!(ok(&["choose", img.s()]), "A\n");
    ok(&["mark-successful", img.s(), "A"]);
    ok(&["begin-update", img.s(), "B"]);
    assert!(ok(&["status", img.s()]).contains("B priority=0 tries=0 successful=0 bootable=0"));
    ok(&["finish-update", img.s(), "B", "--tries", "3"]);
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    ok(&["mark-successful", img.s(), "B"]);
    assert_eq!(ok(&["rollback", img.s(), "B"]), "A\n");
    assert!(ok(&["status", img.s()]).ends_with("next=A\n"));
    ok(&["cancel-update", img.s(), "B"]);
    let err = fails(1, &["cancel-update", img.s(), "A"]);
    assert!(err.contains("refusing to cancel"), "{err}");
}

/// Issue 10, item 1, as reported: A successful, B on trial, `choose` (B
/// runs), `begin-update A` used to invalidate A and three more `choose`
/// found no slot. It is refused now, and A is still there to boot.
#[test]
fn begin_update_refused_during_a_trial_boot() {
    let img = Tmp::new("trial.img");
    ok(&[
        "create",
        img.s(),
        "--size",
        "64M",
        "--esp",
        "1M",
        "--slot",
        "8M",
    ]);
    ok(&["set", img.s(), "A", "--priority", "1", "--successful", "1"]);
    ok(&["set", img.s(), "B", "--priority", "2", "--tries", "3"]);
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    let err = fails(1, &["begin-update", img.s(), "A"]);
    assert!(
        err.contains("slot B is still on trial; wait until it is marked successful, or roll back"),
        "{err}"
    );
    assert!(ok(&["status", img.s()]).starts_with("A priority=1 tries=0 successful=1 bootable=1\n"));
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    assert_eq!(ok(&["choose", img.s()]), "B\n");
    assert_eq!(ok(&["choose", img.s()]), "A\n");
}

#[test]
fn usage_errors_exit_2_and_io_errors_exit_1() {
    let img = Tmp::new("usage.img");
    ok(&[
        "create",
        img.s(),
        "--size",
        "64M",
        "--esp",
        "1M",
        "--slot",
        "8M",
    ]);
    for args in [
        &["frobnicate", img.s()][..],
        &["set", img.s(), "C", "--priority", "1"],
        &["set", img.s(), "A", "--priority", "16"],
        &["set", img.s(), "A", "--successful", "2"],
        &["set", img.s(), "A", "--bogus", "1"],
        &["create", img.s()],
        &["create", img.s(), "--size", "12Q"],
        &["finish-update", img.s(), "A"],
        &["status"],
    ] {
        let err = fails(2, args);
        assert!(err.contains("usage:"), "{args:?}: {err}");
    }
    let err = fails(1, &["status", "/nonexistent/disk.img"]);
    assert!(err.contains("/nonexistent/disk.img"), "{err}");
    let small = Tmp::new("small.img");
    let err = fails(1, &["create", small.s(), "--size", "4M"]);
    assert!(err.contains("layout needs"), "{err}");
    let blank = Tmp::new("blank.img");
    std::fs::write(&blank.0, vec![0u8; 1 << 20]).unwrap();
    let err = fails(1, &["layout", blank.s()]);
    assert!(err.contains("no valid GPT"), "{err}");
}
