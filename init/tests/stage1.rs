//! Stage 1 end to end without a VM: a MaticOS disk image (built with
//! `matic-boot`, a real SquashFS slot and an ext4 `MATIC_STATE`) on a loop
//! device, an "initramfs" that is a tmpfs holding `/init`, and the real
//! `matic-init` as PID 1 of a PID + mount namespace rooted there. Stage 1
//! must choose the slot, spend a try, mount everything, switch root and exec
//! the image's `/sbin/init`, which supervises the services. Needs root, loop
//! devices, squashfs and ext4 (CI runs as root), and `veritysetup` (Debian's
//! `cryptsetup-bin`) for the slots' hash trees.
//!
//! Each slot holds a release as the agent installs it: the payload (SquashFS
//! and its dm-verity tree, made by `veritysetup format`) from the slot's
//! start, a signed manifest block at its tail; the initramfs trusts the test
//! key. The host has no device-mapper, so this build of init (feature
//! `test-no-dm`, on for `cargo test` only) checks the manifest as a release
//! build does and then mounts the partition itself; the dm-verity device is
//! checked in the VM (scripts/test.d/50-image-boot).

#[path = "helpers/harness.rs"]
#[allow(dead_code)] // parts serve only the benchmark
mod harness;

use harness::{TestRoot, install, require_root, wait_until};
use matic_boot::{Disk, Guid, Layout, Slot};
use matic_release::KeyId;
use matic_release::manifest::{Manifest, SLOT_RESERVE};
use matic_release::verity::{BLOCK, Geometry};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_matic-init");
const HELPER: &str = env!("CARGO_BIN_EXE_matic-init-testsvc");
const MIB: usize = 1 << 20;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Loop device and initramfs tmpfs, released on drop; the test's files
/// (~100 MB of disk image each) too, unless the test failed (kept to look
/// at).
struct Env {
    base: PathBuf,
    loopdev: String,
    initramfs: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.initramfs)
            .status();
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.loopdev)
            .status();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

impl Env {
    fn disk(&self) -> Vec<u8> {
        fs::read(self.base.join("disk.img")).unwrap()
    }

    /// A fresh initramfs (tmpfs with `/init`), as `scripts/build-initramfs`
    /// lays it out minus the modules.
    fn initramfs(&self) -> TestRoot {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.initramfs)
            .status();
        fs::create_dir_all(&self.initramfs).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&self.initramfs));
        for d in ["dev", "proc", "sys", "run", "newroot", "lib/modules"] {
            fs::create_dir_all(self.initramfs.join(d)).unwrap();
        }
        install(&self.initramfs, Path::new(INIT), "/init");
        let (pair, id) = release_key(TRUSTED_SEED);
        let keys = self.initramfs.join("usr/share/matic/release-keys");
        fs::create_dir_all(&keys).unwrap();
        let name = String::from_utf8(id.file_name().to_vec()).unwrap();
        fs::write(
            keys.join(name),
            matic_release::key::render_public(pair.public_key().as_ref().try_into().unwrap()),
        )
        .unwrap();
        TestRoot {
            dir: self.initramfs.clone(),
            cpu: None,
        }
    }

    /// [`Env::initramfs`] with its own `/boot/kernel-id` ([`OWN_KERNEL_ID`])
    /// and, as the test build's stand-in for securityfs's lockdown file,
    /// `/lockdown` at level none.
    fn loader_initramfs(&self) -> TestRoot {
        let root = self.initramfs();
        fs::create_dir_all(self.initramfs.join("boot")).unwrap();
        fs::write(self.initramfs.join("boot/kernel-id"), OWN_KERNEL_ID).unwrap();
        fs::write(
            self.initramfs.join("lockdown"),
            "[none] integrity confidentiality\n",
        )
        .unwrap();
        root
    }
}

/// The seed of the release key the test initramfs trusts, and of one it
/// does not.
const TRUSTED_SEED: u8 = 0x42;
const UNTRUSTED_SEED: u8 = 0x17;

/// A release key pair (Ed25519 from a fixed seed) and its key id (the first
/// 8 bytes of the SHA-256 of the public key, by `sha256sum`).
fn release_key(seed: u8) -> (Ed25519KeyPair, KeyId) {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    let sum = sha256_hex(pair.public_key().as_ref());
    (pair, KeyId::parse_hex(&sum.as_bytes()[..16]).unwrap())
}

