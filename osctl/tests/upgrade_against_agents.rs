//! `osctl upgrade` and `reboot --wait` as the real binary runs them against
//! several real `matic-agent`s on loopback, each a sandboxed node whose
//! reboot is a restart of its agent under a fake init
//! (`matic_tests::node`): a good rollout one node at a time, a node that
//! never comes back, one whose health fails after its reboot, and the rerun
//! that resumes. The agent binary is found as in cli_against_agent.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use matic_tests::node::{AfterReboot, Node};
use osctl::config::{Config, Context};
use osctl::pki::{Ca, CertifiedKey, Role};
use serde_json::Value;

/// Nodes sharing a CA and a trusted release key, and a config naming them.
struct Fleet {
    dir: PathBuf,
    nodes: Vec<Node>,
    config: PathBuf,
    ca: Ca,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fleet(tag: &str, behaviours: &[AfterReboot]) -> Fleet {
    osctl::install_crypto_provider();
    let bin = matic_tests::agent::bin();
    let dir = std::env::temp_dir().join(format!("osctl-upgrade-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::generate("fleet test CA").unwrap();
    let server = ca.server_cert(&["127.0.0.1".into()]).unwrap();
    // common::release signs with dir/keys; every node trusts that key.
    let keys = osctl::release::keys::generate(&dir.join("keys")).unwrap();
    let nodes: Vec<Node> = behaviours
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let d = dir.join(format!("node{}", i + 1));
            std::fs::create_dir_all(d.join("pki")).unwrap();
            std::fs::create_dir_all(d.join("release-keys")).unwrap();
            std::fs::write(d.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
            server.write(&d.join("pki"), "server").unwrap();
            let name = keys.public.file_name().unwrap();
            std::fs::copy(&keys.public, d.join("release-keys").join(name)).unwrap();
            Node::start(&bin, &d, "1.0", b)
        })
        .collect();
    let admin = ca.client_cert("admin", Role::Admin).unwrap();
    let config = write_config(&dir, &nodes, &ca, &admin);
    Fleet {
        dir,
        nodes,
        config,
        ca,
    }
}

fn write_config(dir: &Path, nodes: &[Node], ca: &Ca, key: &CertifiedKey) -> PathBuf {
    let mut c = Config {
        context: Some("t".into()),
        ..Default::default()
    };
    c.contexts.insert(
        "t".into(),
        Context {
            endpoints: nodes.iter().map(|n| n.addr.to_string()).collect(),
            nodes: vec![],
            ca: ca.cert.cert_pem.clone(),
            crt: key.cert_pem.clone(),
            key: key.key_pem.clone(),
        },
    );
    let p = dir.join("osctlconfig");
    c.save(&p).unwrap();
    p
}

impl Fleet {
    fn osctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_osctl"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn node(&self, i: usize) -> String {
        self.nodes[i].addr.to_string()
    }

    /// `osctl upgrade REL` with short waits, `-o json`: its lines and
    /// exit code.
    fn upgrade(&self, rel: &Path, extra: &[&str]) -> (Vec<Value>, Option<i32>, String) {
        let mut args = vec![
            "upgrade",
            rel.to_str().unwrap(),
            "--healthy-for",
            "2s",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = self.osctl(&args);
        let lines = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (
            lines,
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The running slot and its release version, as `boot-status` shows.
    fn running(&self, i: usize) -> (String, String) {
        let o = self.osctl(&["boot-status", "-n", &self.node(i), "-o", "json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let slots = v[0]["result"]["slots"].as_array().unwrap();
        let s = slots.iter().find(|s| s["running"] == true).unwrap();
        (
            s["name"].as_str().unwrap().to_string(),
            s["release"]["version"].as_str().unwrap_or("").to_string(),
        )
    }
}

/// The final table's rows, cut at its gaps of 3 spaces or more.
fn rows(out: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The summary's `result` per node, in order.
fn results(lines: &[Value]) -> Vec<String> {
    let s = &lines.last().expect("a summary line")["summary"];
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["result"].as_str().unwrap().to_string())
        .collect()
}

/// The summary entry of `node`.
fn summary<'a>(lines: &'a [Value], node: &str) -> &'a Value {
    lines.last().unwrap()["summary"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap()
}

/// Index of the first state line of `node` in `state`.
fn at(lines: &[Value], node: &str, state: &str) -> usize {
    lines
        .iter()
        .position(|l| l["node"] == node && l["state"] == state)
        .unwrap_or_else(|| panic!("no {state} line for {node}"))
}

#[test]
fn a_good_release_rolls_across_three_nodes_one_at_a_time_then_reruns_as_a_no_op() {
    let f = fleet("good", &[AfterReboot::Boots; 3]);
    let rel = common::release(&f.dir, "good", "2.0", 300_000);
    let (lines, code, err) = f.upgrade(&rel, &[]);
    assert_eq!(code, Some(0), "{err}\n{lines:?}");
    assert_eq!(results(&lines), ["done", "done", "done"]);
    // One at a time: the whole took at least the three nodes' times.
    let sum: f64 = (0..3)
        .map(|i| summary(&lines, &f.node(i))["elapsed_s"].as_f64().unwrap())
        .sum();
    let wall = lines.last().unwrap()["summary"]["elapsed_s"]
        .as_f64()
        .unwrap();
    assert!(wall >= sum, "wall {wall} s < sum {sum} s");
    for i in 0..3 {
        assert_eq!(f.nodes[i].reboots(), 1, "node {i}");
        assert_eq!(f.running(i), ("B".to_string(), "2.0".to_string()));
        assert!(f.nodes[i].commands().contains(&"boot-ok".to_string()));
        let s = summary(&lines, &f.node(i));
        assert_eq!((&s["slot"], &s["version"]), (&"B".into(), &"2.0".into()));
    }
    // One at a time: a node starts only once the one before has passed.
    for i in 1..3 {
        assert!(
            at(&lines, &f.node(i - 1), "done") < at(&lines, &f.node(i), "installing"),
            "{lines:#?}"
        );
    }
    // Each node passed only after waiting for its new boot.
    assert!(at(&lines, &f.node(0), "rebooting") < at(&lines, &f.node(0), "waiting"));

    // The rerun finds every node on the release: nothing is touched.
    let (lines, code, err) = f.upgrade(&rel, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(results(&lines), ["skipped", "skipped", "skipped"]);
    assert!(f.nodes.iter().all(|n| n.reboots() == 1));

    // The text form: a final table on stdout.
    let o = f.osctl(&["upgrade", rel.to_str().unwrap()]);
    assert!(o.status.success());
    let t = rows(&o.stdout);
    assert_eq!(
        t[0],
        [
            "NODE", "RESULT", "SLOT", "VERSION", "ELAPSED", "CHECK", "DETAIL"
        ]
    );
    for (i, row) in t[1..].iter().enumerate() {
        assert_eq!(row, &[&f.node(i), "skipped", "B", "2.0", "0s", "-", "-"]);
    }
}

#[test]
fn a_node_that_never_comes_back_halts_the_rollout() {
    let f = fleet(
        "dead",
        &[
            AfterReboot::Boots,
            AfterReboot::NeverComesBack,
            AfterReboot::Boots,
        ],
    );
    let rel = common::release(&f.dir, "good", "2.0", 100_000);
    let (lines, code, err) = f.upgrade(&rel, &["--timeout", "6s"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(results(&lines), ["done", "failed", "untouched"]);
    let s = summary(&lines, &f.node(1));
    assert_eq!(s["failure"]["check"], "unreachable", "{s}");
    assert!(
        s["failure"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(gave up after the --timeout)"),
        "{s}"
    );
    // The third node was not touched: never rebooted, still on 1.0 from A.
    assert_eq!(f.nodes[2].reboots(), 0);
    assert_eq!(f.running(2), ("A".to_string(), String::new()));
    assert!(
        !lines
            .iter()
            .any(|l| l["node"] == f.node(2) && l["state"] == "installing")
    );
}

#[test]
fn a_node_whose_health_fails_after_its_reboot_halts_with_that_check_and_the_rerun_resumes() {
    let f = fleet(
        "sick",
        &[
            AfterReboot::Boots,
            AfterReboot::ContainerdDown,
            AfterReboot::Boots,
        ],
    );
    let rel = common::release(&f.dir, "good", "2.0", 100_000);
    let o = f.osctl(&[
        "upgrade",
        rel.to_str().unwrap(),
        "--healthy-for",
        "2s",
        "--timeout",
        "8s",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let sick = f.node(1);
    assert!(
        err.contains(&format!(
            "{sick}: health:containerd: health check containerd failing: connecting to "
        )),
        "{err}"
    );
    assert!(err.contains("osctl: rollout halted"), "{err}");
    let t = rows(&o.stdout);
    assert_eq!(t[2][..4], [&sick, "failed", "B", "2.0"]);
    assert_eq!(t[2][5], "health:containerd");
    assert_eq!(t[3][..3], [&f.node(2), "untouched", "A"]);
    assert_eq!(f.nodes[2].reboots(), 0);
    assert_eq!(f.nodes[1].reboots(), 1);

    // The operator brings containerd up; the node's agent then marks its
    // boot. The rerun skips the first node, waits for the second (it already
    // runs the release: no second install or reboot) and upgrades the third.
    let sock = f.nodes[1].dir.join("containerd.sock");
    let _containerd = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (lines, code, err) = f.upgrade(&rel, &["--timeout", "30s"]);
    assert_eq!(code, Some(0), "{err}\n{lines:#?}");
    assert_eq!(results(&lines), ["skipped", "done", "done"]);
    assert_eq!(f.nodes[0].reboots(), 1);
    assert_eq!(f.nodes[1].reboots(), 1);
    assert_eq!(f.nodes[2].reboots(), 1);
    assert_eq!(f.running(2), ("B".to_string(), "2.0".to_string()));
    let _ = &f.ca;
}

#[test]
fn reboot_wait_waits_for_the_new_boot_and_says_when_it_does_not_come() {
    let f = fleet("reboot", &[AfterReboot::Boots, AfterReboot::NeverComesBack]);
    let (good, dead) = (f.node(0), f.node(1));
    // --healthy-for 0s: the first healthy look at the new boot passes, so
    // only the boot id keeps the old boot (answering for the agent's 500 ms
    // power delay) from passing before the node even went down.
    let o = f.osctl(&["reboot", "--wait", "--healthy-for", "0s", "-n", &good]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(f.nodes[0].reboots(), 1);
    let t = rows(&o.stdout);
    assert_eq!(t[1][..3], [&good, "done", "A"]);

    let o = f.osctl(&["reboot", "--wait", "--timeout", "4s", "-n", &dead]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{dead}: unreachable: cannot reach {dead}")),
        "{err}"
    );
}

#[test]
fn rollback_wait_comes_back_on_the_other_slot() {
    let f = fleet("rollback", &[AfterReboot::Boots]);
    let rel = common::release(&f.dir, "good", "2.0", 100_000);
    let (_, code, err) = f.upgrade(&rel, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(f.running(0).0, "B");
    let o = f.osctl(&["rollback", "--wait", "--healthy-for", "1s", "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(f.nodes[0].reboots(), 2);
    assert_eq!(f.running(0).0, "A");
    let last: Value = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(last["summary"]["halted"], false);
    assert_eq!(last["summary"]["nodes"][0]["result"], "done");
    assert_eq!(last["summary"]["nodes"][0]["slot"], "A");
}

#[test]
fn rollback_on_failure_brings_the_failed_node_back_on_its_old_slot() {
    let f = fleet(
        "rollback-on-failure",
        &[AfterReboot::ContainerdDown, AfterReboot::Boots],
    );
    let rel = common::release(&f.dir, "bad", "2.0", 100_000);
    let (lines, code, err) = f.upgrade(&rel, &["--timeout", "6s", "--rollback-on-failure"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(results(&lines), ["rolled-back", "untouched"]);
    let s = summary(&lines, &f.node(0));
    assert_eq!(s["failure"]["check"], "health:containerd", "{s}");
    assert_eq!(s["rollback"]["ok"], true, "{s}");
    assert_eq!(f.nodes[0].reboots(), 2);
    assert_eq!(f.running(0).0, "A");
    assert_eq!(f.nodes[1].reboots(), 0);
    assert!(at(&lines, &f.node(0), "failed") < at(&lines, &f.node(0), "rolling-back"));
}
