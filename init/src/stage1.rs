//! Stage 1, from the initramfs, as a sequence of steps: mount the API file
//! systems, load the modules, find the MaticOS disk, choose the slot
//! (spending a try) or take the one `matic.slot=` gives, verify its release
//! manifest and set up its dm-verity device (`rootdev`), mount it, kexec
//! into the slot's own kernel or raise lockdown (`slotkernel`), mount
//! `MATIC_STATE`, hand the boot facts to stage 2 in `/run/matic/boot`,
//! switch root and exec the image's `/sbin/init`. The steps live in
//! `blockdev`, `modules`, `rootdev`, `slotkernel` and `mounts`; this
//! file owns their order and [`handle`], the one place a failure
//! ([`Stage1Error`], decided by [`Stage1Error::then`]) is acted on.
//!
//! Every failure is logged to `/dev/kmsg`. A chosen slot that fails to
//! start is given up (`Disk::give_up`) only when the failure is its image's
//! (`matic_init::slotfault`) and the other slot will boot; otherwise the
//! partition table is kept and init reboots after [`RETRY_REBOOT_MS`]. It
//! must never write slot attributes itself. Anything else that prevents
//! booting is fatal: logged in full, then init syncs and reboots (spending
//! another try of an unproven slot), as the panic handler does for a bug.

use crate::blockdev::{self, BlockFd};
use crate::util::{self, open, read_file};
use crate::{error, fatal, info, mounts, rootdev, slotkernel, sys, warn};
use core::ffi::CStr;
use matic_boot::{Disk, Slot};
use matic_contract::boot::BootFile;
use matic_contract::paths;
use matic_init::cmdline;
use matic_init::diskpick;
use matic_init::fmtbuf::{BootError, Buf, Printable};
use matic_init::loader;
use matic_init::rootfs;
use matic_init::show;
use matic_init::slotfault::{self, After, Fault, Step};
use matic_init::stage1_error::{Stage1Error, Then};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// How long to wait before rebooting when the chosen slot failed and the
/// table is kept (a failure not the image's, or no other slot to fall back
/// to): a fixed delay, since nothing that survives a reboot may count the
/// attempts (the GPT's slot bits are `matic-boot`'s), that keeps a retry
/// loop slow and its console readable. `matic.test.retry_reboot_ms=` in
/// argv (tests only) overrides it.
const RETRY_REBOOT_MS: u64 = 30_000;

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
    // The loader's `/init` mark when it kexecs (docs/history.md).
    let started_ms = util::now_ms();
    let mut go_on = |e: Stage1Error<'_>| handle(e, None);
    mounts::mount_api(&mut go_on);
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
    if let Err(e) = crate::modules::load() {
        go_on(Stage1Error::ModuleList(e));
    }

    let mut cmdline = [0u8; loader::CMDLINE_MAX];
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
    let (mut disk, disk_name) =
        blockdev::find_disk(want.as_bytes(), guid, with_loop, |e| handle_final(e, None));
    let mut disk_path = Buf::<64>::new();
    show!(&mut disk_path, "/dev/{}", Printable(disk_name.as_bytes()));

    // The slot `matic.slot=` gives (the kernel this stage 1 kexec'd into,
    // or a test's direct boot): taken as is, no try spent, no kexec.
    // Otherwise choose it, spending a try if it has not succeeded yet.
    let given = argv(loader::SLOT_KEY)
        .or_else(|| cmdline::value(cmdline, loader::SLOT_KEY))
        .and_then(loader::given_slot);
    let given = given.filter(|&s| {
        let boots = disk.slot_attrs(s).priority() > 0;
        if !boots {
            go_on(Stage1Error::GivenSlotWillNotBoot { slot: s });
        }
        boots
    });
    let slot = match given {
        Some(s) => s,
        None => choose(&mut disk, disk_path.as_bytes()),
    };
    let attrs = disk.slot_attrs(slot);
    let successful = attrs.successful();
    info!(
        "slot {} {} ({}) on {} (GUID {})",
        slot,
        if given.is_some() {
            "given by matic.slot="
        } else {
            "chosen"
        },
        attrs,
        Printable(disk_path.as_bytes()),
        disk.disk_guid()
    );

    let root = disk.slot_partition(slot);
    let state = disk.state_partition().ok();
    let root_dev = blockdev::partition_dev(disk_name.as_bytes(), root.number);
    // The slot's manifest verified and its dm-verity device up, or the
    // slot failed (a refused manifest is its image's fault).
    let verity_dev = match rootdev::verified(slot, &root_dev, successful) {
        Ok(d) => d,
        Err(e) => handle_final(e, Some((&mut disk, retry_ms))),
    };
    if let Err(errno) = mounts::mount_slot(&verity_dev) {
        let e = Stage1Error::MountSlot {
            slot,
            dev: verity_dev.as_bytes(),
            errno,
        };
        handle_final(e, Some((&mut disk, retry_ms)));
    }
    // The slot's own kernel, unless it runs already (or was given): a
    // kexec does not return. Otherwise lockdown goes up before anything of
    // the slot runs.
    if given.is_none()
        && let Err(e) = slotkernel::kexec_if_needed(slot, cmdline, started_ms)
    {
        // A slot whose kexec failed: given up and rebooted, or (returning
        // here) booted by the running kernel.
        handle(e, Some((&mut disk, retry_ms)));
    }
    slotkernel::raise_lockdown(&mut go_on);
    let state_dev = state.map(|p| blockdev::partition_dev(disk_name.as_bytes(), p.number));
    if let Err(errno) = mounts::mount_state(state_dev.as_ref()) {
        let dev = state_dev.as_ref().map_or(&[][..], |d| d.as_bytes());
        go_on(Stage1Error::MountState { dev, errno });
        mounts::var_tmpfs();
    }
    mounts::writable(&mut go_on);
    write_boot_file(slot, disk_path.as_bytes(), successful);
    if let Err(e) = mounts::switch_root(&mut go_on) {
        handle_final(e, None);
    }
    // The disk stays open (close-on-exec) in case the image's init cannot
    // be executed.
    let argv = [c"/sbin/init".as_ptr(), core::ptr::null()];
    let envp = [core::ptr::null()];
    let errno = sys::execve(c"/sbin/init", &argv, &envp);
    let e = Stage1Error::ExecInit {
        slot,
        dev: root_dev.as_bytes(),
        errno,
    };
    handle_final(e, Some((&mut disk, retry_ms)))
}

