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
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Manifest => "checking its release manifest",
            Step::Verity => "setting up its dm-verity device",
            Step::Mount => "mounting its squashfs",
            Step::ExecInit => "executing its /sbin/init",
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
    };
    if image { Fault::Image } else { Fault::Machine }
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
            if !known_bad.contains(&e) && e != Errno::BADMSG {
                for step in [Step::Manifest, Step::Mount, Step::ExecInit] {
                    assert_eq!(classify(step, e), Fault::Machine, "{step:?} {e:?}");
                }
            }
        }
    }
}
