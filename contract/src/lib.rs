//! The on-node contract between `matic-init` (PID 1) and `matic-agent`, and
//! the API roles shared by the agent and `osctl`: one type per format, each
//! with `render` (into a [`Sink`]) and `parse` (from the bytes read back).
//!
//! Owns: the run-dir paths ([`paths`]), `/run/matic/boot` ([`boot`]),
//! `/run/matic/services` ([`services`]), the control-FIFO commands
//! ([`control`]), the descriptors of the service log handoff ([`handoff`]),
//! how init starts kubelet ([`kubelet`]), the node's own images ([`workloads`])
//! and the certificate roles ([`role`]). Every rule about what
//! is accepted (unknown keys, comments, ranges) is decided here, once.
//!
//! Must never: use `std` or allocate (PID 1 links it and must stay
//! allocation-free and under 64 KiB), use `core::fmt` on the paths init
//! calls (only the agent's error messages use `Display`), touch a file,
//! or know about transport: reading, writing, atomic rename and the FIFO's
//! line framing belong to init and the agent.
#![no_std]
#![forbid(unsafe_code)]

pub mod boot;
pub mod control;
pub mod handoff;
pub mod kubelet;
pub mod paths;
pub mod role;
pub mod services;
pub mod workloads;

/// Where `render` writes: init's fixed `Buf`, the agent's `Vec`. Writes
/// that do not fit are the sink's business (init's buffer cuts and flags).
pub trait Sink {
    /// Appends raw bytes.
    fn put(&mut self, bytes: &[u8]);
}

/// Writes `n` in decimal, with a `-` when `negative` (no `core::fmt`: init
/// uses this for every number it prints).
#[inline(never)]
pub fn put_decimal(out: &mut dyn Sink, negative: bool, mut n: u64) {
    let mut digits = [0u8; 21];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        digits[i] = b'-';
    }
    out.put(digits.get(i..).unwrap_or(&[]));
}

/// Parses an unsigned decimal with no sign, no blanks and no leading `+`
/// (the only form [`put_decimal`] writes); `None` on overflow.
pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Parses a decimal `i32`, with an optional leading `-`.
pub(crate) fn parse_i32(b: &[u8]) -> Option<i32> {
    match b.split_first() {
        Some((b'-', rest)) => {
            let n = parse_u64(rest)?;
            i32::try_from(-i64::try_from(n).ok()?).ok()
        }
        _ => i32::try_from(parse_u64(b)?).ok(),
    }
}

#[cfg(test)]
extern crate std;

/// A growable sink for the tests.
#[cfg(test)]
pub(crate) mod testsink {
    extern crate alloc;
    pub struct VecSink(pub alloc::vec::Vec<u8>);
    impl super::Sink for VecSink {
        fn put(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
    }
    pub fn render(f: impl FnOnce(&mut dyn super::Sink)) -> alloc::vec::Vec<u8> {
        let mut s = VecSink(alloc::vec::Vec::new());
        f(&mut s);
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    proptest! {
        #[test]
        fn decimals_round_trip(n: u64, i: i32) {
            let text = testsink::render(|o| put_decimal(o, false, n));
            prop_assert_eq!(text.clone(), n.to_string().into_bytes());
            prop_assert_eq!(parse_u64(&text), Some(n));
            let text = testsink::render(|o| put_decimal(o, i < 0, u64::from(i.unsigned_abs())));
            prop_assert_eq!(text.clone(), i.to_string().into_bytes());
            prop_assert_eq!(parse_i32(&text), Some(i));
        }
    }

    #[test]
    fn decimals_refuse_other_forms() {
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"0x1",
            b"-",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"--1"), None);
    }
}
