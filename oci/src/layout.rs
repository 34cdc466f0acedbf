//! The parts of the OCI image spec (v1.1) this crate writes and reads:
//! descriptors, the image manifest, the image index, the image config and
//! their media types, as serde types with the spec's field names.
//!
//! Must never: hold I/O; fields we do not use are left out on read
//! (serde ignores them) and never invented on write.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar`
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker's schema 2 manifest and list, which `docker save` and many
/// registries still use; an importer treats them as the OCI ones.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `oci-layout` file's content.
pub const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The index annotation naming an image (a full reference, e.g.
/// `docker.io/library/pause:3.9`); OCI's own `ref.name` is often a tag only.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI image-layout's reference annotation.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    hex_digest(Sha256::digest(data).as_slice())
}

/// `sha256:<hex>` of a finished hash.
pub fn hex_digest(hash: &[u8]) -> String {
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The hex part of a `sha256:` digest, if it is one (64 lowercase hex digits).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>` of the blob.
    pub digest: String,
    /// The blob's length in bytes.
    pub size: u64,
    /// Which platform a manifest in an index is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// E.g. the image's name in `index.json`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor of `data` as `media_type`.
    pub fn of(media_type: &str, data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(data),
            size: data.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The image name an index entry carries: containerd's full-name
    /// annotation first, then OCI's `ref.name`.
    pub fn image_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| self.annotations.get(ANNOTATION_REF_NAME))
            .map(String::as_str)
    }

    /// Whether this points at a manifest (OCI or Docker).
    pub fn is_manifest(&self) -> bool {
        self.media_type == MEDIA_MANIFEST || self.media_type == MEDIA_DOCKER_MANIFEST
    }

    /// Whether this points at an index (OCI or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type == MEDIA_INDEX || self.media_type == MEDIA_DOCKER_LIST
    }
}

/// An OS and architecture, Go's names (`linux`, `amd64`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// E.g. `amd64`, `arm64`.
    pub architecture: String,
    /// E.g. `linux`.
    pub os: String,
}

impl Platform {
    /// The platform this program was built for, in Go's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
        }
    }
}

/// An image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_MANIFEST`] (optional in the spec; we always write it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An image index (also `index.json` of a layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_INDEX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes).
    pub manifests: Vec<Descriptor>,
}

/// The image config: platform, how to run it, and its layers' diff IDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// E.g. `amd64`.
    pub architecture: String,
    /// E.g. `linux`.
    pub os: String,
    /// How a container runs by default.
    pub config: RunConfig,
    /// The uncompressed layers' digests.
    pub rootfs: RootFs,
}

/// The `config` member of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// The program and its first arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Default arguments after the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `NAME=value` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `uid[:gid]`; empty for root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:` of each layer's uncompressed tar, base first.
    pub diff_ids: Vec<String>,
}
