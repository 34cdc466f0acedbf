//! What the root file system is mounted from, for `Version`: the source of
//! `/` in `/proc/self/mountinfo`, and whether that device is the dm-verity
//! device stage 1 creates for the running slot (a device-mapper device
//! named `matic-root-<slot>`, as `/sys/dev/block/MAJ:MIN/dm/name` says).
//!
//! This reports names, not proofs: it does not read the device-mapper table
//! (that it is a `verity` target with the manifest's root hash is stage 1's
//! doing, see docs/api.md).
//!
//! Must never: write anything, or fail a request (an unreadable file is an
//! unknown device, not an error).
use std::path::Path;

use matic_boot::Slot;

/// The root's source and whether it is the running slot's verity device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootDevice {
    /// The mount source of `/` (e.g. `/dev/dm-0`); empty when unknown.
    pub source: String,
    pub verity: bool,
}

/// The `MAJ:MIN` and source of the last `/` mount in a mountinfo text (the
/// last one is the one on top).
pub fn root_mount(mountinfo: &str) -> Option<(&str, &str)> {
    mountinfo.lines().rev().find_map(|l| {
        // id parent MAJ:MIN root mountpoint options [optional...] - fstype source superoptions
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let mountpoint = f.nth(1)?;
        let (_, after) = l.split_once(" - ")?;
        let source = after.split(' ').nth(1)?;
        (mountpoint == "/").then_some((dev, source))
    })
}

/// The name stage 1 gives the running slot's verity device.
pub fn verity_name(slot: Slot) -> String {
    format!("matic-root-{slot}")
}

/// Reads `mountinfo` and, under `sys` (`/sys`), the device-mapper name of
/// the root's device; `running` is the slot this boot runs, when known.
pub fn probe(mountinfo: &Path, sys: &Path, running: Option<Slot>) -> RootDevice {
    let Ok(text) = std::fs::read_to_string(mountinfo) else {
        return RootDevice::default();
    };
    let Some((dev, source)) = root_mount(&text) else {
        return RootDevice::default();
    };
    let name = std::fs::read_to_string(sys.join("dev/block").join(dev).join("dm/name"))
        .map(|n| n.trim_end().to_owned())
        .ok();
    RootDevice {
        source: source.to_owned(),
        verity: running.is_some_and(|s| name.as_deref() == Some(verity_name(s).as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / ro,relatime shared:1 - squashfs /dev/dm-0 ro,errors=continue
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 0:5 / /dev rw - devtmpfs devtmpfs rw,size=1k
";

    fn sandbox(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("matic-root-dev-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_root_is_the_last_slash_mount() {
        assert_eq!(root_mount(MOUNTINFO), Some(("254:0", "/dev/dm-0")));
        let over = format!("{MOUNTINFO}30 22 8:3 / / rw - ext4 /dev/sda3 rw\n");
        assert_eq!(root_mount(&over), Some(("8:3", "/dev/sda3")));
        assert_eq!(root_mount("garbage\n\n1 2 3\n"), None);
    }

    #[test]
    fn verity_only_for_the_running_slots_device_mapper_name() {
        let d = sandbox("names");
        std::fs::write(d.join("mountinfo"), MOUNTINFO).unwrap();
        let dm = d.join("sys/dev/block/254:0/dm");
        std::fs::create_dir_all(&dm).unwrap();
        let probe_as = |name: &str, running| {
            std::fs::write(dm.join("name"), format!("{name}\n")).unwrap();
            probe(&d.join("mountinfo"), &d.join("sys"), running)
        };
        let a = probe_as("matic-root-A", Some(Slot::A));
        assert_eq!(
            a,
            RootDevice {
                source: "/dev/dm-0".into(),
                verity: true
            }
        );
        assert!(!probe_as("matic-root-A", Some(Slot::B)).verity);
        assert!(!probe_as("matic-root-A", None).verity);
        assert!(!probe_as("cryptroot", Some(Slot::A)).verity);
        std::fs::remove_dir_all(dm.parent().unwrap()).unwrap();
        // Not a device-mapper device at all.
        let plain = probe(&d.join("mountinfo"), &d.join("sys"), Some(Slot::A));
        assert_eq!((plain.source.as_str(), plain.verity), ("/dev/dm-0", false));
        assert_eq!(
            probe(&d.join("missing"), &d.join("sys"), Some(Slot::A)),
            RootDevice::default()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