/// SHA-256 by `sha256sum`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// `data` as a release: the payload (data padded to 4 KiB, the verity
/// superblock and tree that `veritysetup format` writes after it) and the
/// manifest block signed by the key of `seed`.
fn release(dir: &Path, data: &[u8], seed: u8) -> (Vec<u8>, [u8; 4096]) {
    let file = dir.join("payload");
    let data_len = data.len().next_multiple_of(BLOCK as usize);
    let mut padded = data.to_vec();
    padded.resize(data_len, 0);
    fs::write(&file, &padded).unwrap();
    let out = run(Command::new("veritysetup")
        .arg("format")
        .arg(format!("--hash-offset={data_len}"))
        .args(["--data-block-size=4096", "--hash-block-size=4096"])
        .arg(&file)
        .arg(&file));
    let field = |name: &str| -> Vec<u8> {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        let hex = line.split_whitespace().last().unwrap();
        let mut b = vec![0u8; hex.len() / 2];
        matic_release::hex::decode(hex.as_bytes(), &mut b).unwrap();
        b
    };
    let (root, salt) = (field("Root hash:"), field("Salt:"));
    let payload = fs::read(&file).unwrap();
    let mut sha = [0u8; 32];
    matic_release::hex::decode(sha256_hex(&payload).as_bytes(), &mut sha).unwrap();
    let blocks = (data_len / BLOCK as usize) as u64;
    let g = Geometry::new(blocks, BLOCK, BLOCK, data_len as u64 + u64::from(BLOCK)).unwrap();
    let (pair, id) = release_key(seed);
    let mut m = Manifest::new("test-1", 1, sha, g, &salt, root.try_into().unwrap(), id).unwrap();
    assert_eq!(m.payload_size, payload.len() as u64, "veritysetup's layout");
    m.sign(|msg| pair.sign(msg).as_ref().try_into().unwrap());
    (payload, m.render_block())
}

/// What a slot holds.
#[derive(Clone, Copy, PartialEq)]
enum Content {
    /// Zeros: no payload and no manifest.
    Zeros,
    /// A signed release whose data is zeros (no SquashFS superblock).
    SignedZeros,
    /// The test image.
    Good,
    /// The test image without `/sbin/init`.
    NoInit,
    /// The test image whose `/sbin/init` is an executable text file
    /// (`execve` fails with ENOEXEC).
    BadInit,
    /// The test image and its tree without a manifest (an unsigned image).
    Unsigned,
    /// The test image with its manifest's counter changed after signing.
    Tampered,
    /// The test image signed by a key the initramfs does not trust.
    UnknownKey,
    /// The test image with a `/boot/kernel-id` ([`SLOT_KERNEL_ID`]) other
    /// than the initramfs's, and no `/boot/vmlinuz`.
    OtherKernelMissing,
}

/// The kernel-ids of the test initramfs and of [`Content::OtherKernelMissing`].
const OWN_KERNEL_ID: &str =
    "6.1.0-test-1 1111111111111111111111111111111111111111111111111111111111111111\n";
const SLOT_KERNEL_ID: &str =
    "6.1.0-test-2 2222222222222222222222222222222222222222222222222222222222222222\n";

/// A test disk: slot contents, the `finish_update`s applied in order, the
/// slots then marked successful, and the disk GUID.
struct Spec<'a> {
    a: Content,
    b: Content,
    updates: &'a [Slot],
    successful: &'a [Slot],
    guid: Guid,
}

/// Builds the image tree, its SquashFS, a 64 MiB disk with `good` slots
/// holding it (other slots hold zeros), attributes set by `finish_update` in
/// the order given, and attaches it to a loop device.
fn setup(name: &str, good: &[Slot], updates: &[Slot]) -> Env {
    let content = |s| {
        if good.contains(&s) {
            Content::Good
        } else {
            Content::Zeros
        }
    };
    setup_disk(
        name,
        &Spec {
            a: content(Slot::A),
            b: content(Slot::B),
            updates,
            successful: &[],
            guid: Guid([7; 16]),
        },
    )
}

