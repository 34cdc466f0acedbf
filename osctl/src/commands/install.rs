//! `osctl install`: take the image (a file, or an https URL downloaded to a
//! temporary file first), check it whole, then stream it to every node's
//! inactive slot concurrently with a progress bar per node.
//!
//! Must never contact a node before the local checks pass (the URL's scheme,
//! a version, a non-empty file, `--sha256`): a wrong image is refused whole,
//! and every node gets exactly the bytes that were hashed.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use matic_proto::v1::*;

use super::{AnyError, Ctx, lines};
use crate::client::ClientError;
use crate::image;
use crate::output::Format;

impl Ctx {
    /// `osctl install IMAGE`: every local check (scheme, version, size,
    /// digest) before any node is contacted, then the same bytes streamed to
    /// every node at once.
    pub(crate) async fn install(
        &self,
        source: InstallSource<'_>,
        reboot: bool,
        version: Option<String>,
    ) -> Result<i32, AnyError> {
        let src = source.src;
        // The scheme first: no other complaint about a URL refused anyway.
        if image::is_url(src) {
            image::check_scheme(src, source.insecure)?;
        }
        let version = match version {
            Some(v) => v,
            None => image::version_from_name(src)?,
        };
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
        // and the digest covers exactly what is sent.
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
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|source| image::ImageError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        if size == 0 {
            return Err(image::ImageError::Empty(path).into());
        }
        let hbar = multi.add(ProgressBar::new(size));
        hbar.set_style(bytes_style.clone());
        hbar.set_prefix("sha256");
        let (digest, hashed) = image::sha256_file(&path, |n| hbar.set_position(n)).await?;
        hbar.finish_and_clear();
        // Before any node is contacted: a wrong image is refused whole.
        image::check_digest(src, &digest, source.sha256.as_ref())?;
        let header = InstallHeader {
            size: hashed,
            sha256: digest.to_vec(),
            version,
        };
        let (multi, header, path, style) = (&multi, &header, &path, &bytes_style);
        let r = self
            .fleet
            .each(|node, mut c| async move {
                let bar = multi.add(ProgressBar::new(header.size));
                bar.set_style(style.clone());
                bar.set_prefix(node.clone());
                let b = bar.clone();
                let failure = image::ReadFailure::default();
                let stream = image::request_stream(
                    path.clone(),
                    header.clone(),
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

/// Where `osctl install` takes its image from and what it must be.
pub(crate) struct InstallSource<'a> {
    /// A file path or a URL.
    pub src: &'a str,
    /// `--insecure`: accept an http:// URL.
    pub insecure: bool,
    /// `--sha256`: the digest the image must have.
    pub sha256: Option<[u8; 32]>,
}
