//! Property tests: for any starting state and any sequence of transitions,
//! boots and persists, the invariants the design relies on hold:
//!
//! - a slot that has succeeded and was not replaced since stays bootable;
//! - after `begin_update` (or `cancel_update`) the target never boots until
//!   `finish_update`;
//! - `rollback` never leaves no bootable slot, and picks the other slot;
//! - `choose_boot_slot` picks what `status().next` predicted, spends a try
//!   only on a not-yet-successful slot, and fails only when nothing boots;
//! - every refused transition changes nothing;
//! - `write` + `open` reproduces the state exactly.

mod common;

use common::*;
use matic_boot::{BootStatus, Disk, Error, Slot, SlotAttrs};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Boot,
    MarkRunningOk,
    MarkOk(Slot),
    Begin(Slot, Slot),
    Finish(Slot, u8),
    Cancel(Slot),
    Rollback(Slot),
    RollbackRunning,
    Persist,
}

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![Just(Slot::A), Just(Slot::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Boot),
        3 => Just(Op::MarkRunningOk),
        1 => slot().prop_map(Op::MarkOk),
        2 => (slot(), slot()).prop_map(|(t, r)| Op::Begin(t, r)),
        2 => (slot(), 0u8..=16).prop_map(|(t, n)| Op::Finish(t, n)),
        1 => slot().prop_map(Op::Cancel),
        1 => slot().prop_map(Op::Rollback),
        1 => Just(Op::RollbackRunning),
        1 => Just(Op::Persist),
    ]
}

fn any_attrs() -> impl Strategy<Value = SlotAttrs> {
    (0u8..=15, 0u8..=15, any::<bool>()).prop_map(|(p, t, s)| SlotAttrs::new(p, t, s).unwrap())
}

#[derive(Default)]
struct Model {
    running: Option<Slot>,
    /// Marked successful, not invalidated or replaced since.
    succeeded: [bool; 2],
    /// Invalidated by begin/cancel, not finished since.
    pending: [bool; 2],
}

fn idx(s: Slot) -> usize {
    s as usize
}

