//! Unit tests of every slot transition, including each refusal, and of the
//! partition lookups on a disk made by `Disk::create`.

mod common;

use common::*;
use matic_boot::{BootStatus, Disk, Error, Part, Slot, SlotAttrs};

fn status(s: &mut Sparse) -> BootStatus {
    Disk::open(s).unwrap().status()
}

#[test]
fn create_makes_four_named_aligned_partitions_and_invalid_slots() {
    let mut s = Sparse::new(1 << 30);
    let layout = matic_boot::Layout::new(small_layout().disk_guid);
    Disk::create(&mut s, &layout).unwrap();
    let d = Disk::open(&mut s).unwrap();
    // The default ESP holds the loader (a ~9.2 MiB UKI) on FAT32, which
    // needs at least 33 MiB: 64 MiB.
    let expect = [
        (Part::Esp, 1, MIB, 64 * MIB),
        (Part::RootA, 2, 65 * MIB, 256 * MIB),
        (Part::RootB, 3, 321 * MIB, 256 * MIB),
        (Part::State, 4, 577 * MIB, 1023 * MIB - 577 * MIB),
    ];
    for (part, number, start, size) in expect {
        let p = d.partition(part).unwrap();
        assert_eq!(
            (p.number, p.start(), p.size()),
            (number, start, size),
            "{part}"
        );
        assert_eq!(p.type_guid, part.type_guid(), "{part}");
        assert_eq!(d.find_partition(part.name()), Some(p));
    }
    assert_eq!(d.slot_partition(Slot::B), d.partition(Part::RootB).unwrap());
    assert_eq!(d.state_partition().unwrap().number, 4);
    assert_eq!(d.esp_partition().unwrap().number, 1);
    // Unique partition GUIDs, all different and not the disk GUID.
    let mut guids: Vec<_> = Part::ALL
        .iter()
        .map(|&p| d.partition(p).unwrap().unique_guid)
        .collect();
    guids.push(d.disk_guid());
    guids.sort_by_key(|g| g.0);
    guids.dedup();
    assert_eq!(guids.len(), 5);
    let st = d.status();
    assert_eq!(
        (st.a, st.b, st.next),
        (SlotAttrs::INVALID, SlotAttrs::INVALID, None)
    );
    assert_eq!(d.health().primary, Ok(()));
    assert_eq!(d.health().backup, Ok(()));
}

#[test]
fn create_refuses_a_layout_that_does_not_fit() {
    let mut s = Sparse::new(6 * MIB);
    match Disk::create(&mut s, &small_layout()) {
        Err(Error::LayoutTooLarge { needed, available }) => {
            assert_eq!(available, 6 * MIB);
            assert!(needed > available);
        }
        other => panic!("expected LayoutTooLarge, got {:?}", other.err()),
    }
    assert!(s.sectors.is_empty(), "nothing written on refusal");
    let mut tiny = Sparse::new(4096);
    assert!(matches!(
        Disk::create(&mut tiny, &small_layout()),
        Err(Error::DeviceTooSmall { bytes: 4096 })
    ));
}

#[test]
fn create_with_fixed_state_size_and_rounding() {
    let mut s = Sparse::new(64 * MIB);
    let mut l = small_layout();
    l.esp_bytes = 1000; // rounds up to 1 MiB
    l.state_bytes = Some(5 * MIB + 1); // rounds up to 6 MiB
    let d = Disk::create(&mut s, &l).unwrap();
    assert_eq!(d.esp_partition().unwrap().size(), MIB);
    let st = d.state_partition().unwrap();
    assert_eq!((st.start(), st.size()), (6 * MIB, 6 * MIB));
}

#[test]
fn finish_update_makes_target_next_with_tries() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 5).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), attrs(2, 5, false));
    assert_eq!(d.slot_attrs(Slot::A), attrs(1, 2, true));
    assert_eq!(d.status().next, Some(Slot::B));
    // Staged only: the disk still has the old state until write().
    assert_eq!(status(&mut s).b, SlotAttrs::INVALID);
    let mut d = Disk::open(&mut s).unwrap();
    d.finish_update(Slot::B, 5).unwrap();
    d.write().unwrap();
    assert_eq!(status(&mut s).b, attrs(2, 5, false));
}

#[test]
fn finish_update_refuses_tries_out_of_range_and_keeps_invalidated_other() {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    let before = d.status();
    assert!(matches!(
        d.finish_update(Slot::A, 0),
        Err(Error::ValueOutOfRange(0))
    ));
    assert!(matches!(
        d.finish_update(Slot::A, 16),
        Err(Error::ValueOutOfRange(16))
    ));
    assert_eq!(d.status(), before);
    d.finish_update(Slot::A, 1).unwrap();
    // B had priority 0 (never installed): it must stay unbootable.
    assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::INVALID);
}

