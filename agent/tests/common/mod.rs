//! Loopback harness: a real `matic-agent` process on 127.0.0.1 against a
//! disk-image file with a MaticOS GPT whose slots hold signed test releases,
//! a trusted-keys directory, a fake run dir (boot file, services file, a
//! control FIFO the test reads), a fake log dir and a kmsg file.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use matic_boot::{Disk, Slot, SlotAttrs};
use matic_proto::v1::{InstallHeader, InstallRequest, InstallResponse, install_request::Msg};
use matic_tests::release::{Release, TestKey};
use osctl::client::{Client, Credentials, Options};
use osctl::pki::{Ca, CertifiedKey, Role};
use sha2::{Digest, Sha256};
use tonic::Status;

pub const MIB: u64 = 1 << 20;
pub const SLOT_BYTES: u64 = matic_tests::disk::SLOT_BYTES;

/// Deterministic pseudo-random bytes (xorshift), so slot contents differ.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The node's release key (trusted in `release-keys/`).
pub fn node_key() -> TestKey {
    TestKey::from_seed(0x11)
}

/// A release of `len` pattern bytes (`seed`) signed by `key`.
pub fn release_by(key: &TestKey, seed: u64, version: &str, counter: u64, len: usize) -> Release {
    Release::build(key, version, counter, &pattern(seed, len))
}

/// A release of `len` pattern bytes signed by the node's key.
pub fn release(seed: u64, version: &str, counter: u64, len: usize) -> Release {
    release_by(&node_key(), seed, version, counter, len)
}

/// The security counter of the release in the running slot A.
pub const A_COUNTER: u64 = 5;

pub fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Options for the node's initial state.
#[derive(Default, Clone)]
pub struct NodeOpts {
    /// Slot B holds a good, successful release (version "v0", security
    /// counter 1, below A's), priority 1.
    pub b_bootable: bool,
    /// Let the agent mark the boot successful (otherwise --no-boot-ok).
    pub boot_ok: bool,
    /// Extra lines for the services file (after the header).
    pub services: Option<String>,
    /// Extra agent flags.
    pub agent_args: Vec<&'static str>,
    /// Called with the node's directory just before the agent starts (to
    /// put a boot history, crash dumps or a boot id in place).
    pub prepare: Option<fn(&std::path::Path)>,
    /// Start the agent as init does, with the services' log pipes at
    /// descriptors 3 on (`matic_contract::handoff`): FIFOs
    /// `<dir>/<service>.pipe`, opened read-write by a shell that then
    /// execs the agent (like init, the agent's side never sees EOF).
    pub handed_pipes: bool,
}

pub struct Node {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub disk: PathBuf,
    pub ca: Ca,
    child: Child,
    fifo: mpsc::Receiver<String>,
    /// `listening` lines init's FIFO got (one per agent start), counted
    /// apart so that `expect_fifo_silent` is about the other commands.
    listening: Arc<std::sync::atomic::AtomicUsize>,
    pub log: Arc<Mutex<String>>,
    tag: String,
    opts: NodeOpts,
}