fn check_invariants(m: &Model, st: &BootStatus) -> Result<(), TestCaseError> {
    for s in Slot::ALL {
        if m.succeeded[idx(s)] {
            prop_assert!(
                st.get(s).will_boot(),
                "succeeded slot {s} no longer boots: {st:?}"
            );
        }
        if m.pending[idx(s)] {
            prop_assert!(!st.get(s).will_boot(), "pending slot {s} bootable: {st:?}");
            prop_assert_ne!(st.next, Some(s));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_sequence(
        a0 in any_attrs(),
        b0 in any_attrs(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut disk = Disk::open(fresh()).unwrap();
        disk.force_slot_attrs(Slot::A, a0);
        disk.force_slot_attrs(Slot::B, b0);
        let mut m = Model::default();

        for op in ops {
            let before = disk.status();
            // Refusals must leave the state untouched.
            macro_rules! refused {
                ($r:expr, $pat:pat $(if $guard:expr)?) => {{
                    let r = $r;
                    prop_assert!(matches!(r, Err($pat) $(if $guard)?), "{:?}: expected refusal, got {:?}", op, r);
                    prop_assert_eq!(disk.status(), before, "{:?} refused but changed state", op);
                }};
            }
            match op {
                Op::Boot => match before.next {
                    None => refused!(disk.choose_boot_slot(), Error::NoBootableSlot),
                    Some(predicted) => {
                        let s = disk.choose_boot_slot().unwrap();
                        prop_assert_eq!(s, predicted);
                        prop_assert!(before.get(s).will_boot());
                        prop_assert!(!m.pending[idx(s)]);
                        let (b, a) = (before.get(s), disk.slot_attrs(s));
                        let spent = u8::from(!b.successful());
                        prop_assert_eq!(a, SlotAttrs::new(b.priority(), b.tries() - spent, b.successful()).unwrap());
                        let (ob, oa) = (before.get(!s), disk.slot_attrs(!s));
                        if !ob.successful() && ob.tries() == 0 {
                            prop_assert_eq!(oa.priority(), 0, "given-up slot keeps priority");
                        } else {
                            prop_assert_eq!(oa, ob);
                        }
                        m.running = Some(s);
                    }
                },
                Op::MarkRunningOk | Op::MarkOk(_) => {
                    let s = match (&op, m.running) {
                        (Op::MarkOk(s), _) => *s,
                        (_, Some(r)) => r,
                        (_, None) => continue,
                    };
                    if before.get(s).priority() == 0 {
                        refused!(disk.mark_successful(s), Error::SlotInvalidated(_));
                    } else {
                        disk.mark_successful(s).unwrap();
                        let b = before.get(s);
                        prop_assert_eq!(disk.slot_attrs(s), SlotAttrs::new(b.priority(), b.tries(), true).unwrap());
                        prop_assert_eq!(disk.slot_attrs(!s), before.get(!s));
                        m.succeeded[idx(s)] = true;
                    }
                }
                Op::Begin(t, r) => {
                    if t == r {
                        refused!(disk.begin_update(t, r), Error::UpdateTargetIsRunning(_));
                    } else if !before.get(r).successful() {
                        refused!(disk.begin_update(t, r), Error::RunningSlotOnTrial(s) if s == r);
                    } else if !before.get(r).will_boot() {
                        refused!(disk.begin_update(t, r), Error::RunningSlotWillNotBoot(s) if s == r);
                    } else {
                        disk.begin_update(t, r).unwrap();
                        prop_assert_eq!(disk.slot_attrs(t), SlotAttrs::INVALID);
                        prop_assert_eq!(disk.slot_attrs(r), before.get(r));
                        m.pending[idx(t)] = true;
                        m.succeeded[idx(t)] = false;
                    }
                }
                Op::Finish(t, n) => {
                    if n == 0 || n > 15 {
                        refused!(disk.finish_update(t, n), Error::ValueOutOfRange(_));
                    } else {
                        disk.finish_update(t, n).unwrap();
                        prop_assert_eq!(disk.slot_attrs(t), attrs(2, n, false));
                        prop_assert_eq!(disk.status().next, Some(t));
                        let ob = before.get(!t);
                        let want_p = if ob.priority() > 0 { 1 } else { 0 };
                        prop_assert_eq!(disk.slot_attrs(!t), SlotAttrs::new(want_p, ob.tries(), ob.successful()).unwrap());
                        m.pending[idx(t)] = false;
                        m.succeeded[idx(t)] = false;
                    }
                }
                Op::Cancel(t) => {
                    if !before.get(!t).will_boot() {
                        refused!(disk.cancel_update(t), Error::CancelLeavesNoBootableSlot(_));
                    } else {
                        disk.cancel_update(t).unwrap();
                        prop_assert_eq!(disk.slot_attrs(t), SlotAttrs::INVALID);
                        prop_assert_eq!(disk.status().next, Some(!t));
                        m.pending[idx(t)] = true;
                        m.succeeded[idx(t)] = false;
                    }
                }
                Op::Rollback(_) | Op::RollbackRunning => {
                    let r = match (&op, m.running) {
                        (Op::Rollback(r), _) => *r,
                        (_, Some(r)) => r,
                        (_, None) => continue,
                    };
                    if !before.get(!r).will_boot() {
                        refused!(disk.rollback(r), Error::RollbackTargetWillNotBoot(_));
                    } else {
                        prop_assert_eq!(disk.rollback(r).unwrap(), !r);
                        let st = disk.status();
                        prop_assert_eq!(st.next, Some(!r), "rollback target is next");
                        prop_assert_eq!(st.get(r).will_boot(), before.get(r).will_boot());
                    }
                }
                Op::Persist => {
                    disk.write().unwrap();
                    let dev = disk.into_inner();
                    disk = Disk::open(dev).unwrap();
                    prop_assert_eq!(disk.status(), before);
                }
            }
            check_invariants(&m, &disk.status())?;
        }
    }
}
