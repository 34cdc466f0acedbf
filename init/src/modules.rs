//! Stage 1's kernel modules: `/lib/modules/load.list` (parsed by
//! `matic_init::modlist`) loaded in order with `finit_module`.
//!
//! A module that fails is logged and skipped; this module must never stop
//! the boot (a CPU-specific module may well be absent).

use crate::util::{open, read_file};
use crate::{info, warn};
use matic_init::fmtbuf::{Buf, Printable};
use matic_init::modlist;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// `finit_module` flag: the kernel decompresses the file (Linux ≥ 6.4).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Loads `/lib/modules/load.list` in order; failures are logged and
/// skipped. An unreadable list is returned (nothing was loaded).
pub fn load() -> Result<(), Errno> {
    let mut text = [0u8; 8192];
    let text = read_file(c"/lib/modules/load.list", &mut text)?;
    let (mut loaded, mut failed) = (0, 0);
    for entry in modlist::entries(text) {
        let m = match entry {
            Ok(m) => m,
            Err(modlist::ModListError::BadLine(l)) => {
                warn!("load.list: bad line {}", Printable(l));
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
    info!("modules: {} loaded or present, {} failed", loaded, failed);
    Ok(())
}
