//! `ImageImport`: an OCI image archive streamed by a client, into
//! containerd's `k8s.io` namespace (the CRI's), through containerd's gRPC
//! API alone.
//!
//! 1. one import at a time (a second gets FAILED_PRECONDITION); the first
//!    message is a header with the archive's size, refused over
//!    [`MAX_ARCHIVE`] or over half the spool file system's free space
//!    (the spool copy and containerd's copy share `MATIC_STATE`);
//! 2. the chunks are spooled to a file in `--import-dir` (exactly the
//!    announced size; a client silent for the idle time is ABORTED), since
//!    a tar can only be read in order and containerd wants each blob whole;
//! 3. the archive is scanned in place ([`matic_oci::scan`]): an archive
//!    that is no OCI layout, names no image, or lacks a blob is
//!    INVALID_ARGUMENT before containerd is touched;
//! 4. under a containerd lease (so nothing written is collected before an
//!    image refers to it; it expires by itself after [`LEASE_EXPIRY`] if
//!    the agent dies), each blob the images need is written to the content
//!    store, children before parents, manifests and indexes labelled with
//!    the garbage collector's references to their children (as `ctr
//!    import` does), and containerd checks every blob's size and digest on
//!    commit; blobs it already has are skipped;
//! 5. each named image is created (or updated to the new target), the
//!    lease deleted, the spool file removed — whatever happened.
//!
//! Must never: shell out, keep a spool file, or leave content unreferenced
//! past the lease.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use matic_containerd::content::content_client::ContentClient;
use matic_containerd::content::{InfoRequest, WriteAction, WriteContentRequest};
use matic_containerd::images::images_client::ImagesClient;
use matic_containerd::images::{CreateImageRequest, Image as CtdImage, UpdateImageRequest};
use matic_containerd::leases::leases_client::LeasesClient;
use matic_containerd::leases::{CreateRequest, DeleteRequest};
use matic_containerd::types::Descriptor as CtdDescriptor;
use matic_oci::{Descriptor, ScanError, Scanned};
use matic_proto::v1::{Image, ImageImportRequest, ImageImportResponse, image_import_request::Msg};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Channel;

use super::images::{image_size, k8s};
use super::{channel, from_containerd};

/// Largest archive accepted (and the spool space it may take).
pub const MAX_ARCHIVE: u64 = 2 << 30;
/// Bytes per content-store write message (containerd takes up to 16 MiB).
const CHUNK: usize = 1 << 20;
/// The import lease's expiry: containerd drops it (and what only it
/// holds) by itself if the agent dies mid-import.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(3600);
/// containerd's label marking an image the CRI manages (`ctr import` sets it too).
const CRI_MANAGED: (&str, &str) = ("io.cri-containerd.image", "managed");

/// What an import needs from the agent.
#[derive(Debug, Clone)]
pub struct ImportCtx {
    /// containerd's socket.
    pub socket: PathBuf,
    /// Where the archive is spooled (`--import-dir`, on MATIC_STATE).
    pub dir: PathBuf,
    /// Longest wait for the client's next message.
    pub idle: Duration,
}

/// Runs one import (see the module doc).
pub async fn run(
    lock: Arc<Mutex<()>>,
    ctx: ImportCtx,
    mut stream: impl Stream<Item = Result<ImageImportRequest, Status>> + Unpin,
) -> Result<ImageImportResponse, Status> {
    let _held = lock
        .try_lock()
        .map_err(|_| Status::failed_precondition("another image import is running"))?;
    let size = match next(&mut stream, ctx.idle).await? {
        Some(Msg::Header(h)) => h.size,
        _ => {
            return Err(Status::invalid_argument(
                "the first message must be the header (the archive's size)",
            ));
        }
    };
    check_size(size, &ctx.dir)?;
    // Fail before any byte is sent when containerd is not there.
    let ch = channel(&ctx.socket).await?;
    let spool = Spool::create(&ctx.dir).await?;
    receive(&mut stream, &spool, size, ctx.idle).await?;
    let path = spool.path.clone();
    let (scanned, plan) = tokio::task::spawn_blocking(move || plan_of(&path))
        .await
        .map_err(|e| Status::internal(format!("scan task: {e}")))??;
    let written = push(&ch, &spool.path, &scanned, &plan).await?;
    let mut images = Vec::new();
    for (name, target) in &plan.images {
        images.push(Image {
            name: name.clone(),
            digest: target.digest.clone(),
            size: image_size(&ch, target).await,
            media_type: target.media_type.clone(),
        });
    }
    eprintln!(
        "matic-agent: imported {} ({written} blobs written)",
        images
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ImageImportResponse {
        images,
        blobs_written: written,
    })
}

