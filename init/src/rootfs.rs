//! Stage 1's fixed facts: how a partition's device is named, where the new
//! root is mounted and its writable mounts, and how init tells the
//! initramfs from the image. Facts only: it must never mount or open
//! anything (the binary's `mounts.rs` does).

use crate::fmtbuf::Buf;
use core::ffi::CStr;

/// Where the image's root is mounted before the switch; every path of the
/// new root is built from it (the binary's `mounts::in_new_root`).
pub const NEW_ROOT: &CStr = c"/newroot";

/// Directories of the read-only image that are bind-mounted from `/var`
/// (`MATIC_STATE`) because Kubernetes writes them: `(source under /var,
/// target in the image)`. Stage 1 creates missing sources.
pub const BINDS: [(&str, &str); 3] = [
    ("/var/lib/matic/bind/etc/kubernetes", "/etc/kubernetes"),
    ("/var/lib/matic/bind/etc/cni/net.d", "/etc/cni/net.d"),
    ("/var/lib/matic/bind/opt/cni/bin", "/opt/cni/bin"),
];

/// `statfs` magic numbers of the file systems an initramfs can be.
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Stage 1 runs when PID 1's root is the initramfs (ramfs or tmpfs) that
/// holds `/init`, and stage 1 has not already written `/run/matic/boot`.
/// The image's root is SquashFS and has no `/init`; a test root is a plain
/// directory on a disk file system.
pub fn is_stage1(root_fs_magic: u64, has_init: bool, has_boot_file: bool) -> bool {
    (root_fs_magic == RAMFS_MAGIC || root_fs_magic == TMPFS_MAGIC) && has_init && !has_boot_file
}

/// The kernel's name of partition `number` of disk `disk`: `vda` + 2 is
/// `vda2`; a disk whose name ends in a digit gets a `p`: `nvme0n1p2`.
pub fn partition_name<const N: usize>(disk: &[u8], number: u32, out: &mut Buf<N>) {
    out.clear();
    out.push_bytes(disk);
    if disk.last().is_some_and(u8::is_ascii_digit) {
        out.push_bytes(b"p");
    }
    crate::show!(out, "{}", number);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        let mut b = Buf::<32>::new();
        partition_name(b"vda", 2, &mut b);
        assert_eq!(b.as_bytes(), b"vda2");
        partition_name(b"nvme0n1", 4, &mut b);
        assert_eq!(b.as_bytes(), b"nvme0n1p4");
        partition_name(b"sdb", 13, &mut b);
        assert_eq!(b.as_bytes(), b"sdb13");
    }

    #[test]
    fn stage_selection() {
        assert!(is_stage1(RAMFS_MAGIC, true, false));
        assert!(is_stage1(TMPFS_MAGIC, true, false));
        assert!(
            !is_stage1(TMPFS_MAGIC, true, true),
            "boot file written: stage 2"
        );
        assert!(
            !is_stage1(RAMFS_MAGIC, false, false),
            "no /init: not our initramfs"
        );
        assert!(
            !is_stage1(0x7371_7368, true, false),
            "squashfs image: stage 2"
        );
        assert!(!is_stage1(0xef53, true, false), "ext4 test root: stage 2");
    }

    #[test]
    fn binds_live_under_var_and_target_absolute_paths() {
        for (src, dst) in BINDS {
            assert!(
                src.starts_with("/var/lib/matic/bind/") && src.ends_with(dst),
                "{src} {dst}"
            );
            assert!(dst.starts_with('/') && !dst.contains(".."));
        }
    }
}