/// Detaches loop devices an interrupted earlier run left on `disk` (its
/// `Env` never dropped), whether the file is still there or already
/// deleted: otherwise they stay attached with the same disk GUID as the
/// new disk, and a scan of every disk (`matic.test.loop_disks=1`) sees two.
fn detach_stale_loops(disk: &Path) {
    let out = run(Command::new("losetup").args(["-l", "-n", "-O", "NAME,BACK-FILE"]));
    for line in out.lines() {
        let mut words = line.splitn(2, ' ');
        let (Some(dev), Some(file)) = (words.next(), words.next()) else {
            continue;
        };
        let file = file.trim();
        let file = file.strip_suffix(" (deleted)").unwrap_or(file);
        if Path::new(file) == disk {
            eprintln!("detaching {dev}, left on {file} by an interrupted run");
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}

/// [`setup`] for any [`Spec`].
fn setup_disk(name: &str, spec: &Spec) -> Env {
    require_root();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("matic-init-stage1")
        .join(name);
    detach_stale_loops(&base.join("disk.img"));
    let _ = fs::remove_dir_all(&base);
    let img = base.join("image");
    for d in [
        "sbin",
        "usr/bin",
        "etc/testsvc",
        "dev",
        "proc",
        "sys",
        "run",
        "var",
        "tmp",
        "etc/kubernetes",
        "etc/cni/net.d",
        "opt/cni/bin",
    ] {
        fs::create_dir_all(img.join(d)).unwrap();
    }
    for svc in ["matic-agent", "containerd"] {
        install(&img, Path::new(HELPER), &format!("/usr/bin/{svc}"));
        fs::write(img.join("etc/testsvc").join(svc), "sleep").unwrap();
    }
    let squash = |file: &str| {
        let sqfs = base.join(file);
        run(Command::new("mksquashfs").arg(&img).arg(&sqfs).args([
            "-noappend",
            "-quiet",
            "-all-root",
        ]));
        fs::read(&sqfs).unwrap()
    };
    let no_init = squash("noinit.sqfs");
    fs::write(img.join("sbin/init"), "not an executable\n").unwrap();
    fs::set_permissions(img.join("sbin/init"), fs::Permissions::from_mode(0o755)).unwrap();
    let bad_init = squash("badinit.sqfs");
    fs::remove_file(img.join("sbin/init")).unwrap();
    install(&img, Path::new(INIT), "/sbin/init");
    let sq = squash("root.sqfs");
    fs::create_dir_all(img.join("boot")).unwrap();
    fs::write(img.join("boot/kernel-id"), SLOT_KERNEL_ID).unwrap();
    let other_kernel = squash("other-kernel.sqfs");
    fs::remove_dir_all(img.join("boot")).unwrap();

    let mut mem = vec![0u8; 64 * MIB];
    let layout = Layout {
        esp_bytes: MIB as u64,
        slot_bytes: 24 * MIB as u64,
        state_bytes: None,
        disk_guid: spec.guid,
    };
    let (slots, state) = {
        let mut disk = Disk::create(&mut mem[..], &layout).unwrap();
        for s in spec.updates {
            disk.finish_update(*s, 3).unwrap();
        }
        for s in spec.successful {
            disk.mark_successful(*s).unwrap();
        }
        disk.write().unwrap();
        (
            [disk.slot_partition(Slot::A), disk.slot_partition(Slot::B)],
            disk.state_partition().unwrap(),
        )
    };
    for (p, content) in slots.iter().zip([spec.a, spec.b]) {
        let (data, seed) = match content {
            Content::Zeros => continue,
            Content::SignedZeros => (&vec![0u8; MIB][..], TRUSTED_SEED),
            Content::Good | Content::Unsigned | Content::Tampered => (&sq[..], TRUSTED_SEED),
            Content::NoInit => (&no_init[..], TRUSTED_SEED),
            Content::BadInit => (&bad_init[..], TRUSTED_SEED),
            Content::UnknownKey => (&sq[..], UNTRUSTED_SEED),
            Content::OtherKernelMissing => (&other_kernel[..], TRUSTED_SEED),
        };
        let (payload, mut block) = release(&base, data, seed);
        assert!(
            payload.len() as u64 <= p.size() - SLOT_RESERVE,
            "payload {} bytes > slot",
            payload.len()
        );
        let start = p.start() as usize;
        mem[start..start + payload.len()].copy_from_slice(&payload);
        if content == Content::Unsigned {
            continue;
        }
        if content == Content::Tampered {
            block[16] ^= 0x01; // the security counter, covered by the signature
        }
        let tail = (p.start() + p.size() - SLOT_RESERVE) as usize;
        mem[tail..tail + block.len()].copy_from_slice(&block);
    }
    let ext4 = base.join("state.ext4");
    fs::write(&ext4, vec![0u8; state.size() as usize]).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "MATIC_STATE"])
        .arg(&ext4));
    let st = fs::read(&ext4).unwrap();
    mem[state.start() as usize..state.end() as usize].copy_from_slice(&st);
    fs::write(base.join("disk.img"), &mem).unwrap();

    let loopdev = run(Command::new("losetup")
        .args(["-P", "-f", "--show"])
        .arg(base.join("disk.img")));
    let env = Env {
        initramfs: base.join("initramfs"),
        base,
        loopdev,
    };
    // A kernel built without the GPT parser (like this project's CI VMs)
    // creates no partitions: add them from user space then.
    let p2 = format!(
        "/sys/class/block/{}p2",
        env.loopdev.trim_start_matches("/dev/")
    );
    if wait_until(Duration::from_secs(1), || {
        Path::new(&p2).exists().then_some(())
    })
    .is_none()
    {
        run(Command::new("partx").arg("-a").arg(&env.loopdev));
    }
    env
}