/// Imports the archive at `path` (already on the node, e.g. the pause
/// image in the root image) — the same steps without the spool — over
/// `ch`, the caller's channel to containerd (the pause import dialled it
/// already to wait for containerd: one channel, not a second dial).
pub async fn import_file(ch: &Channel, path: PathBuf) -> Result<Vec<String>, Status> {
    let p = path.clone();
    let (scanned, plan) = tokio::task::spawn_blocking(move || plan_of(&p))
        .await
        .map_err(|e| Status::internal(format!("scan task: {e}")))??;
    push(ch, &path, &scanned, &plan).await?;
    Ok(plan.images.into_iter().map(|(n, _)| n).collect())
}

async fn next(
    stream: &mut (impl Stream<Item = Result<ImageImportRequest, Status>> + Unpin),
    idle: Duration,
) -> Result<Option<Msg>, Status> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(Status::aborted(format!(
            "image import aborted: the client sent nothing for {} s",
            idle.as_secs()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(m)) => Ok(m?.msg),
    }
}

fn check_size(size: u64, dir: &std::path::Path) -> Result<(), Status> {
    if size == 0 {
        return Err(Status::invalid_argument("the archive is empty"));
    }
    if size > MAX_ARCHIVE {
        return Err(Status::invalid_argument(format!(
            "the archive is {size} bytes; at most {MAX_ARCHIVE} are accepted"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Status::internal(format!("creating {}: {e}", dir.display())))?;
    let fs = rustix::fs::statvfs(dir)
        .map_err(|e| Status::internal(format!("statvfs {}: {e}", dir.display())))?;
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if size.saturating_mul(2) > free {
        return Err(Status::resource_exhausted(format!(
            "the archive is {size} bytes and {} has {free} free: an import needs twice its size (the spool copy and containerd's)",
            dir.display()
        )));
    }
    Ok(())
}

/// The spool file, removed when dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    async fn create(dir: &std::path::Path) -> Result<Spool, Status> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("import-{nanos}.tar"));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| Status::internal(format!("creating {}: {e}", path.display())))?;
        Ok(Spool { path })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn receive(
    stream: &mut (impl Stream<Item = Result<ImageImportRequest, Status>> + Unpin),
    spool: &Spool,
    size: u64,
    idle: Duration,
) -> Result<(), Status> {
    let io = |e: std::io::Error| Status::internal(format!("writing {}: {e}", spool.path.display()));
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&spool.path)
        .await
        .map_err(io)?;
    let mut got = 0u64;
    loop {
        match next(stream, idle).await? {
            Some(Msg::Chunk(c)) => {
                got += c.len() as u64;
                if got > size {
                    return Err(Status::invalid_argument(format!(
                        "more than the {size} bytes the header announced"
                    )));
                }
                f.write_all(&c).await.map_err(io)?;
            }
            Some(Msg::Header(_)) => {
                return Err(Status::invalid_argument("a second header"));
            }
            None => break,
        }
    }
    if got != size {
        return Err(Status::invalid_argument(format!(
            "the archive ended after {got} of the {size} bytes the header announced"
        )));
    }
    f.flush().await.map_err(io)?;
    Ok(())
}

/// What to write: blobs children first, each with the garbage collector's
/// labels for its children, and the images to create.
#[derive(Debug, Default)]
struct Plan {
    blobs: Vec<(Descriptor, Vec<(String, String)>)>,
    images: Vec<(String, Descriptor)>,
}

fn plan_of(path: &std::path::Path) -> Result<(Scanned, Plan), Status> {
    let bad = |e: ScanError| Status::invalid_argument(e.to_string());
    let mut f = std::fs::File::open(path)
        .map_err(|e| Status::internal(format!("opening {}: {e}", path.display())))?;
    let scanned = matic_oci::scan(&mut f).map_err(bad)?;
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    for top in &scanned.index.manifests {
        let Some(name) = top.image_name() else {
            continue;
        };
        if !name.contains(['/', ':']) {
            // OCI's ref.name alone is often only a tag: no image name.
            continue;
        }
        walk(&scanned, &mut f, top, 0, &mut seen, &mut plan).map_err(bad)?;
        let mut target = top.clone();
        target.platform = None;
        target.annotations.clear();
        plan.images.push((name.to_string(), target));
    }
    if plan.images.is_empty() {
        return Err(Status::invalid_argument(
            "the archive names no image (index.json needs io.containerd.image.name or a full org.opencontainers.image.ref.name)",
        ));
    }
    Ok((scanned, plan))
}

fn walk(
    s: &Scanned,
    f: &mut std::fs::File,
    d: &Descriptor,
    depth: u32,
    seen: &mut BTreeSet<String>,
    plan: &mut Plan,
) -> Result<(), ScanError> {
    s.locate(d)?;
    if depth > 3 || !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let children = s.children(f, d)?;
    let mut labels = Vec::new();
    for (i, c) in children.iter().enumerate() {
        walk(s, f, c, depth + 1, seen, plan)?;
        let key = if d.is_index() {
            format!("containerd.io/gc.ref.content.m.{i}")
        } else if i == 0 {
            "containerd.io/gc.ref.content.config".to_string()
        } else {
            format!("containerd.io/gc.ref.content.l.{}", i - 1)
        };
        labels.push((key, c.digest.clone()));
    }
    plan.blobs.push((d.clone(), labels));
    Ok(())
}

/// Writes the plan under a lease; returns how many blobs were written.
async fn push(
    ch: &Channel,
    path: &std::path::Path,
    s: &Scanned,
    plan: &Plan,
) -> Result<u32, Status> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let lease_id = format!("matic-import-{}", nanos.as_nanos());
    let expire = rfc3339(nanos + LEASE_EXPIRY);
    let mut leases = LeasesClient::new(ch.clone());
    leases
        .create(k8s(
            CreateRequest {
                id: lease_id.clone(),
                labels: [("containerd.io/gc.expire".to_string(), expire)].into(),
            },
            None,
        )?)
        .await
        .map_err(|e| from_containerd("creating the import lease", e))?;
    let result = push_leased(ch, path, s, plan, &lease_id).await;
    // Deleting the lease lets the collector have whatever no image holds.
    let _ = leases
        .delete(k8s(
            DeleteRequest {
                id: lease_id,
                sync: false,
            },
            None,
        )?)
        .await;
    result
}

async fn push_leased(
    ch: &Channel,
    path: &std::path::Path,
    s: &Scanned,
    plan: &Plan,
    lease: &str,
) -> Result<u32, Status> {
    let mut content = ContentClient::new(ch.clone());
    let mut written = 0;
    for (d, labels) in &plan.blobs {
        let info = content
            .info(k8s(
                InfoRequest {
                    digest: d.digest.clone(),
                },
                Some(lease),
            )?)
            .await;
        if info.is_ok() {
            continue;
        }
        let at = s
            .locate(d)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if write_blob(&mut content, path, d, at, labels, lease).await? {
            written += 1;
        }
    }
    let mut images = ImagesClient::new(ch.clone());
    for (name, target) in &plan.images {
        let image = CtdImage {
            name: name.clone(),
            labels: [(CRI_MANAGED.0.to_string(), CRI_MANAGED.1.to_string())].into(),
            target: Some(CtdDescriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size as i64,
                annotations: Default::default(),
            }),
            created_at: None,
            updated_at: None,
        };
        let created = images
            .create(k8s(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                Some(lease),
            )?)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == tonic::Code::AlreadyExists => {
                images
                    .update(k8s(
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: None,
                            source_date_epoch: None,
                        },
                        Some(lease),
                    )?)
                    .await
                    .map_err(|e| from_containerd(&format!("updating image {name}"), e))?;
            }
            Err(e) => return Err(from_containerd(&format!("creating image {name}"), e)),
        }
    }
    Ok(written)
}

