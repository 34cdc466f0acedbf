//! Stage 1's verified root device: reads the release manifest block at the
//! chosen slot's tail, checks it with the initramfs's trusted key
//! (`/usr/share/matic/release-keys/<key id>.pub`) and Ed25519, then creates
//! the dm-verity device `matic-root-<slot>` over the slot partition with the
//! DM ioctls (create, load the read-only `verity` table, resume) and returns
//! its `/dev/dm-<minor>` node, from which the SquashFS is mounted.
//!
//! What is checked and the table are `matic_init::verity`'s decisions, the
//! ioctl bytes `matic_init::dm`'s; this module only reads, opens and calls.
//! It returns a [`Stage1Error`]; it must never decide what a failure means
//! for the boot (`stage1.rs` does), touch the partition table, or hand back a
//! device built from a manifest that did not verify.

use crate::info;
use crate::sys;
use crate::util::{self, open, read_file};
use matic_boot::Slot;
use matic_init::dm::{self, IoctlBuf};
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::signature::{self, Ed25519};
use matic_init::stage1_error::Stage1Error;
use matic_init::verity::{self, ManifestProblem};
use matic_release::manifest::{BLOCK_LEN, Manifest};
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// The device-mapper control node, and its misc device number (10:236,
/// `MAPPER_CTRL_MINOR`).
const CONTROL: &core::ffi::CStr = c"/dev/mapper/control";
const CONTROL_DEV: (u32, u32) = (10, 236);
/// How long to wait for devtmpfs to create `/dev/dm-N` before making it.
const NODE_WAIT_MS: u64 = 2_000;

/// The chosen slot's partition `dev`, verified: its manifest checked and
/// the dm-verity device set up (a corrupted block restarts the machine
/// while the slot is on trial, fails the read once it is `successful`:
/// `verity::OnCorruption`). Returns the device node to mount.
pub fn verified(slot: Slot, dev: &Buf<64>, successful: bool) -> Result<Buf<64>, Stage1Error<'_>> {
    if cfg!(feature = "bench-unverified-root") {
        // scripts/bench-boot's build (Cargo.toml): no check at all.
        crate::warn!(
            "slot {}: BENCHMARK BUILD: {} mounted unverified",
            slot,
            Printable(dev.as_bytes())
        );
        let mut same = Buf::new();
        same.push_bytes(dev.as_bytes());
        return Ok(same);
    }
    let m = read_manifest(slot, dev)?;
    let verity_err = |op, errno| Stage1Error::Verity {
        slot,
        dev: dev.as_bytes(),
        op,
        errno,
    };
    let (major, minor) = partition_number(dev).map_err(|e| verity_err("stat", e))?;
    if cfg!(feature = "test-no-dm") {
        // init/tests' build (Cargo.toml): the manifest was checked above.
        crate::warn!(
            "slot {}: release {} verified; TEST BUILD: {} mounted without dm-verity",
            slot,
            Printable(m.version_bytes()),
            Printable(dev.as_bytes())
        );
        let mut same = Buf::new();
        same.push_bytes(dev.as_bytes());
        return Ok(same);
    }
    let control = open_control().map_err(|e| verity_err("/dev/mapper/control", e))?;
    let name = verity::device_name(slot);
    // `header`/`table` only refuse names and tables longer than their
    // fixed buffers, which ours never are (tested in `matic_init::verity`).
    let mut req =
        IoctlBuf::header(name, 0).ok_or(verity_err("DM_DEV_CREATE", Errno::NAMETOOLONG))?;
    sys::dm_ioctl(&control, linux_raw_sys::ioctl::DM_DEV_CREATE, &mut req)
        .map_err(|e| verity_err("DM_DEV_CREATE", e))?;
    let (dm_major, dm_minor) = req.dev();
    let on_corruption = verity::OnCorruption::for_slot(successful);
    let params = verity::table_params(&m, (major, minor), on_corruption);
    let mut req = IoctlBuf::table(
        name,
        verity::data_sectors(&m),
        verity::TARGET,
        params.as_bytes(),
    )
    .ok_or(verity_err("DM_TABLE_LOAD", Errno::TOOBIG))?;
    sys::dm_ioctl(&control, linux_raw_sys::ioctl::DM_TABLE_LOAD, &mut req)
        .map_err(|e| verity_err("DM_TABLE_LOAD", e))?;
    // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table goes
    // live.
    let mut req =
        IoctlBuf::header(name, 0).ok_or(verity_err("DM_DEV_SUSPEND", Errno::NAMETOOLONG))?;
    sys::dm_ioctl(&control, linux_raw_sys::ioctl::DM_DEV_SUSPEND, &mut req)
        .map_err(|e| verity_err("DM_DEV_SUSPEND (resume)", e))?;
    let mut node = dm::node_path(dm_minor);
    wait_node(&mut node, (dm_major, dm_minor)).map_err(|e| verity_err("/dev/dm-N", e))?;
    // The one line saying what runs: which release, signed by which key,
    // and the device the root comes from.
    info!(
        "slot {}: release {} (counter {}, key id {}, root {}…) verified; {} is {}",
        slot,
        Printable(m.version_bytes()),
        m.counter,
        Printable(&m.key_id.hex()),
        Printable(&verity::root_prefix(&m)),
        Printable(name),
        Printable(node.as_bytes())
    );
    Ok(node)
}

