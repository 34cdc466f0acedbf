//! The node's own container images and where containerd keeps Kubernetes'
//! (docs/image.md, "Workload images"): one name for the image builder
//! (scripts/lib/common.sh `MATIC_PAUSE_IMAGE`), containerd's
//! `sandbox_image` (scripts/lib/containerd-config.toml) and the agent,
//! which imports the archive at boot when containerd lacks the image.
//!
//! Must never: do I/O or allocate.

/// The pod sandbox image every pod's `pause` container runs.
pub const PAUSE_IMAGE: &str = "localhost/matic/pause:1";
/// The test workload (workloads/src/bin/workload.rs; scripts/lib/common.sh
/// `MATIC_WORKLOAD_IMAGE`): in test images only, imported by an admin; the
/// stand-in kubelet's pods and the tests run it.
pub const WORKLOAD_IMAGE: &str = "localhost/matic/workload:1";
/// The pause image's OCI image archive in the root image (read-only, dm-verity checked).
pub const PAUSE_ARCHIVE: &str = "/usr/share/matic/images/pause.tar";
/// The containerd namespace the CRI (and so kubelet) uses.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// containerd's socket (its gRPC API and the CRI).
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