/// Init logs to the kernel log once stage 1 has mounted `/dev` (the host's
/// here, shared by parallel tests): its tail, for failure messages.
fn kmsg_tail() -> String {
    let out = Command::new("dmesg")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("matic-init")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn attrs(disk: &mut [u8], s: Slot) -> (u8, u8, bool) {
    let d = Disk::open(disk).unwrap();
    let a = d.slot_attrs(s);
    (a.priority(), a.tries(), a.successful())
}

#[test]
fn stage1_boots_the_chosen_slot_and_hands_over_to_stage2() {
    let env = setup("boot", &[Slot::A], &[Slot::A]);
    assert_eq!(attrs(&mut env.disk(), Slot::A), (2, 3, false));
    let root = env.initramfs();
    let mark = kmsg_mark();
    let disk_arg = format!("matic.disk={}", env.loopdev);
    let mut ns = root.start_program("/init", &[&disk_arg]);
    let inside = PathBuf::from(format!("/proc/{}/root", ns.init_pid));
    let up = wait_until(Duration::from_secs(60), || {
        let s = fs::read_to_string(inside.join("run/matic/services")).ok()?;
        s.lines()
            .any(|l| l.starts_with("matic-agent running"))
            .then_some(s)
    });
    assert!(
        up.is_some(),
        "stage 2 never ran the services; kernel log:\n{}",
        kmsg_tail()
    );
    // Stage 2 runs from the image: its root is the slot's squashfs (below),
    // after stage 1 checked the slot's manifest with the trusted key.
    let log = kmsg_since(mark);
    assert!(log.contains("slot A: release test-1 verified"), "{log}");

    // The hand-over file, and one try spent on the disk.
    let boot = fs::read_to_string(inside.join("run/matic/boot")).unwrap();
    assert_eq!(
        boot,
        format!("slot=A\ndisk={}\nsuccessful=0\n", env.loopdev)
    );
    assert_eq!(
        attrs(&mut env.disk(), Slot::A),
        (2, 2, false),
        "stage 1 must spend one try"
    );

    // The mounts of the new root, as the namespace sees them.
    let mi = fs::read_to_string(format!("/proc/{}/mountinfo", ns.init_pid)).unwrap();
    let mount = |point: &str| -> Option<String> {
        mi.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .map(str::to_string)
    };
    let root_line = mount("/").expect("a root mount");
    assert!(
        root_line.contains(" - squashfs ")
            && root_line.split(' ').nth(5).unwrap().starts_with("ro"),
        "{root_line}"
    );
    assert!(mount("/var").expect("/var").contains(" - ext4 "), "{mi}");
    assert!(mount("/tmp").expect("/tmp").contains(" - tmpfs "), "{mi}");
    for p in [
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/dev/pts",
        "/sys/fs/cgroup",
        "/etc/kubernetes",
        "/etc/cni/net.d",
        "/opt/cni/bin",
    ] {
        assert!(mount(p).is_some(), "{p} not mounted:\n{mi}");
    }
    assert!(
        fs::metadata(inside.join("var/lib/matic/bind/etc/kubernetes"))
            .unwrap()
            .is_dir()
    );
    // Service output lands on MATIC_STATE; the initramfs was emptied.
    let agent_log = wait_until(Duration::from_secs(10), || {
        fs::read_to_string(inside.join("var/log/matic/matic-agent.log"))
            .ok()
            .filter(|l| l.contains("start"))
    });
    assert!(agent_log.is_some());
    assert!(
        !env.initramfs.join("init").exists(),
        "initramfs files must be deleted"
    );

    ns.signal(15);
    let st = ns.wait_exit(Duration::from_secs(20)).expect("shutdown");
    assert_eq!(st.signal(), Some(1), "{st:?}\n{}", kmsg_tail());
    // Shutdown unmounted /var: the ext4 is clean (not "not clean").
    let p4 = format!("{}p4", env.loopdev);
    let dump = run(Command::new("dumpe2fs").arg("-h").arg(&p4));
    let state = dump
        .lines()
        .find(|l| l.starts_with("Filesystem state:"))
        .unwrap_or_default();
    assert!(state.ends_with(" clean"), "{p4}: {state}\n{}", kmsg_tail());
}

#[test]
fn unmountable_slot_is_given_up_and_the_other_boots() {
    // B holds the image; A (a signed release of zeros: its manifest
    // verifies, its data is no SquashFS) was updated last, so A is tried
    // first.
    let env = setup_disk(
        "fallback",
        &Spec {
            a: Content::SignedZeros,
            b: Content::Good,
            updates: &[Slot::B, Slot::A],
            successful: &[],
            guid: Guid([7; 16]),
        },
    );
    assert_eq!(attrs(&mut env.disk(), Slot::A), (2, 3, false));
    assert_eq!(attrs(&mut env.disk(), Slot::B).0, 1);
    let disk_arg = format!("matic.disk={}", env.loopdev);

    let root = env.initramfs();
    let mut ns = root.start_program("/init", &[&disk_arg]);
    let st = ns
        .wait_exit(Duration::from_secs(60))
        .expect("stage 1 should reboot");
    assert_eq!(
        st.signal(),
        Some(1),
        "reboot expected: {st:?}\n{}",
        kmsg_tail()
    );
    assert_eq!(
        attrs(&mut env.disk(), Slot::A).0,
        0,
        "slot A must get priority 0"
    );

    // Next boot: B.
    let root = env.initramfs();
    let mut ns = root.start_program("/init", &[&disk_arg]);
    let inside = PathBuf::from(format!("/proc/{}/root", ns.init_pid));
    let boot = wait_until(Duration::from_secs(60), || {
        fs::read_to_string(inside.join("run/matic/boot")).ok()
    });
    assert_eq!(
        boot.as_deref(),
        Some(format!("slot=B\ndisk={}\nsuccessful=0\n", env.loopdev).as_str()),
        "{}",
        kmsg_tail()
    );
    // SIGTERM only once stage 2 handles it (it writes the status file after
    // blocking its signals; a PID 1 without handlers drops SIGTERM).
    let up = wait_until(Duration::from_secs(30), || {
        fs::read_to_string(inside.join("run/matic/services")).ok()
    });
    assert!(up.is_some(), "{}", kmsg_tail());
    ns.signal(15);
    assert!(ns.wait_exit(Duration::from_secs(20)).is_some());
    assert_eq!(
        attrs(&mut env.disk(), Slot::B),
        (1, 2, false),
        "B spent a try"
    );
}

/// Boots stage 1 once on `env` (delay before a kept-table reboot: 1 s) and
/// returns how long until it rebooted.
fn boot_until_reboot(env: &Env) -> Duration {
    let disk_arg = format!("matic.disk={}", env.loopdev);
    let root = env.initramfs();
    let t0 = Instant::now();
    let mut ns = root.start_program("/init", &[&disk_arg, "matic.test.retry_reboot_ms=1000"]);
    let st = ns
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("stage 1 should reboot\n{}", kmsg_tail()));
    assert_eq!(
        st.signal(),
        Some(1),
        "reboot expected: {st:?}\n{}",
        kmsg_tail()
    );
    t0.elapsed()
}

