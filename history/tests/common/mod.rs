//! Helpers shared by the integration tests: an independent measure of the
//! store (not the crate's), and a `Started` event.
#![allow(dead_code)]

use matic_history::Started;
use std::fs;
use std::path::Path;

/// The store's size counted as documented (each file rounded up to 4 KiB,
/// each directory 4 KiB), over the 10-digit directories only.
pub fn total(store: &Path) -> u64 {
    fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit()) && e.path().is_dir()
        })
        .map(|e| size(&e.path()))
        .sum()
}

fn size(dir: &Path) -> u64 {
    let mut total = 4096;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        total += if meta.is_dir() {
            size(&path)
        } else {
            meta.len().div_ceil(4096) * 4096
        };
    }
    total
}

/// The boot numbers present, ascending (by the directory names).
pub fn numbers(store: &Path) -> Vec<u64> {
    let mut numbers: Vec<u64> = fs::read_dir(store)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            (name.len() == 10).then(|| name.parse().ok()).flatten()
        })
        .collect();
    numbers.sort();
    numbers
}

pub fn started(boot: &str) -> Started {
    Started {
        boot: boot.into(),
        slot: "A".into(),
        os_version: "0.1.0".into(),
        kernel: "6.1.0-57-amd64".into(),
        wall_unix_ms: Some(1_795_983_939_120),
        uptime_ms: 3_412,
    }
}
