//! Which block device is the MaticOS disk. Stage 1 lists the whole disks
//! (`/sys/block`, which holds no partitions) in name order with [`Scan`],
//! opens each, and offers every one whose GPT `matic-boot` accepts to a
//! [`Picker`], which decides: the one disk with the GUID the command line
//! names (`matic.disk_guid=`), else the only MaticOS disk, else nothing
//! yet, or a stop when it would have to guess between several.
//!
//! Pure logic over names and GUIDs, no I/O, no limit on the number of
//! disks. It must never pick a disk when two could be meant: a data disk,
//! or one a pod wrote a MaticOS table onto, must not win the boot.

use crate::fmtbuf::Buf;
use matic_boot::Guid;

/// A disk name (`/sys/block` names are at most 31 bytes).
pub type Name = Buf<32>;

/// Whether `/sys/block/NAME` may be the MaticOS disk: virtio, SCSI/SATA,
/// Xen and NVMe namespaces; never loop, ram, zram, optical, device-mapper
/// or md devices. `loop` (tests only, `matic.test.loop_disks=1`) also
/// admits `loopN`.
pub fn is_candidate_disk(name: &[u8], with_loop: bool) -> bool {
    let starts = |p: &[u8]| name.starts_with(p) && name.len() > p.len();
    let known =
        starts(b"vd") || starts(b"sd") || starts(b"xvd") || starts(b"hd") || starts(b"nvme");
    let looped = with_loop && starts(b"loop") && name[4..].iter().all(u8::is_ascii_digit);
    (known || looped) && name.len() < 32 && name.iter().all(u8::is_ascii_alphanumeric)
}

/// Walks the candidate names of a directory in byte order without holding
/// the list: each pass over the directory ([`Scan::offer`] every entry)
/// finds the smallest candidate after the previous one ([`Scan::end_pass`]).
/// Quadratic in the number of disks, which is small; no cap, no
/// dependence on directory order.
pub struct Scan {
    with_loop: bool,
    /// The name returned last (`None` before the first).
    after: Option<Name>,
    best: Option<Name>,
}

impl Scan {
    pub fn new(with_loop: bool) -> Scan {
        Scan {
            with_loop,
            after: None,
            best: None,
        }
    }

    /// One directory entry of the current pass.
    pub fn offer(&mut self, name: &[u8]) {
        if !is_candidate_disk(name, self.with_loop) {
            return;
        }
        let after = self.after.as_ref().map(|a| a.as_bytes());
        if after.is_some_and(|a| name <= a) {
            return;
        }
        if self.best.as_ref().is_some_and(|b| name >= b.as_bytes()) {
            return;
        }
        let mut n = Name::new();
        n.push_bytes(name);
        self.best = Some(n);
    }

    /// Ends a pass: the next name in order, or `None` when all were seen.
    pub fn end_pass(&mut self) -> Option<&[u8]> {
        let best = self.best.take()?;
        self.after = Some(best);
        self.after.as_ref().map(|n| n.as_bytes())
    }
}

/// A disk carrying a MaticOS partition table.
pub struct Found {
    pub name: Name,
    pub guid: Guid,
}

/// Collects the MaticOS disks of one scan and decides.
pub struct Picker {
    want: Option<Guid>,
    /// Disks that count: with the wanted GUID, or all without one.
    matches: u32,
    first: Option<Found>,
    second: Option<Found>,
    /// A MaticOS disk whose GUID is not the wanted one (for the message).
    other: Option<Found>,
}

/// What [`Picker::verdict`] says.
pub enum Verdict<'a> {
    /// Boot from this disk.
    Use(&'a [u8]),
    /// Nothing that counts yet: scan again (the disk may not be there yet).
    Wait,
    /// Several disks would do and the command line does not say which:
    /// the first two in name order, and how many in all.
    Ambiguous(&'a Found, &'a Found, u32),
}

impl Picker {
    /// `want`: the GUID of `matic.disk_guid=`, if any.
    pub fn new(want: Option<Guid>) -> Picker {
        Picker {
            want,
            matches: 0,
            first: None,
            second: None,
            other: None,
        }
    }

    /// A disk whose GPT carries the MaticOS partitions, with its GUID.
    pub fn offer(&mut self, name: &[u8], guid: Guid) {
        let mut n = Name::new();
        n.push_bytes(name);
        let found = Found { name: n, guid };
        if self.want.is_some_and(|w| w != guid) {
            if self.other.is_none() {
                self.other = Some(found);
            }
            return;
        }
        self.matches += 1;
        if self.first.is_none() {
            self.first = Some(found);
        } else if self.second.is_none() {
            self.second = Some(found);
        }
    }

    pub fn verdict(&self) -> Verdict<'_> {
        match (&self.first, &self.second) {
            (Some(a), Some(b)) => Verdict::Ambiguous(a, b, self.matches),
            (Some(a), None) => Verdict::Use(a.name.as_bytes()),
            _ => Verdict::Wait,
        }
    }

    /// A MaticOS disk passed over for its GUID, if any.
    pub fn other(&self) -> Option<&Found> {
        self.other.as_ref()
    }
}

