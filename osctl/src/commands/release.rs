//! `osctl release keygen|sign|verify|inspect`: local commands over release
//! files and keys ([`crate::release`] does the work); they print what was
//! made or found and never contact a node.
//!
//! Must never: print a private key, or report a release as verified on
//! fewer checks than [`crate::release::check::check_payload`] and the
//! signature.

use std::path::Path;

use matic_release::trusted::TrustedKeys;
use serde_json::json;

use super::{AnyError, write_out};
use crate::args::ReleaseCommand;
use crate::output::{self, Format};
use crate::release::file::ReleaseFile;
use crate::release::sign::{self, SignRequest};
use crate::release::{ReleaseError, check, keys};

/// Runs one `osctl release` subcommand; the exit code.
pub(crate) fn run(cmd: &ReleaseCommand, format: Format) -> Result<i32, AnyError> {
    match cmd {
        ReleaseCommand::Keygen { out } => keygen(out, format),
        ReleaseCommand::Sign {
            key,
            release_version,
            counter,
            salt,
            squashfs,
            out,
        } => {
            let req = SignRequest {
                key,
                version: release_version,
                counter: *counter,
                salt: salt.as_ref().map(|s| s.0.as_slice()),
                squashfs,
                out,
            };
            let s = sign::sign(&req)?;
            let m = &s.manifest;
            let doc = json!({
                "release": out.display().to_string(),
                "squashfs": squashfs.display().to_string(),
                "squashfs_size": s.squashfs_size,
                "release_size": s.release_size,
                "manifest": output::manifest_json(m),
            });
            emit(format, &doc, || {
                format!(
                    "signed {} into {}\n{}squashfs          {} bytes\nrelease file      {} bytes\n",
                    squashfs.display(),
                    out.display(),
                    output::manifest_text(m),
                    s.squashfs_size,
                    s.release_size,
                )
            });
            Ok(0)
        }
        ReleaseCommand::Verify { keys, release } => verify(keys, release, format),
        ReleaseCommand::Inspect { release, json } => {
            let format = if *json { Format::Json } else { format };
            let r = ReleaseFile::open(release)?;
            let doc = json!({
                "release": release.display().to_string(),
                "signature_checked": false,
                "manifest": output::manifest_json(&r.unverified),
            });
            emit(format, &doc, || {
                format!(
                    "{}: signature NOT checked (osctl release verify --keys DIR checks it)\n{}",
                    release.display(),
                    output::manifest_text(&r.unverified)
                )
            });
            Ok(0)
        }
    }
}

fn keygen(out: &Path, format: Format) -> Result<i32, AnyError> {
    let g = keys::generate(out)?;
    let doc = json!({
        "key_id": g.id.to_string(),
        "private": g.private.display().to_string(),
        "public": g.public.display().to_string(),
    });
    emit(format, &doc, || {
        format!(
            "wrote {} (the private key: keep it secret and backed up)\nwrote {} (nodes trust it in /usr/share/matic/release-keys/)\nkey id {}\n",
            g.private.display(),
            g.public.display(),
            g.id
        )
    });
    Ok(0)
}

/// The signature first (a release signed by no trusted key is refused
/// whatever its payload), then the payload.
fn verify(keys_dir: &Path, release: &Path, format: Format) -> Result<i32, AnyError> {
    let r = ReleaseFile::open(release)?;
    let m = TrustedKeys::new(keys_dir)
        .verify(&r.block)
        .map_err(|source| ReleaseError::Trust {
            path: release.to_path_buf(),
            source,
        })?;
    let (offset, _) = r.payload_range();
    check::check_payload(release, offset, &m).map_err(|source| ReleaseError::Payload {
        path: release.to_path_buf(),
        source,
    })?;
    let doc = json!({
        "release": release.display().to_string(),
        "signature_checked": true,
        "manifest": output::manifest_json(&m),
    });
    emit(format, &doc, || {
        format!(
            "{}: signed by trusted key {}; the payload ({} bytes) matches its verity root hash and SHA-256\n{}",
            release.display(),
            m.key_id,
            m.payload_size,
            output::manifest_text(&m)
        )
    });
    Ok(0)
}

fn emit(format: Format, doc: &serde_json::Value, text: impl FnOnce() -> String) {
    match format {
        Format::Json => {
            write_out((serde_json::to_string_pretty(doc).expect("json") + "\n").as_bytes())
        }
        Format::Text => write_out(text().as_bytes()),
    }
}
