//! Text output without `core::fmt`: a fixed-capacity buffer that truncates
//! instead of failing, and [`Show`], the small trait log lines and the files
//! init writes are assembled from.
//!
//! PID 1 must fit in 64 KiB: `core::fmt` (its `Formatter`, padding and
//! integer machinery, plus the argument tables at every call site) was the
//! largest piece of the binary after the CRC table. Init only ever prints
//! text, unsigned and signed decimals and errnos, so [`Show`] does just that.
//! Log lines and panic messages must never be lost because they were too
//! long, and must never allocate: [`Buf`] keeps what fits and remembers that
//! it cut.

// The contract's decimal writer: one copy of the digit loop in the binary.
use matic_contract::put_decimal as decimal;

/// A byte buffer of capacity `N`; writes past the end are silently cut and
/// flagged in [`Buf::truncated`].
pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Buf<N> {
    /// An empty buffer. Never inlined: one zeroing per size instead of one
    /// per buffer made (64 bytes, docs/init.md "Size").
    #[inline(never)]
    pub const fn new() -> Self {
        Self {
            data: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The bytes written so far. Never inlined: the bounds check at each
    /// call cost 304 bytes more than a call (docs/init.md "Size"); a copy
    /// without the const generic, taking the slice, costs more still.
    #[inline(never)]
    pub fn as_bytes(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }

    /// Whether some output did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends raw bytes, cutting what does not fit.
    pub fn push_bytes(&mut self, b: &[u8]) {
        self.len = push(&mut self.data, self.len, b, &mut self.truncated);
    }

    /// Forgets the content.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    /// The content plus a trailing NUL, for syscalls that take C strings;
    /// `None` when it does not fit or when the text contains a NUL.
    pub fn as_cstr(&mut self) -> Option<&core::ffi::CStr> {
        if self.truncated {
            return None;
        }
        cstr(&mut self.data, self.len)
    }

    /// Keeps only the first `n` bytes.
    pub fn cut(&mut self, n: usize) {
        if n < self.len {
            self.len = n;
            self.truncated = true;
        }
    }
}

/// `Buf::as_cstr` without the const generic (one copy for every size).
#[inline(never)]
fn cstr(data: &mut [u8], len: usize) -> Option<&core::ffi::CStr> {
    let text = data.get_mut(..=len)?;
    *text.last_mut()? = 0;
    // Fails on a NUL inside the text.
    core::ffi::CStr::from_bytes_with_nul(text).ok()
}

/// `Buf::push_bytes` without the const generic, so that one copy serves
/// every buffer size: returns the new length. Never inlined: it is called
/// once per piece of every log line.
#[inline(never)]
fn push(data: &mut [u8], len: usize, b: &[u8], truncated: &mut bool) -> usize {
    let room = data.len().saturating_sub(len);
    let n = b.len().min(room);
    if let (Some(dst), Some(src)) = (data.get_mut(len..len + n), b.get(..n)) {
        dst.copy_from_slice(src);
    }
    if n < b.len() {
        *truncated = true;
    }
    len + n
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a template to `out` (a `&mut` [`Sink`]), each `{}` replaced by
/// the next argument ([`Show`]): `show!(&mut buf, "/dev/{}", Printable(name))`.
/// Like `write!`, but only `{}`, and without `core::fmt`; the number of
/// `{}` is checked against the arguments at compile time.
#[macro_export]
macro_rules! show {
    ($out:expr, $t:expr $(, $a:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::fmtbuf::holes($t) == <[&str]>::len(&[$(stringify!($a)),*]),
            "the number of {{}} differs from the number of arguments"
        );
        $crate::fmtbuf::fill($out, $t, &[$(&$a as &dyn $crate::fmtbuf::Show),*])
    }};
}

/// How many `{}` a template holds.
pub const fn holes(template: &str) -> usize {
    let b = template.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'}' {
            n += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    n
}

/// Writes `template` with each `{}` replaced by the next of `args` (a `{}`
/// without an argument is dropped; [`show!`] rules that out).
pub fn fill(out: &mut dyn Sink, template: &str, args: &[&dyn Show]) {
    let mut rest = template.as_bytes();
    let mut args = args.iter();
    while let Some(i) = rest.windows(2).position(|w| w == b"{}") {
        out.put(rest.get(..i).unwrap_or(&[]));
        if let Some(a) = args.next() {
            a.show(out);
        }
        rest = rest.get(i + 2..).unwrap_or(&[]);
    }
    out.put(rest);
}

/// Where [`Show`] writes: the contract's sink (so the files init renders
/// through `matic-contract` and its log lines share one buffer type).
pub use matic_contract::Sink;

impl<const N: usize> Sink for Buf<N> {
    fn put(&mut self, bytes: &[u8]) {
        self.push_bytes(bytes);
    }
}

/// A piece of text output: `&str` as is, integers in decimal, [`Printable`]
/// for untrusted bytes, errnos as `os error N` (as rustix's `no_std`
/// `Display` does).
pub trait Show {
    /// Writes `self` to `out`.
    fn show(&self, out: &mut dyn Sink);
}

impl Show for str {
    // Not inlined: a call per piece at the call site, no copy of the writer.
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        out.put(self.as_bytes());
    }
}

impl<T: Show + ?Sized> Show for &T {
    fn show(&self, out: &mut dyn Sink) {
        (**self).show(out);
    }
}

macro_rules! show_unsigned {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self, out: &mut dyn Sink) {
                decimal(out, false, u64::from(*self));
            }
        }
    )*};
}
show_unsigned!(u8, u16, u32, u64);