/// The GUID of `matic.disk_guid=` (text form, any case).
pub fn parse_guid(text: &[u8]) -> Option<Guid> {
    Guid::parse_bytes(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(dir: &[&str], with_loop: bool) -> Vec<String> {
        let mut s = Scan::new(with_loop);
        let mut out = vec![];
        loop {
            for n in dir {
                s.offer(n.as_bytes());
            }
            match s.end_pass() {
                Some(n) => out.push(String::from_utf8(n.to_vec()).unwrap()),
                None => return out,
            }
        }
    }

    #[test]
    fn candidate_disks() {
        for ok in [&b"vda"[..], b"vdb", b"sda", b"nvme0n1", b"xvda", b"hda"] {
            assert!(is_candidate_disk(ok, false), "{ok:?}");
        }
        for no in [
            &b"loop0"[..],
            b"ram0",
            b"zram0",
            b"sr0",
            b"dm-0",
            b"md0",
            b"vd",
            b"",
            b"vda/../x",
            b"nvme0n1p1x-",
        ] {
            assert!(!is_candidate_disk(no, false), "{no:?}");
        }
        assert!(is_candidate_disk(b"loop7", true));
        assert!(!is_candidate_disk(b"loop", true));
        assert!(!is_candidate_disk(b"loopx", true));
    }

    #[test]
    fn every_whole_disk_in_name_order_however_many() {
        // 40 disks in reverse directory order, among other devices: all of
        // them come out, sorted (the old scan kept the first 16 it read).
        let mut dir: Vec<String> = (b'a'..=b'z').map(|c| format!("vd{}", c as char)).collect();
        dir.extend((b'a'..b'o').map(|c| format!("sd{}", c as char)));
        dir.reverse();
        dir.extend(["loop0", "dm-0", "sr0", "zram0"].map(String::from));
        let names: Vec<&str> = dir.iter().map(String::as_str).collect();
        let got = scan_all(&names, false);
        let mut want: Vec<String> = dir
            .iter()
            .filter(|n| n.starts_with("vd") || n.starts_with("sd"))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(got.len(), 40);
        assert_eq!(got, want);
        assert_eq!(
            scan_all(&["loop1", "vdb", "loop0"], true),
            ["loop0", "loop1", "vdb"]
        );
        assert!(scan_all(&[], false).is_empty());
    }

    const G1: Guid = Guid([1; 16]);
    const G2: Guid = Guid([2; 16]);

    fn used(p: &Picker) -> Option<String> {
        match p.verdict() {
            Verdict::Use(n) => Some(String::from_utf8(n.to_vec()).unwrap()),
            _ => None,
        }
    }

    #[test]
    fn one_maticos_disk_is_used_without_a_guid() {
        let mut p = Picker::new(None);
        assert!(matches!(p.verdict(), Verdict::Wait));
        p.offer(b"vdb", G1);
        assert_eq!(used(&p).as_deref(), Some("vdb"));
    }

    #[test]
    fn several_maticos_disks_without_a_guid_stop_the_boot() {
        let mut p = Picker::new(None);
        for (n, g) in [(&b"sda"[..], G1), (b"vda", G2), (b"vdb", G2)] {
            p.offer(n, g);
        }
        match p.verdict() {
            Verdict::Ambiguous(a, b, n) => {
                assert_eq!(a.name.as_bytes(), b"sda");
                assert_eq!(b.name.as_bytes(), b"vda");
                assert_eq!((a.guid, b.guid, n), (G1, G2, 3));
            }
            _ => panic!("must not guess"),
        }
    }

    #[test]
    fn the_guid_picks_the_disk_even_when_it_is_not_first() {
        let mut p = Picker::new(Some(G2));
        p.offer(b"vda", G1); // a data disk a pod wrote a MaticOS table onto
        assert!(matches!(p.verdict(), Verdict::Wait), "vda is not the one");
        p.offer(b"vdb", G2);
        assert_eq!(used(&p).as_deref(), Some("vdb"));
        assert_eq!(p.other().map(|o| o.name.as_bytes()), Some(&b"vda"[..]));
        // Two disks with the same GUID (a cloned disk): no guess either.
        p.offer(b"vdc", G2);
        assert!(matches!(p.verdict(), Verdict::Ambiguous(_, _, 2)));
    }

    #[test]
    fn guid_text() {
        let g = parse_guid(b"01234567-89ab-CDEF-0123-456789abcdef").unwrap();
        assert_eq!(g.0[..4], [0x67, 0x45, 0x23, 0x01]);
        assert!(parse_guid(b"01234567-89ab-cdef-0123-456789abcde").is_none());
        assert!(parse_guid(b"\xff").is_none());
        assert!(parse_guid(b"01234567-89ab-cdef-0123-456789abcd\xef\xbf").is_none());
    }
}
