//! What the panic handler logs in place of a file and line: the first few
//! words on the stack that point into init's code, nearest first. They
//! are the return addresses of the panic's call chain (the panic
//! function's caller, its caller…), which `addr2line -f -e` or `nm -n` on
//! the unstripped build of the same source (`scripts/test.d/20-init-static`
//! makes one: `$CARGO_TARGET_DIR/init-symcheck/release/matic-init`) turns
//! into function names.
//!
//! Why not `PanicInfo::location()`: a panic handler that reads any of
//! `PanicInfo` keeps every panic site's location (24 bytes and its file
//! name), its message and `core::fmt` in the binary; one that reads
//! nothing let the compiler drop all of it, about 7 KB of PID 1
//! (docs/init.md "Size").
//!
//! Must never: read memory (the binary's `sys::stack_words` does), or
//! format with `core::fmt`.

use crate::fmtbuf::{Show, Sink};

/// How many stack words the handler scans, and how many addresses it logs.
pub const SCAN_WORDS: usize = 64;
pub const MAX_ADDRS: usize = 4;

/// Copies the words of `stack` that lie in `code` (`start..end` of the
/// executable's text) into `out`, in order, until it is full; how many.
pub fn code_addresses(stack: &[usize], code: (usize, usize), out: &mut [usize]) -> usize {
    let mut n = 0;
    for &w in stack {
        if n == out.len() {
            break;
        }
        if code.0 <= w && w < code.1 {
            out[n] = w;
            n += 1;
        }
    }
    n
}

/// Addresses as ` 0x…` each (lower-case hex), or ` (none found)`.
pub struct Trace<'a>(pub &'a [usize]);

impl Show for Trace<'_> {
    fn show(&self, out: &mut dyn Sink) {
        if self.0.is_empty() {
            out.put(b" (none found)");
        }
        for &a in self.0 {
            out.put(b" 0x");
            let mut started = false;
            for shift in (0..usize::BITS).step_by(4).rev() {
                let d = (a >> shift) & 15;
                started |= d != 0 || shift == 0;
                if started {
                    out.put(&[b"0123456789abcdef"[d]]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmtbuf::Buf;

    #[test]
    fn keeps_the_first_words_inside_the_code_in_order() {
        let code = (0x20_5000, 0x21_6000);
        let stack = [
            7,
            0x20_4fff,
            0x20_5000,
            0x7fff_1234_5678,
            0x21_0b61,
            0x21_6000,
            0x20_a3c5,
            0x21_5fff,
            0x20_6000,
        ];
        let mut out = [0; MAX_ADDRS];
        assert_eq!(code_addresses(&stack, code, &mut out), 4);
        assert_eq!(out, [0x20_5000, 0x21_0b61, 0x20_a3c5, 0x21_5fff]);
        let mut two = [0; 2];
        assert_eq!(code_addresses(&stack[..5], code, &mut two), 2);
        assert_eq!(code_addresses(&[1, 2, 3], code, &mut out), 0);
    }

    #[test]
    fn shown_as_hex() {
        let mut b = Buf::<128>::new();
        Trace(&[0x21_0b61, 0x20_a3c5, 0, usize::MAX]).show(&mut b);
        assert_eq!(b.as_bytes(), b" 0x210b61 0x20a3c5 0x0 0xffffffffffffffff");
        let mut b = Buf::<32>::new();
        Trace(&[]).show(&mut b);
        assert_eq!(b.as_bytes(), b" (none found)");
    }
}
