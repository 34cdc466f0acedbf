//! Slots, partition names, and the A/B attribute bits of the two root entries.
//!
//! Bits 48–51 of a root entry's 64-bit attribute field hold the priority
//! (0 = never boot), 52–55 the tries remaining, 56 the successful flag (the
//! ChromeOS layout, so `cgpt show` and `sgdisk -A` can read it). A slot
//! *will boot* when `priority > 0 && (tries > 0 || successful)`.
//!
//! Values and the selection rule only: never changes a table (the
//! transitions are in `transitions.rs`), never does I/O.

use core::fmt;

use crate::guid::{ESP_TYPE, Guid, LINUX_FS_TYPE, ROOT_X86_64_TYPE};

/// One of the two root slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// `MATIC_ROOT_A`
    A,
    /// `MATIC_ROOT_B`
    B,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The slot's root partition.
    pub fn part(self) -> Part {
        match self {
            Slot::A => Part::RootA,
            Slot::B => Part::RootB,
        }
    }

    /// `"A"` or `"B"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
}

impl core::ops::Not for Slot {
    type Output = Slot;
    fn not(self) -> Slot {
        self.other()
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not `A` or `B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseSlotError;

impl fmt::Display for ParseSlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a slot is A or B")
    }
}

impl core::error::Error for ParseSlotError {}

impl core::str::FromStr for Slot {
    type Err = ParseSlotError;
    /// Accepts exactly `A` or `B` (as written in `/run/matic/boot`).
    fn from_str(s: &str) -> Result<Slot, ParseSlotError> {
        match s {
            "A" => Ok(Slot::A),
            "B" => Ok(Slot::B),
            _ => Err(ParseSlotError),
        }
    }
}

/// The four MaticOS partitions, found by GPT name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `ESP`
    Esp,
    /// `MATIC_ROOT_A`
    RootA,
    /// `MATIC_ROOT_B`
    RootB,
    /// `MATIC_STATE`
    State,
}

impl Part {
    /// In on-disk order.
    pub const ALL: [Part; 4] = [Part::Esp, Part::RootA, Part::RootB, Part::State];

    /// The GPT partition name.
    pub fn name(self) -> &'static str {
        match self {
            Part::Esp => "ESP",
            Part::RootA => "MATIC_ROOT_A",
            Part::RootB => "MATIC_ROOT_B",
            Part::State => "MATIC_STATE",
        }
    }

    /// The partition type GUID `create` gives it (docs/boot.md, "On-disk format").
    pub fn type_guid(self) -> Guid {
        match self {
            Part::Esp => ESP_TYPE,
            Part::RootA | Part::RootB => ROOT_X86_64_TYPE,
            Part::State => LINUX_FS_TYPE,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bit position of the 4-bit priority field.
pub const PRIORITY_SHIFT: u32 = 48;
/// Bit position of the 4-bit tries field.
pub const TRIES_SHIFT: u32 = 52;
/// Bit position of the successful flag.
pub const SUCCESSFUL_SHIFT: u32 = 56;
/// Every attribute bit the slot state owns; the others are preserved.
pub const SLOT_BITS_MASK: u64 =
    (0xf << PRIORITY_SHIFT) | (0xf << TRIES_SHIFT) | (1 << SUCCESSFUL_SHIFT);

/// A slot's boot state: priority 0–15, tries 0–15, successful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SlotAttrs {
    priority: u8,
    tries: u8,
    successful: bool,
}

impl SlotAttrs {
    /// Priority 0, tries 0, not successful: never boots.
    pub const INVALID: SlotAttrs = SlotAttrs {
        priority: 0,
        tries: 0,
        successful: false,
    };

    /// Largest priority or tries value (4 bits).
    pub const MAX: u8 = 15;

    /// `None` when `priority` or `tries` exceeds 15.
    pub const fn new(priority: u8, tries: u8, successful: bool) -> Option<SlotAttrs> {
        if priority > Self::MAX || tries > Self::MAX {
            return None;
        }
        Some(SlotAttrs {
            priority,
            tries,
            successful,
        })
    }

    /// 0 = never boot; higher wins.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Boots left before a not-yet-successful slot is given up.
    pub fn tries(&self) -> u8 {
        self.tries
    }

    /// The slot has been marked as having booted successfully.
    pub fn successful(&self) -> bool {
        self.successful
    }

    /// `priority > 0 && (tries > 0 || successful)`.
    pub fn will_boot(&self) -> bool {
        self.priority > 0 && (self.tries > 0 || self.successful)
    }

    /// Extracts the slot bits from a GPT entry's attribute field.
    pub fn from_attributes(attributes: u64) -> SlotAttrs {
        SlotAttrs {
            priority: ((attributes >> PRIORITY_SHIFT) & 0xf) as u8,
            tries: ((attributes >> TRIES_SHIFT) & 0xf) as u8,
            successful: (attributes >> SUCCESSFUL_SHIFT) & 1 == 1,
        }
    }

    /// Replaces the slot bits of `attributes`, keeping every other bit.
    pub fn apply_to(&self, attributes: u64) -> u64 {
        (attributes & !SLOT_BITS_MASK)
            | (u64::from(self.priority) << PRIORITY_SHIFT)
            | (u64::from(self.tries) << TRIES_SHIFT)
            | (u64::from(self.successful) << SUCCESSFUL_SHIFT)
    }

    pub(crate) fn with_priority(self, priority: u8) -> SlotAttrs {
        SlotAttrs {
            priority: priority.min(Self::MAX),
            ..self
        }
    }

    pub(crate) fn with_tries(self, tries: u8) -> SlotAttrs {
        SlotAttrs {
            tries: tries.min(Self::MAX),
            ..self
        }
    }

    pub(crate) fn with_successful(self, successful: bool) -> SlotAttrs {
        SlotAttrs { successful, ..self }
    }
}

impl fmt::Display for SlotAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "priority={} tries={} successful={} bootable={}",
            self.priority,
            self.tries,
            u8::from(self.successful),
            u8::from(self.will_boot())
        )
    }
}

/// Both slots' state and the slot the next boot would choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootStatus {
    /// Slot A's attributes.
    pub a: SlotAttrs,
    /// Slot B's attributes.
    pub b: SlotAttrs,
    /// What `choose_boot_slot` would pick now (`None`: nothing will boot).
    pub next: Option<Slot>,
}

impl BootStatus {
    /// The attributes of `slot`.
    pub fn get(&self, slot: Slot) -> SlotAttrs {
        match slot {
            Slot::A => self.a,
            Slot::B => self.b,
        }
    }
}

/// The slot-selection rule, shared by `choose_boot_slot` and `status`: the
/// bootable slot with the highest priority; on a tie, A.
pub(crate) fn pick(a: SlotAttrs, b: SlotAttrs) -> Option<Slot> {
    match (a.will_boot(), b.will_boot()) {
        (false, false) => None,
        (true, false) => Some(Slot::A),
        (false, true) => Some(Slot::B),
        (true, true) if b.priority > a.priority => Some(Slot::B),
        (true, true) => Some(Slot::A),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_bits_round_trip_and_preserve_others() {
        let other_bits = 0x8000_0000_0000_0001u64 | (1 << 57) | (1 << 47);
        let a = SlotAttrs::new(0xa, 0x5, true).unwrap();
        let raw = a.apply_to(other_bits | SLOT_BITS_MASK);
        assert_eq!(raw, other_bits | (0xa << 48) | (0x5 << 52) | (1 << 56));
        assert_eq!(SlotAttrs::from_attributes(raw), a);
        assert_eq!(SlotAttrs::INVALID.apply_to(raw), other_bits);
    }

    #[test]
    fn will_boot_rule() {
        let s = |p, t, ok| SlotAttrs::new(p, t, ok).unwrap().will_boot();
        assert!(!s(0, 15, true));
        assert!(!s(1, 0, false));
        assert!(s(1, 0, true));
        assert!(s(1, 1, false));
        assert!(SlotAttrs::new(16, 0, false).is_none());
        assert!(SlotAttrs::new(0, 16, false).is_none());
    }

    #[test]
    fn slot_basics() {
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(!Slot::B, Slot::A);
        assert_eq!("A".parse::<Slot>(), Ok(Slot::A));
        assert_eq!("B".parse::<Slot>(), Ok(Slot::B));
        assert_eq!("a".parse::<Slot>(), Err(ParseSlotError));
        assert_eq!(Slot::B.as_str(), "B");
    }

    #[test]
    fn pick_prefers_priority_then_a() {
        let p = |pr| SlotAttrs::new(pr, 1, false).unwrap();
        assert_eq!(pick(p(1), p(2)), Some(Slot::B));
        assert_eq!(pick(p(2), p(1)), Some(Slot::A));
        assert_eq!(pick(p(3), p(3)), Some(Slot::A));
        assert_eq!(pick(p(0), p(3)), Some(Slot::B));
        assert_eq!(pick(p(0), p(0)), None);
    }
}
