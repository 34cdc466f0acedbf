//! `matic-init`: the logic of MaticOS's PID 1, testable on the host.
//!
//! Everything here is plain, allocation-free logic (the service table, the
//! supervisor state machine, backoff, the control FIFO's framing, and the
//! parsers and formatters of the files init shares with the initramfs
//! builder). The files and commands shared with the agent are
//! `matic-contract`'s; init only fills them from its own state. The binary
//! (`src/main.rs`) adds the syscalls: it owns `_start`, the raw-syscall module,
//! and the stage 1 / stage 2 runtimes that drive these modules.
//!
//! Nothing here may make a system call, allocate, or hold `unsafe` code:
//! what cannot be decided from bytes and numbers belongs to the binary.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod argv;
pub mod backoff;
pub mod cmdline;
pub mod control;
pub mod diskpick;
pub mod dm;
pub mod fmtbuf;
pub mod loader;
pub mod lockdown;
pub mod modlist;
pub mod panictrace;
pub mod rootfs;
pub mod signature;
pub mod slotfault;
pub mod stage1_error;
pub mod status;
pub mod supervisor;
pub mod table;
pub mod verity;

/// Whether `b` holds a NUL byte. A plain loop, not `<[u8]>::contains`:
/// that links `core`'s word-at-a-time `memchr`, bytes PID 1 does not need
/// for the few short names and lines it checks (docs/init.md "Size").
#[allow(clippy::manual_contains)] // `contains` is what this avoids
pub fn has_nul(b: &[u8]) -> bool {
    b.iter().any(|&c| c == 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_nul_finds_a_nul_anywhere() {
        assert!(!super::has_nul(b""));
        assert!(!super::has_nul(b"/lib/modules/dm-verity.ko"));
        assert!(super::has_nul(b"\0"));
        assert!(super::has_nul(b"/lib/x\0.ko"));
        assert!(super::has_nul(b"/lib/x.ko\0"));
    }
}
