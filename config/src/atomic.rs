//! Writing a file so that a reader (or the next boot, after a power cut)
//! sees either the old content or the whole new one: write a temporary
//! file beside it, fsync it, rename it over the target, fsync the
//! directory.
//!
//! Must never: leave the target half-written, or name a temporary file so
//! that [`crate::generations`] could take it for a generation
//! ([`TMP_PREFIX`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Temporary files start with this; readers skip (and may delete) them.
pub const TMP_PREFIX: &str = ".tmp-";

/// An I/O error naming what was done to which path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoError {
    pub op: &'static str,
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Maps an I/O error to one naming `op` and `path`.
pub fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.display().to_string();
    move |source| IoError { op, path, source }
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename onto", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a directory's entries (a created, renamed or deleted file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// Deletes `path` (absent is fine) and makes that durable.
pub fn remove(path: &Path) -> Result<(), IoError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("delete", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write(&p, b"one").unwrap();
        write(&p, b"two, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two, longer");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(!p.exists());
        let e = write(&d.path().join("no/such/dir/f"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}
