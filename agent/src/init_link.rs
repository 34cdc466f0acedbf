//! The agent's side of the init <-> agent contract: reading `<run-dir>/boot`
//! and `<run-dir>/services` and writing commands to `<run-dir>/control`.
//! The formats themselves are `matic-contract`'s (docs/interfaces.md); this
//! module only does the I/O and turns their errors into ones naming the file.
//!
//! Must never: parse or format a contract file itself, write to init's
//! files, or block on the FIFO (a missing init is an error, not a hang).
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use matic_boot::Slot;
use matic_contract::Sink;
use matic_contract::boot::{BootFile, BootFileError};
use matic_contract::control::{Command, MAX_LINE};
use matic_contract::services::{self, LastExit, State};
use matic_proto::v1::Service;

/// Errors talking to init.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    BootFile {
        path: PathBuf,
        source: BootFileError,
    },
    #[error("{path}: line {line}: {why}")]
    Parse {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("init is not listening on its control FIFO {path}: {source}")]
    FifoOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {command:?} to {path}: {source}")]
    FifoWrite {
        path: PathBuf,
        command: String,
        source: std::io::Error,
    },
    #[error(
        "control command {0:?} is not one word after the verb or is longer than {MAX_LINE} bytes"
    )]
    BadCommand(String),
}

/// Collects what a contract type renders.
fn rendered(render: impl FnOnce(&mut dyn Sink)) -> Vec<u8> {
    struct VecSink(Vec<u8>);
    impl Sink for VecSink {
        fn put(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
    }
    let mut s = VecSink(Vec::new());
    render(&mut s);
    s.0
}

/// What init stage 1 recorded about this boot (the contract's
/// [`BootFile`], owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The slot this node booted.
    pub slot: Slot,
    /// The disk it booted from.
    pub disk: PathBuf,
    /// Whether the slot was already marked successful before this boot.
    pub successful: bool,
}

/// Reads and parses `<run-dir>/boot`. A file the contract refuses is an
/// error: the running slot and disk are then both unknown.
pub fn read_boot(path: &Path) -> Result<BootInfo, InitError> {
    let text = std::fs::read(path).map_err(|source| InitError::Read {
        path: path.to_owned(),
        source,
    })?;
    let b = BootFile::parse(&text).map_err(|source| InitError::BootFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(BootInfo {
        slot: b.slot,
        disk: PathBuf::from(OsStr::from_bytes(b.disk)),
        successful: b.successful,
    })
}

/// One line of init's services file (the contract's
/// [`services::ServiceLine`], owned), before `since` is turned into an age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    pub name: String,
    pub state: State,
    pub pid: u32,
    pub restarts: u32,
    pub last_exit: LastExit,
    /// CLOCK_BOOTTIME second at which the service entered `state`.
    pub since: u64,
}

/// Parses init's services file; an error names the file and the line.
pub fn parse_services(path: &Path, text: &str) -> Result<Vec<ServiceLine>, InitError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let parsed = services::ServiceLine::parse(line).map_err(|e| InitError::Parse {
            path: path.to_owned(),
            line: i + 1,
            why: e.to_string(),
        })?;
        if let Some(l) = parsed {
            out.push(ServiceLine {
                name: l.name.to_owned(),
                state: l.state,
                pid: l.pid,
                restarts: l.restarts,
                last_exit: l.last_exit,
                since: l.since,
            });
        }
    }
    Ok(out)
}

/// Reads init's services file.
pub fn read_services(path: &Path) -> Result<Vec<ServiceLine>, InitError> {
    let text = std::fs::read_to_string(path).map_err(|source| InitError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_services(path, &text)
}

/// Seconds since boot (CLOCK_BOOTTIME, the clock init stamps `since` with).
pub fn boottime_secs() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    u64::try_from(ts.tv_sec).unwrap_or(0)
}

impl ServiceLine {
    /// The API form, with `since` turned into seconds in the current state.
    pub fn to_proto(&self, now_boottime: u64) -> Service {
        let last_exit = rendered(|o| self.last_exit.render(o));
        Service {
            name: self.name.clone(),
            state: self.state.as_str().to_owned(),
            pid: self.pid,
            restarts: self.restarts,
            last_exit: String::from_utf8_lossy(&last_exit).into_owned(),
            state_seconds: now_boottime.saturating_sub(self.since),
        }
    }
}

