//! Every mount init makes or undoes: stage 1's API file systems (and
//! securityfs, for the lockdown level), the slot's SquashFS, `MATIC_STATE` (or a tmpfs) at `/var`, `/tmp` and the
//! bind mounts from `/var`, the switch to the new root (with the initramfs
//! emptied), and stage 2's release of `/var` before the power goes. Paths
//! of the new root are built from [`NEW_ROOT`] ([`in_new_root`]).
//!
//! Failures are returned or handed to the caller's `report` as a
//! [`Stage1Error`]; this module must never decide what one means for the
//! boot (`stage1.rs` does) nor touch the partition table.

use crate::util::{self, open};
use crate::{info, warn};
use core::ffi::CStr;
use matic_init::fmtbuf::Buf;
use matic_init::rootfs::{BINDS, NEW_ROOT};
use matic_init::stage1_error::Stage1Error;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, openat};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags, mount, mount_bind, mount_move, unmount};

/// Where a stage-1 step that goes on after a failure reports it.
pub type Report<'a> = &'a mut dyn FnMut(Stage1Error<'_>);

/// `path` (absolute) under the new root: `/var` is `/newroot/var`.
pub fn in_new_root(path: &[u8]) -> Buf<128> {
    let mut b = Buf::new();
    b.push_bytes(NEW_ROOT.to_bytes());
    b.push_bytes(path);
    b
}

/// The flag sets of [`API_MOUNTS`], as constants so that it can be a
/// `static`.
const NOSUID_NODEV: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);
const NOSUID_NOEXEC: MountFlags = MountFlags::NOSUID.union(MountFlags::NOEXEC);
const NOSUID_NODEV_NOEXEC: MountFlags = NOSUID_NODEV.union(MountFlags::NOEXEC);

/// The API file systems, in mount order: source, target, type, flags, data.
/// A `static`, not a local array built on the stack at each call: 48 bytes
/// less code (docs/init.md "Size").
static API_MOUNTS: [(&CStr, &CStr, &CStr, MountFlags, Option<&CStr>); 7] = [
    (c"proc", c"/proc", c"proc", NOSUID_NODEV_NOEXEC, None),
    (c"sysfs", c"/sys", c"sysfs", NOSUID_NODEV_NOEXEC, None),
    (
        c"devtmpfs",
        c"/dev",
        c"devtmpfs",
        NOSUID_NOEXEC,
        Some(c"mode=0755"),
    ),
    (
        c"devpts",
        c"/dev/pts",
        c"devpts",
        NOSUID_NOEXEC,
        Some(c"gid=5,mode=0620,ptmxmode=0666"),
    ),
    (
        c"tmpfs",
        c"/run",
        c"tmpfs",
        NOSUID_NODEV,
        Some(c"mode=0755"),
    ),
    (
        c"cgroup2",
        c"/sys/fs/cgroup",
        c"cgroup2",
        NOSUID_NODEV_NOEXEC,
        Some(c"nsdelegate"),
    ),
    // The crash records of earlier boots (kernel panics kept by the
    // firmware's ERST or EFI variables): the agent moves them into the
    // boot history (docs/history.md).
    (
        c"pstore",
        c"/sys/fs/pstore",
        c"pstore",
        NOSUID_NODEV_NOEXEC,
        None,
    ),
];

/// `/proc`, `/sys`, `/dev`, `/dev/pts`, `/run`, `/sys/fs/cgroup`.
pub fn mount_api(report: Report<'_>) {
    for &(src, target, fs, flags, data) in &API_MOUNTS {
        let _ = util::mkdir(target, 0o755);
        if let Err(errno) = mount(src, target, fs, flags, data) {
            // Logged to stderr (the console) if /dev/kmsg is not there yet.
            report(Stage1Error::MountApi { fs, target, errno });
        }
    }
}

/// securityfs at `/sys/kernel/security` (where the kernel shows the
/// lockdown level), when it is not mounted yet.
pub fn securityfs() -> Result<(), Errno> {
    mount(
        c"securityfs",
        c"/sys/kernel/security",
        c"securityfs",
        NOSUID_NODEV_NOEXEC,
        None,
    )
}

/// Mounts `src` (a device path) on `target` as `fs`.
fn mount_dev(src: &Buf<64>, target: &CStr, fs: &CStr, flags: MountFlags) -> Result<(), Errno> {
    let mut s = Buf::<64>::new();
    s.push_bytes(src.as_bytes());
    let src = s.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    mount(src, target, fs, flags, None)
}

/// The slot's root device `dev` (its dm-verity device), read-only SquashFS,
/// at [`NEW_ROOT`].
pub fn mount_slot(dev: &Buf<64>) -> Result<(), Errno> {
    mount_dev(dev, NEW_ROOT, c"squashfs", MountFlags::RDONLY)
}

/// `MATIC_STATE` (ext4, partition device `dev`, `None` when the table has
/// none: `ENOENT`) at the new root's `/var`.
pub fn mount_state(dev: Option<&Buf<64>>) -> Result<(), Errno> {
    let mut var = in_new_root(b"/var");
    let var = var.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    let dev = dev.ok_or(Errno::NOENT)?;
    mount_dev(dev, var, c"ext4", MountFlags::NOSUID | MountFlags::NODEV)
}

/// A tmpfs at the new root's `/var`, when `MATIC_STATE` cannot be mounted:
/// the node comes up for diagnosis.
pub fn var_tmpfs() {
    let mut var = in_new_root(b"/var");
    if let Some(var) = var.as_cstr() {
        let _ = mount(
            c"tmpfs",
            var,
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=0755"),
        );
    }
}

