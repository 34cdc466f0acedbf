//! `matic-disk`: create and inspect MaticOS disk images, and drive the slot
//! state from scripts and end-to-end tests.
//!
//! ```text
//! matic-disk create IMG --size BYTES [--esp BYTES] [--slot BYTES] [--state BYTES] [--disk-guid GUID]
//! matic-disk layout IMG                 NAME START_BYTES SIZE_BYTES  (one line per partition)
//! matic-disk set IMG SLOT [--priority N] [--tries N] [--successful 0|1]
//! matic-disk status IMG                 SLOT priority=N tries=N successful=0|1 bootable=0|1, then next=A|B|none
//! matic-disk choose IMG                 choose_boot_slot + write; prints the slot
//! matic-disk mark-successful IMG SLOT
//! matic-disk begin-update IMG TARGET    (the other slot is taken as running)
//! matic-disk finish-update IMG TARGET --tries N
//! matic-disk cancel-update IMG TARGET
//! matic-disk rollback IMG RUNNING
//! ```
//! Sizes take K, M, G, T suffixes (powers of 1024). Exit status 2 for usage
//! errors, 1 for anything else; errors go to stderr.
//!
//! Every command but `set` is one matic-boot call (a transition, or `create`)
//! plus one `write`; `set` is the `raw-attrs` escape hatch
//! (`Disk::force_slot_attrs`), which is why this binary requires that
//! feature. For image builders, tests and debugging: never run on a node.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::process::ExitCode;

use matic_boot::{Disk, Guid, Layout, Part, Slot, SlotAttrs};

const USAGE: &str = "usage:
  matic-disk create IMG --size BYTES [--esp BYTES] [--slot BYTES] [--state BYTES] [--disk-guid GUID]
  matic-disk layout IMG
  matic-disk set IMG A|B [--priority N] [--tries N] [--successful 0|1]
  matic-disk status IMG
  matic-disk choose IMG
  matic-disk mark-successful IMG A|B
  matic-disk begin-update IMG A|B
  matic-disk finish-update IMG A|B --tries N
  matic-disk cancel-update IMG A|B
  matic-disk rollback IMG RUNNING
sizes accept K/M/G/T suffixes (powers of 1024)";

enum Fail {
    Usage(String),
    Other(String),
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(msg.into()))
}

fn other(msg: impl std::fmt::Display) -> Fail {
    Fail::Other(msg.to_string())
}

/// Parses `1234`, `8M`, `1G`, `512K`, `2T` (binary multiples).
fn parse_size(s: &str) -> Result<u64, Fail> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map_or_else(|| usage(format!("bad size {s:?}")), Ok)
}

fn parse_nibble(flag: &str, s: &str) -> Result<u8, Fail> {
    match s.parse::<u8>() {
        Ok(n) if n <= SlotAttrs::MAX => Ok(n),
        _ => usage(format!("{flag} takes 0-15, not {s:?}")),
    }
}

fn parse_slot(s: &str) -> Result<Slot, Fail> {
    s.parse()
        .or_else(|_| usage(format!("slot must be A or B, not {s:?}")))
}

/// `--flag value` pairs after the positional arguments.
struct Flags<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Flags<'a> {
    fn parse(args: &'a [String], allowed: &[&str]) -> Result<Self, Fail> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !allowed.contains(&flag.as_str()) {
                return usage(format!("unknown argument {flag:?}"));
            }
            let Some(v) = it.next() else {
                return usage(format!("{flag} needs a value"));
            };
            out.push((flag.as_str(), v.as_str()));
        }
        Ok(Flags(out))
    }

    fn get(&self, flag: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| *v)
    }
}

fn open_rw(path: &str) -> Result<Disk<File>, Fail> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| other(format!("{path}: {e}")))?;
    Disk::open(f).map_err(|e| other(format!("{path}: {e}")))
}

fn open_ro(path: &str) -> Result<Disk<File>, Fail> {
    let f = File::open(path).map_err(|e| other(format!("{path}: {e}")))?;
    Disk::open(f).map_err(|e| other(format!("{path}: {e}")))
}

fn write(disk: &mut Disk<File>, path: &str) -> Result<(), Fail> {
    disk.write().map_err(|e| other(format!("{path}: {e}")))
}

fn random_guid() -> Result<Guid, Fail> {
    let mut g = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut g))
        .map_err(|e| other(format!("/dev/urandom: {e}")))?;
    // RFC 4122 version 4 (on-disk byte 7 is the version's byte), variant 1.
    g[7] = (g[7] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    Ok(Guid(g))
}