/// Streams one blob from the archive into the content store; false when
/// containerd already had it.
async fn write_blob(
    content: &mut ContentClient<Channel>,
    path: &std::path::Path,
    d: &Descriptor,
    at: matic_oci::scan::BlobAt,
    labels: &[(String, String)],
    lease: &str,
) -> Result<bool, Status> {
    let io = |e: std::io::Error| Status::internal(format!("reading {}: {e}", path.display()));
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    f.seek(std::io::SeekFrom::Start(at.offset))
        .await
        .map_err(io)?;
    let (tx, rx) = mpsc::channel::<WriteContentRequest>(2);
    let reference = format!("matic-import-{}", d.digest);
    let mut offset = 0u64;
    // One message, then its reply, in turn: containerd answers each.
    let first = message(&mut f, d, at.size, &mut offset, &reference, labels)
        .await
        .map_err(io)?;
    let last = first.action == WriteAction::Commit as i32;
    tx.send(first)
        .await
        .map_err(|_| Status::internal("content writer gone"))?;
    let replies = content
        .write(k8s(ReceiverStream::new(rx), Some(lease))?)
        .await;
    let mut replies = match replies {
        Ok(r) => r.into_inner(),
        Err(e) if e.code() == tonic::Code::AlreadyExists => return Ok(false),
        Err(e) => return Err(from_containerd(&format!("writing {}", d.digest), e)),
    };
    let mut last = last;
    loop {
        match replies.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) if e.code() == tonic::Code::AlreadyExists => return Ok(false),
            Some(Err(e)) => return Err(from_containerd(&format!("writing {}", d.digest), e)),
            None => {
                return Err(Status::internal(format!(
                    "containerd ended the write of {} early",
                    d.digest
                )));
            }
        }
        if last {
            return Ok(true);
        }
        let m = message(&mut f, d, at.size, &mut offset, &reference, labels)
            .await
            .map_err(io)?;
        last = m.action == WriteAction::Commit as i32;
        tx.send(m)
            .await
            .map_err(|_| Status::internal("content writer gone"))?;
    }
}

