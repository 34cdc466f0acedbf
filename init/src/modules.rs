//! Stage 1's kernel modules: `/lib/modules/load.list` (parsed by
//! `matic_init::modlist`) loaded in order with `finit_module`, its `&`
//! lines by a forked child at the same time (the VM and most machines have
//! a second CPU; the root's modules stay first on this one), which stage 1
//! [`join`]s once the root is mounted.
//!
//! A module that fails is logged and skipped; this module must never stop
//! the boot (a CPU-specific module may well be absent), and the child must
//! never outlive stage 1 nor do anything but load its modules.

use crate::util::{open, read_file};
use crate::{info, sys, warn};
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::modlist;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::WaitOptions;

/// `finit_module` flag: the kernel decompresses the file (Linux ≥ 6.4).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Loads `/lib/modules/load.list`: the `&` lines in a forked child, the
/// others here, in order; whether the child runs (for [`join`]). If `fork`
/// fails, all are loaded here. An unreadable list is returned (nothing was
/// loaded).
pub fn load() -> Result<bool, Errno> {
    let mut text = [0u8; 8192];
    let text = read_file(c"/lib/modules/load.list", &mut text)?;
    let forked = match sys::fork() {
        Ok(0) => {
            load_part(text, Some(true));
            sys::exit_group(0)
        }
        Ok(_) => true,
        Err(e) => {
            warn!("modules: fork: {}", e);
            false
        }
    };
    load_part(text, forked.then_some(false));
    Ok(forked)
}

/// Waits for the child of [`load`] (stage 1's only child): its modules,
/// ext4 among them, are loaded when this returns.
pub fn join(forked: bool) {
    if forked {
        let _ = rustix::process::wait(WaitOptions::empty());
    }
}

/// Loads the entries whose `beside` is `only` (all: `None`), in order;
/// failures are logged and skipped. The `&` part's line is `modules
/// beside: …`, not the root's `modules: …` (the timeline's
/// `modules-loaded` mark).
fn load_part(text: &[u8], only: Option<bool>) {
    let beside = only == Some(true);
    let (mut loaded, mut failed) = (0, 0);
    for entry in modlist::entries(text) {
        let m = match entry {
            Ok(m) if only.is_none_or(|b| m.beside == b) => m,
            Ok(_) => continue,
            Err(modlist::ModListError::BadLine(l)) => {
                if !beside {
                    warn!("load.list: bad line {}", Printable(l));
                }
                continue;
            }
        };
        let mut path = Buf::<256>::new();
        path.push_bytes(m.path);
        let Some(p) = path.as_cstr() else { continue };
        let flags = if m.compressed {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        let r = open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .and_then(|fd| rustix::system::finit_module(&fd, c"", flags));
        match r {
            Ok(()) | Err(Errno::EXIST) => loaded += 1,
            Err(e) => {
                failed += 1;
                warn!("module {}: {}", Printable(m.path), e);
            }
        }
    }
    info!(
        "modules{}: {} loaded or present, {} failed",
        if beside { " beside" } else { "" },
        loaded,
        failed
    );
}