fn create(img: &str, rest: &[String]) -> Result<(), Fail> {
    let flags = Flags::parse(
        rest,
        &["--size", "--esp", "--slot", "--state", "--disk-guid"],
    )?;
    let Some(size) = flags.get("--size") else {
        return usage("create needs --size");
    };
    let size = parse_size(size)?;
    let disk_guid = match flags.get("--disk-guid") {
        Some(g) => g
            .parse()
            .or_else(|_| usage(format!("bad --disk-guid {g:?}")))?,
        None => random_guid()?,
    };
    let mut layout = Layout::new(disk_guid);
    if let Some(s) = flags.get("--esp") {
        layout.esp_bytes = parse_size(s)?;
    }
    if let Some(s) = flags.get("--slot") {
        layout.slot_bytes = parse_size(s)?;
    }
    if let Some(s) = flags.get("--state") {
        layout.state_bytes = Some(parse_size(s)?);
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(img)
        .map_err(|e| other(format!("{img}: {e}")))?;
    // Regular files grow to the size asked for; block devices keep theirs.
    let meta = f.metadata().map_err(|e| other(format!("{img}: {e}")))?;
    if meta.is_file() && meta.len() < size {
        f.set_len(size).map_err(|e| other(format!("{img}: {e}")))?;
    }
    Disk::create(f, &layout).map_err(|e| other(format!("{img}: {e}")))?;
    Ok(())
}

fn layout(img: &str) -> Result<(), Fail> {
    let disk = open_ro(img)?;
    for part in Part::ALL {
        let p = disk
            .partition(part)
            .map_err(|e| other(format!("{img}: {e}")))?;
        println!("{} {} {}", part.name(), p.start(), p.size());
    }
    Ok(())
}

fn status(img: &str) -> Result<(), Fail> {
    let disk = open_ro(img)?;
    let st = disk.status();
    for slot in Slot::ALL {
        println!("{slot} {}", st.get(slot));
    }
    match st.next {
        Some(s) => println!("next={s}"),
        None => println!("next=none"),
    }
    Ok(())
}

fn set(img: &str, rest: &[String]) -> Result<(), Fail> {
    let Some((slot, rest)) = rest.split_first() else {
        return usage("set needs a slot");
    };
    let slot = parse_slot(slot)?;
    let flags = Flags::parse(rest, &["--priority", "--tries", "--successful"])?;
    let mut disk = open_rw(img)?;
    let cur = disk.slot_attrs(slot);
    let priority = match flags.get("--priority") {
        Some(v) => parse_nibble("--priority", v)?,
        None => cur.priority(),
    };
    let tries = match flags.get("--tries") {
        Some(v) => parse_nibble("--tries", v)?,
        None => cur.tries(),
    };
    let successful = match flags.get("--successful") {
        Some("0") => false,
        Some("1") => true,
        Some(v) => return usage(format!("--successful takes 0 or 1, not {v:?}")),
        None => cur.successful(),
    };
    let attrs = SlotAttrs::new(priority, tries, successful).expect("ranges checked");
    disk.force_slot_attrs(slot, attrs);
    write(&mut disk, img)
}

/// Runs one transition on `img` and writes the table.
fn transition(
    img: &str,
    f: impl FnOnce(&mut Disk<File>) -> Result<Option<Slot>, matic_boot::Error<std::io::Error>>,
) -> Result<(), Fail> {
    let mut disk = open_rw(img)?;
    let out = f(&mut disk).map_err(|e| other(format!("{img}: {e}")))?;
    write(&mut disk, img)?;
    if let Some(s) = out {
        println!("{s}");
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), Fail> {
    let (Some(cmd), Some(img)) = (args.first(), args.get(1)) else {
        return usage("need a command and an image");
    };
    let rest = &args[2..];
    let no_more = |n: usize| {
        if rest.len() > n {
            usage(format!("unexpected argument {:?}", rest[n]))
        } else {
            Ok(())
        }
    };
    let slot_arg = || match rest.first() {
        Some(s) => parse_slot(s),
        None => usage(format!("{cmd} needs a slot")),
    };
    match cmd.as_str() {
        "create" => create(img, rest),
        "layout" => no_more(0).and_then(|_| layout(img)),
        "status" => no_more(0).and_then(|_| status(img)),
        "set" => set(img, rest),
        "choose" => {
            no_more(0)?;
            transition(img, |d| d.choose_boot_slot().map(Some))
        }
        "mark-successful" => {
            no_more(1)?;
            let s = slot_arg()?;
            transition(img, |d| d.mark_successful(s).map(|_| None))
        }
        "begin-update" => {
            no_more(1)?;
            let s = slot_arg()?;
            transition(img, |d| d.begin_update(s, !s).map(|_| None))
        }
        "finish-update" => {
            let s = slot_arg()?;
            let flags = Flags::parse(&rest[1..], &["--tries"])?;
            let Some(t) = flags.get("--tries") else {
                return usage("finish-update needs --tries");
            };
            let t = parse_nibble("--tries", t)?;
            transition(img, |d| d.finish_update(s, t).map(|_| None))
        }
        "cancel-update" => {
            no_more(1)?;
            let s = slot_arg()?;
            transition(img, |d| d.cancel_update(s).map(|_| None))
        }
        "rollback" => {
            no_more(1)?;
            let s = slot_arg()?;
            transition(img, |d| d.rollback(s).map(Some))
        }
        _ => usage(format!("unknown command {cmd:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(m)) => {
            eprintln!("matic-disk: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Other(m)) => {
            eprintln!("matic-disk: {m}");
            ExitCode::FAILURE
        }
    }
}