/// The next write message: up to [`CHUNK`] bytes at `offset`, the commit
/// (with the expected digest, size and labels) once they are all read.
async fn message(
    f: &mut tokio::fs::File,
    d: &Descriptor,
    size: u64,
    offset: &mut u64,
    reference: &str,
    labels: &[(String, String)],
) -> std::io::Result<WriteContentRequest> {
    let n = (size - *offset).min(CHUNK as u64) as usize;
    let mut buf = vec![0u8; n];
    f.read_exact(&mut buf).await?;
    let at = *offset;
    *offset += n as u64;
    let commit = *offset == size;
    Ok(WriteContentRequest {
        action: if commit {
            WriteAction::Commit
        } else {
            WriteAction::Write
        } as i32,
        r#ref: reference.to_string(),
        total: size as i64,
        expected: d.digest.clone(),
        offset: at as i64,
        data: Bytes::from(buf),
        labels: if commit {
            labels.iter().cloned().collect()
        } else {
            Default::default()
        },
    })
}

/// `t` (since the epoch) as RFC 3339 UTC, for containerd's `gc.expire` label.
fn rfc3339(t: Duration) -> String {
    let secs = t.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(1_796_000_461)),
            "2026-11-30T01:01:01Z"
        );
    }

    #[test]
    fn sizes_refused_before_anything_is_written() {
        let dir = std::env::temp_dir().join(format!("matic-import-{}", std::process::id()));
        assert!(check_size(0, &dir).unwrap_err().message().contains("empty"));
        let e = check_size(MAX_ARCHIVE + 1, &dir).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = check_size(MAX_ARCHIVE, &dir).err();
        // Either it fits or the free space is named; never a panic.
        if let Some(e) = e {
            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
