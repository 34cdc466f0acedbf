//! OCI image archives (the OCI image-layout, tarred), written and scanned.
//!
//! Owns: the image-spec JSON we need ([`layout`]: descriptors, manifest,
//! index, config, media types), writing a one-layer image archive from a
//! list of files ([`write`]) and finding an archive's blobs and
//! references without unpacking it ([`scan`]).
//! Callers: the image build (the node's pause and test workload images, via
//! the `oci-archive` binary), the agent's image import, tests.
//!
//! Must never: talk to a registry or a runtime, or trust an archive's
//! digests (importers verify them: containerd checks every blob on commit).
pub mod layout;
pub mod scan;
pub mod write;

pub use layout::{Descriptor, Platform};
pub use scan::{ScanError, Scanned, scan};
pub use write::{Compression, ImageSpec, LayerFile, Written, write_archive};
