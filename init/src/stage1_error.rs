//! Stage 1's failures, one variant per step that can fail, and the one
//! place that decides what each means for the boot ([`Stage1Error::then`]):
//! go on (logged), give up on the chosen slot when its image is at fault
//! (the errno is judged by [`crate::slotfault`], never here), reboot, or
//! stop. Its `Show` is the console line.
//!
//! Pure data and decisions: it must never perform the step, log, or touch
//! the disk; the binary's `stage1.rs` acts on the verdict.

use crate::diskpick::Found;
use crate::fmtbuf::{BootError, Printable, Show, Sink};
use crate::rootfs::NEW_ROOT;
use crate::show;
use crate::slotfault::Step;
use crate::verity::{self, ManifestProblem};
use core::ffi::CStr;
use matic_boot::{Guid, Slot};
use rustix::io::Errno;

/// A partition table error of the MaticOS disk.
pub type DiskError = matic_boot::Error<Errno>;

/// What went wrong in stage 1, with what its console line names.
pub enum Stage1Error<'a> {
    /// `mount(2)` of an API file system (`/proc`, `/sys`, `/dev`…).
    MountApi {
        fs: &'static CStr,
        target: &'static CStr,
        errno: Errno,
    },
    /// `/lib/modules/load.list` could not be read.
    ModuleList(Errno),
    /// No MaticOS disk within the wait; `last` says why the last one tried
    /// was not.
    NoDisk { waited_s: u64, last: &'a [u8] },
    /// No MaticOS disk with the GUID `matic.disk_guid=` names, but `other`.
    NoDiskWithGuid {
        want: Guid,
        waited_s: u64,
        other: &'a Found,
    },
    /// Several MaticOS disks (`n`, the first two `a` and `b`) and nothing on
    /// the command line to tell them apart.
    AmbiguousDisk { n: u32, a: &'a Found, b: &'a Found },
    /// `Disk::choose_boot_slot` on `disk` found no bootable slot.
    ChooseSlot { disk: &'a [u8], error: DiskError },
    /// Writing `disk`'s partition table after spending a try.
    WriteTable { disk: &'a [u8], error: DiskError },
    /// Reading the release manifest block at the tail of the chosen slot's
    /// partition `dev`.
    ReadManifest {
        slot: Slot,
        dev: &'a [u8],
        errno: Errno,
    },
    /// The chosen slot's manifest (on partition `dev`) is missing, does not
    /// verify or does not fit the slot.
    BadManifest {
        slot: Slot,
        dev: &'a [u8],
        problem: ManifestProblem,
    },
    /// The DM ioctl or device node `op` for the chosen slot's dm-verity
    /// device over partition `dev`.
    Verity {
        slot: Slot,
        dev: &'a [u8],
        op: &'static str,
        errno: Errno,
    },
    /// Mounting the chosen slot's verity device `dev` as SquashFS.
    MountSlot {
        slot: Slot,
        dev: &'a [u8],
        errno: Errno,
    },
    /// Mounting `MATIC_STATE` (`dev`, empty if the table has none) at `/var`.
    MountState { dev: &'a [u8], errno: Errno },
    /// Mounting the tmpfs at `/tmp`.
    MountTmp(Errno),
    /// Bind-mounting `src` (under `/var`) on `target`.
    Bind {
        src: &'static str,
        target: &'static str,
        errno: Errno,
    },
    /// Moving the API mount at `from` to the same path in the new root.
    MoveApi { from: &'static CStr, errno: Errno },
    /// Opening `/` to empty the initramfs.
    OpenInitramfs(Errno),
    /// `chdir` into the new root.
    ChdirNewRoot(Errno),
    /// `MS_MOVE` of the new root onto `/`.
    MoveNewRoot(Errno),
    /// `chroot(".")`.
    Chroot(Errno),
    /// `execve("/sbin/init")` of the slot on partition `dev`.
    ExecInit {
        slot: Slot,
        dev: &'a [u8],
        errno: Errno,
    },
    /// `matic.slot=` names `slot`, which has priority 0 (given up or
    /// invalid): the slot is chosen by the table instead.
    GivenSlotWillNotBoot { slot: Slot },
    /// Kexec into the chosen slot's kernel failed at `what` (the file
    /// under the new root, the command line, or the call).
    Kexec {
        slot: Slot,
        what: &'static CStr,
        errno: Errno,
    },
    /// Reading or writing the lockdown level at `path`, or its contents
    /// not understood (`EBADMSG`).
    Lockdown { path: &'static CStr, errno: Errno },
}

/// What a failure means for the boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Log it (as a warning if `warn`, else an error) and go on.
    GoOn { warn: bool },
    /// The chosen slot failed to start at this step: give it up if
    /// `slotfault::classify` says its image is at fault, else retry later.
    SlotFailed(Slot, Step, Errno),
    /// Nothing to boot from: log, sync and reboot.
    Fatal,
    /// Rebooting cannot help (the condition survives it): stay, repeating
    /// the line.
    Stop,
}

impl Stage1Error<'_> {
    /// The one decision table of stage 1 (docs/init.md, "Stage 1").
    pub fn then(&self) -> Then {
        use Stage1Error::*;
        match *self {
            // The node may still come up (and an unproven slot still rolls
            // back by its boot deadline): go on.
            // Lockdown: the slot runs without it rather than not at all
            // (docs/security.md); the error says so.
            MountApi { .. }
            | MountState { .. }
            | MountTmp(_)
            | Bind { .. }
            | MoveApi { .. }
            | GivenSlotWillNotBoot { .. }
            | Lockdown { .. } => Then::GoOn { warn: false },
            ModuleList(_) | OpenInitramfs(_) => Then::GoOn { warn: true },
            NoDisk { .. }
            | NoDiskWithGuid { .. }
            | ChooseSlot { .. }
            | WriteTable { .. }
            | ChdirNewRoot(_)
            | MoveNewRoot(_)
            | Chroot(_) => Then::Fatal,
            AmbiguousDisk { .. } => Then::Stop,
            ReadManifest { slot, errno, .. } => Then::SlotFailed(slot, Step::Manifest, errno),
            BadManifest { slot, .. } => Then::SlotFailed(slot, Step::Manifest, verity::REFUSED),
            Verity { slot, errno, .. } => Then::SlotFailed(slot, Step::Verity, errno),
            MountSlot { slot, errno, .. } => Then::SlotFailed(slot, Step::Mount, errno),
            ExecInit { slot, errno, .. } => Then::SlotFailed(slot, Step::ExecInit, errno),
            Kexec { slot, errno, .. } => Then::SlotFailed(slot, Step::Kexec, errno),
        }
    }
}

impl Show for Stage1Error<'_> {
    fn show(&self, out: &mut dyn Sink) {
        use Stage1Error::*;
        match self {
            MountApi { fs, target, errno } => show!(
                out,
                "mount {} on {}: {}",
                Printable(fs.to_bytes()),
                Printable(target.to_bytes()),
                *errno
            ),
            ModuleList(e) => show!(out, "/lib/modules/load.list: {}: no modules loaded", *e),
            NoDisk { waited_s, last } => show!(
                out,
                "no MaticOS disk after {} s (last: {})",
                *waited_s,
                Printable(last)
            ),
            NoDiskWithGuid {
                want,
                waited_s,
                other,
            } => show!(
                out,
                "no MaticOS disk with GUID {} (matic.disk_guid=) after {} s; /dev/{} has GUID {}",
                *want,
                *waited_s,
                Printable(other.name.as_bytes()),
                other.guid
            ),
            AmbiguousDisk { n, a, b } => show!(
                out,
                "{} disks carry a MaticOS table, e.g. /dev/{} ({}) and /dev/{} ({}): boot stopped; name one with matic.disk_guid= or matic.disk=",
                *n,
                Printable(a.name.as_bytes()),
                a.guid,
                Printable(b.name.as_bytes()),
                b.guid
            ),
            ChooseSlot { disk, error } => show!(
                out,
                "{}: no bootable slot: {}",
                Printable(disk),
                BootError(error)
            ),
            WriteTable { disk, error } => show!(
                out,
                "{}: writing the partition table: {}",
                Printable(disk),
                BootError(error)
            ),
            ReadManifest { slot, dev, errno } => show!(
                out,
                "slot {}: reading its release manifest from {}: {}",
                *slot,
                Printable(dev),
                *errno
            ),
            BadManifest { slot, dev, problem } => show!(
                out,
                "slot {}: release manifest on {} refused: {}",
                *slot,
                Printable(dev),
                *problem
            ),
            Verity {
                slot,
                dev,
                op,
                errno,
            } => show!(
                out,
                "slot {}: dm-verity over {}: {}: {}",
                *slot,
                Printable(dev),
                *op,
                *errno
            ),
            MountSlot { slot, dev, errno } | ExecInit { slot, dev, errno } => {
                let step = match self {
                    MountSlot { .. } => Step::Mount,
                    _ => Step::ExecInit,
                };
                show!(
                    out,
                    "slot {}: {} failed: {} ({})",
                    *slot,
                    step.as_str(),
                    *errno,
                    Printable(dev)
                )
            }
            MountState { dev, errno } => show!(
                out,
                "MATIC_STATE {}: mount failed ({}); /var is a tmpfs for this boot",
                Printable(dev),
                *errno
            ),
            MountTmp(e) => show!(out, "mount tmpfs on /tmp: {}", *e),
            Bind { src, target, errno } => show!(out, "bind {} on {}: {}", *src, *target, *errno),
            MoveApi { from, errno } => show!(
                out,
                "move {} to {}{}: {}",
                Printable(from.to_bytes()),
                Printable(NEW_ROOT.to_bytes()),
                Printable(from.to_bytes()),
                *errno
            ),
            OpenInitramfs(e) => show!(out, "opening / to empty the initramfs: {}", *e),
            ChdirNewRoot(e) => show!(out, "chdir {}: {}", Printable(NEW_ROOT.to_bytes()), *e),
            MoveNewRoot(e) => show!(
                out,
                "moving {} onto /: {}",
                Printable(NEW_ROOT.to_bytes()),
                *e
            ),
            Chroot(e) => show!(out, "chroot: {}", *e),
            GivenSlotWillNotBoot { slot } => show!(
                out,
                "matic.slot={}: that slot will not boot (priority 0), ignored",
                *slot
            ),
            Kexec { slot, what, errno } => show!(
                out,
                "slot {}: {}: {}: {}",
                *slot,
                Step::Kexec.as_str(),
                Printable(what.to_bytes()),
                *errno
            ),
            Lockdown { path, errno } => show!(
                out,
                "lockdown not raised to integrity: {}: {}",
                Printable(path.to_bytes()),
                *errno
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmtbuf::Buf;

    fn line(e: &Stage1Error<'_>) -> std::string::String {
        let mut b = Buf::<256>::new();
        show!(&mut b, "{}", *e);
        std::string::String::from_utf8(b.as_bytes().to_vec()).unwrap()
    }

    fn dev(s: &str) -> &[u8] {
        s.as_bytes()
    }

    #[test]
    fn a_slot_that_fails_to_start_is_judged_by_slotfault() {
        let e = Stage1Error::MountSlot {
            slot: Slot::B,
            dev: dev("/dev/vda3"),
            errno: Errno::INVAL,
        };
        assert_eq!(
            e.then(),
            Then::SlotFailed(Slot::B, Step::Mount, Errno::INVAL)
        );
        assert_eq!(
            line(&e),
            "slot B: mounting its squashfs failed: os error 22 (/dev/vda3)"
        );
        let e = Stage1Error::ExecInit {
            slot: Slot::A,
            dev: dev("/dev/vda2"),
            errno: Errno::NOENT,
        };
        assert_eq!(
            e.then(),
            Then::SlotFailed(Slot::A, Step::ExecInit, Errno::NOENT)
        );
    }

    #[test]
    fn a_refused_manifest_gives_the_slot_up_and_dm_trouble_retries() {
        use crate::slotfault::{Fault, classify};
        use matic_release::ManifestError;
        let verdict = |e: &Stage1Error<'_>| match e.then() {
            Then::SlotFailed(_, step, errno) => classify(step, errno),
            t => panic!("{t:?}"),
        };
        for problem in [
            ManifestProblem::Invalid(ManifestError::Magic),
            ManifestProblem::Invalid(ManifestError::BadSignature(matic_release::KeyId([1; 8]))),
            ManifestProblem::Invalid(ManifestError::UnknownKey(matic_release::KeyId([1; 8]))),
            ManifestProblem::PayloadTooLarge {
                payload: 2 << 20,
                room: 1 << 20,
            },
            ManifestProblem::SlotTooSmall { part_len: 4096 },
        ] {
            let e = Stage1Error::BadManifest {
                slot: Slot::A,
                dev: dev("/dev/vda2"),
                problem,
            };
            assert_eq!(verdict(&e), Fault::Image, "{}", line(&e));
        }
        let e = Stage1Error::BadManifest {
            slot: Slot::B,
            dev: dev("/dev/vda3"),
            problem: ManifestProblem::Invalid(ManifestError::BadSignature(matic_release::KeyId(
                [0x0f; 8],
            ))),
        };
        assert_eq!(
            line(&e),
            "slot B: release manifest on /dev/vda3 refused: the manifest's signature does not verify (key id 0f0f0f0f0f0f0f0f)"
        );
        let e = Stage1Error::ReadManifest {
            slot: Slot::A,
            dev: dev("/dev/vda2"),
            errno: Errno::IO,
        };
        assert_eq!(verdict(&e), Fault::Image, "unreadable slot blocks");
        for errno in [Errno::NOENT, Errno::INVAL, Errno::NODEV, Errno::NOMEM] {
            let e = Stage1Error::Verity {
                slot: Slot::A,
                dev: dev("/dev/vda2"),
                op: "DM_TABLE_LOAD",
                errno,
            };
            assert_eq!(verdict(&e), Fault::Machine, "{}", line(&e));
        }
        assert_eq!(
            line(&Stage1Error::Verity {
                slot: Slot::A,
                dev: dev("/dev/vda2"),
                op: "DM_TABLE_LOAD",
                errno: Errno::INVAL,
            }),
            "slot A: dm-verity over /dev/vda2: DM_TABLE_LOAD: os error 22"
        );
    }

    #[test]
    fn a_failed_kexec_is_judged_by_slotfault_and_names_the_file() {
        let e = Stage1Error::Kexec {
            slot: Slot::B,
            what: c"/newroot/boot/vmlinuz",
            errno: Errno::NOENT,
        };
        assert_eq!(
            e.then(),
            Then::SlotFailed(Slot::B, Step::Kexec, Errno::NOENT)
        );
        assert_eq!(
            line(&e),
            "slot B: kexec into its kernel: /newroot/boot/vmlinuz: os error 2"
        );
        let e = Stage1Error::Kexec {
            slot: Slot::A,
            what: c"kexec_file_load",
            errno: Errno::PERM,
        };
        assert_eq!(
            e.then(),
            Then::SlotFailed(Slot::A, Step::Kexec, Errno::PERM)
        );
    }

    #[test]
    fn no_lockdown_and_an_unbootable_given_slot_go_on() {
        let e = Stage1Error::Lockdown {
            path: c"/sys/kernel/security/lockdown",
            errno: Errno::NOENT,
        };
        assert_eq!(e.then(), Then::GoOn { warn: false });
        assert_eq!(
            line(&e),
            "lockdown not raised to integrity: /sys/kernel/security/lockdown: os error 2"
        );
        let e = Stage1Error::GivenSlotWillNotBoot { slot: Slot::B };
        assert_eq!(e.then(), Then::GoOn { warn: false });
        assert_eq!(
            line(&e),
            "matic.slot=B: that slot will not boot (priority 0), ignored"
        );
    }

    #[test]
    fn without_a_root_the_boot_stops_and_without_extras_it_goes_on() {
        for e in [
            Stage1Error::ChdirNewRoot(Errno::NOENT),
            Stage1Error::MoveNewRoot(Errno::INVAL),
            Stage1Error::Chroot(Errno::PERM),
            Stage1Error::NoDisk {
                waited_s: 30,
                last: b"",
            },
        ] {
            assert_eq!(e.then(), Then::Fatal, "{}", line(&e));
        }
        for e in [
            Stage1Error::MountTmp(Errno::NOMEM),
            Stage1Error::MountState {
                dev: dev("/dev/vda4"),
                errno: Errno::INVAL,
            },
            Stage1Error::Bind {
                src: "/var/a",
                target: "/a",
                errno: Errno::NOENT,
            },
        ] {
            assert_eq!(e.then(), Then::GoOn { warn: false }, "{}", line(&e));
        }
        assert_eq!(
            Stage1Error::ModuleList(Errno::NOENT).then(),
            Then::GoOn { warn: true }
        );
        let found = |n: &str| {
            let mut name = crate::diskpick::Name::new();
            name.push_bytes(n.as_bytes());
            Found {
                name,
                guid: Guid([1; 16]),
            }
        };
        let (a, b) = (found("vda"), found("vdb"));
        let e = Stage1Error::AmbiguousDisk { n: 2, a: &a, b: &b };
        assert_eq!(e.then(), Then::Stop, "rebooting would not tell them apart");
        assert!(line(&e).starts_with("2 disks carry a MaticOS table, e.g. /dev/vda ("));
    }

    #[test]
    fn lines_name_the_path_or_device() {
        assert_eq!(
            line(&Stage1Error::MoveApi {
                from: c"/dev",
                errno: Errno::BUSY
            }),
            "move /dev to /newroot/dev: os error 16"
        );
        assert_eq!(
            line(&Stage1Error::MoveNewRoot(Errno::INVAL)),
            "moving /newroot onto /: os error 22"
        );
        assert_eq!(
            line(&Stage1Error::MountState {
                dev: dev("/dev/vda4"),
                errno: Errno::INVAL
            }),
            "MATIC_STATE /dev/vda4: mount failed (os error 22); /var is a tmpfs for this boot"
        );
        assert_eq!(
            line(&Stage1Error::MountApi {
                fs: c"proc",
                target: c"/proc",
                errno: Errno::BUSY
            }),
            "mount proc on /proc: os error 16"
        );
    }
}
