//! The boot history of a MaticOS node: every boot's events (its timeline
//! and how it ended), its kernel log, its stamped service logs and the
//! crash dumps that belong to it, kept on `MATIC_STATE` across reboots,
//! crashes and power cuts, under a total size cap. `osctl boots`, `osctl
//! dmesg --boot N` and `osctl logs --boot N` read it through the agent.
//!
//! Owns: the layout and formats on disk (`docs/interfaces.md`, "Boot
//! history": change both together), the fsync policy, retention, reading
//! crash dumps, and the rule that says how a boot ended.
//!
//! | module | what |
//! |---|---|
//! | [`journal`] | the events of one boot and their line format |
//! | [`stamp`] | the stamped service log line |
//! | [`kernel_line`] | the `[secs.micros]` stamp of a kernel log line |
//! | [`store`] | the directory, boot numbers, sizes and retention |
//! | [`writer`] | appending to the current boot, fsync policy, file bounds |
//! | [`read`] | listing boots, timelines and logs back |
//! | [`pstore`] | moving crash dumps out of pstore and reading them |
//! | [`ending`] | deciding how a boot ended |
//!
//! Must never: block PID 1 (it is the agent's: synchronous file I/O and
//! fsync, on a thread of its own choosing), delete the running boot, or
//! panic on bad bytes (a damaged file reads as far as it can).
#![forbid(unsafe_code)]

pub mod ending;
pub mod error;
pub mod journal;
pub mod kernel_line;
pub mod pstore;
pub mod read;
pub mod stamp;
pub mod store;
pub mod writer;

pub use error::{Error, Result};
pub use journal::{Ending, Event, Started};
pub use store::Store;
pub use writer::BootWriter;
