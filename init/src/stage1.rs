//! Stage 1, from the initramfs: mount the API file systems, load the
//! modules, find the MaticOS disk, choose the slot (spending a try), mount
//! it and `MATIC_STATE`, hand the boot facts to stage 2 in
//! `/run/matic/boot`, switch root and exec the image's `/sbin/init`.
//!
//! Every failure is logged to `/dev/kmsg`. A chosen slot that fails to
//! start is given up (`Disk::give_up`) only when the failure is its image's
//! (`matic_init::slotfault`) and the other slot will boot; otherwise the
//! partition table is kept and init reboots after [`RETRY_REBOOT_MS`]. It
//! never writes slot attributes itself. Anything else that prevents booting
//! is `fatal!`: logged in full, then init syncs and reboots (spending
//! another try of an unproven slot), as the panic handler does for a bug.

use crate::util::{self, open, read_file};
use crate::{error, fatal, info, sys, warn};
use core::ffi::CStr;
use matic_boot::{BlockDevice, Disk, Guid, Slot};
use matic_contract::boot::BootFile;
use matic_contract::paths;
use matic_init::diskpick::{self, Found, Name, Picker, Scan, Verdict};
use matic_init::fmtbuf::{BootError, Buf, Printable};
use matic_init::rootfs::{self, BINDS};
use matic_init::show;
use matic_init::slotfault::{self, Fault, Step};
use matic_init::{cmdline, modlist};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, openat};
use rustix::io::Errno;
use rustix::mount::{MountFlags, mount, mount_bind, mount_move};

/// How long to wait for the disk to show up (drivers probe asynchronously).
const DISK_WAIT_MS: u64 = 30_000;
/// How long to wait before rebooting when the chosen slot failed and the
/// table is kept (a failure not the image's, or no other slot to fall back
/// to): a fixed delay, since nothing that survives a reboot may count the
/// attempts (the GPT's slot bits are `matic-boot`'s), that keeps a retry
/// loop slow and its console readable. `matic.test.retry_reboot_ms=` in
/// argv (tests only) overrides it.
const RETRY_REBOOT_MS: u64 = 30_000;
/// `finit_module` flag: the kernel decompresses the file (Linux ≥ 6.4).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Whether this PID 1 runs from the initramfs (see [`rootfs::is_stage1`]).
pub fn applies() -> bool {
    let magic = rustix::fs::statfs(c"/")
        .map(|s| s.f_type as u64)
        .unwrap_or(0);
    let has_init = rustix::fs::access(c"/init", rustix::fs::Access::EXISTS).is_ok();
    let has_boot = rustix::fs::access(paths::BOOT_PATH, rustix::fs::Access::EXISTS).is_ok();
    rootfs::is_stage1(magic, has_init, has_boot)
}

