//! The CRI's container log format, decoded to the container's own output.
//!
//! containerd writes each line a container prints as
//! `<RFC 3339 time> <stdout|stderr> <F|P> <text>\n`, where `P` marks a
//! partial line (a long line split, or a line not yet ended) continued by
//! the next record and `F` the full line's end. [`Decoder`] turns those
//! records back into the text, one line per `F`.
//!
//! Must never: drop a line it cannot parse (it passes it through as is:
//! the reader still sees it), or hold more than one partial line.

/// Longest partial line kept before it is passed on as it is (containerd
/// splits lines at 16 KiB: `max_container_log_line_size`).
pub const MAX_PARTIAL: usize = 1 << 20;

/// Decodes a stream of CRI log bytes, in chunks cut anywhere.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of a record whose newline has not arrived.
    pending: Vec<u8>,
    /// Text of `P` records awaiting their `F`.
    partial: Vec<u8>,
}

impl Decoder {
    /// Feeds `chunk`; returns the complete lines it finishes, each ending
    /// in `\n`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let record = self.pending[start..end].to_vec();
            self.record(&record, &mut out);
            start = end + 1;
        }
        self.pending.drain(..start);
        out
    }

    /// What is left at the end of the file: an unfinished record or line.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.record(&rest, &mut out);
        }
        if !self.partial.is_empty() {
            out.append(&mut self.partial);
            out.push(b'\n');
        }
        out
    }

    fn record(&mut self, record: &[u8], out: &mut Vec<u8>) {
        match parse(record) {
            Some((b'P', text)) => {
                self.partial.extend_from_slice(text);
                if self.partial.len() > MAX_PARTIAL {
                    out.append(&mut self.partial);
                    out.push(b'\n');
                }
            }
            Some((_, text)) => {
                out.append(&mut self.partial);
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            None => {
                out.append(&mut self.partial);
                out.extend_from_slice(record);
                out.push(b'\n');
            }
        }
    }
}

/// `(tag, text)` of one record, or `None` when it is not in the format.
fn parse(record: &[u8]) -> Option<(u8, &[u8])> {
    let mut fields = record.splitn(4, |&b| b == b' ');
    let _time = fields
        .next()
        .filter(|t| t.first().is_some_and(u8::is_ascii_digit))?;
    let stream = fields.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    let tag = fields.next()?;
    let text = fields.next().unwrap_or_default();
    match tag {
        [b'F'] | [b'P'] => Some((tag[0], text)),
        // A tag may carry more flags after a colon; the first is F or P.
        [t @ (b'F' | b'P'), b':', ..] => Some((*t, text)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-11-30T03:00:00.000000001Z stdout F hello\n\
2026-11-30T03:00:00.000000002Z stderr P par\n\
2026-11-30T03:00:00.000000003Z stderr F tial\n\
2026-11-30T03:00:00.000000004Z stdout F \n\
not a record\n";

    #[test]
    fn decodes_full_partial_and_foreign_lines() {
        let mut d = Decoder::default();
        let mut out = d.feed(LOG);
        out.extend(d.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hello\npartial\n\nnot a record\n"
        );
    }

    /// Cut at every byte, the output is the same.
    #[test]
    fn chunk_boundaries_do_not_matter() {
        for cut in 0..LOG.len() {
            let mut d = Decoder::default();
            let mut out = d.feed(&LOG[..cut]);
            out.extend(d.feed(&LOG[cut..]));
            out.extend(d.finish());
            assert_eq!(out, b"hello\npartial\n\nnot a record\n", "cut at {cut}");
        }
    }

    #[test]
    fn unfinished_partial_is_flushed_at_the_end() {
        let mut d = Decoder::default();
        let out = d.feed(b"2026-11-30T03:00:00Z stdout P no end\n");
        assert!(out.is_empty());
        assert_eq!(d.finish(), b"no end\n");
    }
}
