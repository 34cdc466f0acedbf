//! Lower-case hexadecimal, without allocation: key ids, root hashes and
//! salts are printed and parsed through here (init has no `core::fmt` on
//! its paths, the agent and osctl print the same digits).
//!
//! Must never: accept upper case or separators (one spelling of each value).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as `2 * bytes.len()` lower-case hex digits into `out`;
/// returns the digits written, `None` when `out` is too short.
pub fn encode<'a>(bytes: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
    let out = out.get_mut(..bytes.len() * 2)?;
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    Some(out)
}

/// Parses exactly `out.len() * 2` lower-case hex digits into `out`.
pub fn decode(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (pair, o) in text.chunks_exact(2).zip(out.iter_mut()) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `bytes` as a hex `String` (agent and osctl).
#[cfg(feature = "std")]
pub fn string(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    encode(bytes, &mut out);
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut buf = [0u8; 8];
        assert_eq!(
            encode(&[0x00, 0xaf, 0x10, 0xff], &mut buf),
            Some(&b"00af10ff"[..])
        );
        assert_eq!(encode(&[1, 2, 3, 4, 5], &mut buf), None, "too short");
        let mut back = [0u8; 4];
        assert_eq!(decode(b"00af10ff", &mut back), Some(()));
        assert_eq!(back, [0x00, 0xaf, 0x10, 0xff]);
        assert_eq!(decode(b"00AF10FF", &mut back), None, "upper case");
        assert_eq!(decode(b"00af10f", &mut back), None, "odd length");
        assert_eq!(decode(b"00af10fg", &mut back), None, "not a digit");
    }
}