#[test]
fn a_successful_slot_survives_a_transient_mount_failure() {
    // A is proven; its partition node is missing (as when the kernel has
    // not created it yet): the mount fails with ENOENT, which is not the
    // image's fault. A must stay as it is; init retries after the delay.
    let env = setup_disk(
        "transient",
        &Spec {
            a: Content::Good,
            b: Content::Zeros,
            updates: &[Slot::A],
            successful: &[Slot::A],
            guid: Guid([8; 16]),
        },
    );
    run(Command::new("partx").arg("-d").arg(&env.loopdev));
    let before = attrs(&mut env.disk(), Slot::A);
    assert_eq!(before, (2, 3, true));
    let took = boot_until_reboot(&env);
    assert_eq!(
        attrs(&mut env.disk(), Slot::A),
        before,
        "a transient failure must not touch slot A\n{}",
        kmsg_tail()
    );
    assert!(
        took >= Duration::from_secs(1),
        "rebooted without delay: {took:?}"
    );
}

#[test]
fn an_image_failure_never_leaves_no_bootable_slot() {
    // A is proven but its image is gone (zeros: EINVAL, the image's fault),
    // and B will not boot: giving A up would leave nothing to boot. The
    // table must stay as it is; init retries after the delay.
    let env = setup_disk(
        "last-slot",
        &Spec {
            a: Content::Zeros,
            b: Content::Zeros,
            updates: &[Slot::A],
            successful: &[Slot::A],
            guid: Guid([9; 16]),
        },
    );
    assert_eq!(attrs(&mut env.disk(), Slot::B), (0, 0, false));
    for _ in 0..2 {
        let took = boot_until_reboot(&env);
        assert_eq!(
            attrs(&mut env.disk(), Slot::A),
            (2, 3, true),
            "the only bootable slot was given up\n{}",
            kmsg_tail()
        );
        assert!(
            took >= Duration::from_secs(1),
            "rebooted without delay: {took:?}"
        );
    }
}

