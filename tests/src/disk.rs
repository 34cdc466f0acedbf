//! The small file-backed MaticOS disk the agent's and osctl's tests and the
//! load benchmark run against: 20 MiB, ESP 1 MiB, two 8 MiB slots, 1 MiB
//! `MATIC_STATE`, every slot invalid. Callers bring it to the state they
//! need with matic-boot's transitions; this must never set slot bits itself.
use std::fs::{File, OpenOptions};
use std::path::Path;

use matic_boot::{Disk, Guid, Layout};

const MIB: u64 = 1 << 20;
/// Size of each root slot on the test disk.
pub const SLOT_BYTES: u64 = 8 * MIB;

/// Creates (or truncates) `path` as a fresh MaticOS disk whose disk GUID
/// is sixteen `guid` bytes, and returns it open for reading and writing.
pub fn create(path: &Path, guid: u8) -> Disk<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("creating the test disk {}: {e}", path.display()));
    f.set_len(20 * MIB).unwrap();
    let layout = Layout {
        esp_bytes: MIB,
        slot_bytes: SLOT_BYTES,
        state_bytes: Some(MIB),
        disk_guid: Guid([guid; 16]),
    };
    Disk::create(f, &layout).unwrap()
}
