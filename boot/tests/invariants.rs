//! Issue 10's invariants, as property tests over random sequences of what
//! init and the agent actually do to a disk — boots (stage 1's
//! `choose_boot_slot`, and `give_up` when the chosen image cannot boot),
//! installs (`begin_update`, the image bytes, `finish_update` or
//! `cancel_update`, interrupted after any step), marking the running slot
//! successful, rollbacks — with power cut in the middle of any GPT write
//! (the `Cutoff` device of `power_loss.rs`) or of an image:
//!
//! 1. From a state with a bootable successful slot, the disk always keeps a
//!    slot that is marked successful and will boot (so there is always a
//!    slot to boot: the only slot that may stop booting is an unproven one,
//!    by running out of tries, by a bad image, or by being the target of an
//!    install).
//! 2. The running slot is never the target of a write: no install starts
//!    into it, and no image byte lands in its partition (each slot's bytes
//!    are checked against the image the model says it holds).
//!
//! The running slot is the one the last boot chose; after a power cut or a
//! boot that gave up, nothing runs until the next boot.

mod common;

use common::*;
use matic_boot::{BlockDevice, Disk, Error, Slot, SlotAttrs};
use proptest::prelude::*;

/// Where an install stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// After `begin_update` was written (the stream broke off at once).
    AfterBegin,
    /// After the image was written, before `finish_update` (digest mismatch,
    /// short stream, client gone).
    AfterImage,
    /// `cancel_update` after the image.
    Cancel,
    /// Complete: `finish_update`.
    Finish,
}

#[derive(Debug, Clone)]
enum Op {
    /// A reboot: stage 1 chooses; a chosen slot whose image is bad is given up.
    Boot,
    /// The agent marks the running slot successful (it was healthy).
    MarkRunning,
    /// An install into `target` (the agent asks for the other slot; a bug or
    /// a hand-made request may name the running one). `good`: whether the
    /// new image can boot.
    Install {
        target_other: bool,
        good: bool,
        tries: u8,
        stop: Stop,
    },
    /// `osctl rollback` on the running slot.
    Rollback,
}

fn op() -> impl Strategy<Value = Op> {
    let stop = prop_oneof![
        1 => Just(Stop::AfterBegin),
        1 => Just(Stop::AfterImage),
        1 => Just(Stop::Cancel),
        3 => Just(Stop::Finish),
    ];
    prop_oneof![
        5 => Just(Op::Boot),
        3 => Just(Op::MarkRunning),
        4 => (prop::bool::weighted(0.9), prop::bool::weighted(0.7), 1u8..=5, stop).prop_map(
            |(target_other, good, tries, stop)| Op::Install { target_other, good, tries, stop }
        ),
        1 => Just(Op::Rollback),
    ]
}

/// Every GPT write may lose power: `None` lets it complete, `Some(n)` cuts
/// it after `n` bytes (the table is 2 × (16 KiB + 512) bytes).
fn cut() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![6 => Just(None), 1 => (0u64..34_000).prop_map(Some)]
}

/// The model: which image each slot holds, whether that image can boot, and
/// which slot runs.
struct World {
    dev: Sparse,
    running: Option<Slot>,
    /// The image id in each slot's first and last 8 bytes.
    content: [u64; 2],
    good: [bool; 2],
    next_image: u64,
}

fn idx(s: Slot) -> usize {
    s as usize
}