#[test]
fn an_image_whose_init_is_missing_or_not_executable_is_given_up() {
    // A, on trial, mounts but has no /sbin/init (execve: ENOENT) or one the
    // kernel cannot execute (ENOEXEC): the image's fault, and B will boot,
    // so A is given up and B boots next.
    for (name, content) in [("no-init", Content::NoInit), ("bad-init", Content::BadInit)] {
        let env = setup_disk(
            name,
            &Spec {
                a: content,
                b: Content::Good,
                updates: &[Slot::B, Slot::A],
                successful: &[],
                guid: Guid([10; 16]),
            },
        );
        assert_eq!(attrs(&mut env.disk(), Slot::A), (2, 3, false));
        boot_until_reboot(&env);
        assert_eq!(
            attrs(&mut env.disk(), Slot::A),
            (0, 0, false),
            "{name}: slot A must be given up\n{}",
            kmsg_tail()
        );
        assert_eq!(attrs(&mut env.disk(), Slot::B), (1, 3, false), "{name}");
        // The next boot is B's.
        let mut disk = env.disk();
        let d = Disk::open(&mut disk[..]).unwrap();
        assert_eq!(d.status().next, Some(Slot::B), "{name}");
    }
}

#[test]
fn a_slot_whose_manifest_is_missing_or_does_not_verify_is_given_up() {
    // A, on trial, holds the good image and tree, but no manifest, a
    // manifest changed after signing, or one signed by a key the initramfs
    // does not trust: stage 1 refuses it before mounting anything, gives it
    // up (the image's fault, and B will boot), and B boots next.
    for (name, content, why) in [
        ("unsigned", Content::Unsigned, "no release manifest"),
        ("tampered", Content::Tampered, "signature does not verify"),
        (
            "unknown-key",
            Content::UnknownKey,
            "key that is not trusted",
        ),
    ] {
        let env = setup_disk(
            name,
            &Spec {
                a: content,
                b: Content::Good,
                updates: &[Slot::B, Slot::A],
                successful: &[],
                guid: Guid([11; 16]),
            },
        );
        let mark = kmsg_mark();
        boot_until_reboot(&env);
        let log = kmsg_since(mark);
        assert_eq!(
            attrs(&mut env.disk(), Slot::A),
            (0, 0, false),
            "{name}: slot A must be given up\n{log}"
        );
        assert!(
            log.contains("slot A: release manifest on") && log.contains(why),
            "{name}: the console must say why:\n{log}"
        );
        assert_eq!(attrs(&mut env.disk(), Slot::B), (1, 3, false), "{name}");
        let mut disk = env.disk();
        let d = Disk::open(&mut disk[..]).unwrap();
        assert_eq!(d.status().next, Some(Slot::B), "{name}");
    }
}

/// Two MaticOS disks on loop devices with the given GUIDs (slot A good and
/// on trial on both), the one whose name sorts last first.
fn two_disks(name: &str, guids: [Guid; 2]) -> (Env, Env) {
    let mk = |i: usize| {
        setup_disk(
            &format!("{name}-{i}"),
            &Spec {
                a: Content::Good,
                b: Content::Zeros,
                updates: &[Slot::A],
                successful: &[],
                guid: guids[i],
            },
        )
    };
    let (x, y) = (mk(0), mk(1));
    let key = |e: &Env| {
        let n = e.loopdev.trim_start_matches("/dev/").to_string();
        n.into_bytes()
    };
    if key(&x) > key(&y) { (x, y) } else { (y, x) }
}

/// The kernel log's latest timestamp: a mark for [`kmsg_since`]. (A line
/// count is no mark: once the ring buffer is full, old lines drop as new
/// ones come, and the count stays the same.)
fn kmsg_mark() -> f64 {
    let out = Command::new("dmesg").output().unwrap().stdout;
    String::from_utf8_lossy(&out)
        .lines()
        .rev()
        .find_map(kmsg_time)
        .unwrap_or(0.0)
}