/// Entry of stage 1. `args` are init's argv: the kernel never puts a
/// dotted `key=value` there, so `matic.disk=` in argv can only come from a
/// test harness; it overrides the command line's.
pub fn run(args: &[&'static CStr]) -> ! {
    mount_api();
    util::ensure_std_fds();
    // The kernel rate-limits /dev/kmsg writers (10 lines per 5 s) and drops
    // the rest silently; PID 1's log is the only record of a failed boot and
    // of the shutdown sequence, so lift the limit (ignored when the command
    // line already fixed printk.devkmsg).
    let _ = open(
        c"/proc/sys/kernel/printk_devkmsg",
        OFlags::WRONLY,
        Mode::empty(),
    )
    .and_then(|fd| util::write_all(&fd, b"on\n"));
    crate::log::init();
    info!("stage 1: from the initramfs");
    load_modules();

    let mut cmdline = [0u8; 1024];
    let cmdline = read_file(c"/proc/cmdline", &mut cmdline).unwrap_or(&[]);
    let argv = |key: &[u8]| {
        args.iter()
            .skip(1)
            .find_map(|a| cmdline::value(a.to_bytes(), key))
    };
    let retry_ms = argv(b"matic.test.retry_reboot_ms")
        .and_then(cmdline::parse_u64)
        .unwrap_or(RETRY_REBOOT_MS);
    let mut want = Buf::<64>::new();
    let from_argv = argv(b"matic.disk");
    if let Some(d) = from_argv.or_else(|| cmdline::value(cmdline, b"matic.disk")) {
        want.push_bytes(d);
    }
    let guid =
        match argv(b"matic.disk_guid").or_else(|| cmdline::value(cmdline, b"matic.disk_guid")) {
            Some(t) => {
                let g = diskpick::parse_guid(t);
                if g.is_none() {
                    error!("matic.disk_guid={}: not a GUID, ignored", Printable(t));
                }
                g
            }
            None => None,
        };
    let with_loop = argv(b"matic.test.loop_disks") == Some(b"1");
    let (mut disk, disk_name) = find_disk(want.as_bytes(), guid, with_loop);
    let mut disk_path = Buf::<64>::new();
    show!(&mut disk_path, "/dev/{}", Printable(disk_name.as_bytes()));

    // Choose the slot; spend a try if it has not succeeded yet.
    let before = disk.status();
    let slot = match disk.choose_boot_slot() {
        Ok(s) => s,
        Err(e) => fatal!(
            "{}: no bootable slot: {}",
            Printable(disk_path.as_bytes()),
            BootError(&e)
        ),
    };
    let attrs = disk.slot_attrs(slot);
    let successful = attrs.successful();
    if disk.status() != before
        && let Err(e) = disk.write()
    {
        fatal!(
            "{}: writing the partition table: {}",
            Printable(disk_path.as_bytes()),
            BootError(&e)
        );
    }
    info!(
        "slot {} chosen ({}) on {} (GUID {})",
        slot,
        attrs,
        Printable(disk_path.as_bytes()),
        disk.disk_guid()
    );

    let root = disk.slot_partition(slot);
    let state = disk.state_partition().ok();
    let root_dev = partition_dev(disk_name.as_bytes(), root.number);
    if let Err(e) = mount_cstr(&root_dev, c"/newroot", c"squashfs", MountFlags::RDONLY) {
        slot_failed(
            &mut disk,
            slot,
            root_dev.as_bytes(),
            Step::Mount,
            e,
            retry_ms,
        );
    }
    mount_state(disk_name.as_bytes(), state.map(|p| p.number));
    writable_mounts();
    write_boot_file(slot, disk_path.as_bytes(), successful);
    switch_root();
    // The disk stays open (close-on-exec) in case the image's init cannot
    // be executed.
    let argv = [c"/sbin/init".as_ptr(), core::ptr::null()];
    let envp = [core::ptr::null()];
    let e = sys::execve(c"/sbin/init", &argv, &envp);
    slot_failed(
        &mut disk,
        slot,
        root_dev.as_bytes(),
        Step::ExecInit,
        e,
        retry_ms,
    )
}

/// The chosen slot (partition `dev`) failed to start at `step`: it is
/// given up when that is its image's fault and the other slot will boot
/// (then reboot at once); otherwise the table stays as it is and init
/// reboots after `retry_ms`.
fn slot_failed(
    disk: &mut Disk<BlockFd>,
    slot: Slot,
    dev: &[u8],
    step: Step,
    e: Errno,
    retry_ms: u64,
) -> ! {
    error!(
        "slot {}: {} failed: {} ({})",
        slot,
        step.as_str(),
        e,
        Printable(dev)
    );
    if slotfault::classify(step, e) == Fault::Image {
        match disk.give_up(slot).and_then(|()| disk.write()) {
            Ok(()) => fatal!("slot {}: its image cannot boot; slot given up", slot),
            Err(g) => error!(
                "slot {}: its image cannot boot, but {}",
                slot,
                BootError(&g)
            ),
        }
    } else {
        error!("slot {}: not the image's fault", slot);
    }
    error!(
        "slot {}: partition table kept; rebooting in {} ms",
        slot, retry_ms
    );
    util::sleep_ms(retry_ms);
    util::reboot_now()
}

fn mount_cstr(src: &Buf<64>, dst: &CStr, fs: &CStr, flags: MountFlags) -> Result<(), Errno> {
    let mut s = Buf::<64>::new();
    s.push_bytes(src.as_bytes());
    let src = s.as_cstr().ok_or(Errno::NAMETOOLONG)?;
    mount(src, dst, fs, flags, None)
}

/// `/proc`, `/sys`, `/dev`, `/dev/pts`, `/run`, `/sys/fs/cgroup`.
fn mount_api() {
    let (nosuid, nodev, noexec) = (MountFlags::NOSUID, MountFlags::NODEV, MountFlags::NOEXEC);
    let list: [(&CStr, &CStr, &CStr, MountFlags, Option<&CStr>); 6] = [
        (c"proc", c"/proc", c"proc", nosuid | nodev | noexec, None),
        (c"sysfs", c"/sys", c"sysfs", nosuid | nodev | noexec, None),
        (
            c"devtmpfs",
            c"/dev",
            c"devtmpfs",
            nosuid | noexec,
            Some(c"mode=0755"),
        ),
        (
            c"devpts",
            c"/dev/pts",
            c"devpts",
            nosuid | noexec,
            Some(c"gid=5,mode=0620,ptmxmode=0666"),
        ),
        (
            c"tmpfs",
            c"/run",
            c"tmpfs",
            nosuid | nodev,
            Some(c"mode=0755"),
        ),
        (
            c"cgroup2",
            c"/sys/fs/cgroup",
            c"cgroup2",
            nosuid | nodev | noexec,
            Some(c"nsdelegate"),
        ),
    ];
    for (src, dst, fs, flags, data) in list {
        let _ = util::mkdir(dst, 0o755);
        if let Err(e) = mount(src, dst, fs, flags, data) {
            // Logged to stderr (the console) if /dev/kmsg is not there yet.
            error!(
                "mount {} on {}: {}",
                Printable(fs.to_bytes()),
                Printable(dst.to_bytes()),
                e
            );
        }
    }
}

/// Loads `/lib/modules/load.list` in order; failures are logged and skipped.
fn load_modules() {
    let mut text = [0u8; 8192];
    let text = match read_file(c"/lib/modules/load.list", &mut text) {
        Ok(t) => t,
        Err(e) => {
            warn!("/lib/modules/load.list: {}: no modules loaded", e);
            return;
        }
    };
    let (mut loaded, mut failed) = (0, 0);
    for entry in modlist::entries(text) {
        let m = match entry {
            Ok(m) => m,
            Err(modlist::ModListError::BadLine(l)) => {
                warn!("load.list: bad line {}", Printable(l));
                continue;
            }
        };
        let mut path = Buf::<256>::new();
        path.push_bytes(m.path);
        let Some(p) = path.as_cstr() else { continue };
        let flags = if m.compressed {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        let r = open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .and_then(|fd| rustix::system::finit_module(&fd, c"", flags));
        match r {
            Ok(()) | Err(Errno::EXIST) => loaded += 1,
            Err(e) => {
                failed += 1;
                warn!("module {}: {}", Printable(m.path), e);
            }
        }
    }
    info!("modules: {} loaded or present, {} failed", loaded, failed);
}

/// A block device over a raw fd, for `matic-boot`.
struct BlockFd(OwnedFd);

impl BlockDevice for BlockFd {
    type Error = Errno;
    fn read_at(&mut self, mut off: u64, mut buf: &mut [u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            match rustix::io::pread(&self.0, &mut *buf, off) {
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
    fn write_at(&mut self, mut off: u64, mut buf: &[u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            match rustix::io::pwrite(&self.0, buf, off) {
                Ok(0) => return Err(Errno::IO),
                Ok(n) => {
                    buf = &buf[n..];
                    off += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Errno> {
        rustix::fs::fsync(&self.0)
    }
    fn size(&mut self) -> Result<u64, Errno> {
        rustix::fs::seek(&self.0, rustix::fs::SeekFrom::End(0))
    }
    fn sector_size(&mut self) -> Result<u32, Errno> {
        rustix::fs::ioctl_blksszget(&self.0)
    }
}

/// Waits (bounded) for the MaticOS disk: the one `matic.disk=` names, else
/// every whole disk of `/sys/block` in name order. Among those whose GPT
/// `matic-boot` opens, the one with `guid` (`matic.disk_guid=`) wins, or
/// without a GUID the only one; when several would do, the boot stops.
fn find_disk(want: &[u8], guid: Option<Guid>, with_loop: bool) -> (Disk<BlockFd>, Name) {
    let want = want.strip_prefix(b"/dev/").unwrap_or(want);
    let end = util::now_ms() + DISK_WAIT_MS;
    let mut last_err = Buf::<128>::new();
    loop {
        let mut pick = Picker::new(guid);
        if !want.is_empty() {
            if let Some(d) = open_disk(want, &mut last_err) {
                pick.offer(want, d.disk_guid());
            }
        } else {
            let mut scan = Scan::new(with_loop);
            while let Some(name) = next_disk(&mut scan) {
                if let Some(d) = open_disk(name, &mut last_err) {
                    pick.offer(name, d.disk_guid());
                }
            }
        }
        match pick.verdict() {
            Verdict::Use(name) => {
                if let Some(d) = open_disk(name, &mut last_err) {
                    let mut n = Name::new();
                    n.push_bytes(name);
                    return (d, n);
                }
            }
            Verdict::Ambiguous(a, b, n) => stop_ambiguous(a, b, n),
            Verdict::Wait => {}
        }
        if util::now_ms() >= end {
            if let (Some(g), Some(o)) = (guid, pick.other()) {
                fatal!(
                    "no MaticOS disk with GUID {} (matic.disk_guid=) after {} s; /dev/{} has GUID {}",
                    g,
                    DISK_WAIT_MS / 1000,
                    Printable(o.name.as_bytes()),
                    o.guid
                );
            }
            fatal!(
                "no MaticOS disk after {} s (last: {})",
                DISK_WAIT_MS / 1000,
                Printable(last_err.as_bytes())
            );
        }
        util::sleep_ms(100);
    }
}

/// One pass over `/sys/block` (whole disks only: partitions are not
/// there); the next candidate in name order.
fn next_disk(scan: &mut Scan) -> Option<&[u8]> {
    if let Ok(dir) = open(
        c"/sys/block",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 2048];
        let mut it = RawDir::new(&dir, &mut buf);
        while let Some(Ok(e)) = it.next() {
            scan.offer(e.file_name().to_bytes());
        }
    }
    scan.end_pass()
}

/// Opens `/dev/NAME` and its MaticOS GPT; why not, into `last_err`.
fn open_disk(name: &[u8], last_err: &mut Buf<128>) -> Option<Disk<BlockFd>> {
    let mut path = Buf::<64>::new();
    show!(&mut path, "/dev/{}", Printable(name));
    let r = match path.as_cstr() {
        Some(p) => open(p, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()),
        None => Err(Errno::NAMETOOLONG),
    };
    last_err.clear();
    match r.map(|fd| Disk::open(BlockFd(fd))) {
        Ok(Ok(d)) => return Some(d),
        Ok(Err(e)) => show!(last_err, "/dev/{}: {}", Printable(name), BootError(&e)),
        Err(e) => show!(last_err, "/dev/{}: {}", Printable(name), e),
    }
    None
}

/// Several disks carry a MaticOS table and the command line does not say
/// which: booting either could run a stranger's image or write a data
/// disk's table, so stage 1 stops here (the condition does not go away by
/// rebooting), repeating why on the console.
fn stop_ambiguous(a: &Found, b: &Found, n: u32) -> ! {
    loop {
        error!(
            "{} disks carry a MaticOS table, e.g. /dev/{} ({}) and /dev/{} ({}): boot stopped; name one with matic.disk_guid= or matic.disk=",
            n,
            Printable(a.name.as_bytes()),
            a.guid,
            Printable(b.name.as_bytes()),
            b.guid
        );
        util::sleep_ms(60_000);
    }
}

/// `/dev/<partition>` for partition `number` of `disk`, once the kernel has
/// created it (checked against `/sys/class/block/<name>/partition`).
fn partition_dev(disk: &[u8], number: u32) -> Buf<64> {
    let mut name = Buf::<32>::new();
    rootfs::partition_name(disk, number, &mut name);
    let mut sys = Buf::<96>::new();
    show!(
        &mut sys,
        "/sys/class/block/{}/partition",
        Printable(name.as_bytes())
    );
    let end = util::now_ms() + 5_000;
    loop {
        let mut t = [0u8; 16];
        let ok = sys
            .as_cstr()
            .and_then(|p| read_file(p, &mut t).ok())
            .and_then(|t| cmdline::parse_u64(t.strip_suffix(b"\n").unwrap_or(t)))
            == Some(u64::from(number));
        if ok || util::now_ms() >= end {
            if !ok {
                warn!(
                    "{}: not confirmed as partition {} by sysfs",
                    Printable(name.as_bytes()),
                    number
                );
            }
            let mut dev = Buf::<64>::new();
            show!(&mut dev, "/dev/{}", Printable(name.as_bytes()));
            return dev;
        }
        util::sleep_ms(50);
    }
}

/// `MATIC_STATE` (ext4) at `/newroot/var`. If it cannot be mounted the boot
/// goes on with a tmpfs there (logged): the node comes up for diagnosis,
/// and an unproven slot still rolls back by its boot deadline.
fn mount_state(disk: &[u8], number: Option<u32>) {
    let r = match number {
        Some(n) => {
            let dev = partition_dev(disk, n);
            mount_cstr(
                &dev,
                c"/newroot/var",
                c"ext4",
                MountFlags::NOSUID | MountFlags::NODEV,
            )
            .map_err(|e| (e, dev))
        }
        None => Err((Errno::NOENT, Buf::new())),
    };
    if let Err((e, dev)) = r {
        error!(
            "MATIC_STATE {}: mount failed ({}); /var is a tmpfs for this boot",
            Printable(dev.as_bytes()),
            e
        );
        let _ = mount(
            c"tmpfs",
            c"/newroot/var",
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=0755"),
        );
    }
}

/// `/tmp` as tmpfs; the Kubernetes-written `/etc` paths bound from `/var`.
fn writable_mounts() {
    if let Err(e) = mount(
        c"tmpfs",
        c"/newroot/tmp",
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=1777"),
    ) {
        error!("mount tmpfs on /tmp: {}", e);
    }
    for (src, dst) in BINDS {
        let mut s = Buf::<128>::new();
        show!(&mut s, "/newroot{}", src);
        mkdir_p(s.as_bytes());
        let mut d = Buf::<128>::new();
        show!(&mut d, "/newroot{}", dst);
        let (Some(sc), Some(dc)) = (s.as_cstr(), d.as_cstr()) else {
            continue;
        };
        if let Err(e) = mount_bind(sc, dc) {
            error!("bind {} on {}: {}", src, dst, e);
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

fn write_boot_file(slot: Slot, disk: &[u8], successful: bool) {
    let _ = util::mkdir(paths::RUN_DIR, 0o755);
    let mut text = Buf::<128>::new();
    let info = BootFile {
        slot,
        disk,
        successful,
    };
    info.render(&mut text);
    let r = open(
        paths::BOOT_PATH,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .and_then(|fd| util::write_all(&fd, text.as_bytes()));
    if let Err(e) = r {
        error!("writing /run/matic/boot: {}", e);
    }
}

/// Moves the API mounts into the new root, empties the initramfs (it is the
/// root file system and cannot be unmounted; deleting frees its memory),
/// then makes `/newroot` the root: `MS_MOVE` onto `/`, `chroot`, `chdir`.
fn switch_root() {
    for (from, to) in [
        (c"/dev", c"/newroot/dev"),
        (c"/proc", c"/newroot/proc"),
        (c"/sys", c"/newroot/sys"),
        (c"/run", c"/newroot/run"),
    ] {
        if let Err(e) = mount_move(from, to) {
            error!(
                "move {} to {}: {}",
                Printable(from.to_bytes()),
                Printable(to.to_bytes()),
                e
            );
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
        Err(e) => warn!("opening / to empty the initramfs: {}", e),
    }
    if let Err(e) = rustix::process::chdir(c"/newroot") {
        fatal!("chdir /newroot: {}", e);
    }
    if let Err(e) = mount_move(c".", c"/") {
        fatal!("moving /newroot onto /: {}", e);
    }
    if let Err(e) = rustix::process::chroot(c".") {
        fatal!("chroot: {}", e);
    }
    let _ = rustix::process::chdir(c"/");
}

/// Deletes everything under `dir` that is on device `dev` (never crossing
/// into a mount), sparing `/newroot` at the top.
fn remove_tree(dir: &OwnedFd, dev: u64, depth: u32, top: bool) {
    if depth > 32 {
        return;
    }
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
                if n == b"." || n == b".." || (top && n == b"newroot") {
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
