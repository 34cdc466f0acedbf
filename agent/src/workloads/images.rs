//! The images in containerd's `k8s.io` namespace (the CRI's): name, the
//! target's digest and media type, and the bytes of content the image
//! refers to (target, config, layers), read from containerd's image and
//! content stores.
//!
//! Must never: read more than [`matic_oci::scan::MAX_JSON`] of a blob (only
//! manifests and indexes are read), or change either store.
use std::path::Path;

use futures::StreamExt;
use matic_containerd::content::content_client::ContentClient;
use matic_containerd::content::{InfoRequest, ReadContentRequest};
use matic_containerd::images::ListImagesRequest;
use matic_containerd::images::images_client::ImagesClient;
use matic_containerd::request::in_namespace;
use matic_containerd::types::Descriptor as CtdDescriptor;
use matic_contract::workloads::K8S_NAMESPACE;
use matic_oci::Descriptor;
use matic_oci::layout::{Index, Manifest};
use matic_oci::scan::MAX_JSON;
use matic_proto::v1::Image;
use tonic::Status;
use tonic::transport::Channel;

use super::{channel, from_containerd};

/// A request in the CRI's namespace.
pub fn k8s<T>(msg: T, lease: Option<&str>) -> Result<tonic::Request<T>, Status> {
    in_namespace(msg, K8S_NAMESPACE, lease).map_err(|e| Status::internal(e.to_string()))
}

/// Every image, by name.
pub async fn list(socket: &Path) -> Result<Vec<Image>, Status> {
    let ch = channel(socket).await?;
    let mut images = ImagesClient::new(ch.clone());
    let listed = images
        .list(k8s(ListImagesRequest::default(), None)?)
        .await
        .map_err(|s| from_containerd("listing images", s))?
        .into_inner()
        .images;
    let mut out = Vec::with_capacity(listed.len());
    for i in listed {
        let Some(t) = i.target else { continue };
        let size = image_size(&ch, &to_oci(&t)).await;
        out.push(Image {
            name: i.name,
            digest: t.digest,
            size,
            media_type: t.media_type,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// containerd's descriptor as ours.
pub fn to_oci(d: &CtdDescriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size.max(0) as u64,
        platform: None,
        annotations: d.annotations.clone().into_iter().collect(),
    }
}

/// The target's size plus what it refers to that is in the content store:
/// a manifest's config and layers; an index's manifests and theirs. What
/// cannot be read counts as its descriptor says (or not at all, when absent).
pub async fn image_size(ch: &Channel, target: &Descriptor) -> u64 {
    let mut total = target.size;
    let mut queue = vec![target.clone()];
    // Bounded: an index of indexes is walked two levels deep at most.
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in queue {
            for child in children(ch, &d).await {
                if present(ch, &child.digest).await {
                    total += child.size;
                    next.push(child);
                }
            }
        }
        queue = next;
    }
    total
}

async fn present(ch: &Channel, digest: &str) -> bool {
    let Ok(req) = k8s(
        InfoRequest {
            digest: digest.to_string(),
        },
        None,
    ) else {
        return false;
    };
    ContentClient::new(ch.clone()).info(req).await.is_ok()
}

/// `d`'s children when it is a manifest or index that can be read.
async fn children(ch: &Channel, d: &Descriptor) -> Vec<Descriptor> {
    if !(d.is_manifest() || d.is_index()) || d.size > MAX_JSON {
        return Vec::new();
    }
    let Ok(raw) = read_blob(ch, &d.digest, d.size).await else {
        return Vec::new();
    };
    if d.is_manifest() {
        serde_json::from_slice::<Manifest>(&raw)
            .map(|m| std::iter::once(m.config).chain(m.layers).collect())
            .unwrap_or_default()
    } else {
        serde_json::from_slice::<Index>(&raw)
            .map(|i| i.manifests)
            .unwrap_or_default()
    }
}

/// A whole blob of at most `size` bytes from the content store.
async fn read_blob(ch: &Channel, digest: &str, size: u64) -> Result<Vec<u8>, Status> {
    let req = k8s(
        ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        },
        None,
    )?;
    let mut s = ContentClient::new(ch.clone())
        .read(req)
        .await
        .map_err(|s| from_containerd("reading a manifest", s))?
        .into_inner();
    let mut out = Vec::with_capacity(size as usize);
    while let Some(part) = s.next().await {
        out.extend_from_slice(
            &part
                .map_err(|s| from_containerd("reading a manifest", s))?
                .data,
        );
        if out.len() as u64 > size {
            return Err(Status::data_loss(format!(
                "{digest} is larger than its descriptor"
            )));
        }
    }
    Ok(out)
}
