//! Reads an OCI image archive (a tarred image layout) in place: where each
//! blob lies in the file, `index.json`, and the manifests and indexes an
//! image name leads to, so an importer can stream each blob straight from
//! the archive without unpacking it.
//!
//! Must never: load a layer into memory (only JSON documents, at most
//! [`MAX_JSON`] bytes each), or follow a path outside `blobs/sha256/`.
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use crate::layout::{Descriptor, Index, Manifest, sha256_digest, sha256_hex};

/// Largest manifest, index or `index.json` read (registries cap manifests
/// at 4 MiB too).
pub const MAX_JSON: u64 = 4 << 20;

/// Where a blob's bytes lie in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobAt {
    /// Offset of its first byte in the archive file.
    pub offset: u64,
    /// Its length.
    pub size: u64,
}

/// An archive's layout: its `index.json` and where each blob is.
#[derive(Clone, Debug)]
pub struct Scanned {
    /// `index.json`.
    pub index: Index,
    /// Each `sha256:` digest's place, by the blob's file name.
    pub blobs: BTreeMap<String, BlobAt>,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Not a tar, or cut short.
    #[error("not an OCI image archive (a tar of an image layout): {0}")]
    Tar(io::Error),
    /// No `oci-layout` or `index.json`.
    #[error("not an OCI image archive: it has no {0}")]
    Missing(&'static str),
    /// A JSON document is malformed.
    #[error("{what} is not valid image JSON: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A document is larger than [`MAX_JSON`].
    #[error("{0} is larger than {MAX_JSON} bytes")]
    TooLarge(String),
    /// A descriptor points at a blob the archive lacks.
    #[error("the archive lacks blob {0}")]
    MissingBlob(String),
    /// A blob's size differs from its descriptor's, or its digest from its name.
    #[error("blob {0} does not match its descriptor")]
    Mismatch(String),
    /// A descriptor's digest is not `sha256:` and 64 hex digits.
    #[error("unsupported digest {0:?} (only sha256)")]
    Digest(String),
}

/// Scans the archive `file`: records each blob's place and reads `index.json`.
pub fn scan<F: Read + Seek>(file: &mut F) -> Result<Scanned, ScanError> {
    file.seek(SeekFrom::Start(0)).map_err(ScanError::Tar)?;
    let mut blobs = BTreeMap::new();
    let mut index = None;
    let mut layout = false;
    {
        let mut ar = tar::Archive::new(&mut *file);
        for entry in ar.entries().map_err(ScanError::Tar)? {
            let mut entry = entry.map_err(ScanError::Tar)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry
                .path()
                .map_err(ScanError::Tar)?
                .to_string_lossy()
                .into_owned();
            let path = path.trim_start_matches("./");
            let at = BlobAt {
                offset: entry.raw_file_position(),
                size: entry.size(),
            };
            if path == "oci-layout" {
                layout = true;
            } else if path == "index.json" {
                let raw = read_limited(&mut entry, at.size, "index.json")?;
                index = Some(parse::<Index>(&raw, "index.json")?);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let digest = format!("sha256:{hex}");
                if sha256_hex(&digest).is_some() {
                    blobs.insert(digest, at);
                }
            }
        }
    }
    if !layout {
        return Err(ScanError::Missing("oci-layout"));
    }
    let index = index.ok_or(ScanError::Missing("index.json"))?;
    Ok(Scanned { index, blobs })
}

impl Scanned {
    /// Where `d`'s blob is, checked against its size.
    pub fn locate(&self, d: &Descriptor) -> Result<BlobAt, ScanError> {
        sha256_hex(&d.digest).ok_or_else(|| ScanError::Digest(d.digest.clone()))?;
        let at = *self
            .blobs
            .get(&d.digest)
            .ok_or_else(|| ScanError::MissingBlob(d.digest.clone()))?;
        if at.size != d.size {
            return Err(ScanError::Mismatch(d.digest.clone()));
        }
        Ok(at)
    }

    /// Reads the JSON blob `d` (a manifest or index) and checks its digest.
    pub fn read_json<F: Read + Seek>(
        &self,
        file: &mut F,
        d: &Descriptor,
    ) -> Result<Vec<u8>, ScanError> {
        let at = self.locate(d)?;
        if at.size > MAX_JSON {
            return Err(ScanError::TooLarge(d.digest.clone()));
        }
        file.seek(SeekFrom::Start(at.offset))
            .map_err(ScanError::Tar)?;
        let raw = read_limited(file, at.size, &d.digest)?;
        if sha256_digest(&raw) != d.digest {
            return Err(ScanError::Mismatch(d.digest.clone()));
        }
        Ok(raw)
    }

    /// The descriptors `d` refers to: a manifest's config and layers, an
    /// index's manifests; none for anything else.
    pub fn children<F: Read + Seek>(
        &self,
        file: &mut F,
        d: &Descriptor,
    ) -> Result<Vec<Descriptor>, ScanError> {
        if d.is_manifest() {
            let m: Manifest = parse(&self.read_json(file, d)?, &d.digest)?;
            let mut all = vec![m.config];
            all.extend(m.layers);
            Ok(all)
        } else if d.is_index() {
            let i: Index = parse(&self.read_json(file, d)?, &d.digest)?;
            Ok(i.manifests)
        } else {
            Ok(Vec::new())
        }
    }
}

fn read_limited<R: Read>(r: &mut R, size: u64, what: &str) -> Result<Vec<u8>, ScanError> {
    if size > MAX_JSON {
        return Err(ScanError::TooLarge(what.to_string()));
    }
    let mut raw = Vec::with_capacity(size as usize);
    r.take(size).read_to_end(&mut raw).map_err(ScanError::Tar)?;
    if raw.len() as u64 != size {
        return Err(ScanError::Tar(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(raw)
}

fn parse<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, ScanError> {
    serde_json::from_slice(raw).map_err(|source| ScanError::Json {
        what: what.to_string(),
        source,
    })
}
