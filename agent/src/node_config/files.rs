//! Rendered files put in place as one set: each written atomically (a
//! temporary file with its mode, fsync, rename, fsync of the directory),
//! unchanged ones left alone, unwanted ones removed, and everything put
//! back as it was when one of them fails ([`Put::undo`]).
//!
//! Must never: follow the set outside the paths it was given, or leave a
//! secret readable by others while it is written (the mode is set on the
//! temporary file before the first byte).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use matic_config::atomic;

/// One file of a set: its content, or None when it must not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub path: PathBuf,
    pub content: Option<Vec<u8>>,
    /// Permission bits of a written file (0o600 for secrets).
    pub mode: u32,
}

impl Want {
    pub fn file(path: PathBuf, content: impl Into<Vec<u8>>, mode: u32) -> Want {
        Want {
            path,
            content: Some(content.into()),
            mode,
        }
    }
    pub fn absent(path: PathBuf) -> Want {
        Want {
            path,
            content: None,
            mode: 0,
        }
    }
}

/// Writing a rendered file failed; names the path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError { op, path, source }
}

/// What [`put`] changed: the paths, and how to go back.
#[derive(Debug, Default)]
pub struct Put {
    /// The paths whose content changed (written, or removed).
    pub changed: Vec<PathBuf>,
    /// Each changed path with its content before (None: it did not exist).
    before: Vec<(PathBuf, Option<Vec<u8>>, u32)>,
}

impl Put {
    /// Puts every changed file back as it was (best effort, logged).
    pub fn undo(self) {
        for (path, before, mode) in self.before.into_iter().rev() {
            let r = match before {
                Some(b) => write(&path, &b, mode),
                None => remove(&path),
            };
            if let Err(e) = r {
                eprintln!("matic-agent: config: putting back {}: {e}", path.display());
            }
        }
    }
}

fn read(path: &Path) -> Result<Option<(Vec<u8>, u32)>, FileError> {
    use std::os::unix::fs::PermissionsExt;
    match fs::read(path) {
        Ok(b) => {
            let mode = fs::metadata(path)
                .map_err(err("stat", path))?
                .permissions()
                .mode()
                & 0o7777;
            Ok(Some((b, mode)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("read", path)(e)),
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err("create directory", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{}{name}-{}",
        atomic::TMP_PREFIX,
        std::process::id()
    ));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err("create", &tmp))?;
        f.write_all(bytes).map_err(err("write", &tmp))?;
        f.sync_all().map_err(err("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(err("rename onto", path))?;
        atomic::sync_dir(dir).map_err(|e| FileError {
            op: "fsync directory",
            path: dir.to_owned(),
            source: e.source,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn remove(path: &Path) -> Result<(), FileError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err("remove", path)(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    atomic::sync_dir(dir).map_err(|e| FileError {
        op: "fsync directory",
        path: dir.to_owned(),
        source: e.source,
    })
}

/// Puts `wants` in place. On an error, what was changed before it is put
/// back and the error returned: the set is as it was.
pub fn put(wants: &[Want]) -> Result<Put, FileError> {
    let mut done = Put::default();
    for w in wants {
        let step = (|| {
            let before = read(&w.path)?;
            let same = match (&before, &w.content) {
                (Some((b, m)), Some(c)) => b == c && *m == w.mode,
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            match &w.content {
                Some(c) => write(&w.path, c, w.mode)?,
                None => remove(&w.path)?,
            }
            let (b, m) = before.map_or((None, 0), |(b, m)| (Some(b), m));
            done.before.push((w.path.clone(), b, m));
            done.changed.push(w.path.clone());
            Ok(())
        })();
        if let Err(e) = step {
            done.undo();
            return Err(e);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("matic-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_changes_only_and_undoes_on_failure() {
        let d = dir("put");
        let a = d.join("a/a.conf");
        let b = d.join("b.conf");
        fs::write(&b, "old").unwrap();
        let p = put(&[
            Want::file(a.clone(), "A", 0o600),
            Want::absent(b.clone()),
            Want::absent(d.join("never")),
        ])
        .unwrap();
        assert_eq!(p.changed, [a.clone(), b.clone()]);
        assert_eq!(fs::read_to_string(&a).unwrap(), "A");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!b.exists());
        // The same set again changes nothing.
        assert!(
            put(&[Want::file(a.clone(), "A", 0o600)])
                .unwrap()
                .changed
                .is_empty()
        );
        // A mode alone is a change.
        assert_eq!(
            put(&[Want::file(a.clone(), "A", 0o644)]).unwrap().changed,
            std::slice::from_ref(&a)
        );
        // A failing write (its directory is a file) puts the earlier ones back.
        fs::write(d.join("blocker"), "").unwrap();
        let e = put(&[
            Want::file(a.clone(), "A2", 0o644),
            Want::file(b.clone(), "B2", 0o644),
            Want::file(d.join("blocker/x"), "X", 0o644),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("blocker"), "{e}");
        assert_eq!(fs::read_to_string(&a).unwrap(), "A");
        assert!(!b.exists(), "a file that did not exist is removed again");
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(d.join("a")).unwrap().collect();
        assert_eq!(left.len(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
