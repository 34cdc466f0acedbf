//! A fixed-capacity text buffer that truncates instead of failing.
//!
//! Log lines and panic messages must never be lost because they were too long,
//! and must never allocate: [`Buf`] keeps what fits and remembers that it cut.

use core::fmt;

/// A byte buffer of capacity `N` implementing [`fmt::Write`]; writes past the
/// end are silently cut and flagged in [`Buf::truncated`].
pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            data: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Whether some output did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends raw bytes, cutting what does not fit.
    pub fn push_bytes(&mut self, b: &[u8]) {
        let room = N - self.len;
        let n = b.len().min(room);
        self.data[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        if n < b.len() {
            self.truncated = true;
        }
    }

    /// Forgets the content.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    /// The content plus a trailing NUL, for syscalls that take C strings;
    /// `None` when it does not fit or when the text contains a NUL.
    pub fn as_cstr(&mut self) -> Option<&core::ffi::CStr> {
        if self.len >= N || self.truncated || self.data[..self.len].contains(&0) {
            return None;
        }
        self.data[self.len] = 0;
        core::ffi::CStr::from_bytes_with_nul(&self.data[..=self.len]).ok()
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}

/// Shows bytes as text, replacing anything that is not printable ASCII with
/// `?`, so untrusted input (FIFO garbage, file contents) cannot forge log
/// lines or terminal escapes.
pub struct Printable<'a>(pub &'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            let c = if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn truncates_and_flags() {
        let mut b = Buf::<8>::new();
        write!(b, "{}-{}", 1234, 56789).unwrap();
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
    }

    #[test]
    fn printable_masks_control_bytes() {
        let s = format!("{}", Printable(b"ok\x1b[31m\n\xff"));
        assert_eq!(s, "ok?[31m??");
    }
}
