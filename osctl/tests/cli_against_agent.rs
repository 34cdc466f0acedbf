//! The real `osctl` binary against the real `matic-agent` binary on
//! loopback: the role table, a refused install and the boot history, checked
//! as the sentences and tables a person reads. (The mTLS rejections are one suite, in
//! agent/tests/loopback.rs, against the same real agent.)
//!
//! The agent binary is `$MATIC_AGENT_BIN`, else `matic-agent` in the target
//! dir beside this test binary (`cargo test --workspace` builds it). A
//! missing binary fails every test here, saying how to build it: a suite
//! that skips itself would pass without testing anything.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use osctl::config::{Config, Context};
use osctl::pki::{Ca, CertifiedKey, Role};

struct Agent {
    dir: PathBuf,
    addr: SocketAddr,
    ca: Ca,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(tag: &str) -> Agent {
    start_with(tag, |_| {})
}

/// `start`, with `prepare(dir)` run before the agent starts (a disk, a boot file).
fn start_with(tag: &str, prepare: impl FnOnce(&Path)) -> Agent {
    let bin = matic_tests::agent::bin();
    osctl::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("osctl-agent-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["pki", "run", "log", "state/slots"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let ca = Ca::generate("agent test CA").unwrap();
    std::fs::write(dir.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
    ca.server_cert(&["127.0.0.1".into()])
        .unwrap()
        .write(&dir.join("pki"), "server")
        .unwrap();
    std::fs::write(
        dir.join("run/services"),
        "# matic-init services v1\nmatic-agent running 123 0 - 5\ncontainerd backoff 0 2 exit:1 0\n",
    )
    .unwrap();
    std::fs::write(dir.join("log/containerd.log"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(dir.join("kmsg"), "6,1,1000,-;Linux version 6.1.0\n").unwrap();
    std::fs::write(
        dir.join("os-release"),
        "NAME=MaticOS\nVERSION_ID=\"4.5.6\"\n",
    )
    .unwrap();
    prepare(&dir);
    let mut child = matic_tests::agent::command(&bin, &dir)
        .arg("--no-boot-ok")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(a) = matic_tests::agent::listening_addr(&line) {
                let _ = tx.send(a);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("matic-agent did not start listening");
    Agent {
        dir,
        addr,
        ca,
        child,
    }
}

impl Agent {
    /// A config file with one context using `key` (inline PEM) and `ca_pem`.
    fn config(&self, name: &str, ca_pem: &str, key: &CertifiedKey) -> PathBuf {
        let mut c = Config {
            context: Some("t".into()),
            ..Default::default()
        };
        c.contexts.insert(
            "t".into(),
            Context {
                endpoints: vec![self.addr.to_string()],
                nodes: vec![],
                ca: ca_pem.into(),
                crt: key.cert_pem.clone(),
                key: key.key_pem.clone(),
            },
        );
        let p = self.dir.join(format!("{name}.toml"));
        c.save(&p).unwrap();
        p
    }

    fn own(&self, name: &str, key: &CertifiedKey) -> PathBuf {
        self.config(name, &self.ca.cert.cert_pem.clone(), key)
    }
}

fn osctl(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn role_table_as_seen_by_a_person() {
    let a = start("roles");
    let node = a.addr.to_string();
    let reader = a.own("reader", &a.ca.client_cert("r", Role::Reader).unwrap());
    let operator = a.own("operator", &a.ca.client_cert("o", Role::Operator).unwrap());

    let o = osctl(&reader, &["services"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("containerd"));
    let o = osctl(&reader, &["logs", "containerd", "--tail", "2"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "two\nthree\n");

    for (args, rpc) in [
        (&["reboot"][..], "Reboot needs os:operator or os:admin"),
        (&["shutdown"][..], "Shutdown needs os:operator or os:admin"),
        (
            &["restart", "containerd"][..],
            "ServiceRestart needs os:admin",
        ),
    ] {
        let o = osctl(&reader, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("{node}: permission denied: {rpc}")),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let img = common::release(&a.dir, "r", "9.9", 50_000);
    let o = osctl(&operator, &["install", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "{node}: permission denied: Install needs os:admin"
        )),
        "{}",
        stderr(&o)
    );
}

/// Issue 10, item 1: an install while the running slot is still on trial is
/// refused, and osctl says why in the agent's sentence.
#[test]
fn install_during_a_trial_boot_is_refused_with_a_sentence() {
    use matic_boot::{Slot, SlotAttrs};
    let a = start_with("trial", |dir| {
        // B proven, A freshly installed and now running its first tries.
        let disk = dir.join("disk.img");
        let mut d = matic_tests::disk::create(&disk, 9);
        // B installed, booted and marked successful; then A installed.
        d.finish_update(Slot::B, 1).unwrap();
        assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
        d.mark_successful(Slot::B).unwrap();
        d.finish_update(Slot::A, 3).unwrap();
        assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::new(1, 0, true).unwrap());
        assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
        d.write().unwrap();
        std::fs::write(
            dir.join("run/boot"),
            format!("slot=A\ndisk={}\nsuccessful=0\n", disk.display()),
        )
        .unwrap();
        trust_a_new_key(dir);
    });
    let admin = a.own("admin", &a.ca.client_cert("a", Role::Admin).unwrap());
    let img = common::release(&a.dir, "r", "9.9", 50_000);
    let o = osctl(&admin, &["install", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "{}: failed precondition: slot A is still on trial; wait until it is marked successful, or roll back\n",
            a.addr
        )
    );
}

/// A node whose slot A runs and is proven, trusting the key in `dir/keys`
/// (made here, as `osctl release keygen` makes it).
fn proven_node(dir: &Path) {
    use matic_boot::Slot;
    let disk = dir.join("disk.img");
    let mut d = matic_tests::disk::create(&disk, 9);
    d.finish_update(Slot::A, 1).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    d.mark_successful(Slot::A).unwrap();
    d.write().unwrap();
    std::fs::write(
        dir.join("run/boot"),
        format!("slot=A\ndisk={}\nsuccessful=1\n", disk.display()),
    )
    .unwrap();
    trust_a_new_key(dir);
}

/// Makes the key `common::release` signs with (`dir/keys`) and puts its
/// public half where the agent looks for trusted keys.
fn trust_a_new_key(dir: &Path) {
    let g = osctl::release::keys::generate(&dir.join("keys")).unwrap();
    std::fs::create_dir_all(dir.join("release-keys")).unwrap();
    let name = g.public.file_name().unwrap();
    std::fs::copy(&g.public, dir.join("release-keys").join(name)).unwrap();
}

/// The whole operator path against the real agent: `osctl release sign`
/// (real veritysetup) → `osctl install` → the agent verifies and writes it
/// → `osctl boot-status` shows the slot's manifest. A release signed by a
/// key the node does not trust is refused with the agent's sentence.
#[test]
fn a_signed_release_installs_and_shows_its_manifest() {
    let a = start_with("signed", proven_node);
    let admin = a.own("admin", &a.ca.client_cert("a", Role::Admin).unwrap());
    // Signed with dir/keys (trusted): common::release reuses that key.
    let rel = common::release(&a.dir, "good", "7.1.0", 300_000);
    let o = osctl(&admin, &["install", rel.to_str().unwrap(), "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["slot"], "B");
    assert_eq!(v[0]["result"]["version"], "7.1.0");
    let payload = std::fs::metadata(&rel).unwrap().len() - 4096;
    assert_eq!(v[0]["result"]["bytes_written"], payload);

    let o = osctl(&admin, &["boot-status", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &v[0]["result"]["slots"][1];
    assert_eq!(b["name"], "B");
    assert_eq!(b["release"]["version"], "7.1.0");
    assert_eq!(b["release"]["security_counter"], 1);
    let inspect = osctl(
        &admin,
        &["release", "inspect", rel.to_str().unwrap(), "--json"],
    );
    let m: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(b["release"]["root_hash"], m["manifest"]["root_hash"]);
    assert_eq!(b["release"]["key_id"], m["manifest"]["key_id"]);
    let o = osctl(&admin, &["boot-status"]);
    let short: String = m["manifest"]["root_hash"].as_str().unwrap()[..12].to_string();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "   7.1.0     1         {}   {short}   ",
            m["manifest"]["key_id"].as_str().unwrap()
        )),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Another key: the node refuses it before touching a slot.
    let other = a.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let rel = common::release(&other, "theirs", "7.2.0", 50_000);
    let o = osctl(&admin, &["install", rel.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("signed by a key that is not trusted"),
        "{}",
        stderr(&o)
    );
}

/// `osctl boots`, `boots show` and `logs --boot` as a reader sees them,
/// from a history the agent finds on its disk: boot 1 powered off over the
/// API, boot 2 running (its `started` names the kernel's boot id).
#[test]
fn the_boot_history_as_a_person_reads_it() {
    use matic_history::journal::{Ending, Event, Started};
    use matic_history::stamp::At;
    let a = start_with("boots", |dir| {
        let store = matic_history::Store::open(dir.join("boots"), 1 << 20).unwrap();
        let started = |boot: &str, wall| Started {
            boot: boot.into(),
            slot: "A".into(),
            os_version: "4.5.6".into(),
            kernel: "6.1.0-57-amd64".into(),
            wall_unix_ms: wall,
            uptime_ms: 3_412,
        };
        let mut w = store
            .begin(started("old", Some(1_795_983_939_120)))
            .unwrap();
        for (name, at_ms) in [("/init", 2210), ("stage2", 3210)] {
            w.event(&Event::Mark {
                name: name.into(),
                at_ms,
            })
            .unwrap();
        }
        let at = At {
            boot_us: 5_120_417,
            wall_unix_us: None,
        };
        w.service_line("containerd", at, "serving").unwrap();
        let ending = Ending::Poweroff {
            by: "ops over the API".into(),
        };
        w.event(&Event::Ended {
            ending,
            at_ms: 65_000,
        })
        .unwrap();
        w.close().unwrap();
        store.begin(started("now", None)).unwrap().close().unwrap();
        std::fs::write(dir.join("boot_id"), "now\n").unwrap();
    });
    let node = a.addr.to_string();
    let reader = a.own("reader", &a.ca.client_cert("r", Role::Reader).unwrap());

    let o = osctl(&reader, &["boots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // The columns (split at the table's gaps of 3 spaces or more).
    let cells = |l: &str| -> Vec<String> {
        l.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        cells(lines[0]),
        [
            "NODE", "BOOT", "SLOT", "VERSION", "KERNEL", "STARTED", "RAN", "ENDING", "OK"
        ]
    );
    let mut running = cells(lines[1]);
    // RAN of the running boot is this machine's uptime.
    running.remove(6);
    assert_eq!(
        running,
        [
            &node,
            "2",
            "A",
            "4.5.6",
            "6.1.0-57-amd64",
            "+3.4s",
            "running",
            "no"
        ]
    );
    assert_eq!(
        cells(lines[2]),
        [
            &node,
            "1",
            "A",
            "4.5.6",
            "6.1.0-57-amd64",
            "2026-11-29 20:25:35Z",
            "1m5s",
            "poweroff requested by ops over the API",
            "no"
        ]
    );

    let o = osctl(&reader, &["boots", "show", "-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "NODE{}   BOOT   MARK     AT (ms)   STEP (ms)\n\
             {node}   1      /init    2210      +2210\n\
             {node}   1      stage2   3210      +1000\n",
            " ".repeat(node.len() - 4)
        )
    );
    let o = osctl(&reader, &["logs", "containerd", "--boot", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "5.120417 - serving\n");
    let o = osctl(&reader, &["dmesg", "--boot", "-2"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{node}: not found: no boot -2: the history holds 1 boot before the running boot 2 (boot 1)\n"
        )
    );
}

/// `osctl config …` against the real agent: a refused document's line,
/// field and why printed as the agent words them (nothing applied);
/// apply, get, history (text and JSON), diff, a trial and its confirm,
/// rollback; a reader may read but not apply.
#[test]
fn config_commands_as_seen_by_a_person() {
    let a = start("config");
    let node = a.addr.to_string();
    let admin = a.own("admin", &a.ca.client_cert("a", Role::Admin).unwrap());
    let reader = a.own("reader", &a.ca.client_cert("r", Role::Reader).unwrap());
    let file = |name: &str, text: &str| {
        let p = a.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let bad = file(
        "bad.toml",
        "version = 1\nhostname = \"ok\"\n[time]\nntp = [\"no way\"]\n",
    );
    let o = osctl(&admin, &["config", "apply", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{node}: invalid argument: config refused:\n  line 4: time.ntp[0]: \"no way\" is not an RFC 1123 name (labels of letters, digits and '-', not starting or ending with '-', at most 63 each)\n"
        )
    );
    let o = osctl(&admin, &["config", "get"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out(&o).contains("no configuration applied"), "{}", out(&o));

    let one = file("one.toml", "version = 1\nhostname = \"first\"\n");
    let o = osctl(&admin, &["config", "apply", &one, "--mode", "no-reboot"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        out(&o),
        format!("{node}: generation 1 applied\n  hostname: (absent) -> \"first\" (live)\n")
    );
    let two = file("two.toml", "version = 1\nhostname = \"second\"\n");
    let o = osctl(&admin, &["config", "apply", &two, "--try", "5m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out(&o).contains("generation 2 applied, on trial for 300 s"),
        "{}",
        out(&o)
    );
    let o = osctl(&reader, &["config", "get"]);
    assert!(
        out(&o).starts_with(&format!("# {node}: generation 2, generation 2 on trial: ")),
        "{}",
        out(&o)
    );
    assert!(out(&o).ends_with("hostname = \"second\"\n"), "{}", out(&o));
    let o = osctl(&reader, &["config", "apply", &one]);
    assert!(
        stderr(&o).starts_with(&format!(
            "{node}: permission denied: ConfigApply needs os:admin"
        )),
        "{}",
        stderr(&o)
    );
    let o = osctl(&admin, &["config", "confirm"]);
    assert_eq!(out(&o), format!("{node}: generation 2 confirmed\n"));
    let o = osctl(&reader, &["config", "diff"]);
    assert_eq!(
        out(&o),
        format!(
            "{node}: generation 1 -> 2: 1 changes\n  hostname: \"first\" -> \"second\" (live)\n"
        )
    );
    let o = osctl(&admin, &["config", "rollback"]);
    assert!(
        out(&o).starts_with(&format!("{node}: rolled back as generation 3\n")),
        "{}",
        out(&o)
    );
    let o = osctl(&reader, &["config", "history", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gens = v[0]["result"].as_array().unwrap();
    let got: Vec<(u64, &str, bool)> = gens
        .iter()
        .map(|g| {
            (
                g["id"].as_u64().unwrap(),
                g["origin"].as_str().unwrap(),
                g["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "applied", false),
            (2, "applied", false),
            (3, "rollback-to-1", true)
        ]
    );
    let o = osctl(&reader, &["config", "history"]);
    assert!(out(&o).starts_with("NODE"), "{}", out(&o));
    assert_eq!(out(&o).lines().count(), 4, "{}", out(&o));
    let o = osctl(&admin, &["config", "apply", &one, "--try", "2d"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses a bad --try");
    assert!(stderr(&o).contains("not a duration"), "{}", stderr(&o));
}

/// `osctl config apply` and `rollback` say which services init was asked
/// to restart (`restarted`), in text and JSON: a kubelet section restarts
/// kubelet; a change of the hostname alone restarts nothing.
#[test]
fn config_apply_shows_the_restarted_services() {
    let a = start("config-restarted");
    let admin = a.own("admin", &a.ca.client_cert("a", Role::Admin).unwrap());
    // init's control FIFO, read by this test (the agent asks init there).
    let fifo = a.dir.join("run/control");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(reader).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let file = |name: &str, text: &str| {
        let p = a.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let kubelet = file(
        "kubelet.toml",
        "version = 1\n[kubelet]\napi_server = \"https://10.0.0.1:6443\"\n\
         ca = \"\"\"\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n\"\"\"\n\
         bootstrap_token = \"abcdef.0123456789abcdef\"\n",
    );
    let o = osctl(
        &admin,
        &["config", "apply", &kubelet, "--mode", "no-reboot"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out(&o).contains("generation 1 applied, restarted kubelet\n"),
        "{}",
        out(&o)
    );
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(10)).unwrap(),
        "restart kubelet"
    );
    let o = osctl(&admin, &["config", "rollback", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["result"]["restarted"],
        serde_json::json!(["kubelet"]),
        "{v}"
    );
    let name = file("name.toml", "version = 1\nhostname = \"n\"\n");
    let o = osctl(&admin, &["config", "apply", &name, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["result"]["restarted"], serde_json::json!([]), "{v}");
}
