//! `osctl install`: take the release (a file, or an https URL downloaded to
//! a temporary file first), check it is a release, then send every node's
//! inactive slot its manifest block as the header and exactly its payload
//! as chunks, concurrently, with a progress bar per node. The node checks
//! the signature, the counter and every block; osctl does not hash the
//! payload (unless `--sha256` asks it to check the whole file).
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
use crate::client::ClientError;
use crate::image;
use crate::output::Format;
use crate::release::file::ReleaseFile;

impl Ctx {
    /// `osctl install RELEASE`: every local check (scheme, release file,
    /// `--sha256`) before any node is contacted, then the same manifest and
    /// payload streamed to every node at once.
    pub(crate) async fn install(
        &self,
        source: InstallSource<'_>,
        reboot: bool,
    ) -> Result<i32, AnyError> {
        let src = source.src;
        // The scheme first: no other complaint about a URL refused anyway.
        if image::is_url(src) {
            image::check_scheme(src, source.insecure)?;
        }
        let multi = MultiProgress::with_draw_target(
            if self.format == Format::Json || !std::io::stderr().is_terminal() {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        let bytes_style = ProgressStyle::with_template(
            "{prefix:>15} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> ");
        // A URL is downloaded first, so every node streams from a local file
        // that was checked whole.
        let _download;
        let path = if image::is_url(src) {
            let tmp = image::TempFile::new("download");
            let bar = multi.add(ProgressBar::no_length());
            bar.set_style(bytes_style.clone());
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
            _download = tmp;
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
            hbar.set_style(bytes_style.clone());
            hbar.set_prefix("sha256");
            let (digest, _) = image::sha256_file(&path, |n| hbar.set_position(n)).await?;
            hbar.finish_and_clear();
            // Before any node is contacted: a wrong file is refused whole.
            image::check_digest(src, &digest, Some(want))?;
        }
        let header = InstallHeader {
            manifest: release.block.clone(),
        };
        let range = release.payload_range();
        let (multi, header, path, style) = (&multi, &header, &path, &bytes_style);
        let r = self
            .fleet
            .each(|node, mut c| async move {
                let bar = multi.add(ProgressBar::new(range.1));
                bar.set_style(style.clone());
                bar.set_prefix(node.clone());
                let b = bar.clone();
                let failure = image::ReadFailure::default();
                let stream = image::request_stream(
                    path.clone(),
                    header.clone(),
                    range,
                    move |n| b.inc(n),
                    failure.clone(),
                );
                let res = c.client.install(stream).await;
                bar.finish_and_clear();
                if let Some(e) = failure.lock().unwrap().take() {
                    return Err(ClientError::Other(
                        image::ImageError::Read {
                            path: path.clone(),
                            source: e,
                        }
                        .to_string(),
                    ));
                }
                let resp = res.map_err(|s| c.explain(&s))?.into_inner();
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