impl Show for usize {
    fn show(&self, out: &mut dyn Sink) {
        decimal(out, false, *self as u64);
    }
}

impl Show for i32 {
    fn show(&self, out: &mut dyn Sink) {
        decimal(out, *self < 0, u64::from(self.unsigned_abs()));
    }
}

impl Show for i64 {
    fn show(&self, out: &mut dyn Sink) {
        decimal(out, *self < 0, self.unsigned_abs());
    }
}

impl Show for rustix::io::Errno {
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        out.put(b"os error ");
        self.raw_os_error().show(out);
    }
}

impl Show for matic_boot::Slot {
    fn show(&self, out: &mut dyn Sink) {
        out.put(self.as_str().as_bytes());
    }
}

/// The text form `matic-boot`'s `Display` writes (upper-case hex; the
/// first three fields are little-endian on disk).
impl Show for matic_boot::Guid {
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        const ORDER: [u8; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for (i, &pos) in ORDER.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.put(b"-");
            }
            let b = self.0[usize::from(pos)];
            out.put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// The same text as `matic-boot`'s `Display`.
impl Show for matic_boot::SlotAttrs {
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        show!(
            out,
            "priority={} tries={} successful={} bootable={}",
            self.priority(),
            self.tries(),
            u8::from(self.successful()),
            u8::from(self.will_boot())
        );
    }
}

/// A `matic-boot` error, in matic-boot's own words: the pieces its
/// `Error::describe` hands out (its `Display` would need `core::fmt`).
pub struct BootError<'a>(pub &'a matic_boot::Error<rustix::io::Errno>);

impl Show for BootError<'_> {
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        use matic_boot::error::Piece;
        self.0.describe(&mut |p| match p {
            Piece::Text(t) => out.put(t.as_bytes()),
            Piece::Number(n) => n.show(out),
            Piece::Source(e) => e.show(out),
        });
    }
}

/// Shows bytes as text, replacing anything that is not printable ASCII with
/// `?`, so untrusted input (FIFO garbage, file contents) cannot forge log
/// lines or terminal escapes.
pub struct Printable<'a>(pub &'a [u8]);