#[test]
fn choose_spends_tries_then_gives_up_and_falls_back() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 2).unwrap();
    // Two boots of B that never succeed...
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    assert_eq!(d.slot_attrs(Slot::B), attrs(2, 1, false));
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    assert_eq!(d.slot_attrs(Slot::B), attrs(2, 0, false));
    assert!(!d.slot_attrs(Slot::B).will_boot());
    // ...the third boot gives B up for good and runs A, whose tries are untouched.
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    assert_eq!(d.slot_attrs(Slot::B), attrs(0, 0, false));
    assert_eq!(d.slot_attrs(Slot::A), attrs(1, 2, true));
    // B can no longer be marked successful by accident.
    assert!(matches!(
        d.mark_successful(Slot::B),
        Err(Error::SlotInvalidated(Slot::B))
    ));
}

#[test]
fn last_try_can_still_be_marked_successful() {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    d.finish_update(Slot::A, 1).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    assert_eq!(d.slot_attrs(Slot::A), attrs(2, 0, false));
    d.mark_successful(Slot::A).unwrap();
    assert_eq!(d.slot_attrs(Slot::A), attrs(2, 0, true));
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    assert_eq!(
        d.slot_attrs(Slot::A),
        attrs(2, 0, true),
        "successful slots spend no tries"
    );
}

#[test]
fn choose_refuses_when_nothing_boots_and_changes_nothing() {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    d.force_slot_attrs(Slot::A, attrs(3, 0, false));
    let before = d.status();
    assert!(matches!(d.choose_boot_slot(), Err(Error::NoBootableSlot)));
    assert_eq!(d.status(), before);
}

#[test]
fn choose_prefers_priority_then_slot_a() {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    d.force_slot_attrs(Slot::A, attrs(1, 0, true));
    d.force_slot_attrs(Slot::B, attrs(1, 0, true));
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    d.force_slot_attrs(Slot::B, attrs(4, 0, true));
    assert_eq!(d.status().next, Some(Slot::B));
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
}

#[test]
fn mark_successful_sets_only_the_bit() {
    let mut s = fresh();
    let mut d = Disk::open(&mut s).unwrap();
    d.force_slot_attrs(Slot::B, attrs(7, 9, false));
    d.mark_successful(Slot::B).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), attrs(7, 9, true));
    d.mark_successful(Slot::B).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), attrs(7, 9, true));
    assert!(matches!(
        d.mark_successful(Slot::A),
        Err(Error::SlotInvalidated(Slot::A))
    ));
}

#[test]
fn begin_update_invalidates_target_and_refuses_running() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    let before = d.status();
    assert!(matches!(
        d.begin_update(Slot::A, Slot::A),
        Err(Error::UpdateTargetIsRunning(Slot::A))
    ));
    assert_eq!(d.status(), before);
    d.force_slot_attrs(Slot::B, attrs(5, 5, true));
    d.begin_update(Slot::B, Slot::A).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::INVALID);
    assert_eq!(d.slot_attrs(Slot::A), before.a, "running slot untouched");
    assert_eq!(d.status().next, Some(Slot::A));
}

/// Issue 10, item 1: A proven, B freshly installed and on trial. An install
/// now would target A, the only proven slot; it is refused, so when B's
/// tries run out A still boots.
#[test]
fn begin_update_refused_while_running_slot_is_on_trial() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 3).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    let before = d.status();
    let e = d.begin_update(Slot::A, Slot::B).unwrap_err();
    assert!(matches!(e, Error::RunningSlotOnTrial(Slot::B)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "slot B is still on trial; wait until it is marked successful, or roll back"
    );
    assert_eq!(d.status(), before, "a refusal changes nothing");
    // B never gets marked: its remaining tries are spent, then A boots.
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
    assert_eq!(d.slot_attrs(Slot::B).priority(), 0);
    // Once the running slot is proven the same install goes ahead.
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 3).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    d.mark_successful(Slot::B).unwrap();
    d.begin_update(Slot::A, Slot::B).unwrap();
    assert_eq!(d.status().next, Some(Slot::B));
}