/// Starts the agent on `dir` with `opts`' flags; its process, address and
/// log (filled as it writes).
fn spawn_agent(
    dir: &std::path::Path,
    tag: &str,
    opts: &NodeOpts,
) -> (Child, SocketAddr, Arc<Mutex<String>>) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_matic-agent"));
    let mut cmd = matic_tests::agent::command(bin, dir);
    cmd.args(["--power-delay-ms", "50"]);
    if !opts.boot_ok {
        cmd.arg("--no-boot-ok");
    }
    cmd.args(&opts.agent_args);
    if opts.handed_pipes {
        use matic_contract::handoff::{FIRST_FD, HANDED};
        let mut redirects = String::new();
        let mut sh = Command::new("sh");
        sh.arg("-c");
        for (k, service) in HANDED.iter().enumerate() {
            let fifo = dir.join(format!("{service}.pipe"));
            // A restarted agent gets the same FIFOs again.
            assert!(
                fifo.exists()
                    || Command::new("mkfifo")
                        .arg(&fifo)
                        .status()
                        .unwrap()
                        .success()
            );
            redirects.push_str(&format!(" {}<>'{}'", FIRST_FD + k as i32, fifo.display()));
        }
        sh.arg(format!("exec{redirects}; exec \"$@\""))
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        cmd = sh;
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (atx, arx) = mpsc::channel();
    {
        let log = log.clone();
        let tag = tag.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                eprintln!("[agent {tag}] {line}");
                if let Some(a) = matic_tests::agent::listening_addr(&line) {
                    let _ = atx.send(a);
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let addr = arx
        .recv_timeout(Duration::from_secs(30))
        .expect("agent did not start listening");
    (child, addr, log)
}

fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "matic-agent-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub const DEFAULT_SERVICES: &str =
    "matic-agent running 123 0 - 5\ncontainerd backoff 0 2 exit:1 0\nkubelet skipped 0 0 - 3\n";

impl Node {
    pub fn start(tag: &str, opts: NodeOpts) -> Node {
        osctl::install_crypto_provider();
        let dir = temp_dir(tag);
        for d in ["pki", "run", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // PKI.
        let ca = Ca::generate("test CA").unwrap();
        let server = ca.server_cert(&["127.0.0.1".into()]).unwrap();
        std::fs::write(dir.join("pki/ca.crt"), &ca.cert.cert_pem).unwrap();
        server.write(&dir.join("pki"), "server").unwrap();

        node_key().trust_in(&dir.join("release-keys"));
        // Disk: ESP 1 MiB, slots 8 MiB, state 1 MiB; slot A written and
        // booted. Each slot: pattern bytes, then a release over them.
        let disk = dir.join("disk.img");
        let mut d = matic_tests::disk::create(&disk, 7);
        if opts.b_bootable {
            let b = d.slot_partition(Slot::B);
            d.device()
                .write_all_at(&pattern(0xB, b.size() as usize), b.start())
                .unwrap();
            release(0xB0, "v0", 1, MIB as usize).put_in_slot(&mut d, Slot::B);
            // B's history, by the transitions a node makes: installed with
            // one try, booted, marked successful (A's install below drops
            // it to priority 1).
            d.finish_update(Slot::B, 1).unwrap();
            assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
            d.mark_successful(Slot::B).unwrap();
        }
        let a = d.slot_partition(Slot::A);
        d.device()
            .write_all_at(&pattern(0xA, a.size() as usize), a.start())
            .unwrap();
        release(0xA0, "v1", A_COUNTER, MIB as usize).put_in_slot(&mut d, Slot::A);
        d.finish_update(Slot::A, 3).unwrap();
        if opts.b_bootable {
            assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::new(1, 0, true).unwrap());
        }
        // What init stage 1 does: choose (spends a try) and write.
        assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
        d.write().unwrap();
        drop(d);

        // Fake /run/matic.
        std::fs::write(
            dir.join("run/boot"),
            format!("slot=A\ndisk={}\nsuccessful=0\n", disk.display()),
        )
        .unwrap();
        let services = opts
            .services
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVICES.to_owned());
        std::fs::write(
            dir.join("run/services"),
            format!("# matic-init services v1\n{services}"),
        )
        .unwrap();
        let fifo_path = dir.join("run/control");
        let st = Command::new("mkfifo").arg(&fifo_path).status().unwrap();
        assert!(st.success());
        // Read+write open: we are a reader, and never see EOF between writers.
        let fifo_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo_path)
            .unwrap();
        let (tx, fifo) = mpsc::channel();
        let listening = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let told = listening.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(fifo_file).lines() {
                let Ok(line) = line else { return };
                if line == "listening" {
                    told.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else if tx.send(line).is_err() {
                    return;
                }
            }
        });
        std::fs::write(
            dir.join("log/containerd.log"),
            "one\ntwo\nthree\nfour\nfive\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("kmsg"),
            "6,1,1000,-;Linux version 6.1.0\n SUBSYSTEM=x\n4,2,2000,-;warning here\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("os-release"),
            "NAME=MaticOS\nVERSION_ID=\"1.2.3\"\n",
        )
        .unwrap();

        if let Some(prepare) = opts.prepare {
            prepare(&dir);
        }
        let (child, addr, log) = spawn_agent(&dir, tag, &opts);
        Node {
            dir,
            addr,
            disk,
            ca,
            child,
            fifo,
            listening,
            log,
            tag: tag.to_owned(),
            opts,
        }
    }

    /// Kills the agent and starts a new one on the same directory (an
    /// agent restart within the same boot: same boot id, same state); it
    /// listens on a new port.
    pub fn restart_agent(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr, log) = spawn_agent(&self.dir, &self.tag, &self.opts);
        (self.child, self.addr, self.log) = (child, addr, log);
    }

    pub fn cert(&self, role: Role) -> CertifiedKey {
        self.ca.client_cert(&format!("{role} user"), role).unwrap()
    }

    pub fn creds(&self, key: &CertifiedKey) -> Credentials {
        Credentials {
            ca_pem: self.ca.cert.cert_pem.clone().into_bytes(),
            crt_pem: key.cert_pem.clone().into_bytes(),
            key_pem: key.key_pem.clone().into_bytes(),
        }
    }

    pub async fn client_with(
        &self,
        key: &CertifiedKey,
    ) -> Result<Client, osctl::client::ClientError> {
        osctl::client::connect(
            &self.addr.to_string(),
            &self.creds(key),
            &Options::default(),
        )
        .await
        .map(|c| c.client)
    }

    pub async fn client(&self, role: Role) -> Client {
        self.client_with(&self.cert(role)).await.unwrap()
    }

    /// Waits for the next FIFO line equal to `want`.
    pub fn expect_fifo(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fifo.recv_timeout(left) {
                Ok(l) if l == want => return,
                Ok(_) => continue,
                Err(_) => panic!("init's FIFO never received {want:?}"),
            }
        }
    }

    /// Waits until init's FIFO got `n` `listening` lines in all, and
    /// checks it got no more.
    pub fn expect_listening(&self, n: usize) {
        let got = || self.listening.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while got() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got(), n, "`listening` lines on init's FIFO");
    }

    /// Asserts nothing arrives on the FIFO for `d`.
    pub fn expect_fifo_silent(&self, d: Duration) {
        if let Ok(l) = self.fifo.recv_timeout(d) {
            panic!("unexpected FIFO line {l:?}");
        }
    }

    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent never logged {needle:?}");
    }

    pub fn open_disk(&self) -> Disk<File> {
        Disk::open(File::open(&self.disk).unwrap()).unwrap()
    }

    pub fn attrs(&self, s: Slot) -> SlotAttrs {
        self.open_disk().slot_attrs(s)
    }

    /// sha256 of a slot's whole partition.
    pub fn slot_digest(&self, s: Slot) -> Vec<u8> {
        let p = self.open_disk().slot_partition(s);
        let mut buf = vec![0u8; p.size() as usize];
        File::open(&self.disk)
            .unwrap()
            .read_exact_at(&mut buf, p.start())
            .unwrap();
        sha(&buf)
    }

    /// The manifest block at the start of a slot's last 64 KiB.
    pub fn slot_tail(&self, s: Slot) -> Vec<u8> {
        let p = self.open_disk().slot_partition(s);
        let mut buf = vec![0u8; matic_release::manifest::BLOCK_LEN];
        File::open(&self.disk)
            .unwrap()
            .read_exact_at(
                &mut buf,
                p.start() + p.size() - matic_release::manifest::SLOT_RESERVE,
            )
            .unwrap();
        buf
    }

    /// The first `len` bytes of a slot.
    pub fn slot_bytes(&self, s: Slot, len: usize) -> Vec<u8> {
        let p = self.open_disk().slot_partition(s);
        let mut buf = vec![0u8; len];
        File::open(&self.disk)
            .unwrap()
            .read_exact_at(&mut buf, p.start())
            .unwrap();
        buf
    }

    /// Waits up to `timeout` for the agent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.dir.join(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        let mut s = String::new();
        File::open(self.dir.join(rel))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The messages of an install: header, then `image` in `chunk`-byte pieces.