/// Reads and verifies the manifest block at the slot's tail.
fn read_manifest(slot: Slot, dev: &Buf<64>) -> Result<Manifest, Stage1Error<'_>> {
    let read_err = |errno| Stage1Error::ReadManifest {
        slot,
        dev: dev.as_bytes(),
        errno,
    };
    let bad = |problem| Stage1Error::BadManifest {
        slot,
        dev: dev.as_bytes(),
        problem,
    };
    let mut path = Buf::<64>::new();
    path.push_bytes(dev.as_bytes());
    let path = path.as_cstr().ok_or(read_err(Errno::NAMETOOLONG))?;
    let fd = open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(read_err)?;
    let part_len = rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0)).map_err(read_err)?;
    let at =
        verity::manifest_offset(part_len).ok_or(bad(ManifestProblem::SlotTooSmall { part_len }))?;
    let mut block = [0u8; BLOCK_LEN];
    read_exact_at(&fd, &mut block, at).map_err(read_err)?;
    let m = Manifest::verify(&block, trusted_key, &Ed25519)
        .map_err(|e| bad(ManifestProblem::Invalid(e)))?;
    verity::check_fits(&m, part_len).map_err(bad)?;
    Ok(m)
}

/// The trusted key `id` names, from the initramfs; `None` (an unknown key)
/// when its file is missing, unreadable or not a key file.
fn trusted_key(id: matic_release::KeyId) -> Option<matic_release::key::PublicKey> {
    let mut path = verity::key_path(id);
    let mut buf = [0u8; signature::KEY_FILE_MAX];
    let bytes = read_file(path.as_cstr()?, &mut buf).ok()?;
    signature::key_from_file(bytes)
}

fn read_exact_at(fd: &OwnedFd, mut buf: &mut [u8], mut off: u64) -> Result<(), Errno> {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, off) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `(major, minor)` of the block device node `dev`.
fn partition_number(dev: &Buf<64>) -> Result<(u32, u32), Errno> {
    let mut path = Buf::<64>::new();
    path.push_bytes(dev.as_bytes());
    let st = rustix::fs::stat(path.as_cstr().ok_or(Errno::NAMETOOLONG)?)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice {
        return Err(Errno::NOTBLK);
    }
    Ok((rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)))
}

/// Opens the DM control node, making it (10:236) if devtmpfs has not.
fn open_control() -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    match open(CONTROL, flags, Mode::empty()) {
        Err(Errno::NOENT) => {
            let _ = util::mkdir(c"/dev/mapper", 0o755);
            make_node(CONTROL, FileType::CharacterDevice, CONTROL_DEV)?;
            open(CONTROL, flags, Mode::empty())
        }
        r => r,
    }
}

/// Waits (bounded) for devtmpfs' `/dev/dm-N`, then makes the node itself.
fn wait_node(node: &mut Buf<64>, dev: (u32, u32)) -> Result<(), Errno> {
    let path = node.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    let end = util::now_ms() + NODE_WAIT_MS;
    while util::now_ms() < end {
        if rustix::fs::access(path, rustix::fs::Access::EXISTS).is_ok() {
            return Ok(());
        }
        util::sleep_ms(10);
    }
    make_node(path, FileType::BlockDevice, dev)
}

fn make_node(
    path: &core::ffi::CStr,
    kind: FileType,
    (major, minor): (u32, u32),
) -> Result<(), Errno> {
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major, minor),
    ) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}
