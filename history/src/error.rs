//! The crate's one error type. Every variant that comes from the file
//! system names the path it was about; nothing here is ever a panic.
//!
//! Must never: carry a bare `io::Error` without its path (the operator
//! has to know which file of which boot failed).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong, and where.
#[derive(Debug)]
pub enum Error {
    /// A file-system call failed: `op` is what was being done to `path`.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The cap given to [`crate::Store::open`] is below [`crate::store::MIN_CAP`].
    CapTooSmall { cap: u64, min: u64 },
    /// A service name that cannot be a file name in `services/`.
    BadServiceName { name: String },
    /// The current boot's `events.jsonl` would pass its bound: the event
    /// was not written (the file is unchanged).
    JournalFull { path: PathBuf, bound: u64 },
    /// No boot directory with that number.
    NoSuchBoot { number: u64, path: PathBuf },
    /// An old boot could not be deleted to bring the store under its cap.
    /// From a writer's append: the data was written all the same. From
    /// [`crate::Store::begin`]: before the new boot was made (none was).
    Retention { path: PathBuf, source: io::Error },
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::CapTooSmall { cap, min } => {
                write!(f, "boot history cap {cap} bytes is below the minimum {min}")
            }
            Error::BadServiceName { name } => write!(
                f,
                "service name {name:?} is not 1-64 characters of [A-Za-z0-9._-] not starting with '.'"
            ),
            Error::JournalFull { path, bound } => write!(
                f,
                "{}: event not written, the file would pass its bound of {bound} bytes",
                path.display()
            ),
            Error::NoSuchBoot { number, path } => {
                write!(
                    f,
                    "no boot {number} in the history ({} does not exist)",
                    path.display()
                )
            }
            Error::Retention { path, source } => write!(
                f,
                "could not delete old boot {} to keep the history under its cap: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Retention { source, .. } => Some(source),
            _ => None,
        }
    }
}
