//! The writer's archives, read back by an independent parser (`oci-spec`)
//! and by plain tar and gzip readers, with every digest and size recomputed.
use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use matic_oci::layout::{RunConfig, sha256_digest};
use matic_oci::{Compression, ImageSpec, LayerFile, Platform, ScanError, scan, write_archive};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::Digest;

fn spec(compression: Compression) -> ImageSpec {
    ImageSpec {
        name: "localhost/matic/test:7".into(),
        platform: Platform::host(),
        run: RunConfig {
            entrypoint: vec!["/bin/workload".into(), "--exit".into(), "3".into()],
            env: vec!["A=b".into()],
            ..RunConfig::default()
        },
        files: vec![
            LayerFile {
                path: "/bin/workload".into(),
                mode: 0o755,
                data: b"\x7fELF not really".to_vec(),
            },
            LayerFile {
                path: "etc/motd".into(),
                mode: 0o644,
                data: vec![b'x'; 3000],
            },
        ],
        compression,
    }
}

/// The archive's files by path.
fn files_of(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(Cursor::new(archive));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let data = &files[&format!("blobs/sha256/{hex}")];
    // Every blob is named by the digest of its bytes.
    let hash: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(format!("sha256:{hash}"), digest);
    data
}

fn check(compression: Compression) {
    let spec = spec(compression);
    let mut archive = Vec::new();
    let written = write_archive(&spec, &mut archive).unwrap();
    let files = files_of(&archive);
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);

    let index = ImageIndex::from_reader(Cursor::new(&files["index.json"])).unwrap();
    assert_eq!(index.schema_version(), 2);
    assert_eq!(index.manifests().len(), 1);
    let entry = &index.manifests()[0];
    assert_eq!(entry.media_type(), &MediaType::ImageManifest);
    assert_eq!(entry.digest().to_string(), written.manifest.digest);
    let ann = entry.annotations().as_ref().unwrap();
    assert_eq!(ann["io.containerd.image.name"], "localhost/matic/test:7");
    assert_eq!(ann["org.opencontainers.image.ref.name"], "7");

    let manifest_raw = blob(&files, entry.digest().as_ref());
    assert_eq!(manifest_raw.len() as u64, entry.size());
    let manifest = ImageManifest::from_reader(Cursor::new(manifest_raw)).unwrap();
    assert_eq!(manifest.schema_version(), 2);
    assert_eq!(manifest.media_type(), &Some(MediaType::ImageManifest));
    assert_eq!(manifest.config().media_type(), &MediaType::ImageConfig);
    let config_raw = blob(&files, manifest.config().digest().as_ref());
    assert_eq!(config_raw.len() as u64, manifest.config().size());
    let config = ImageConfiguration::from_reader(Cursor::new(config_raw)).unwrap();
    assert_eq!(config.os().to_string(), "linux");
    assert_eq!(
        config.architecture().to_string(),
        Platform::host().architecture
    );
    assert_eq!(
        config.config().as_ref().unwrap().entrypoint().as_deref(),
        Some(&["/bin/workload".to_string(), "--exit".into(), "3".into()][..])
    );

    assert_eq!(manifest.layers().len(), 1);
    let layer = &manifest.layers()[0];
    let layer_raw = blob(&files, layer.digest().as_ref());
    assert_eq!(layer_raw.len() as u64, layer.size());
    let layer_tar = match compression {
        Compression::Gzip => {
            assert_eq!(layer.media_type(), &MediaType::ImageLayerGzip);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(layer_raw)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Compression::Uncompressed => {
            assert_eq!(layer.media_type(), &MediaType::ImageLayer);
            layer_raw.to_vec()
        }
    };
    // The diff ID is the digest of the uncompressed tar.
    assert_eq!(config.rootfs().diff_ids(), &vec![sha256_digest(&layer_tar)]);
    assert_eq!(written.diff_id, sha256_digest(&layer_tar));

    let mut ar = tar::Archive::new(Cursor::new(&layer_tar));
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        seen.push((path, mode, data.len()));
    }
    assert_eq!(
        seen,
        vec![
            ("bin/".to_string(), 0o755, 0),
            ("bin/workload".to_string(), 0o755, 15),
            ("etc/".to_string(), 0o755, 0),
            ("etc/motd".to_string(), 0o644, 3000),
        ]
    );
}

#[test]
fn gzip_archive_parses_and_digests_match() {
    check(Compression::Gzip);
}

#[test]
fn uncompressed_archive_parses_and_digests_match() {
    check(Compression::Uncompressed);
}

#[test]
fn same_files_same_digest() {
    let a = write_archive(&spec(Compression::Gzip), Vec::new()).unwrap();
    let b = write_archive(&spec(Compression::Gzip), Vec::new()).unwrap();
    assert_eq!(a.manifest, b.manifest);
}

#[test]
fn bad_paths_are_refused() {
    for bad in ["", "/", "a/../b", "a//b", "./a"] {
        let mut s = spec(Compression::Uncompressed);
        s.files[0].path = bad.into();
        let err = write_archive(&s, Vec::new()).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    let mut s = spec(Compression::Uncompressed);
    s.files[1].path = "bin/workload".into();
    assert!(write_archive(&s, Vec::new()).is_err(), "a repeated path");
}

#[test]
fn scan_finds_every_blob_and_walks_the_manifest() {
    let mut archive = Vec::new();
    let written = write_archive(&spec(Compression::Gzip), &mut archive).unwrap();
    let mut file = Cursor::new(archive.clone());
    let s = scan(&mut file).unwrap();
    assert_eq!(s.index.manifests.len(), 1);
    let top = &s.index.manifests[0];
    assert_eq!(top.image_name(), Some("localhost/matic/test:7"));
    let children = s.children(&mut file, top).unwrap();
    assert_eq!(
        children,
        vec![written.config.clone(), written.layer.clone()]
    );
    // Each located range holds exactly the blob's bytes.
    for d in [&written.manifest, &written.config, &written.layer] {
        let at = s.locate(d).unwrap();
        let bytes = &archive[at.offset as usize..(at.offset + at.size) as usize];
        assert_eq!(sha256_digest(bytes), d.digest);
    }
}

#[test]
fn scan_rejects_what_is_no_layout() {
    let mut not_tar = Cursor::new(vec![1u8; 1500]);
    assert!(scan(&mut not_tar).is_err());
    // A tar without oci-layout.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    let index = br#"{"schemaVersion":2,"manifests":[]}"#;
    h.set_size(index.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "index.json", &index[..]).unwrap();
    let mut t = Cursor::new(b.into_inner().unwrap());
    assert!(matches!(
        scan(&mut t),
        Err(ScanError::Missing("oci-layout"))
    ));
}

#[test]
fn a_changed_manifest_is_caught() {
    let mut archive = Vec::new();
    let written = write_archive(&spec(Compression::Uncompressed), &mut archive).unwrap();
    let s = scan(&mut Cursor::new(archive.clone())).unwrap();
    let at = s.locate(&written.manifest).unwrap();
    archive[at.offset as usize + 5] ^= 1;
    let err = s
        .children(&mut Cursor::new(archive), &s.index.manifests[0])
        .unwrap_err();
    assert!(matches!(err, ScanError::Mismatch(_)), "{err}");
}