impl Show for Printable<'_> {
    #[inline(never)]
    fn show(&self, out: &mut dyn Sink) {
        for &b in self.0 {
            out.put(&[if (0x20..0x7f).contains(&b) { b } else { b'?' }]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_in_matic_boot_s_words() {
        let g = matic_boot::Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        let mut b = Buf::<64>::new();
        show!(&mut b, "{}", g);
        assert_eq!(b.as_bytes(), g.to_string().as_bytes());
        assert_eq!(b.as_bytes(), b"C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }

    #[test]
    fn templates() {
        let mut b = Buf::<64>::new();
        show!(&mut b, "a{}b{}c", 1u8, "x");
        assert_eq!(b.as_bytes(), b"a1bxc");
        b.clear();
        show!(&mut b, "{}{} {", -5i32, "z");
        assert_eq!(b.as_bytes(), b"-5z {");
        assert_eq!(holes("{}x{}{"), 2);
        assert_eq!(holes("no holes"), 0);
        b.clear();
        fill(&mut b, "{} and {}", &[&"one"]);
        assert_eq!(
            b.as_bytes(),
            b"one and ",
            "a hole without an argument is dropped"
        );
    }

    #[test]
    fn truncates_and_flags() {
        let mut b = Buf::<8>::new();
        show!(&mut b, "{}-{}", 1234u32, 56789u64);
        assert_eq!(b.as_bytes(), b"1234-567");
        assert!(b.truncated());
        assert!(b.as_cstr().is_none());
    }

    #[test]
    fn cstr_when_it_fits() {
        let mut b = Buf::<8>::new();
        b.push_bytes(b"/dev/vda");
        assert!(b.as_cstr().is_none(), "no room for the NUL");
        b.clear();
        b.push_bytes(b"/dev/vd");
        assert_eq!(b.as_cstr().unwrap().to_bytes(), b"/dev/vd");
        b.clear();
        b.push_bytes(b"a\0b");
        assert!(b.as_cstr().is_none(), "an inner NUL");
        b.clear();
        b.push_bytes(b"/dev/vda1");
        b.cut(4);
        assert_eq!(b.as_bytes(), b"/dev");
        assert!(b.truncated());
    }

    #[test]
    fn numbers_as_core_fmt_writes_them() {
        for n in [0u64, 7, 10, 99, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut b = Buf::<32>::new();
            show!(&mut b, "{}", n);
            assert_eq!(b.as_bytes(), n.to_string().as_bytes());
        }
        for n in [0i32, -1, 42, i32::MIN, i32::MAX] {
            let mut b = Buf::<32>::new();
            show!(&mut b, "{}", n);
            assert_eq!(b.as_bytes(), n.to_string().as_bytes());
        }
        for n in [i64::MIN, -10, i64::MAX] {
            let mut b = Buf::<32>::new();
            show!(&mut b, "{}", n);
            assert_eq!(b.as_bytes(), n.to_string().as_bytes());
        }
        let mut b = Buf::<32>::new();
        show!(&mut b, "{} {}", 255u8, usize::MAX);
        assert_eq!(b.as_bytes(), format!("255 {}", usize::MAX).as_bytes());
    }

    #[test]
    fn errno_and_boot_types_as_their_display() {
        let mut b = Buf::<160>::new();
        show!(&mut b, "{}", rustix::io::Errno::NOENT);
        assert_eq!(b.as_bytes(), b"os error 2");
        let a = matic_boot::SlotAttrs::new(15, 3, false).unwrap();
        b.clear();
        show!(&mut b, "{} {}", matic_boot::Slot::B, a);
        assert_eq!(b.as_bytes(), format!("B {a}").as_bytes());
        b.clear();
        use matic_boot::{Check, Error, IoOp, Part};
        for e in [
            Error::<rustix::io::Errno>::NoBootableSlot,
            Error::Io {
                op: IoOp::Write,
                offset: 512,
                source: rustix::io::Errno::IO,
            },
            Error::NoValidGpt {
                primary: Check::HeaderCrc,
                backup: Check::Signature,
            },
            Error::MissingPartition(Part::State),
            Error::UnsupportedSectorSize(4096),
            Error::GiveUpLeavesNoBootableSlot(matic_boot::Slot::A),
            Error::PartitionsOverlap {
                part: Part::RootA,
                number: 3,
                other: Some(Part::RootB),
            },
            Error::PartitionsOverlap {
                part: Part::RootB,
                number: 5,
                other: None,
            },
            Error::DeviceTooSmall { bytes: 4096 },
            Error::NoProtectiveMbr,
            Error::DuplicatePartition(Part::RootA),
            Error::PartitionOutOfRange(Part::RootB),
            // Stage 1 never meets these; their words are matic-boot's all the same.
            Error::RunningSlotOnTrial(matic_boot::Slot::B),
            Error::LayoutTooLarge {
                needed: 10,
                available: 9,
            },
        ] {
            b.clear();
            show!(&mut b, "{}", BootError(&e));
            assert_eq!(b.as_bytes(), e.to_string().as_bytes());
        }
    }

    #[test]
    fn printable_masks_control_bytes() {
        let mut b = Buf::<32>::new();
        show!(&mut b, "{}", Printable(b"ok\x1b[31m\n\xff"));
        assert_eq!(b.as_bytes(), b"ok?[31m??");
    }
}
