//! Writes a one-layer OCI image archive: a tar of the image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>` for the layer, config
//! and manifest), reproducible (fixed times and owners), so the same files
//! give the same digests on every build.
//!
//! Must never: write a blob whose name is not the digest of its bytes, or
//! put a file outside the layer's root (paths are checked).
use std::collections::BTreeSet;
use std::io::{self, Write};

use flate2::Compression as Level;
use flate2::write::GzEncoder;

use crate::layout::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, ImageConfig, Index, LAYOUT_FILE,
    MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, MEDIA_MANIFEST, Manifest,
    Platform, RootFs, RunConfig, sha256_digest,
};

/// One regular file of the layer.
#[derive(Clone, Debug)]
pub struct LayerFile {
    /// Its path in the image, relative (`pause`, `bin/workload`); a
    /// leading `/` is dropped.
    pub path: String,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
    /// Its content.
    pub data: Vec<u8>,
}

/// How the layer blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `tar+gzip` (what registries serve; smaller archives).
    Gzip,
    /// Plain `tar` (no decompression on unpack).
    Uncompressed,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The full reference the importer names the image by, e.g.
    /// `localhost/matic/pause:1`.
    pub name: String,
    /// The platform the files are for.
    pub platform: Platform,
    /// How a container runs it.
    pub run: RunConfig,
    /// The layer's files (parent directories are added).
    pub files: Vec<LayerFile>,
    /// The layer's encoding.
    pub compression: Compression,
}

/// The descriptors of what [`write_archive`] wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The manifest (the image's target; its digest is the image's).
    pub manifest: Descriptor,
    /// The image config.
    pub config: Descriptor,
    /// The one layer, as stored.
    pub layer: Descriptor,
    /// `sha256:` of the uncompressed layer tar.
    pub diff_id: String,
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file path is empty, has `..`, or repeats.
    #[error("layer path {0:?}: must be relative, without `..`, and given once")]
    BadPath(String),
    /// The output failed.
    #[error("writing the archive: {0}")]
    Io(#[from] io::Error),
}

/// Writes the archive of `spec` to `out` and returns its descriptors.
pub fn write_archive<W: Write>(spec: &ImageSpec, out: W) -> Result<Written, WriteError> {
    let layer_tar = layer_tar(&spec.files)?;
    let diff_id = sha256_digest(&layer_tar);
    let (layer_blob, layer_media) = match spec.compression {
        Compression::Uncompressed => (layer_tar, MEDIA_LAYER_TAR),
        Compression::Gzip => {
            let mut gz = GzEncoder::new(Vec::new(), Level::best());
            gz.write_all(&layer_tar)?;
            (gz.finish()?, MEDIA_LAYER_GZIP)
        }
    };
    let layer = Descriptor::of(layer_media, &layer_blob);
    let config_json = json(&ImageConfig {
        architecture: spec.platform.architecture.clone(),
        os: spec.platform.os.clone(),
        config: spec.run.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
    });
    let config = Descriptor::of(MEDIA_CONFIG, &config_json);
    let manifest_json = json(&Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: config.clone(),
        layers: vec![layer.clone()],
    });
    let manifest = Descriptor::of(MEDIA_MANIFEST, &manifest_json);
    let mut entry = manifest.clone();
    entry.platform = Some(spec.platform.clone());
    entry
        .annotations
        .insert(ANNOTATION_CONTAINERD_NAME.into(), spec.name.clone());
    // The OCI layout's own annotation holds the tag (`1` of `…/pause:1`).
    entry
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), tag_of(&spec.name).to_string());
    let index_json = json(&Index {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.into()),
        manifests: vec![entry],
    });

    let mut ar = tar::Builder::new(out);
    add(&mut ar, "oci-layout", 0o644, LAYOUT_FILE.as_bytes())?;
    add(&mut ar, "index.json", 0o644, &index_json)?;
    dir(&mut ar, "blobs/")?;
    dir(&mut ar, "blobs/sha256/")?;
    for (d, data) in [
        (&layer, &layer_blob),
        (&config, &config_json),
        (&manifest, &manifest_json),
    ] {
        let hex = &d.digest["sha256:".len()..];
        add(&mut ar, &format!("blobs/sha256/{hex}"), 0o644, data)?;
    }
    ar.into_inner()?.flush()?;
    Ok(Written {
        manifest,
        config,
        layer,
        diff_id,
    })
}

/// The tag of a reference (`latest` when it has none).
fn tag_of(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => "latest",
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).expect("image JSON")
}

/// The layer's tar: each file's parent directories (0755), then the file.
fn layer_tar(files: &[LayerFile]) -> Result<Vec<u8>, WriteError> {
    let mut seen = BTreeSet::new();
    let mut ar = tar::Builder::new(Vec::new());
    for f in files {
        let path = f.path.trim_start_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        if path.is_empty()
            || parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(WriteError::BadPath(f.path.clone()));
        }
        for i in 1..parts.len() {
            let d = format!("{}/", parts[..i].join("/"));
            if seen.insert(d.clone()) {
                dir(&mut ar, &d)?;
            }
        }
        if !seen.insert(path.to_string()) {
            return Err(WriteError::BadPath(f.path.clone()));
        }
        add(&mut ar, path, f.mode, &f.data)?;
    }
    Ok(ar.into_inner()?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add<W: Write>(ar: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    ar.append_data(&mut h, path, data)
}

fn dir<W: Write>(ar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    ar.append_data(&mut h, path, io::empty())
}
