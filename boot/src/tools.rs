//! The escape hatch: setting a slot's attribute bits directly, bypassing
//! every rule of [`crate::transitions`]. Compiled only with the `raw-attrs`
//! feature.
//!
//! Who may use it: `matic-disk set` (the image builder gives slot A its
//! first state with it, and it reproduces a state by hand when debugging)
//! and test fixtures that need a state no sequence of transitions reaches
//! cheaply. It lives behind a feature rather than being crate-private
//! because `matic-disk` is a binary of this package and sees only the public
//! API. The feature is in matic-boot's *default* set, so `cargo build` and
//! `cargo test -p matic-boot` build `matic-disk`; init and the agent depend
//! on matic-boot with `default-features = false` and never enable it, so
//! neither can call this (an agent or init built on its own fails to compile
//! if it tries).
//!
//! Must never be called by code that runs on a node.

use crate::device::BlockDevice;
use crate::disk::Disk;
use crate::slot::{Slot, SlotAttrs};

impl<D: BlockDevice> Disk<D> {
    /// Sets `slot`'s priority, tries and successful bit to `attrs` as given,
    /// keeping the entry's other attribute bits, with no check at all (it
    /// can leave nothing bootable). Memory only: [`Disk::write`] writes it.
    pub fn force_slot_attrs(&mut self, slot: Slot, attrs: SlotAttrs) {
        self.set_slot_attrs(slot, attrs);
    }
}