/// A running slot that is marked successful but has priority 0 (only a raw
/// `set` makes one) would not boot: invalidating the other slot is refused.
#[test]
fn begin_update_refused_when_running_slot_will_not_boot() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.force_slot_attrs(Slot::A, attrs(0, 0, true));
    d.force_slot_attrs(Slot::B, attrs(1, 0, true));
    let before = d.status();
    assert!(matches!(
        d.begin_update(Slot::B, Slot::A),
        Err(Error::RunningSlotWillNotBoot(Slot::A))
    ));
    assert_eq!(d.status(), before);
}

#[test]
fn cancel_update_invalidates_and_refuses_to_leave_nothing() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 3).unwrap();
    d.cancel_update(Slot::B).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::INVALID);
    assert_eq!(d.status().next, Some(Slot::A));
    // Cancelling A now would leave nothing bootable.
    let before = d.status();
    assert!(matches!(
        d.cancel_update(Slot::A),
        Err(Error::CancelLeavesNoBootableSlot(Slot::B))
    ));
    assert_eq!(d.status(), before);
}

#[test]
fn rollback_switches_to_the_other_bootable_slot() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 3).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    d.mark_successful(Slot::B).unwrap();
    // Running B, successful; roll back to A.
    assert_eq!(d.rollback(Slot::B).unwrap(), Slot::A);
    assert_eq!(d.slot_attrs(Slot::A), attrs(2, 2, true));
    assert_eq!(d.slot_attrs(Slot::B), attrs(1, 2, true));
    assert_eq!(d.status().next, Some(Slot::A));
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::A);
}

#[test]
fn rollback_refuses_a_slot_that_will_not_boot() {
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    let before = d.status();
    assert!(matches!(
        d.rollback(Slot::A),
        Err(Error::RollbackTargetWillNotBoot(Slot::B))
    ));
    assert_eq!(d.status(), before);
    // Priority but no tries and never successful: will not boot either.
    d.force_slot_attrs(Slot::B, attrs(9, 0, false));
    assert!(matches!(
        d.rollback(Slot::A),
        Err(Error::RollbackTargetWillNotBoot(Slot::B))
    ));
}

#[test]
fn slot_changes_preserve_other_attribute_bits() {
    let mut s = fresh();
    let d = Disk::open(&mut s).unwrap();
    let p = d.slot_partition(Slot::A);
    // Set bit 0 (platform required) and bit 60 directly on disk (CRCs
    // fixed), then check that a transition of A + write keeps them.
    let off = 2 * SECTOR + (p.number as u64 - 1) * 128 + 48;
    let mut raw = [0u8; 8];
    s.read_at_test(off, &mut raw);
    let v = u64::from_le_bytes(raw) | 1 | (1 << 60);
    for base in [2 * SECTOR, (s.last_lba() - 32) * SECTOR] {
        s.write_at_test(base - 2 * SECTOR + off, &v.to_le_bytes());
    }
    fix_crcs(&mut s);
    let mut d = Disk::open(&mut s).unwrap();
    d.finish_update(Slot::A, 4).unwrap();
    d.write().unwrap();
    let d = Disk::open(&mut s).unwrap();
    let a = d.slot_partition(Slot::A).attributes;
    assert_eq!(a & (1 | (1 << 60)), 1 | (1 << 60));
    assert_eq!(SlotAttrs::from_attributes(a), attrs(2, 4, false));
}

#[test]
fn status_display_is_the_cli_format() {
    assert_eq!(
        attrs(2, 3, false).to_string(),
        "priority=2 tries=3 successful=0 bootable=1"
    );
    assert_eq!(
        SlotAttrs::INVALID.to_string(),
        "priority=0 tries=0 successful=0 bootable=0"
    );
}

#[test]
fn give_up_invalidates_even_a_successful_slot_but_never_the_last_one() {
    // A successful, B freshly installed and chosen (on trial).
    let mut s = running_a();
    let mut d = Disk::open(&mut s).unwrap();
    d.begin_update(Slot::B, Slot::A).unwrap();
    d.finish_update(Slot::B, 3).unwrap();
    assert_eq!(d.choose_boot_slot().unwrap(), Slot::B);
    // B's image is broken: give it up, A boots next.
    d.give_up(Slot::B).unwrap();
    assert_eq!(d.slot_attrs(Slot::B), SlotAttrs::INVALID);
    assert_eq!(d.status().next, Some(Slot::A));
    // A's image is broken too: giving it up would leave nothing; refused,
    // and the table is left exactly as it was.
    let before = d.status();
    assert!(matches!(
        d.give_up(Slot::A),
        Err(Error::GiveUpLeavesNoBootableSlot(Slot::B))
    ));
    assert_eq!(d.status(), before);
    assert!(d.slot_attrs(Slot::A).will_boot());
}
