//! `osctl install`: take the release (a file, or an https URL downloaded to
//! a temporary file first), check it is a release, then send every node's
//! inactive slot its manifest block as the header and exactly its payload
//! as chunks, concurrently, with a progress bar per node. The node checks
//! the signature, the counter and every block; osctl does not hash the
//! payload (unless `--sha256` asks it to check the whole file).
//!
//! [`Ctx::prepare_release`] and [`send`] are also `osctl upgrade`'s
//! install step (crate::upgrade): one way to check and stream a release.
//!
//! Must never contact a node before the local checks pass (the URL's
//! scheme, a file that is a release of the length its manifest names,
//! `--sha256`): a wrong file is refused whole, and every node gets exactly
//! the manifest block and payload that were checked.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use matic_proto::v1::*;

use super::{AnyError, Ctx, lines};
use crate::client::{ClientError, Connection};
use crate::image;
use crate::output::Format;
use crate::release::file::ReleaseFile;

/// A release checked whole on this machine, ready to stream to nodes.
pub(crate) struct Prepared {
    /// The file the payload is read from (the download, for a URL).
    pub path: PathBuf,
    pub release: ReleaseFile,
    pub header: InstallHeader,
    /// Keeps a downloaded release's temporary file until the last send.
    _download: Option<image::TempFile>,
}

/// The style of every byte-count bar (download, sha256, install).
pub(crate) fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>15} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("template")
    .progress_chars("=> ")
}

/// Bars on stderr for people at a terminal; hidden for `-o json` or a pipe.
pub(crate) fn progress(format: Format) -> MultiProgress {
    MultiProgress::with_draw_target(
        if format == Format::Json || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    )
}

/// Stream `p` into the inactive slot of the node `c` talks to, advancing
/// `bar` by the payload bytes sent.
pub(crate) async fn send(
    c: &mut Connection,
    p: &Prepared,
    bar: &ProgressBar,
) -> Result<InstallResponse, ClientError> {
    let b = bar.clone();
    let failure = image::ReadFailure::default();
    let stream = image::request_stream(
        p.path.clone(),
        p.header.clone(),
        p.release.payload_range(),
        move |n| b.inc(n),
        failure.clone(),
    );
    let res = c.client.install(stream).await;
    if let Some(e) = failure.lock().unwrap().take() {
        return Err(ClientError::Other(
            image::ImageError::Read {
                path: p.path.clone(),
                source: e,
            }
            .to_string(),
        ));
    }
    Ok(res.map_err(|s| c.explain(&s))?.into_inner())
}

impl Ctx {
    /// Every local check of `source` (scheme, download, release file,
    /// `--sha256`), with bars in `multi`; nothing is sent to a node.
    pub(crate) async fn prepare_release(
        &self,
        source: &InstallSource<'_>,
        multi: &MultiProgress,
    ) -> Result<Prepared, AnyError> {
        let src = source.src;
        // The scheme first: no other complaint about a URL refused anyway.
        if image::is_url(src) {
            image::check_scheme(src, source.insecure)?;
        }
        // A URL is downloaded first, so every node streams from a local file
        // that was checked whole.
        let mut download = None;
        let path = if image::is_url(src) {
            let tmp = image::TempFile::new("download");
            let bar = multi.add(ProgressBar::no_length());
            bar.set_style(bytes_style());
            bar.set_prefix("downloading");
            image::download(src, source.insecure, &tmp.0, |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            let p = tmp.0.clone();
            download = Some(tmp);
            p
        } else {
            PathBuf::from(src)
        };
        let release = {
            let p = path.clone();
            tokio::task::spawn_blocking(move || ReleaseFile::open(&p)).await??
        };
        if let Some(want) = source.sha256.as_ref() {
            let size = release.payload_range().0 + release.payload_range().1;
            let hbar = multi.add(ProgressBar::new(size));
            hbar.set_style(bytes_style());
            hbar.set_prefix("sha256");
            let (digest, _) = image::sha256_file(&path, |n| hbar.set_position(n)).await?;
            hbar.finish_and_clear();
            // Before any node is contacted: a wrong file is refused whole.
            image::check_digest(src, &digest, Some(want))?;
        }
        let header = InstallHeader {
            manifest: release.block.clone(),
        };
        Ok(Prepared {
            path,
            release,
            header,
            _download: download,
        })
    }

    /// `osctl install RELEASE`: every local check (scheme, release file,
    /// `--sha256`) before any node is contacted, then the same manifest and
    /// payload streamed to every node at once.
    pub(crate) async fn install(
        &self,
        source: InstallSource<'_>,
        reboot: bool,
    ) -> Result<i32, AnyError> {
        let multi = progress(self.format);
        let prepared = self.prepare_release(&source, &multi).await?;
        let (multi, prepared) = (&multi, &prepared);
        let r = self
            .fleet
            .each(|node, mut c| async move {
                let bar = multi.add(ProgressBar::new(prepared.release.payload_range().1));
                bar.set_style(bytes_style());
                bar.set_prefix(node.clone());
                let res = send(&mut c, prepared, &bar).await;
                bar.finish_and_clear();
                let resp = res?;
                let mut rebooting = false;
                if reboot {
                    c.client.reboot(RebootRequest {}).await.map_err(|s| {
                        ClientError::Other(format!(
                            "installed {} into slot {}, but the reboot failed: {}",
                            resp.version,
                            resp.slot,
                            c.explain(&s)
                        ))
                    })?;
                    rebooting = true;
                }
                Ok((resp, rebooting))
            })
            .await;
        let _ = multi.clear();
        Ok(self.finish(
            &r,
            |(v, rebooting)| {
                serde_json::json!({
                    "slot": v.slot,
                    "version": v.version,
                    "bytes_written": v.bytes_written,
                    "tries": v.tries,
                    "rebooting": rebooting,
                })
            },
            |ok| {
                lines(ok, |(v, rebooting)| {
                    format!(
                        "installed {} into slot {} ({} bytes, {} tries){}",
                        v.version,
                        v.slot,
                        v.bytes_written,
                        v.tries,
                        if *rebooting { ", rebooting" } else { "" }
                    )
                })
            },
        ))
    }
}

/// Where `osctl install` takes its release from and what it must be.
pub(crate) struct InstallSource<'a> {
    /// A file path or a URL.
    pub src: &'a str,
    /// `--insecure`: accept an http:// URL.
    pub insecure: bool,
    /// `--sha256`: the digest the whole release file must have.
    pub sha256: Option<[u8; 32]>,
}
