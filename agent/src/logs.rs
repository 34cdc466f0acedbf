//! Service logs from `<log-dir>/<service>.log` (written by init): the last N
//! lines, then optionally new output as it is appended. Following survives
//! truncation (start again from 0) and rotation (drain the old file, then
//! switch to the new one at the same path).
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
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

fn send(tx: &LogTx, data: Vec<u8>) -> bool {
    tx.blocking_send(Ok(matic_proto::v1::LogsResponse { data }))
        .is_ok()
}

/// Copies `f` from its current position to EOF into the stream. Returns
/// false when the client has gone.
fn drain(f: &mut File, tx: &LogTx) -> std::io::Result<bool> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if !send(tx, buf[..n].to_vec()) {
            return Ok(false);
        }
    }
}

type LogTx = mpsc::Sender<Result<matic_proto::v1::LogsResponse, Status>>;

/// Opens the log (NOT_FOUND when the service has not logged yet).
pub fn open(path: &Path) -> Result<File, Status> {
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(format!("no log at {}", path.display())),
        _ => Status::internal(format!("opening {}: {e}", path.display())),
    })
}

/// Streams the tail (and, with `follow`, new output) of `f` opened at
/// `path`. Runs on a blocking thread; ends when the client goes away.
pub fn stream(path: PathBuf, mut f: File, tail_lines: u32, follow: bool, tx: LogTx) {
    if let Err(e) = stream_inner(&path, &mut f, tail_lines, follow, &tx) {
        let _ = tx.blocking_send(Err(Status::internal(format!(
            "reading {}: {e}",
            path.display()
        ))));
    }
}

fn stream_inner(
    path: &Path,
    f: &mut File,
    tail_lines: u32,
    follow: bool,
    tx: &LogTx,
) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    let start = tail_offset(f, len, tail_lines)?;
    f.seek(SeekFrom::Start(start))?;
    if !drain(f, tx)? || !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(POLL);
        if tx.is_closed() {
            return Ok(());
        }
        let pos = f.stream_position()?;
        let meta = f.metadata()?;
        if meta.len() < pos {
            // Truncated in place: what is there now is new output.
            f.seek(SeekFrom::Start(0))?;
        }
        if !drain(f, tx)? {
            return Ok(());
        }
        // Rotated: the path names another file now. What the old one got
        // before the switch was drained above; continue with the new one.
        if let Ok(now) = std::fs::metadata(path)
            && (now.ino(), now.dev()) != (meta.ino(), meta.dev())
            && let Ok(newf) = File::open(path)
        {
            *f = newf;
            if !drain(f, tx)? {
                return Ok(());
            }
        }
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
