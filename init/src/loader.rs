//! Stage 1 as the loader: which kernel boots the chosen slot. Decides from
//! the command line whether the slot was given (`matic.slot=`, set on the
//! kernel stage 1 kexecs into), from the two kernel-ids (the running
//! initramfs's `/boot/kernel-id` and the slot's) whether to kexec into the
//! slot's own kernel, and builds that kernel's command line.
//!
//! Pure decisions over bytes: it must never read a file, call kexec or
//! touch the disk (the binary's `slotkernel.rs` does), and it must never
//! decide that a kernel given by `matic.slot=` kexecs again (no loops).
//!
//! A kernel-id is one line, `<kernel release> <64 lowercase hex>\n`: the
//! hex is the SHA-256 over the kernel image followed by the initramfs's main
//! archive (docs/interfaces.md), so equal ids mean the same kernel and
//! initramfs.

use crate::cmdline::{next_word, split_word};
use crate::fmtbuf::Buf;
use core::ffi::CStr;
use matic_boot::Slot;

/// The running initramfs's kernel-id (`scripts/build-initramfs` appends it
/// as a second archive).
pub const OWN_KERNEL_ID: &CStr = c"/boot/kernel-id";
/// The slot's kernel-id, kernel and initramfs, in its root mounted at
/// `crate::rootfs::NEW_ROOT` (a test checks the prefix).
pub const SLOT_KERNEL_ID: &CStr = c"/newroot/boot/kernel-id";
pub const SLOT_KERNEL: &CStr = c"/newroot/boot/vmlinuz";
pub const SLOT_INITRD: &CStr = c"/newroot/boot/initrd.img";

/// The kernel command line's key for a given slot.
pub const SLOT_KEY: &[u8] = b"matic.slot";

/// Room for the command line handed to the kexec'd kernel, its NUL
/// included: the size of the buffer stage 1 reads `/proc/cmdline` into.
pub const CMDLINE_MAX: usize = 1024;

/// The longest kernel release a kernel-id may name (the kernel's own
/// limit, `__NEW_UTS_LEN`).
pub const RELEASE_MAX: usize = 64;
/// The longest kernel-id file [`KernelId::parse`] accepts: the release, a
/// blank, 64 hex digits and the newline. Stage 1 reads each id into this
/// many bytes.
pub const KERNEL_ID_MAX: usize = RELEASE_MAX + 1 + 64 + 1;

/// The slot `matic.slot=` names (`A` or `B`); anything else names none.
pub fn given_slot(value: &[u8]) -> Option<Slot> {
    match value {
        b"A" => Some(Slot::A),
        b"B" => Some(Slot::B),
        _ => None,
    }
}

/// A parsed kernel-id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelId<'a> {
    /// The kernel release (`uname -r`), 1 to 64 printable bytes, no blank.
    pub release: &'a [u8],
    /// The 64 lowercase hex digits of the digest.
    pub digest: &'a [u8],
}

impl<'a> KernelId<'a> {
    /// `<release> <64 lowercase hex>`, with or without its newline, and
    /// nothing else.
    pub fn parse(text: &'a [u8]) -> Option<KernelId<'a>> {
        let line = text.strip_suffix(b"\n").unwrap_or(text);
        let sp = line.iter().position(|&b| b == b' ')?;
        let (release, digest) = (line.get(..sp)?, line.get(sp + 1..)?);
        let printable = |b: &u8| b.is_ascii_graphic();
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        (!release.is_empty()
            && release.len() <= RELEASE_MAX
            && release.iter().all(printable)
            && digest.len() == 64
            && digest.iter().all(hex))
        .then_some(KernelId { release, digest })
    }
}

/// What stage 1 does about the slot's kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel<'a> {
    /// The slot has no `/boot/kernel-id` (a release made before the
    /// loader): it boots with the running kernel.
    NoId,
    /// The slot's kernel and initramfs are the running ones: no kexec.
    Same,
    /// Kexec into the slot's kernel, `release`.
    Kexec { release: &'a [u8] },
    /// The slot's `/boot/kernel-id` is not a kernel-id: its release is
    /// broken.
    BadId,
}

/// The decision from the running initramfs's kernel-id (`None` when it
/// has none or it does not parse: an unknown kernel is never the slot's)
/// and the slot's file (`None` when it has none).
pub fn decide<'a>(own: Option<&[u8]>, slot: Option<&'a [u8]>) -> Kernel<'a> {
    let Some(slot) = slot else {
        return Kernel::NoId;
    };
    let Some(theirs) = KernelId::parse(slot) else {
        return Kernel::BadId;
    };
    // Equal to an id that parses: the same kernel and initramfs.
    let line = |t: &'a [u8]| t.strip_suffix(b"\n").unwrap_or(t);
    if own.map(|o| o.strip_suffix(b"\n").unwrap_or(o)) == Some(line(slot)) {
        Kernel::Same
    } else {
        Kernel::Kexec {
            release: theirs.release,
        }
    }
}