/// Init's control FIFO, opened for writing. Opened non-blocking so a
/// missing reader is an immediate error rather than a hang.
#[derive(Debug)]
pub struct ControlFifo {
    path: PathBuf,
    file: std::fs::File,
}

impl ControlFifo {
    /// Opens the FIFO; fails (ENXIO) when init is not reading it.
    pub fn open(path: &Path) -> Result<ControlFifo, InitError> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .map_err(|source| InitError::FifoOpen {
                path: path.to_owned(),
                source,
            })?;
        Ok(ControlFifo {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes one command line in a single `write` (at most 65 bytes, so
    /// atomic on a pipe). A command that would not parse back the same
    /// (a `restart` name with blanks, too long) is refused unsent.
    pub fn send(&self, command: Command<'_>) -> Result<(), InitError> {
        if !command.fits() {
            return Err(InitError::BadCommand(command.to_string()));
        }
        let mut line = rendered(|o| command.render(o));
        line.push(b'\n');
        (&self.file)
            .write_all(&line)
            .map_err(|source| InitError::FifoWrite {
                path: self.path.clone(),
                command: command.to_string(),
                source,
            })
    }
}

/// Opens the FIFO and sends one command.
pub fn send_command(fifo: &Path, command: Command<'_>) -> Result<(), InitError> {
    ControlFifo::open(fifo)?.send(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_file() {
        let dir = std::env::temp_dir().join(format!("matic-bootfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("boot");
        std::fs::write(&p, "slot=B\ndisk=/dev/vda\nsuccessful=1\nfuture=x\n").unwrap();
        let b = read_boot(&p).unwrap();
        assert_eq!(b.slot, Slot::B);
        assert_eq!(b.disk, Path::new("/dev/vda"));
        assert!(b.successful);
        // Refused whole, naming the file: no half-known boot.
        std::fs::write(&p, "slot=C\ndisk=/dev/vda\nsuccessful=0\n").unwrap();
        let e = read_boot(&p).unwrap_err().to_string();
        assert!(e.contains("boot") && e.contains("not valid"), "{e}");
        std::fs::write(&p, "slot=A\nsuccessful=0\n").unwrap();
        let e = read_boot(&p).unwrap_err().to_string();
        assert!(e.contains("no disk= line"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn services_file() {
        let p = Path::new("services");
        let s = parse_services(
            p,
            "# matic-init services v1\nmatic-agent running 123 0 - 5\ncontainerd backoff 0 2 exit:1 17\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "containerd");
        assert_eq!(s[1].restarts, 2);
        assert_eq!(s[1].last_exit, LastExit::Code(1));
        let proto = s[1].to_proto(20);
        assert_eq!(proto.state_seconds, 3);
        assert_eq!(
            (proto.state.as_str(), proto.last_exit.as_str()),
            ("backoff", "exit:1")
        );
        let e = parse_services(p, "x running 1 0 -\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("6 fields"), "{e}");
        let e = parse_services(p, "x dancing 1 0 - 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dancing"), "{e}");
    }

    /// Issue 15: kubelet without its flags file is `waiting` in init's
    /// file, and the API says so as it says every state.
    #[test]
    fn services_file_with_a_waiting_kubelet() {
        let s = parse_services(
            Path::new("services"),
            "# matic-init services v1\nkubelet waiting 0 0 - 12\n",
        )
        .unwrap();
        assert_eq!(s[0].state, State::Waiting);
        let proto = s[0].to_proto(15);
        assert_eq!((proto.state.as_str(), proto.state_seconds), ("waiting", 3));
    }

    #[test]
    fn fifo_without_reader_is_an_error() {
        let dir = std::env::temp_dir().join(format!("matic-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("control");
        let _ = std::fs::remove_file(&fifo);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = send_command(&fifo, Command::Reboot).unwrap_err();
        assert!(matches!(e, InitError::FifoOpen { .. }), "{e}");
        // With a reader: one line per command; over-long commands refused.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&fifo)
            .unwrap();
        send_command(&fifo, Command::Restart(b"containerd")).unwrap();
        assert!(matches!(
            send_command(&fifo, Command::Restart(&[b'x'; 57])),
            Err(InitError::BadCommand(_))
        ));
        assert!(matches!(
            send_command(&fifo, Command::Restart(b"a\nb")),
            Err(InitError::BadCommand(_))
        ));
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &reader, &mut got).ok();
        assert_eq!(got, "restart containerd\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
