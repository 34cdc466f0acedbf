//! `osctl release sign`: a SquashFS root image in, one release file out
//! (`manifest block ‖ payload`). The payload is made by the real
//! `veritysetup format` in a temporary file beside the output, checked
//! against the manifest before the manifest is signed, and the release is
//! written under a temporary name, synced and renamed into place.
//!
//! Must never: sign a payload it has not checked block by block against
//! the manifest it signs, sign anything but a SquashFS, or leave a partial
//! release (or its temporary files) under the output's name.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use matic_release::KeyId;
use matic_release::manifest::{self, Manifest};
use matic_release::verity::{BLOCK, Geometry};

use super::check::{self, PayloadError};
use super::keys::SigningKey;
use super::{ReleaseError, veritysetup};

/// The first bytes of a SquashFS (little-endian `sqsh`).
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// What `osctl release sign` is asked for.
pub struct SignRequest<'a> {
    pub key: &'a Path,
    pub version: &'a str,
    pub counter: u64,
    pub salt: Option<&'a [u8]>,
    pub squashfs: &'a Path,
    pub out: &'a Path,
}

/// What was signed.
#[derive(Debug)]
pub struct Signed {
    pub manifest: Manifest,
    /// Bytes of the SquashFS before padding.
    pub squashfs_size: u64,
    /// Bytes of the release file (manifest block and payload).
    pub release_size: u64,
}

/// A file removed on drop unless [`Temp::keep`] was called.
struct Temp(Option<PathBuf>);

impl Temp {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A temporary name beside `out` (same directory: the rename is atomic).
fn beside(out: &Path, what: &str) -> Temp {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "release".into());
    let dir = out.parent().unwrap_or(Path::new(""));
    Temp(Some(
        dir.join(format!(".{name}.{what}.{}", std::process::id())),
    ))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The version's and salt's rules are the manifest's: a one-block
/// manifest with them is made before any work, so a bad one is refused
/// at once.
fn check_fields(req: &SignRequest<'_>) -> Result<(), ReleaseError> {
    let one_block = Geometry::new(1, BLOCK, BLOCK, 2 * u64::from(BLOCK))
        .expect("one 4 KiB block and its superblock is a valid geometry");
    let salt = req.salt.unwrap_or(&[]);
    Manifest::new(
        req.version,
        0,
        [0; 32],
        one_block,
        salt,
        [0; 32],
        KeyId([0; 8]),
    )
    .map(|_| ())
    .map_err(|source| ReleaseError::Manifest {
        path: req.out.to_path_buf(),
        source,
    })
}

/// Signs `req.squashfs` into `req.out`.
pub fn sign(req: &SignRequest<'_>) -> Result<Signed, ReleaseError> {
    let key = SigningKey::load(req.key)?;
    check_fields(req)?;
    let read = |source| ReleaseError::Read {
        path: req.squashfs.to_path_buf(),
        source,
    };
    let mut input = std::fs::File::open(req.squashfs).map_err(read)?;
    let mut magic = [0u8; 4];
    if input.read_exact(&mut magic).is_err() || &magic != SQUASHFS_MAGIC {
        return Err(ReleaseError::NotSquashfs(req.squashfs.to_path_buf()));
    }
    input.seek(SeekFrom::Start(0)).map_err(read)?;
    let squashfs_size = input.metadata().map_err(read)?.len();

    // The payload: the SquashFS padded to whole blocks, then veritysetup's
    // superblock and tree.
    let payload = beside(req.out, "payload");
    let p = payload.path();
    let mut f = std::fs::File::create(p).map_err(io(p))?;
    std::io::copy(&mut input, &mut f).map_err(io(p))?;
    let data_blocks = squashfs_size.div_ceil(u64::from(BLOCK));
    f.set_len(data_blocks * u64::from(BLOCK)).map_err(io(p))?;
    f.sync_all().map_err(io(p))?;
    drop(f);
    let formatted = veritysetup::format(p, data_blocks, req.salt)?;
    let data_len = data_blocks * u64::from(BLOCK);
    let geometry = Geometry::new(data_blocks, BLOCK, BLOCK, data_len + u64::from(BLOCK))
        .map_err(|g| ReleaseError::Veritysetup(format!("its geometry: {}", g.describe())))?;
    let manifest_for = |sha| {
        Manifest::new(
            req.version,
            req.counter,
            sha,
            geometry,
            &formatted.salt,
            formatted.root_hash,
            key.id,
        )
        .map_err(|source| ReleaseError::Manifest {
            path: req.out.to_path_buf(),
            source,
        })
    };
    // Every block of what veritysetup wrote, checked against the manifest
    // about to be signed (the digest is the one thing it then gets from
    // this pass).
    let unsigned = manifest_for([0; 32])?;
    let bad = |source: PayloadError| ReleaseError::Payload {
        path: p.to_path_buf(),
        source,
    };
    let sha = check::check_tree(p, 0, &unsigned).map_err(bad)?;
    let mut manifest = manifest_for(sha)?;
    manifest.sign(|msg| key.sign(msg));

    // The release: manifest block, then the payload, under a temporary
    // name; synced, renamed, the directory synced.
    let release = beside(req.out, "tmp");
    let r = release.path();
    let mut out = std::fs::File::create(r).map_err(io(r))?;
    out.write_all(&manifest.render_block()).map_err(io(r))?;
    let mut payload_file = std::fs::File::open(p).map_err(io(p))?;
    std::io::copy(&mut payload_file, &mut out).map_err(io(r))?;
    out.sync_all().map_err(io(r))?;
    let release_size = out.metadata().map_err(io(r))?.len();
    drop(out);
    let want = manifest::BLOCK_LEN as u64 + manifest.payload_size;
    if release_size != want {
        return Err(ReleaseError::Length {
            path: r.to_path_buf(),
            len: release_size,
            want,
        });
    }
    std::fs::rename(r, req.out).map_err(io(req.out))?;
    release.keep();
    if let Some(dir) = req.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(Signed {
        manifest,
        squashfs_size,
        release_size,
    })
}
