//! Workloads: what containerd and its CRI plugin hold and run, for the
//! API (docs/api.md, "Workloads"). Talks to containerd only over its gRPC
//! socket (`--containerd-socket`): containerd's own API for images
//! ([`images`]: list, and [`import`] of an OCI image archive into the CRI's
//! `k8s.io` namespace; [`pause`] puts the node's pause image there at
//! start), the CRI for pods and containers ([`cri`]), and
//! decodes the CRI's container log files ([`cri_log`]).
//!
//! Must never: run a program (there is no shell, and no `ctr`), write
//! outside its spool directory and containerd, or touch a namespace but
//! `k8s.io`.
pub mod cri;
pub mod cri_log;
pub mod images;
pub mod import;
pub mod pause;

use std::path::Path;
use std::time::Duration;

use tonic::Status;
use tonic::transport::Channel;

/// Longest wait for containerd to answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A channel to containerd at `socket`, or UNAVAILABLE naming it.
pub async fn channel(socket: &Path) -> Result<Channel, Status> {
    matic_cri::connect(socket, CALL_TIMEOUT)
        .await
        .map_err(|e| Status::unavailable(format!("{e}: {}", e.source)))
}

/// containerd's error as ours, saying what we were doing.
pub fn from_containerd(what: &str, s: Status) -> Status {
    Status::new(s.code(), format!("containerd: {what}: {}", s.message()))
}
