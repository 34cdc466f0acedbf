//! The agent's side of the init <-> agent contract (docs/interfaces.md):
//! `<run-dir>/boot` (written once by init stage 1), `<run-dir>/services`
//! (init's status file) and `<run-dir>/control` (init's command FIFO).
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use matic_proto::v1::Service;

/// Longest line init's FIFO reader accepts, newline included.
pub const MAX_COMMAND_LEN: usize = 64;

/// Errors talking to init.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
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
    #[error("control command {0:?} is longer than {MAX_COMMAND_LEN} bytes or contains a newline")]
    BadCommand(String),
}

/// What init stage 1 recorded about this boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// `A` or `B`.
    pub slot: Option<char>,
    pub disk: Option<PathBuf>,
    pub successful: bool,
}

/// Parses `<run-dir>/boot` (`key=value` lines; unknown keys are ignored so
/// init may add more).
pub fn parse_boot(text: &str) -> BootInfo {
    let mut info = BootInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        match k {
            "slot" => {
                info.slot = match v {
                    "A" => Some('A'),
                    "B" => Some('B'),
                    _ => None,
                }
            }
            "disk" if !v.is_empty() => info.disk = Some(PathBuf::from(v)),
            "successful" => info.successful = v == "1",
            _ => {}
        }
    }
    info
}

/// Reads and parses `<run-dir>/boot`.
pub fn read_boot(path: &Path) -> Result<BootInfo, InitError> {
    let text = std::fs::read_to_string(path).map_err(|source| InitError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_boot(&text))
}

/// One line of init's services file, before `since` is turned into an age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    pub name: String,
    pub state: String,
    pub pid: u32,
    pub restarts: u32,
    pub last_exit: String,
    /// CLOCK_BOOTTIME second at which the service entered `state`.
    pub since: u64,
}

const STATES: [&str; 6] = [
    "starting", "running", "backoff", "stopping", "stopped", "skipped",
];

/// Parses init's services file: `name state pid restarts last_exit since`,
/// lines starting with `#` skipped.
pub fn parse_services(path: &Path, text: &str) -> Result<Vec<ServiceLine>, InitError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: String| InitError::Parse {
            path: path.to_owned(),
            line: i + 1,
            why,
        };
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 6 {
            return Err(err(format!("expected 6 fields, found {}", f.len())));
        }
        if !STATES.contains(&f[1]) {
            return Err(err(format!("unknown state {:?}", f[1])));
        }
        let num = |s: &str, what: &str| {
            s.parse::<u64>()
                .map_err(|_| err(format!("bad {what} {s:?}")))
        };
        out.push(ServiceLine {
            name: f[0].to_owned(),
            state: f[1].to_owned(),
            pid: u32::try_from(num(f[2], "pid")?).map_err(|_| err("pid out of range".into()))?,
            restarts: u32::try_from(num(f[3], "restarts")?).unwrap_or(u32::MAX),
            last_exit: f[4].to_owned(),
            since: num(f[5], "since")?,
        });
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
        Service {
            name: self.name.clone(),
            state: self.state.clone(),
            pid: self.pid,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
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

    /// Writes one command line in a single `write` (at most 64 bytes, so
    /// atomic on a pipe).
    pub fn send(&self, command: &str) -> Result<(), InitError> {
        if command.contains('\n') || command.len() + 1 > MAX_COMMAND_LEN {
            return Err(InitError::BadCommand(command.to_owned()));
        }
        let line = format!("{command}\n");
        (&self.file)
            .write_all(line.as_bytes())
            .map_err(|source| InitError::FifoWrite {
                path: self.path.clone(),
                command: command.to_owned(),
                source,
            })
    }
}

/// Opens the FIFO and sends one command.
pub fn send_command(fifo: &Path, command: &str) -> Result<(), InitError> {
    ControlFifo::open(fifo)?.send(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_file() {
        let b = parse_boot("slot=B\ndisk=/dev/vda\nsuccessful=1\nfuture=x\n");
        assert_eq!(b.slot, Some('B'));
        assert_eq!(b.disk.as_deref(), Some(Path::new("/dev/vda")));
        assert!(b.successful);
        let b = parse_boot("slot=C\nsuccessful=0\n");
        assert_eq!(b.slot, None);
        assert!(!b.successful);
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
        assert_eq!(s[1].last_exit, "exit:1");
        assert_eq!(s[1].to_proto(20).state_seconds, 3);
        let e = parse_services(p, "x running 1 0 -\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("6 fields"), "{e}");
        let e = parse_services(p, "x dancing 1 0 - 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dancing"), "{e}");
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
        let e = send_command(&fifo, "reboot").unwrap_err();
        assert!(matches!(e, InitError::FifoOpen { .. }), "{e}");
        // With a reader: one line per command; over-long commands refused.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&fifo)
            .unwrap();
        send_command(&fifo, "restart containerd").unwrap();
        assert!(matches!(
            send_command(&fifo, &"x".repeat(64)),
            Err(InitError::BadCommand(_))
        ));
        assert!(matches!(
            send_command(&fifo, "a\nb"),
            Err(InitError::BadCommand(_))
        ));
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &reader, &mut got).ok();
        assert_eq!(got, "restart containerd\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
