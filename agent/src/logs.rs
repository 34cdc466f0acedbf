//! Service logs from `<log-dir>/<service>.log` (written by init): the last N
//! lines, then optionally new output as it is appended. Following survives
//! truncation (start again from 0) and rotation (drain the old file, then
//! switch to the new one at the same path). A follower never holds a
//! thread while it waits (see [`LogStream`]); how many run at once is
//! [`crate::limits`]' business, not this module's.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

/// Bytes per streamed message (well under tonic's 4 MiB limit).
const CHUNK: usize = 64 * 1024;
/// How often a follower looks for new output.
pub const POLL: Duration = Duration::from_millis(200);

/// Checks a service name before it becomes part of a path.
pub fn validate_name(name: &str) -> Result<(), Status> {
    if name.is_empty()
        || name.contains('/')
        || name.contains("..")
        || name.contains('\0')
        || name.len() > 64
    {
        return Err(Status::invalid_argument(format!(
            "invalid service name {name:?}: must be non-empty, at most 64 bytes, without '/' or '..'"
        )));
    }
    Ok(())
}

/// `<dir>/<name>.log` for a validated name.
pub fn log_path(dir: &Path, name: &str) -> Result<PathBuf, Status> {
    validate_name(name)?;
    Ok(dir.join(format!("{name}.log")))
}

/// Offset in `f` (of length `len`) where the last `n` lines start.
fn tail_offset(f: &mut File, len: u64, n: u32) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(0);
    }
    let mut pos = len;
    let mut newlines = 0u32;
    let mut buf = vec![0u8; CHUNK];
    // A final newline terminates the last line; it does not start a new one.
    let mut skip_last = true;
    while pos > 0 {
        let step = (pos as usize).min(CHUNK);
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..step])?;
        for i in (0..step).rev() {
            if buf[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        skip_last = false;
    }
    Ok(0)
}

/// Opens the log (NOT_FOUND when the service has not logged yet).
pub fn open(path: &Path) -> Result<File, Status> {
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(format!("no log at {}", path.display())),
        _ => Status::internal(format!("opening {}: {e}", path.display())),
    })
}

/// One `Logs` stream: the tail of a log and, when following, what is
/// appended later. Holds no thread: it sleeps on a timer between looks
/// (an `fstat` and a `stat`), and each read of new bytes is a short job
/// on the runtime's blocking pool.
pub struct LogStream {
    path: PathBuf,
    file: Arc<File>,
    follow: bool,
    /// Set once an error was sent: the stream ends after it.
    done: bool,
}

/// Runs `f` on the blocking pool (file reads may wait for the disk).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

impl LogStream {
    /// Opens `path` and positions it at the start of its last `tail_lines`
    /// lines (all of it for 0).
    pub async fn open(path: PathBuf, tail_lines: u32, follow: bool) -> Result<LogStream, Status> {
        let file = open(&path)?;
        let p = path.clone();
        let file = blocking(move || {
            let mut f = file;
            let len = f.metadata()?.len();
            let start = tail_offset(&mut f, len, tail_lines)?;
            f.seek(SeekFrom::Start(start))?;
            Ok(f)
        })
        .await
        .map_err(|e| Status::internal(format!("reading {}: {e}", p.display())))?;
        Ok(LogStream {
            path,
            file: Arc::new(file),
            follow,
            done: false,
        })
    }

    /// Up to [`CHUNK`] bytes from the current position; empty at the end.
    async fn read_chunk(&self) -> std::io::Result<Vec<u8>> {
        let f = self.file.clone();
        blocking(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = (&*f).read(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
    }

    /// The next piece of the log; None at its end when not following.
    /// Following survives truncation (start again from 0) and rotation
    /// (drain the old file, then switch to the new one at the same path).
    async fn next_data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        // Whether a read may find bytes: false after one found none, until
        // `fstat` says the file grew (an idle follower costs no read job).
        let mut maybe_more = true;
        loop {
            if maybe_more {
                let data = self.read_chunk().await?;
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
            if !self.follow {
                return Ok(None);
            }
            // Drained. Rotated: the path names another file now; what the
            // old one got before the switch was read above.
            let meta = self.file.metadata()?;
            if let Ok(now) = std::fs::metadata(&self.path)
                && (now.ino(), now.dev()) != (meta.ino(), meta.dev())
                && let Ok(newf) = File::open(&self.path)
            {
                self.file = Arc::new(newf);
                maybe_more = true;
                continue;
            }
            tokio::time::sleep(POLL).await;
            let pos = (&*self.file).stream_position()?;
            let len = self.file.metadata()?.len();
            if len < pos {
                // Truncated in place: what is there now is new output.
                (&*self.file).seek(SeekFrom::Start(0))?;
            }
            maybe_more = len != pos;
        }
    }

    /// The stream tonic sends: data messages, then (on a read error) one
    /// INTERNAL status naming the file, then the end.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<matic_proto::v1::LogsResponse, Status>> + Send + 'static
    {
        futures::stream::unfold(self, |mut s| async move {
            if s.done {
                return None;
            }
            match s.next_data().await {
                Ok(Some(data)) => Some((Ok(matic_proto::v1::LogsResponse { data }), s)),
                Ok(None) => None,
                Err(e) => {
                    s.done = true;
                    let msg = format!("reading {}: {e}", s.path.display());
                    Some((Err(Status::internal(msg)), s))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tail_of(content: &str, n: u32) -> String {
        let path = std::env::temp_dir().join(format!(
            "matic-tail-{}-{n}-{}",
            std::process::id(),
            content.len()
        ));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        let mut f = File::open(&path).unwrap();
        let off = tail_offset(&mut f, content.len() as u64, n).unwrap();
        std::fs::remove_file(&path).unwrap();
        content[off as usize..].to_owned()
    }

    #[test]
    fn tails() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("a\nb\nc\n", 5), "a\nb\nc\n");
        assert_eq!(tail_of("a\nb\nc\n", 0), "a\nb\nc\n");
        assert_eq!(tail_of("", 3), "");
        let long: String = (0..20000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail_of(&long, 3), "line 19997\nline 19998\nline 19999\n");
    }

    #[test]
    fn names() {
        for bad in ["", "../x", "a/b", "..", "x..y", &"n".repeat(65)] {
            assert_eq!(
                validate_name(bad).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{bad}"
            );
        }
        assert!(validate_name("containerd").is_ok());
        assert!(validate_name("matic-agent").is_ok());
    }
}
