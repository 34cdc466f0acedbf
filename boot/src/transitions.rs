//! Every transition of the A/B slot state, in one place: what stage 1 of
//! init does on each boot ([`Disk::choose_boot_slot`], [`Disk::give_up`]),
//! what the agent does ([`Disk::mark_successful`], [`Disk::begin_update`],
//! [`Disk::finish_update`], [`Disk::cancel_update`], [`Disk::rollback`]).
//!
//! Each changes only the table held in memory and refuses, changing
//! nothing, any move that would leave no proven slot to boot. None writes to
//! the disk: the caller calls [`Disk::write`] once after it (so one step is
//! one torn-write-safe table write). This module never does I/O, and the
//! rules live nowhere else: init and the agent call these methods, never
//! set attribute bits themselves (`Disk::set_slot_attrs` is crate-private;
//! the `raw-attrs` escape hatch in [`crate::tools`] is for `matic-disk` and
//! test fixtures).

use crate::device::BlockDevice;
use crate::disk::Disk;
use crate::error::Error;
use crate::slot::{self, Slot, SlotAttrs};

type Res<T, D> = Result<T, Error<<D as BlockDevice>::Error>>;

impl<D: BlockDevice> Disk<D> {
    /// Picks the slot to boot now, as stage 1 of init does on every boot:
    /// first a not-yet-successful slot with no tries left is given up for
    /// good (priority 0); then the bootable slot with the highest priority
    /// (A on a tie) is chosen, and if it has not yet succeeded one of its
    /// tries is spent. Nothing changes when no slot will boot.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn choose_boot_slot(&mut self) -> Res<Slot, D> {
        let give_up = |s: SlotAttrs| {
            if !s.successful() && s.tries() == 0 {
                s.with_priority(0)
            } else {
                s
            }
        };
        let a = give_up(self.slot_attrs(Slot::A));
        let b = give_up(self.slot_attrs(Slot::B));
        let chosen = slot::pick(a, b).ok_or(Error::NoBootableSlot)?;
        self.set_slot_attrs(Slot::A, a);
        self.set_slot_attrs(Slot::B, b);
        let c = self.slot_attrs(chosen);
        if !c.successful() {
            self.set_slot_attrs(chosen, c.with_tries(c.tries() - 1));
        }
        Ok(chosen)
    }

    /// Sets `slot`'s successful bit (idempotent). Refused for a slot with
    /// priority 0: an invalidated or given-up slot is never resurrected.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn mark_successful(&mut self, slot: Slot) -> Res<(), D> {
        let s = self.slot_attrs(slot);
        if s.priority() == 0 {
            return Err(Error::SlotInvalidated(slot));
        }
        self.set_slot_attrs(slot, s.with_successful(true));
        Ok(())
    }

    /// Invalidates `target` (P=0, T=0, S=0) before a new image is written to
    /// it. Refused when `target == running`, and when the running slot is not
    /// proven (marked successful and bootable): during a trial boot the
    /// target is the only slot known to work, and invalidating it would leave
    /// nothing to fall back to if the trial fails.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn begin_update(&mut self, target: Slot, running: Slot) -> Res<(), D> {
        if target == running {
            return Err(Error::UpdateTargetIsRunning(target));
        }
        let r = self.slot_attrs(running);
        if !r.successful() {
            return Err(Error::RunningSlotOnTrial(running));
        }
        if !r.will_boot() {
            return Err(Error::RunningSlotWillNotBoot(running));
        }
        self.set_slot_attrs(target, SlotAttrs::INVALID);
        Ok(())
    }

    /// Makes the freshly written `target` the next boot: P=2, T=`tries`,
    /// S=0; the other slot drops to P=1 so it stays the fallback (an other
    /// slot already at priority 0 stays there). `tries` must be 1–15.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn finish_update(&mut self, target: Slot, tries: u8) -> Res<(), D> {
        if tries == 0 || tries > SlotAttrs::MAX {
            return Err(Error::ValueOutOfRange(tries));
        }
        let other = self.slot_attrs(!target);
        if other.priority() > 0 {
            self.set_slot_attrs(!target, other.with_priority(1));
        }
        let t = SlotAttrs::new(2, tries, false).expect("checked range");
        self.set_slot_attrs(target, t);
        Ok(())
    }

    /// Abandons an update of `target`: it is invalidated (P=0, T=0, S=0)
    /// whatever stage the update reached. Refused when the other slot will
    /// not boot, since nothing would.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn cancel_update(&mut self, target: Slot) -> Res<(), D> {
        if !self.slot_attrs(!target).will_boot() {
            return Err(Error::CancelLeavesNoBootableSlot(!target));
        }
        self.set_slot_attrs(target, SlotAttrs::INVALID);
        Ok(())
    }

    /// Stage 1 found `slot`'s *image* unbootable (bad superblock, no
    /// `/sbin/init`): it is invalidated (P=0, T=0, S=0), successful or not,
    /// so the next boot picks the other slot. Refused when the other slot
    /// will not boot: giving up would leave nothing to boot, so the caller
    /// keeps the table as it is and retries instead.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn give_up(&mut self, slot: Slot) -> Res<(), D> {
        if !self.slot_attrs(!slot).will_boot() {
            return Err(Error::GiveUpLeavesNoBootableSlot(!slot));
        }
        self.set_slot_attrs(slot, SlotAttrs::INVALID);
        Ok(())
    }

    /// Makes the slot that is not `running` the next boot (P=2, the running
    /// slot drops to P=1 if it had a priority, remaining the fallback).
    /// Refused when that slot will not boot. Returns the new next slot.
    ///
    /// Touches memory only: does not write to the disk; [`Disk::write`] does.
    pub fn rollback(&mut self, running: Slot) -> Res<Slot, D> {
        let target = !running;
        let t = self.slot_attrs(target);
        if !t.will_boot() {
            return Err(Error::RollbackTargetWillNotBoot(target));
        }
        let r = self.slot_attrs(running);
        self.set_slot_attrs(running, r.with_priority(r.priority().min(1)));
        self.set_slot_attrs(target, t.with_priority(2));
        Ok(target)
    }
}
