//! The kernel log from `/dev/kmsg`: one record per `read(2)`, formatted
//! `pri,seq,ts_usec,flags;message` (plus `\n key=value` continuation lines,
//! ignored). The device is read non-blocking, so "nothing more" is EAGAIN;
//! following waits for it to become readable through the runtime's epoll
//! ([`KmsgStream`]), holding no thread. For tests the path may be a regular
//! file holding one record per line; following then polls for appended
//! lines.
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use matic_proto::v1::KernelMessage;
use tokio::io::unix::AsyncFd;

/// Largest record the kernel hands out is under 8 KiB (LOG_LINE_MAX + prefix).
const RECORD_BUF: usize = 8192;
/// Messages per streamed response.
pub const BATCH: usize = 256;

/// Parses one record; None when it is not in kmsg format.
pub fn parse_record(rec: &[u8]) -> Option<KernelMessage> {
    let first = rec.split(|&b| b == b'\n').next()?;
    let semi = first.iter().position(|&b| b == b';')?;
    let prefix = std::str::from_utf8(&first[..semi]).ok()?;
    let mut f = prefix.split(',');
    let pri: u32 = f.next()?.parse().ok()?;
    let sequence: u64 = f.next()?.parse().ok()?;
    let timestamp_usec: u64 = f.next()?.parse().ok()?;
    Some(KernelMessage {
        facility: pri >> 3,
        level: pri & 7,
        sequence,
        timestamp_usec,
        message: String::from_utf8_lossy(&first[semi + 1..]).into_owned(),
        no_timestamp: false,
        crash_dump: None,
    })
}

/// A kernel log opened for reading.
pub struct Kmsg {
    file: File,
    records: Records,
}

/// Turns reads of the log into messages.
struct Records {
    device: bool,
    /// Regular file: bytes after the last complete line.
    partial: Vec<u8>,
    buf: Vec<u8>,
}

impl Kmsg {
    /// Opens the device (or file) non-blocking, positioned at the oldest record.
    pub fn open(path: &Path) -> std::io::Result<Kmsg> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)?;
        let device = file.metadata()?.file_type().is_char_device();
        Ok(Kmsg {
            file,
            records: Records {
                device,
                partial: Vec::new(),
                buf: vec![0; RECORD_BUF],
            },
        })
    }

    /// Everything readable right now, at most `max` messages; empty when
    /// there is nothing new.
    pub fn read_available(&mut self, max: usize) -> std::io::Result<Vec<KernelMessage>> {
        self.records.read_available(&self.file, max)
    }
}

impl Records {
    fn read_available(
        &mut self,
        mut file: &File,
        max: usize,
    ) -> std::io::Result<Vec<KernelMessage>> {
        let mut out = Vec::new();
        while out.len() < max {
            match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) if self.device => out.extend(parse_record(&self.buf[..n])),
                Ok(n) => {
                    self.partial.extend_from_slice(&self.buf[..n]);
                    while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = self.partial.drain(..=nl).collect();
                        // Continuation lines start with a space.
                        if !line.starts_with(b" ") {
                            out.extend(parse_record(&line));
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EPIPE: the ring buffer overwrote the record we were about to read; carry on.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// How a [`KmsgStream`] learns of new records.
enum Wait {
    /// The device, registered with the runtime's epoll: `/dev/kmsg` is
    /// readable when a record newer than our position exists.
    Ready(AsyncFd<File>, Records),
    /// A regular file (tests; epoll refuses those), or not following: look
    /// again every [`crate::logs::POLL`].
    Poll(Kmsg),
}

/// One `Dmesg` stream: everything in the log, then (following) new records
/// as they come. Holds no thread while it waits.
pub struct KmsgStream {
    src: Wait,
    follow: bool,
}

impl KmsgStream {
    /// Opens `path` (see [`Kmsg::open`]). Must run inside the runtime.
    pub fn open(path: &Path, follow: bool) -> std::io::Result<KmsgStream> {
        let k = Kmsg::open(path)?;
        let src = if k.records.device && follow {
            Wait::Ready(crate::sys::register_readable(k.file)?, k.records)
        } else {
            Wait::Poll(k)
        };
        Ok(KmsgStream { src, follow })
    }

    /// The next batch of at most [`BATCH`] messages; None at the end when
    /// not following.
    pub async fn next_batch(&mut self) -> std::io::Result<Option<Vec<KernelMessage>>> {
        loop {
            match &mut self.src {
                Wait::Ready(fd, records) => {
                    let mut guard = fd.readable().await?;
                    let m = records.read_available(guard.get_inner(), BATCH)?;
                    if m.is_empty() {
                        // Read until EAGAIN: wait for the next edge.
                        guard.clear_ready();
                        continue;
                    }
                    return Ok(Some(m));
                }
                Wait::Poll(k) => {
                    let m = k.read_available(BATCH)?;
                    if !m.is_empty() {
                        return Ok(Some(m));
                    }
                    if !self.follow {
                        return Ok(None);
                    }
                    tokio::time::sleep(crate::logs::POLL).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let m = parse_record(b"6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net")
            .unwrap();
        assert_eq!(
            (m.facility, m.level, m.sequence, m.timestamp_usec),
            (0, 6, 339, 5140900)
        );
        assert_eq!(m.message, "NET: Registered protocol family 10");
        let m = parse_record(b"30,7,12,c;systemd[1]: hi;there").unwrap();
        assert_eq!((m.facility, m.level), (3, 6));
        assert_eq!(m.message, "systemd[1]: hi;there");
        assert!(parse_record(b"garbage").is_none());
        assert!(parse_record(b"x,1,2,-;msg").is_none());
        assert!(parse_record(b"").is_none());
    }
}