/// The kexec'd kernel's command line: the running one (`/proc/cmdline`,
/// whose newline proves it was read whole) without its `matic.slot=` and
/// `lockdown=` words, plus `matic.slot=<slot> lockdown=integrity` (before
/// a `--`, after which words go to init, not the kernel). `None` when the
/// text was cut (no newline) or the result with its NUL does not fit in
/// [`CMDLINE_MAX`] bytes.
pub fn kexec_cmdline(
    proc_cmdline: &[u8],
    slot: Slot,
    loader_ms: [u64; 2],
    out: &mut Buf<CMDLINE_MAX>,
) -> Option<()> {
    let mut rest = proc_cmdline.strip_suffix(b"\n")?;
    out.clear();
    let mut tail = None;
    while let Some(word) = next_word(&mut rest) {
        if word == b"--" {
            // `rest` starts right after the `--`.
            tail = Some(rest);
            break;
        }
        let key = split_word(word).0;
        if key == SLOT_KEY || key == b"lockdown" {
            continue;
        }
        out.push_bytes(word);
        out.push_bytes(b" ");
    }
    out.push_bytes(b"matic.slot=");
    out.push_bytes(slot.as_str().as_bytes());
    out.push_bytes(b" lockdown=integrity");
    // The loader's part of the boot's timeline (docs/history.md, "A
    // kexec'd boot"): its clock at stage 1's start and at the kexec.
    crate::fmtbuf::fill(
        out,
        " matic.loader_ms={},{}",
        &[&loader_ms[0], &loader_ms[1]],
    );
    if let Some(tail) = tail {
        out.push_bytes(b" --");
        out.push_bytes(tail.trim_ascii_end());
    }
    // Room for the NUL.
    (!out.truncated() && out.as_bytes().len() < CMDLINE_MAX).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "3fa2b0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d";
    const H2: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    fn id(release: &str, hex: &str) -> std::vec::Vec<u8> {
        format!("{release} {hex}\n").into_bytes()
    }

    #[test]
    fn the_slot_files_are_under_the_new_root() {
        for p in [SLOT_KERNEL_ID, SLOT_KERNEL, SLOT_INITRD] {
            let rest = p
                .to_bytes()
                .strip_prefix(crate::rootfs::NEW_ROOT.to_bytes());
            assert_eq!(rest.map(|r| r.starts_with(b"/boot/")), Some(true), "{p:?}");
        }
        assert_eq!(
            &SLOT_KERNEL_ID.to_bytes()[crate::rootfs::NEW_ROOT.to_bytes().len()..],
            OWN_KERNEL_ID.to_bytes()
        );
    }

    #[test]
    fn the_given_slot() {
        assert_eq!(given_slot(b"A"), Some(Slot::A));
        assert_eq!(given_slot(b"B"), Some(Slot::B));
        for bad in [&b""[..], b"a", b"C", b"AB", b" A", b"1"] {
            assert_eq!(given_slot(bad), None, "{bad:?}");
        }
        let c = b"root=x matic.slot=B quiet\n";
        let v = crate::cmdline::value(c, SLOT_KEY).unwrap();
        assert_eq!(given_slot(v), Some(Slot::B));
    }

    #[test]
    fn kernel_ids_parse_strictly() {
        let k = id("6.1.0-57-amd64", H1);
        let p = KernelId::parse(&k).unwrap();
        assert_eq!(p.release, b"6.1.0-57-amd64");
        assert_eq!(p.digest, H1.as_bytes());
        let no_nl = format!("6.1.0-57-amd64 {H1}");
        assert_eq!(KernelId::parse(no_nl.as_bytes()), Some(p));
        for bad in [
            String::new(),
            "\n".into(),
            format!(" {H1}\n"),
            format!("6.1.0-57-amd64 {}\n", H1.to_uppercase()),
            format!("6.1.0-57-amd64 {}\n", &H1[..63]),
            format!("6.1.0-57-amd64 {H1}0\n"),
            format!("6.1.0-57-amd64  {H1}\n"),
            format!("6.1.0 57 {H1}\n"),
            format!("6.1.0-57-amd64 {H1}\n\n"),
            format!("6.1.0-57-amd64 {H1} \n"),
            format!("6.1.0-\x1b57 {H1}\n"),
            format!("{} {H1}\n", "r".repeat(65)),
            format!("6.1.0-57-amd64 g{}\n", &H1[1..]),
        ] {
            assert_eq!(KernelId::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(KernelId::parse(format!("{} {H1}", "r".repeat(64)).as_bytes()).is_some());
    }

    #[test]
    fn the_kernel_decision() {
        let a = id("6.1.0-57-amd64", H1);
        let b = id("6.1.0-50-amd64", H2);
        // An older release: no id in the slot.
        assert_eq!(decide(Some(&a), None), Kernel::NoId);
        assert_eq!(decide(None, None), Kernel::NoId);
        assert_eq!(decide(Some(&a), Some(&a)), Kernel::Same);
        // The newline does not make a difference.
        assert_eq!(decide(Some(a.trim_ascii_end()), Some(&a)), Kernel::Same);
        assert_eq!(
            decide(Some(&a), Some(&b)),
            Kernel::Kexec {
                release: b"6.1.0-50-amd64"
            }
        );
        // Same release, other initramfs: a kexec all the same.
        let a2 = id("6.1.0-57-amd64", H2);
        assert_eq!(
            decide(Some(&a), Some(&a2)),
            Kernel::Kexec {
                release: b"6.1.0-57-amd64"
            }
        );
        // The running kernel's id missing or broken: never assumed equal.
        for own in [None, Some(&b"garbage\n"[..]), Some(&b""[..])] {
            assert_eq!(
                decide(own, Some(&a)),
                Kernel::Kexec {
                    release: b"6.1.0-57-amd64"
                },
                "{own:?}"
            );
        }
        assert_eq!(decide(Some(&a), Some(b"6.1.0-57-amd64\n")), Kernel::BadId);
        assert_eq!(decide(Some(&a), Some(b"")), Kernel::BadId);
    }

    /// The line for `proc`, without the loader's marks (checked apart).
    fn cmdline(proc: &str, slot: Slot) -> Option<String> {
        let mut out = Buf::new();
        kexec_cmdline(proc.as_bytes(), slot, [1_480, 3_612], &mut out)?;
        let line = String::from_utf8(out.as_bytes().to_vec()).unwrap();
        let marks = " matic.loader_ms=1480,3612";
        let (at, len) = (line.find(marks).expect(&line), marks.len());
        Some(format!("{}{}", &line[..at], &line[at + len..]))
    }

    #[test]
    fn the_kexec_command_line_carries_the_loaders_marks() {
        let mut out = Buf::new();
        kexec_cmdline(b"quiet -- single\n", Slot::B, [0, 18_446_744], &mut out).unwrap();
        assert_eq!(
            out.as_bytes(),
            b"quiet matic.slot=B lockdown=integrity matic.loader_ms=0,18446744 -- single"
        );
    }

    #[test]
    fn the_kexec_command_line() {
        assert_eq!(
            cmdline(
                "console=ttyS0 panic=10 matic.disk_guid=0FC6 quiet\n",
                Slot::B
            )
            .as_deref(),
            Some(
                "console=ttyS0 panic=10 matic.disk_guid=0FC6 quiet matic.slot=B lockdown=integrity"
            )
        );
        // Existing matic.slot= and lockdown= (bare, quoted) are replaced.
        assert_eq!(
            cmdline(
                "  matic.slot=A console=ttyS0   lockdown=none \"lockdown\"=confidentiality lockdown x=\"a b\"  \n",
                Slot::A
            )
            .as_deref(),
            Some("console=ttyS0 x=\"a b\" matic.slot=A lockdown=integrity")
        );
        // Look-alikes stay.
        assert_eq!(
            cmdline("matic.slots=A xlockdown=1 matic.slot.x=1\n", Slot::A).as_deref(),
            Some("matic.slots=A xlockdown=1 matic.slot.x=1 matic.slot=A lockdown=integrity")
        );
        assert_eq!(
            cmdline("\n", Slot::B).as_deref(),
            Some("matic.slot=B lockdown=integrity")
        );
        // Before `--`: what follows it is init's, not the kernel's.
        assert_eq!(
            cmdline("quiet -- single lockdown=x\n", Slot::A).as_deref(),
            Some("quiet matic.slot=A lockdown=integrity -- single lockdown=x")
        );
        assert_eq!(
            cmdline("quiet --  \n", Slot::A).as_deref(),
            Some("quiet matic.slot=A lockdown=integrity --")
        );
    }

    #[test]
    fn a_command_line_that_was_cut_or_grows_too_long_is_refused() {
        // No newline: /proc/cmdline filled the read buffer.
        assert_eq!(cmdline("console=ttyS0", Slot::A), None);
        let marks = " matic.loader_ms=1480,3612".len();
        let add = " matic.slot=A lockdown=integrity".len() + marks;
        let fits = format!("{}\n", "x".repeat(CMDLINE_MAX - 1 - add));
        assert_eq!(
            cmdline(&fits, Slot::A).unwrap().len() + marks,
            CMDLINE_MAX - 1
        );
        let over = format!("{}\n", "x".repeat(CMDLINE_MAX - add));
        assert_eq!(cmdline(&over, Slot::A), None, "no room for the NUL");
        // Replaced words make room.
        let long = format!("{} lockdown=integrity\n", "x".repeat(CMDLINE_MAX - 1 - add));
        assert!(cmdline(&long, Slot::A).is_some());
    }
    #[test]
    fn the_longest_kernel_id_fits_stage_1_s_buffer() {
        let line = format!("{} {}\n", "r".repeat(RELEASE_MAX), "a".repeat(64));
        assert_eq!(line.len(), KERNEL_ID_MAX);
        assert!(KernelId::parse(line.as_bytes()).is_some());
        let longer = format!("{} {}\n", "r".repeat(RELEASE_MAX + 1), "a".repeat(64));
        assert!(KernelId::parse(longer.as_bytes()).is_none());
    }
}
