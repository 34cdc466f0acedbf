//! `matic-boot`: the GPT and the A/B slot state of a MaticOS disk.
//!
//! `#![no_std]` without the `std` feature, and nothing here allocates: PID 1
//! (no allocator) and the agent share it. The crate owns
//!
//! - block I/O behind [`BlockDevice`] (implemented for `[u8]`, `&mut T` and,
//!   with `std`, `std::fs::File`),
//! - reading and checking a GPT (primary, falling back to the backup) and
//!   finding the MaticOS partitions by name ([`Disk::open`], [`Disk::partition`]),
//! - creating a fresh MaticOS disk ([`Disk::create`], [`Layout`]),
//! - the slot state in the root entries' attribute bits ([`SlotAttrs`]) and
//!   every transition of it (`transitions.rs`: [`Disk::choose_boot_slot`],
//!   [`Disk::give_up`], [`Disk::mark_successful`], [`Disk::begin_update`],
//!   [`Disk::finish_update`], [`Disk::cancel_update`], [`Disk::rollback`]),
//!   which only change the in-memory table, and
//! - [`Disk::write`], which writes it back so that a torn write leaves the old
//!   or the new table, never neither.
//!
//! It never lets a caller set slot attribute bits directly (that would skip
//! the rules that keep one proven slot): the only raw setter outside the
//! crate is [`Disk::force_slot_attrs`], behind the `raw-attrs` feature, for
//! the `matic-disk set` command and test fixtures; init and the agent depend
//! on matic-boot without it.
//!
//! Sector size is 512 bytes; 4096-byte-sector disks are refused with
//! [`Error::UnsupportedSectorSize`].
//!
//! # Example
//!
//! ```
//! use matic_boot::{Disk, Guid, Layout, Slot};
//!
//! // Any BlockDevice works; a byte slice is a disk in memory.
//! let mut mem = vec![0u8; 64 << 20];
//! let layout = Layout {
//!     esp_bytes: 1 << 20,
//!     slot_bytes: 16 << 20,
//!     state_bytes: None,
//!     disk_guid: Guid([0x42; 16]),
//! };
//! let mut disk = Disk::create(&mut mem[..], &layout)?;
//!
//! // Image builder: slot A holds the first image; give it 3 tries.
//! disk.finish_update(Slot::A, 3)?;
//! disk.write()?;
//!
//! // Init, stage 1: choose, spend a try, write, then mount that slot.
//! let mut disk = Disk::open(&mut mem[..])?;
//! let slot = disk.choose_boot_slot()?;
//! disk.write()?;
//! assert_eq!(slot, Slot::A);
//! let root = disk.slot_partition(slot); // root.number: /dev/vda2
//! assert_eq!((root.number, root.start()), (2, 2 << 20));
//! let state = disk.state_partition()?;
//! assert_eq!(state.number, 4);
//!
//! // Agent: the boot is healthy.
//! disk.mark_successful(slot)?;
//! disk.write()?;
//!
//! // Agent, installing an update into the other slot:
//! disk.begin_update(!slot, slot)?; // invalidate B, write, *then* the image
//! disk.write()?;
//! // ... write the image into disk.slot_partition(Slot::B), sync, verify ...
//! disk.finish_update(Slot::B, 3)?;
//! disk.write()?;
//! assert_eq!(disk.status().next, Some(Slot::B));
//! # Ok::<(), matic_boot::Error<matic_boot::OutOfBounds>>(())
//! ```
//!
//! Slot bits change only through a transition; outside this crate,
//! `set_slot_attrs` does not exist:
//!
//! ```compile_fail,E0624
//! # use matic_boot::{Disk, Guid, Layout, Slot, SlotAttrs};
//! # let mut mem = vec![0u8; 64 << 20];
//! # let layout = Layout { esp_bytes: 1 << 20, slot_bytes: 16 << 20, state_bytes: None, disk_guid: Guid([0x42; 16]) };
//! let mut disk = Disk::create(&mut mem[..], &layout).unwrap();
//! disk.set_slot_attrs(Slot::B, SlotAttrs::INVALID); // private
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod crc32;
pub mod device;
pub mod disk;
pub mod error;
pub mod gpt;
pub mod guid;
pub mod layout;
mod load;
pub mod slot;
#[cfg(feature = "raw-attrs")]
pub mod tools;
mod transitions;

pub use device::{BlockDevice, OutOfBounds, SECTOR_SIZE};
pub use disk::{Disk, Health, Partition};
pub use error::{Check, Error, IoOp, Which};
pub use gpt::MAX_ENTRIES_BYTES;
pub use guid::Guid;
pub use layout::Layout;
pub use slot::{BootStatus, ParseSlotError, Part, Slot, SlotAttrs};
