//! A sandboxed MaticOS node for tests of what spans reboots (`osctl
//! upgrade`, `reboot --wait`): the real `matic-agent` ([`crate::agent`])
//! on a file-backed disk ([`crate::disk`]) under a fake init that reads
//! the agent's control FIFO and turns a `reboot` into what a real node
//! would show over the API:
//!
//! 1. the agent process is killed (the power goes);
//! 2. stage 1's slot choice runs on the disk (`choose_boot_slot`: a slot on
//!    trial spends a try, one with none left is given up) and `run/boot`
//!    names the chosen slot, as init's stage 1 writes it;
//! 3. a new kernel boot id is written (`boot_id`: the history begins a new
//!    boot, so `Boots` shows a new running boot number);
//! 4. the agent starts again on the same address, and marks the boot
//!    successful itself once its checks pass (as on a node).
//!
//! [`AfterReboot`] makes a node misbehave after its reboots. The restart of
//! the agent process stands for the node's reboot here only: nothing in the
//! agent or osctl knows about it.
//!
//! Must never touch anything outside its directory, nor set slot bits
//! other than through matic-boot's transitions (stage 1's choice).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use matic_boot::{Disk, Slot};

/// The services file init writes: the agent alone (containerd skipped), so
/// the health checks are init's file and the disk.
pub const SERVICES: &str =
    "# matic-init services v1\nmatic-agent running 123 0 - 5\ncontainerd skipped 0 0 - 0\n";
/// The same with containerd supervised and running, but its socket absent:
/// the `containerd` health check fails.
pub const SERVICES_CONTAINERD_DOWN: &str =
    "# matic-init services v1\nmatic-agent running 123 0 - 5\ncontainerd running 456 0 - 5\n";

/// What a node does after a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReboot {
    /// Boots the chosen slot and starts its agent again.
    Boots,
    /// Never comes back: the agent is not started again.
    NeverComesBack,
    /// Comes back, but containerd's health check fails whenever it runs
    /// slot B (where the new release goes): a bad release.
    ContainerdDown,
}

#[derive(Default)]
struct State {
    child: Option<Child>,
    reboots: u32,
    commands: Vec<String>,
}

/// A running sandboxed node. Dropping it stops its agent and its init.
pub struct Node {
    pub dir: PathBuf,
    /// The agent's address, the same across its reboots.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// The agent's stderr goes to `dir/agent.log` (appended across reboots).
fn spawn_agent(bin: &Path, dir: &Path, listen: SocketAddr) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    crate::agent::command_on(bin, dir, listen)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// Waits for the agent's `listening on` line in `dir/agent.log` past `from`.
fn wait_listening(dir: &Path, from: usize) -> SocketAddr {
    for _ in 0..300 {
        let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
        if let Some(a) = log
            .get(from..)
            .and_then(|l| l.lines().find_map(crate::agent::listening_addr))
        {
            return a;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("matic-agent in {} did not start listening", dir.display());
}

impl Node {
    /// Starts a node in `dir`, which must already hold the agent's `pki/`
    /// (CA, server certificate for 127.0.0.1) and `release-keys/`: slot A
    /// holds release `version` (`os-release`), runs and is proven; slot B
    /// is empty.
    pub fn start(bin: &Path, dir: &Path, version: &str, after: AfterReboot) -> Node {
        for d in ["run", "log", "boots", "pstore"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let disk = dir.join("disk.img");
        let mut d = crate::disk::create(&disk, 7);
        d.finish_update(Slot::A, 1).unwrap();
        assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
        d.mark_successful(Slot::A).unwrap();
        d.write().unwrap();
        write_boot_file(dir, Slot::A, true);
        std::fs::write(dir.join("run/services"), SERVICES).unwrap();
        std::fs::write(dir.join("kmsg"), "6,1,1000,-;Linux version 6.1.0\n").unwrap();
        std::fs::write(
            dir.join("os-release"),
            format!("NAME=MaticOS\nVERSION_ID=\"{version}\"\n"),
        )
        .unwrap();
        std::fs::write(dir.join("boot_id"), "boot-0\n").unwrap();
        let fifo = dir.join("run/control");
        let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success(), "mkfifo {}", fifo.display());
        // Read+write: we are a reader, and never see EOF between writers.
        let fifo_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let child = spawn_agent(bin, dir, SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = wait_listening(dir, 0);
        let state = Arc::new(Mutex::new(State {
            child: Some(child),
            ..Default::default()
        }));
        let (bin, dir2, st) = (bin.to_owned(), dir.to_owned(), state.clone());
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = ready_tx.send(());
            for line in BufReader::new(fifo_file).lines() {
                let Ok(line) = line else { return };
                if line == "harness-stop" {
                    return;
                }
                let mut s = st.lock().unwrap();
                s.commands.push(line.clone());
                if (line == "reboot" || line == "poweroff")
                    && let Some(mut c) = s.child.take()
                {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                if line != "reboot" {
                    continue;
                }
                s.reboots += 1;
                let slot = stage1(&dir2, s.reboots);
                if after == AfterReboot::NeverComesBack {
                    continue;
                }
                let services = if after == AfterReboot::ContainerdDown && slot == Slot::B {
                    SERVICES_CONTAINERD_DOWN
                } else {
                    SERVICES
                };
                std::fs::write(dir2.join("run/services"), services).unwrap();
                s.child = Some(spawn_agent(&bin, &dir2, addr));
            }
        });
        ready.recv().unwrap();
        Node {
            dir: dir.to_owned(),
            addr,
            state,
        }
    }

    /// How many times the node rebooted.
    pub fn reboots(&self) -> u32 {
        self.state.lock().unwrap().reboots
    }

    /// Every line the agent sent init, in order (`reboot`, `boot-ok`, ...).
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    /// The agent's log so far (all its runs).
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.state.lock().unwrap().child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Ends the fake init's loop.
        if let Ok(mut f) = OpenOptions::new()
            .write(true)
            .open(self.dir.join("run/control"))
        {
            let _ = f.write_all(b"harness-stop\n");
        }
    }
}

/// `run/boot` as init's stage 1 writes it.
fn write_boot_file(dir: &Path, slot: Slot, successful: bool) {
    std::fs::write(
        dir.join("run/boot"),
        format!(
            "slot={slot}\ndisk={}\nsuccessful={}\n",
            dir.join("disk.img").display(),
            u8::from(successful)
        ),
    )
    .unwrap();
}

/// What stage 1 does at boot `n`: choose the slot (spending a try of one
/// on trial), record it for the agent, and a new kernel boot id; the slot.
fn stage1(dir: &Path, n: u32) -> Slot {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("disk.img"))
        .unwrap();
    let mut d = Disk::open(f).unwrap();
    let slot = d.choose_boot_slot().unwrap();
    d.write().unwrap();
    write_boot_file(dir, slot, d.slot_attrs(slot).successful());
    std::fs::write(dir.join("boot_id"), format!("boot-{n}\n")).unwrap();
    slot
}