/// `/tmp` as tmpfs; the Kubernetes-written `/etc` paths bound from `/var`.
pub fn writable(report: Report<'_>) {
    let mut tmp = in_new_root(b"/tmp");
    if let Some(tmp) = tmp.as_cstr()
        && let Err(e) = mount(
            c"tmpfs",
            tmp,
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=1777"),
        )
    {
        report(Stage1Error::MountTmp(e));
    }
    for (src, target) in BINDS {
        let mut s = in_new_root(src.as_bytes());
        mkdir_p(s.as_bytes());
        let mut d = in_new_root(target.as_bytes());
        let (Some(sc), Some(dc)) = (s.as_cstr(), d.as_cstr()) else {
            continue;
        };
        if let Err(errno) = mount_bind(sc, dc) {
            report(Stage1Error::Bind { src, target, errno });
        }
    }
}

/// Creates `path` and its parents (mode 0755).
fn mkdir_p(path: &[u8]) {
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'/' {
            mk(&path[..i]);
        }
    }
    mk(path);
    fn mk(p: &[u8]) {
        let mut b = Buf::<128>::new();
        b.push_bytes(p);
        if let Some(c) = b.as_cstr() {
            let _ = util::mkdir(c, 0o755);
        }
    }
}

/// Moves the API mounts into the new root, empties the initramfs (it is the
/// root file system and cannot be unmounted; deleting frees its memory),
/// then makes [`NEW_ROOT`] the root: `MS_MOVE` onto `/`, `chroot`, `chdir`.
pub fn switch_root(report: Report<'_>) -> Result<(), Stage1Error<'static>> {
    for from in [c"/dev", c"/proc", c"/sys", c"/run"] {
        let mut to = in_new_root(from.to_bytes());
        let r = match to.as_cstr() {
            Some(to) => mount_move(from, to),
            None => Err(Errno::NAMETOOLONG),
        };
        if let Err(errno) = r {
            report(Stage1Error::MoveApi { from, errno });
        }
    }
    match open(
        c"/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(root) => {
            let dev = rustix::fs::fstat(&root).map(|s| s.st_dev).unwrap_or(0);
            remove_tree(&root, dev, 0, true);
        }
        Err(e) => report(Stage1Error::OpenInitramfs(e)),
    }
    rustix::process::chdir(NEW_ROOT).map_err(Stage1Error::ChdirNewRoot)?;
    mount_move(c".", c"/").map_err(Stage1Error::MoveNewRoot)?;
    rustix::process::chroot(c".").map_err(Stage1Error::Chroot)?;
    let _ = rustix::process::chdir(c"/");
    Ok(())
}

/// Deletes everything under `dir` that is on device `dev` (never crossing
/// into a mount), sparing [`NEW_ROOT`] at the top.
fn remove_tree(dir: &OwnedFd, dev: u64, depth: u32, top: bool) {
    if depth > 32 {
        return;
    }
    let new_root = &NEW_ROOT.to_bytes()[1..];
    // Collect names first: deleting while reading a directory can skip
    // entries. Several passes cover directories with more than 32 entries.
    loop {
        let mut names = heapless::Vec::<Buf<256>, 32>::new();
        let mut more = false;
        {
            let _ = rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0));
            let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 1024];
            let mut it = RawDir::new(dir.as_fd(), &mut buf);
            while let Some(Ok(e)) = it.next() {
                let n = e.file_name().to_bytes();
                if n == b"." || n == b".." || (top && n == new_root) {
                    continue;
                }
                let mut b = Buf::new();
                b.push_bytes(n);
                if names.push(b).is_err() {
                    more = true;
                    break;
                }
            }
        }
        let mut removed = 0;
        for name in names.iter_mut() {
            let Some(c) = name.as_cstr() else { continue };
            let Ok(st) = rustix::fs::statat(dir, c, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue;
            }
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                if let Ok(sub) = openat(
                    dir,
                    c,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    remove_tree(&sub, dev, depth + 1, false);
                }
                if rustix::fs::unlinkat(dir, c, AtFlags::REMOVEDIR).is_ok() {
                    removed += 1;
                }
            } else if rustix::fs::unlinkat(dir, c, AtFlags::empty()).is_ok() {
                removed += 1;
            }
        }
        if !more || removed == 0 {
            return;
        }
    }
}

/// Stage 2, at shutdown: closes `MATIC_STATE` cleanly before the power
/// goes. The bind mounts that stage 1 made from `/var` ([`BINDS`]) hold the
/// same ext4 superblock: while they exist, unmounting `/var` only detaches
/// one mount point and the journal stays open (the next boot needs a
/// recovery). So: unmount the binds (newest first), remount the superblock
/// read-only (which closes the journal even if something still holds it),
/// then unmount `/var`.
pub fn release_var() {
    for (_, target) in BINDS.iter().rev() {
        let mut t = Buf::<64>::new();
        t.push_bytes(target.as_bytes());
        if let Some(t) = t.as_cstr() {
            // Absent in a test root: nothing to undo.
            let _ = unmount(t, UnmountFlags::empty());
        }
    }
    let ro = rustix::mount::mount_remount(c"/var", MountFlags::RDONLY, c"");
    match (ro, unmount(c"/var", UnmountFlags::empty())) {
        (_, Ok(())) => info!("/var unmounted"),
        (Ok(()), Err(e)) => info!("/var busy ({}): left read-only", e),
        (Err(e1), Err(e2)) => warn!("/var: remount read-only {}, unmount {}", e1, e2),
    }
}