pub fn install_msgs(header: InstallHeader, image: &[u8], chunk: usize) -> Vec<InstallRequest> {
    let mut v = vec![InstallRequest {
        msg: Some(Msg::Header(header)),
    }];
    v.extend(image.chunks(chunk).map(|c| InstallRequest {
        msg: Some(Msg::Chunk(Bytes::copy_from_slice(c))),
    }));
    v
}

/// A header carrying `manifest` as the manifest block.
pub fn header_with(manifest: &[u8]) -> InstallHeader {
    InstallHeader {
        manifest: manifest.to_vec(),
    }
}

/// The messages of an install of `r`: its manifest block, then its payload
/// in `chunk`-byte pieces.
pub fn release_msgs(r: &Release, chunk: usize) -> Vec<InstallRequest> {
    install_msgs(header_with(&r.block), &r.payload, chunk)
}

pub async fn install(
    client: &mut Client,
    msgs: Vec<InstallRequest>,
) -> Result<InstallResponse, Status> {
    client
        .install(futures::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

/// The whole text of `Logs` of `service` for `boot` (its last `tail_lines`,
/// 0 = all).
pub async fn logs_of(
    c: &mut Client,
    service: &str,
    boot: i64,
    tail_lines: u32,
) -> Result<String, tonic::Status> {
    let mut s = c
        .logs(matic_proto::v1::LogsRequest {
            service: service.into(),
            tail_lines,
            follow: false,
            boot,
        })
        .await?
        .into_inner();
    stream_text(&mut s, |m| m.data).await
}

/// A server stream's byte chunks (`data` of each message), as text.
pub async fn stream_text<M>(
    s: &mut tonic::Streaming<M>,
    data: impl Fn(M) -> Vec<u8>,
) -> Result<String, tonic::Status> {
    let mut all = Vec::new();
    while let Some(m) = s.message().await? {
        all.extend(data(m));
    }
    Ok(String::from_utf8(all).unwrap())
}
