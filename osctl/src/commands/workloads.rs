//! The workload commands: `images`, `image import FILE` (with a progress
//! bar per node, like `install`'s), `containers`. (`logs --container` is
//! a stream: `stream.rs`.)
//!
//! Must never contact a node with a file that is not an OCI image archive
//! naming an image: it is scanned here first (matic_oci), as the node will.

use std::path::Path;

use futures::StreamExt;
use indicatif::ProgressBar;
use matic_proto::v1::image_import_request::Msg;
use matic_proto::v1::*;
use tokio::io::AsyncReadExt;

use super::install::{bytes_style, progress};
use super::{AnyError, Ctx, lines};
use crate::output::{self, workloads as out};

/// Bytes per import message.
const CHUNK: usize = 256 << 10;

impl Ctx {
    /// `osctl images`.
    pub(crate) async fn images(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.image_list(ImageListRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, out::images_json, |ok| {
            let rows: Vec<_> = ok
                .iter()
                .flat_map(|(n, v)| out::images_rows(n, v))
                .collect();
            output::table(out::IMAGES_HEADERS, &rows)
        })
    }

    /// `osctl containers`.
    pub(crate) async fn containers(&self) -> i32 {
        let r = self
            .fleet
            .each(|_, mut c| async move {
                let v = c.client.container_list(ContainerListRequest {}).await;
                v.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        self.finish(&r, out::containers_json, |ok| {
            let rows: Vec<_> = ok
                .iter()
                .flat_map(|(n, v)| out::containers_rows(n, v))
                .collect();
            output::table(out::CONTAINERS_HEADERS, &rows)
        })
    }

    /// `osctl image import FILE`: checked here, then streamed to every node.
    pub(crate) async fn image_import(&self, file: &Path) -> Result<i32, AnyError> {
        let size = check_archive(file).await?;
        let multi = progress(self.format);
        let multi = &multi;
        let r = self
            .fleet
            .each(|node, mut c| async move {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(bytes_style());
                bar.set_prefix(node.clone());
                let stream = chunks(file.to_path_buf(), size, bar.clone());
                let res = c.client.image_import(stream).await;
                bar.finish_and_clear();
                res.map(|r| r.into_inner()).map_err(|s| c.explain(&s))
            })
            .await;
        let _ = multi.clear();
        Ok(self.finish(
            &r,
            |v| {
                serde_json::json!({
                    "images": out::images_json(&ImageListResponse { images: v.images.clone() })["images"],
                    "blobs_written": v.blobs_written,
                })
            },
            |ok| {
                lines(ok, |v| {
                    let names: Vec<String> = v
                        .images
                        .iter()
                        .map(|i| format!("{} ({})", i.name, out::bytes(i.size)))
                        .collect();
                    format!(
                        "imported {} ({} new blobs)",
                        names.join(", "),
                        v.blobs_written
                    )
                })
            },
        ))
    }
}

/// The archive's size, once it has been read as an OCI image layout that
/// names at least one image.
async fn check_archive(file: &Path) -> Result<u64, AnyError> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<u64, AnyError> {
        let mut f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let s = matic_oci::scan(&mut f).map_err(|e| format!("{}: {e}", path.display()))?;
        if !s.index.manifests.iter().any(|m| m.image_name().is_some()) {
            return Err(format!(
                "{}: the archive names no image (index.json has no io.containerd.image.name)",
                path.display()
            )
            .into());
        }
        Ok(size)
    })
    .await?
}

/// The import's messages: the header, then the file in [`CHUNK`]s,
/// advancing `bar`; a read error ends the stream early (the node then
/// refuses the short archive, naming the bytes it got).
fn chunks(
    path: std::path::PathBuf,
    size: u64,
    bar: ProgressBar,
) -> impl futures::Stream<Item = ImageImportRequest> + Send + 'static {
    let header = ImageImportRequest {
        msg: Some(Msg::Header(ImageImportHeader { size })),
    };
    let body = futures::stream::unfold(
        (None::<tokio::fs::File>, path, bar),
        |(file, path, bar)| async move {
            let mut f = match file {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("osctl: {}: {e}", path.display());
                        return None;
                    }
                },
            };
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    let m = ImageImportRequest {
                        msg: Some(Msg::Chunk(buf.into())),
                    };
                    Some((m, (Some(f), path, bar)))
                }
                Err(e) => {
                    eprintln!("osctl: {}: {e}", path.display());
                    None
                }
            }
        },
    );
    futures::stream::iter([header]).chain(body)
}
