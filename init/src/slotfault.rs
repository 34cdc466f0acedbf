//! Stage 1's one decision about a chosen slot that failed to start: is the
//! failure the *image's* (the slot is given up, so the next boot picks the
//! other slot) or the *machine's* at this moment (the partition table is
//! kept and the boot retried)?
//!
//! Giving a slot up is for good (`matic_boot::Disk::give_up`: priority 0,
//! even for a slot already marked successful), so this module must never
//! call an error the image's unless the image alone can cause it; an errno
//! it does not know is the machine's. An unproven slot needs no help here:
//! each boot of it spends a try, and it is given up when they run out.
//!
//! It also says what stage 1 does next ([`after`]): a slot whose kexec
//! failed and was not given up still boots, with the running kernel
//! (never brick a node); any other failed slot is retried by a reboot.

use rustix::io::Errno;

/// What stage 1 was doing with the slot when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading and verifying the release manifest at the slot's tail
    /// (a refused manifest is `crate::verity::REFUSED`, EBADMSG).
    Manifest,
    /// Creating the dm-verity device over the slot (the DM ioctls).
    Verity,
    /// `mount(2)` of the slot's verity device as SquashFS, read-only.
    Mount,
    /// `execve("/sbin/init")` after the switch to the image.
    ExecInit,
    /// Kexec into the slot's own kernel: its `/boot/kernel-id`,
    /// `/boot/vmlinuz` and `/boot/initrd.img`, `kexec_file_load`,
    /// `reboot(KEXEC)`.
    Kexec,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Manifest => "checking its release manifest",
            Step::Verity => "setting up its dm-verity device",
            Step::Mount => "mounting its squashfs",
            Step::ExecInit => "executing its /sbin/init",
            Step::Kexec => "kexec into its kernel",
        }
    }
}

/// Whose failure it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The image cannot boot: give the slot up.
    Image,
    /// Not the image's (or not known to be): keep the table, retry.
    Machine,
}

/// The decision, per step and errno (justified in docs/init.md, "When a
/// slot fails to start").
pub fn classify(step: Step, e: Errno) -> Fault {
    // The kernel's SquashFS reports a missing or foreign superblock, an
    // unsupported version and inconsistent sizes as EINVAL, corrupted
    // metadata as EIO (also what a read error of the slot's blocks gives,
    // after the block layer's own retries) or EUCLEAN: the bytes in the slot
    // are not a usable image.
    let corrupt = e == Errno::INVAL || e == Errno::IO || e == Errno::UCLEAN;
    let image = match step {
        // A manifest that does not verify (EBADMSG), or whose block cannot
        // be read (EIO: the slot's blocks, as for a mount). ENOENT, ENOMEM…
        // are the moment's.
        Step::Manifest => e == Errno::BADMSG || e == Errno::IO,
        // The table comes from a verified manifest that fits the slot, so
        // the kernel refusing it means a missing module (an unknown target
        // type is EINVAL), no memory, a busy name: never the image's.
        Step::Verity => false,
        // ENOENT / ENXIO / ENODEV here mean the partition's node, the device
        // or the squashfs driver is not there (yet): the machine's; so are
        // ENOMEM, EBUSY and anything unknown.
        Step::Mount => corrupt,
        // In the mounted image: no `/sbin/init` (ENOENT, ENOTDIR, ELOOP),
        // not executable (EACCES), not an executable for this machine
        // (ENOEXEC, ELIBBAD, or EINVAL for a malformed ELF), or its
        // interpreter missing (ENOENT). E2BIG, ENOMEM, EAGAIN, ETXTBSY,
        // EMFILE… are the moment's.
        Step::ExecInit => {
            corrupt
                || e == Errno::NOEXEC
                || e == Errno::NOENT
                || e == Errno::NOTDIR
                || e == Errno::LOOP
                || e == Errno::ACCESS
                || e == Errno::LIBBAD
        }
        // The slot's kernel files (in its verified root) missing (ENOENT,
        // ENOTDIR), unreadable (EIO, EUCLEAN), a kernel-id that does not
        // parse (EBADMSG), an image kexec cannot load (ENOEXEC: not a
        // bzImage) or whose signature the kernel rejects (EKEYREJECTED).
        // ENOMEM, EBUSY, EPERM (lockdown without a trusted signature, no
        // CAP_SYS_BOOT: the same for every slot), ENOSYS, E2BIG (our command
        // line), and a failed reboot(KEXEC) are the machine's.
        Step::Kexec => {
            e == Errno::NOENT
                || e == Errno::NOTDIR
                || e == Errno::IO
                || e == Errno::UCLEAN
                || e == Errno::BADMSG
                || e == Errno::NOEXEC
                || e == Errno::KEYREJECTED
        }
    };
    if image { Fault::Image } else { Fault::Machine }
}

/// What stage 1 does once a failed slot was given up or kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// The slot was given up: reboot now, the next boot picks the other.
    Reboot,
    /// The table is kept: reboot after the retry delay.
    Retry,
    /// The table is kept and the slot's root is mounted and verified: boot
    /// it with the running kernel (a failed kexec must never brick a node).
    GoOn,
}