/// `[  123.456789] text` → 123.456789.
fn kmsg_time(line: &str) -> Option<f64> {
    let rest = line.strip_prefix('[')?;
    rest[..rest.find(']')?].trim().parse().ok()
}

/// The kernel log's lines after `mark` ([`kmsg_mark`]).
fn kmsg_since(mark: f64) -> String {
    let out = Command::new("dmesg").output().unwrap().stdout;
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| kmsg_time(l).is_some_and(|t| t > mark))
        .collect();
    lines.join("\n")
}

#[test]
fn the_disk_guid_picks_the_system_disk_among_several() {
    // Found by scanning every whole disk (loop devices admitted for the
    // test): two carry a MaticOS table, and the one named by
    // matic.disk_guid= boots although the other comes first in name order.
    let guids = [Guid([0x5a; 16]), Guid([0x5b; 16])];
    let (target, other) = two_disks("guid", guids);
    let want = if target.base.ends_with("guid-0") {
        guids[0]
    } else {
        guids[1]
    };
    let root = target.initramfs();
    let guid_arg = format!("matic.disk_guid={want}");
    let mut ns = root.start_program("/init", &["matic.test.loop_disks=1", &guid_arg]);
    let inside = PathBuf::from(format!("/proc/{}/root", ns.init_pid));
    let boot = wait_until(Duration::from_secs(60), || {
        fs::read_to_string(inside.join("run/matic/boot")).ok()
    });
    assert_eq!(
        boot.as_deref(),
        Some(format!("slot=A\ndisk={}\nsuccessful=0\n", target.loopdev).as_str()),
        "{}",
        kmsg_tail()
    );
    assert_eq!(attrs(&mut target.disk(), Slot::A), (2, 2, false));
    assert_eq!(
        attrs(&mut other.disk(), Slot::A),
        (2, 3, false),
        "the other disk must not be touched"
    );
    let up = wait_until(Duration::from_secs(30), || {
        fs::read_to_string(inside.join("run/matic/services")).ok()
    });
    assert!(up.is_some(), "{}", kmsg_tail());
    ns.signal(15);
    assert!(ns.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn several_maticos_disks_and_no_guid_stop_the_boot() {
    // The same two disks without matic.disk_guid=: stage 1 must not guess.
    // It says why on the console and stays (no reboot), touching no table.
    let (x, y) = two_disks("ambiguous", [Guid([0x6a; 16]), Guid([0x6b; 16])]);
    let root = x.initramfs();
    let mark = kmsg_mark();
    let mut ns = root.start_program("/init", &["matic.test.loop_disks=1"]);
    let said = wait_until(Duration::from_secs(40), || {
        let k = kmsg_since(mark);
        (k.contains("carry a MaticOS table")
            && k.contains("boot stopped; name one with matic.disk_guid="))
        .then_some(k)
    });
    assert!(said.is_some(), "no stop message:\n{}", kmsg_since(mark));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        ns.wait_exit(Duration::ZERO).is_none(),
        "stage 1 must stop, not reboot:\n{}",
        kmsg_since(mark)
    );
    for e in [&x, &y] {
        assert_eq!(
            attrs(&mut e.disk(), Slot::A),
            (2, 3, false),
            "{}",
            e.loopdev
        );
    }
}

/// Starts stage 1 on `root` with `args`, waits until stage 2 runs the
/// services, and returns the namespace and the boot file.
fn boot_to_stage2(root: &TestRoot, args: &[&str]) -> (harness::Running, String) {
    let ns = root.start_program("/init", args);
    let inside = PathBuf::from(format!("/proc/{}/root", ns.init_pid));
    let up = wait_until(Duration::from_secs(60), || {
        let s = fs::read_to_string(inside.join("run/matic/services")).ok()?;
        s.lines()
            .any(|l| l.starts_with("matic-agent running"))
            .then_some(())
    });
    assert!(
        up.is_some(),
        "stage 2 never ran the services:\n{}",
        kmsg_tail()
    );
    let boot = fs::read_to_string(inside.join("run/matic/boot")).unwrap();
    (ns, boot)
}

#[test]
fn matic_slot_boots_the_given_slot_without_choosing_or_spending_a_try() {
    // B was updated last (priority 2, on trial): a normal boot chooses it
    // and spends a try. matic.slot=A (what the loader puts on the command
    // line of the kernel it kexecs into) takes A as is, and touches no
    // slot's bits; with no kexec, lockdown is raised.
    let env = setup_disk(
        "given-slot",
        &Spec {
            a: Content::Good,
            b: Content::Good,
            updates: &[Slot::A, Slot::B],
            successful: &[],
            guid: Guid([12; 16]),
        },
    );
    let before = (
        attrs(&mut env.disk(), Slot::A),
        attrs(&mut env.disk(), Slot::B),
    );
    assert_eq!(before, ((1, 3, false), (2, 3, false)));
    let root = env.loader_initramfs();
    let mark = kmsg_mark();
    let disk_arg = format!("matic.disk={}", env.loopdev);
    let (mut ns, boot) = boot_to_stage2(&root, &[&disk_arg, "matic.slot=A"]);
    assert_eq!(
        boot,
        format!("slot=A\ndisk={}\nsuccessful=0\n", env.loopdev)
    );
    assert_eq!(
        (
            attrs(&mut env.disk(), Slot::A),
            attrs(&mut env.disk(), Slot::B)
        ),
        before,
        "no try spent, no slot chosen\n{}",
        kmsg_tail()
    );
    let log = kmsg_since(mark);
    assert!(log.contains("slot A given by matic.slot= ("), "{log}");
    assert!(!log.contains("kexec into"), "{log}");
    assert!(log.contains("lockdown raised to integrity"), "{log}");
    ns.signal(15);
    assert!(ns.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn a_slot_whose_kernel_cannot_be_kexeced_is_given_up() {
    // A, on trial, carries another kernel-id than the initramfs but no
    // /boot/vmlinuz: stage 1 announces the kexec, fails to open the kernel
    // (the image's fault), gives A up and reboots; B boots next.
    let env = setup_disk(
        "kexec-missing",
        &Spec {
            a: Content::OtherKernelMissing,
            b: Content::Good,
            updates: &[Slot::B, Slot::A],
            successful: &[],
            guid: Guid([13; 16]),
        },
    );
    assert_eq!(attrs(&mut env.disk(), Slot::A), (2, 3, false));
    let root = env.loader_initramfs();
    let mark = kmsg_mark();
    let disk_arg = format!("matic.disk={}", env.loopdev);
    let mut ns = root.start_program("/init", &[&disk_arg]);
    let st = ns
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("stage 1 should reboot\n{}", kmsg_since(mark)));
    assert_eq!(st.signal(), Some(1), "reboot expected: {st:?}");
    let log = kmsg_since(mark);
    assert!(
        log.contains("kexec into slot A's kernel 6.1.0-test-2"),
        "{log}"
    );
    assert!(
        log.contains("slot A: kexec into its kernel: /newroot/boot/vmlinuz: os error 2"),
        "{log}"
    );
    assert_eq!(
        attrs(&mut env.disk(), Slot::A),
        (0, 0, false),
        "A must be given up\n{log}"
    );
    let mut disk = env.disk();
    assert_eq!(
        Disk::open(&mut disk[..]).unwrap().status().next,
        Some(Slot::B)
    );
}

#[test]
fn a_failed_kexec_with_no_other_slot_boots_with_the_running_kernel() {
    // The same slot, but B will not boot: giving A up would leave nothing.
    // The table is kept (A's try stays spent) and the running kernel boots
    // A, with lockdown raised: a failed kexec never bricks the node.
    let env = setup_disk(
        "kexec-last-slot",
        &Spec {
            a: Content::OtherKernelMissing,
            b: Content::Zeros,
            updates: &[Slot::A],
            successful: &[],
            guid: Guid([14; 16]),
        },
    );
    let root = env.loader_initramfs();
    let mark = kmsg_mark();
    let disk_arg = format!("matic.disk={}", env.loopdev);
    let (mut ns, boot) = boot_to_stage2(&root, &[&disk_arg]);
    assert_eq!(
        boot,
        format!("slot=A\ndisk={}\nsuccessful=0\n", env.loopdev)
    );
    assert_eq!(attrs(&mut env.disk(), Slot::A), (2, 2, false));
    let log = kmsg_since(mark);
    assert!(
        log.contains("kexec into slot A's kernel 6.1.0-test-2"),
        "{log}"
    );
    assert!(
        log.contains("slot A: partition table kept; the running kernel boots it"),
        "{log}"
    );
    assert!(log.contains("lockdown raised to integrity"), "{log}");
    ns.signal(15);
    assert!(ns.wait_exit(Duration::from_secs(20)).is_some());
}