impl World {
    /// Opens the disk, applies `change`, writes it with power cut after
    /// `cut` bytes if given. Returns the change's result and whether the
    /// power was cut (then nothing runs until the next boot).
    fn gpt<T>(
        &mut self,
        cut: Option<u64>,
        change: impl FnOnce(&mut Disk<Cutoff<'_>>) -> Result<T, Error<DevError>>,
    ) -> Result<(Result<T, Error<DevError>>, bool), TestCaseError> {
        let dev = Cutoff::new(&mut self.dev, cut.unwrap_or(u64::MAX));
        let mut d = match Disk::open(dev) {
            Ok(d) => d,
            Err(e) => return Err(TestCaseError::fail(format!("disk does not open: {e}"))),
        };
        let r = change(&mut d);
        if r.is_err() {
            return Ok((r, false));
        }
        let cut_happened = d.write().is_err();
        prop_assert_eq!(cut_happened, d.device().cut);
        if cut_happened {
            self.running = None;
        }
        Ok((r, cut_happened))
    }

    fn stamp(&mut self, s: Slot, id: u64) {
        let p = Disk::open(&mut self.dev).unwrap().slot_partition(s);
        self.dev.write_at_test(p.start(), &id.to_le_bytes());
        self.dev.write_at_test(p.end() - 8, &id.to_le_bytes());
    }

    /// Both invariants, on the disk as it now is.
    fn check(&mut self, what: &str) -> Result<(), TestCaseError> {
        let (st, parts) = match Disk::open(&mut self.dev) {
            Ok(d) => (d.status(), Slot::ALL.map(|s| d.slot_partition(s))),
            Err(e) => return Err(TestCaseError::fail(format!("after {what}: open: {e}"))),
        };
        // 1: a proven slot (successful, will boot, its image good) exists.
        let proven = Slot::ALL
            .iter()
            .any(|&s| st.get(s).successful() && st.get(s).will_boot() && self.good[idx(s)]);
        prop_assert!(proven, "after {}: no proven bootable slot: {:?}", what, st);
        prop_assert!(
            st.next.is_some(),
            "after {}: nothing will boot: {:?}",
            what,
            st
        );
        // 2: each slot's first and last 8 bytes hold the image the model
        // says, so no install wrote into another slot.
        for s in Slot::ALL {
            let p = parts[idx(s)];
            for off in [p.start(), p.end() - 8] {
                let mut b = [0u8; 8];
                self.dev.read_at(off, &mut b).unwrap();
                prop_assert_eq!(
                    u64::from_le_bytes(b),
                    self.content[idx(s)],
                    "after {}: slot {} holds bytes of another image",
                    what,
                    s
                );
            }
        }
        Ok(())
    }
}

/// A start state with a bootable successful slot (`proven`), the other slot
/// anything, and the other slot's image good or not.
fn start() -> impl Strategy<Value = (Slot, SlotAttrs, SlotAttrs, bool)> {
    (
        prop_oneof![Just(Slot::A), Just(Slot::B)],
        (1u8..=15, 0u8..=15).prop_map(|(p, t)| SlotAttrs::new(p, t, true).unwrap()),
        (0u8..=15, 0u8..=15, any::<bool>()).prop_map(|(p, t, s)| SlotAttrs::new(p, t, s).unwrap()),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_bricks_the_disk_or_writes_the_running_slot(
        (proven, p_attrs, o_attrs, o_good) in start(),
        overlap in prop::option::weighted(0.05, 1u64..64),
        ops in prop::collection::vec((op(), cut(), cut()), 1..50),
    ) {
        let mut dev = fresh();
        if let Some(k) = overlap {
            // A CRC-valid table whose slot B starts `k` sectors before slot
            // A ends: an install into B would write into A. It must not open.
            let (a, b) = {
                let d = Disk::open(&mut dev).unwrap();
                (d.slot_partition(Slot::A), d.slot_partition(Slot::B))
            };
            set_entry_range(&mut dev, 2, a.last_lba + 1 - k, b.last_lba);
            let r = Disk::open(&mut dev).map(|_| ());
            prop_assert!(
                matches!(r, Err(Error::PartitionsOverlap { .. })),
                "overlapping slots opened: {:?}", r
            );
            return Ok(());
        }
        let mut w = World {
            dev,
            running: None,
            content: [1, 2],
            // A slot marked successful has booted its image; the other's
            // image may be anything, unless it too is marked successful.
            good: [true, true],
            next_image: 3,
        };
        w.good[idx(!proven)] = o_good || o_attrs.successful();
        {
            let mut d = Disk::open(&mut w.dev).unwrap();
            d.force_slot_attrs(proven, p_attrs);
            d.force_slot_attrs(!proven, o_attrs);
            d.write().unwrap();
        }
        for s in Slot::ALL {
            let id = w.content[idx(s)];
            w.stamp(s, id);
        }
        w.check("the start")?;

        for (op, cut1, cut2) in ops {
            match op {
                Op::Boot => {
                    w.running = None;
                    let (chosen, was_cut) = w.gpt(cut1, |d| d.choose_boot_slot())?;
                    let chosen = chosen.map_err(|e| TestCaseError::fail(format!("boot: {e}")))?;
                    if !was_cut {
                        if w.good[idx(chosen)] {
                            w.running = Some(chosen);
                        } else {
                            // Stage 1 cannot mount it: give up, reboot. A
                            // refusal keeps the table and retries later.
                            let _ = w.gpt(cut2, |d| d.give_up(chosen))?;
                            w.running = None;
                        }
                    }
                }
                Op::MarkRunning => {
                    let Some(r) = w.running else { continue };
                    let (res, _) = w.gpt(cut1, |d| d.mark_successful(r))?;
                    res.map_err(|e| TestCaseError::fail(format!("marking {r}: {e}")))?;
                }
                Op::Install { target_other, good, tries, stop } => {
                    let Some(r) = w.running else { continue };
                    let target = if target_other { !r } else { r };
                    let (res, was_cut) = w.gpt(cut1, |d| d.begin_update(target, r))?;
                    match res {
                        Err(Error::UpdateTargetIsRunning(_)) => {
                            prop_assert_eq!(target, r);
                            continue;
                        }
                        Err(Error::RunningSlotOnTrial(s)) => {
                            prop_assert_eq!(s, r);
                            continue;
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("begin_update: {e}"))),
                        Ok(()) => {}
                    }
                    // Invariant 2: the install writes into a slot that is not running.
                    prop_assert_ne!(target, r, "an install began into the running slot");
                    if was_cut || matches!(stop, Stop::AfterBegin) {
                        continue;
                    }
                    let id = w.next_image;
                    w.next_image += 1;
                    w.stamp(target, id);
                    w.content[idx(target)] = id;
                    w.good[idx(target)] = good;
                    match stop {
                        Stop::AfterBegin => unreachable!(),
                        Stop::AfterImage => {}
                        Stop::Cancel => {
                            let (res, _) = w.gpt(cut2, |d| d.cancel_update(target))?;
                            res.map_err(|e| TestCaseError::fail(format!("cancel_update: {e}")))?;
                        }
                        Stop::Finish => {
                            let (res, _) = w.gpt(cut2, |d| d.finish_update(target, tries))?;
                            res.map_err(|e| TestCaseError::fail(format!("finish_update: {e}")))?;
                        }
                    }
                }
                Op::Rollback => {
                    let Some(r) = w.running else { continue };
                    let (res, _) = w.gpt(cut1, |d| d.rollback(r))?;
                    match res {
                        Ok(_) | Err(Error::RollbackTargetWillNotBoot(_)) => {}
                        Err(e) => return Err(TestCaseError::fail(format!("rollback: {e}"))),
                    }
                }
            }
            w.check(&format!("{op:?}"))?;
        }
    }
}