/// The decision after a failure at `step`, once `give_up` succeeded
/// (`given_up`) or was not tried or refused.
pub fn after(step: Step, given_up: bool) -> After {
    match (given_up, step) {
        (true, _) => After::Reboot,
        (false, Step::Kexec) => After::GoOn,
        (false, _) => After::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_image_is_the_image_s_fault() {
        for e in [Errno::INVAL, Errno::IO, Errno::UCLEAN] {
            for step in [Step::Mount, Step::ExecInit] {
                assert_eq!(classify(step, e), Fault::Image, "{step:?} {e:?}");
            }
        }
        for e in [Errno::NOENT, Errno::NOTDIR, Errno::LOOP, Errno::ACCESS] {
            assert_eq!(classify(Step::ExecInit, e), Fault::Image, "{e:?}");
        }
        assert_eq!(classify(Step::ExecInit, Errno::NOEXEC), Fault::Image);
        assert_eq!(classify(Step::ExecInit, Errno::LIBBAD), Fault::Image);
    }

    #[test]
    fn a_kexec_into_a_broken_kernel_is_the_image_s_fault_and_the_rest_is_not() {
        for e in [
            Errno::NOENT,
            Errno::NOTDIR,
            Errno::IO,
            Errno::UCLEAN,
            Errno::BADMSG,
            Errno::NOEXEC,
            Errno::KEYREJECTED,
        ] {
            assert_eq!(classify(Step::Kexec, e), Fault::Image, "{e:?}");
        }
        for e in [
            Errno::PERM,
            Errno::NOMEM,
            Errno::BUSY,
            Errno::NOSYS,
            Errno::TOOBIG,
            Errno::INVAL,
            Errno::AGAIN,
        ] {
            assert_eq!(classify(Step::Kexec, e), Fault::Machine, "{e:?}");
        }
    }

    #[test]
    fn a_failed_kexec_goes_on_unless_the_slot_was_given_up() {
        assert_eq!(after(Step::Kexec, true), After::Reboot);
        assert_eq!(after(Step::Kexec, false), After::GoOn);
        for step in [Step::Manifest, Step::Verity, Step::Mount, Step::ExecInit] {
            assert_eq!(after(step, true), After::Reboot, "{step:?}");
            assert_eq!(after(step, false), After::Retry, "{step:?}");
        }
    }

    #[test]
    fn a_refused_manifest_is_the_image_s_fault_and_dm_trouble_is_not() {
        assert_eq!(classify(Step::Manifest, Errno::BADMSG), Fault::Image);
        assert_eq!(classify(Step::Manifest, Errno::IO), Fault::Image);
        for e in [Errno::NOENT, Errno::NOMEM, Errno::INTR, Errno::INVAL] {
            assert_eq!(classify(Step::Manifest, e), Fault::Machine, "{e:?}");
        }
        // Unknown target type (dm-verity not loaded) is EINVAL; no
        // device-mapper at all is ENOENT/ENODEV/ENXIO.
        for raw in 1..=133 {
            let e = Errno::from_raw_os_error(raw);
            assert_eq!(classify(Step::Verity, e), Fault::Machine, "{e:?}");
        }
    }

    #[test]
    fn a_missing_device_or_a_busy_machine_is_not() {
        // The partition node not created yet, no such device, no squashfs
        // driver, out of memory, busy: never a reason to drop a slot.
        for e in [
            Errno::NOENT,
            Errno::NXIO,
            Errno::NODEV,
            Errno::NOTBLK,
            Errno::NOMEM,
            Errno::BUSY,
            Errno::AGAIN,
            Errno::INTR,
            Errno::ACCESS,
            Errno::PERM,
        ] {
            assert_eq!(classify(Step::Mount, e), Fault::Machine, "{e:?}");
        }
        for e in [
            Errno::TOOBIG,
            Errno::NOMEM,
            Errno::AGAIN,
            Errno::TXTBSY,
            Errno::MFILE,
            Errno::NFILE,
        ] {
            assert_eq!(classify(Step::ExecInit, e), Fault::Machine, "{e:?}");
        }
    }

    #[test]
    fn an_unknown_errno_is_never_the_image_s() {
        for raw in 1..=133 {
            let e = Errno::from_raw_os_error(raw);
            let known_bad = [
                Errno::INVAL,
                Errno::IO,
                Errno::UCLEAN,
                Errno::NOENT,
                Errno::NOTDIR,
                Errno::LOOP,
                Errno::ACCESS,
                Errno::NOEXEC,
                Errno::LIBBAD,
            ];
            if !known_bad.contains(&e) && e != Errno::BADMSG && e != Errno::KEYREJECTED {
                for step in [Step::Manifest, Step::Mount, Step::ExecInit, Step::Kexec] {
                    assert_eq!(classify(step, e), Fault::Machine, "{step:?} {e:?}");
                }
            }
        }
    }
}