/// Chooses the slot to boot and writes the table if a try was spent (or a
/// slot given up); a failure stops the boot.
fn choose(disk: &mut Disk<BlockFd>, disk_path: &[u8]) -> Slot {
    let before = disk.status();
    let slot = disk.choose_boot_slot().unwrap_or_else(|error| {
        handle_final(
            Stage1Error::ChooseSlot {
                disk: disk_path,
                error,
            },
            None,
        )
    });
    // `Disk::write` fsyncs the device after each copy: the spent try is on
    // the disk before anything can kexec or reboot.
    if disk.status() != before
        && let Err(error) = disk.write()
    {
        handle_final(
            Stage1Error::WriteTable {
                disk: disk_path,
                error,
            },
            None,
        );
    }
    slot
}

/// Acts on a stage-1 failure as [`Stage1Error::then`] decides: logs it and
/// returns when the boot goes on; a slot that failed is handed to
/// [`slot_failed`] (which needs the disk and the retry delay, and returns
/// only when the running kernel is to boot it: a failed kexec); otherwise
/// stays (rebooting cannot help) or reboots.
fn handle(e: Stage1Error<'_>, slot_disk: Option<(&mut Disk<BlockFd>, u64)>) {
    match (e.then(), slot_disk) {
        (Then::GoOn { warn: true }, _) => warn!("{}", e),
        (Then::GoOn { warn: false }, _) => error!("{}", e),
        (Then::SlotFailed(slot, step, errno), Some((disk, retry_ms))) => {
            error!("{}", e);
            slot_failed(disk, slot, step, errno, retry_ms);
        }
        (Then::Stop, _) => loop {
            error!("{}", e);
            util::sleep_ms(60_000);
        },
        _ => fatal!("{}", e),
    }
}

/// [`handle`] where stage 1 cannot go on: only a step that goes on, or a
/// failed kexec, returns from it, and neither is passed here.
fn handle_final(e: Stage1Error<'_>, slot_disk: Option<(&mut Disk<BlockFd>, u64)>) -> ! {
    handle(e, slot_disk);
    util::reboot_now()
}

/// The chosen slot failed to start at `step` (logged): it is given up when
/// that is its image's fault and the other slot will boot (then reboot at
/// once); otherwise the table stays as it is and, as
/// [`slotfault::after`] decides, init reboots after `retry_ms` or (a failed
/// kexec) returns so that the running kernel boots the slot.
fn slot_failed(disk: &mut Disk<BlockFd>, slot: Slot, step: Step, e: Errno, retry_ms: u64) {
    let mut given_up = false;
    if slotfault::classify(step, e) == Fault::Image {
        match disk.give_up(slot).and_then(|()| disk.write()) {
            Ok(()) => given_up = true,
            Err(g) => error!(
                "slot {}: its image cannot boot, but {}",
                slot,
                BootError(&g)
            ),
        }
    } else {
        error!("slot {}: not the image's fault", slot);
    }
    match slotfault::after(step, given_up) {
        After::Reboot => fatal!("slot {}: its image cannot boot; slot given up", slot),
        After::GoOn => error!(
            "slot {}: partition table kept; the running kernel boots it",
            slot
        ),
        After::Retry => {
            error!(
                "slot {}: partition table kept; rebooting in {} ms",
                slot, retry_ms
            );
            util::sleep_ms(retry_ms);
            util::reboot_now()
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
