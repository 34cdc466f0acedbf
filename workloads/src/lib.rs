//! The node's own container programs, each packaged as a one-layer OCI
//! image at build time (scripts/lib/common.sh `matic_build_workloads`,
//! `oci-archive`): `matic-pause`, the pod sandbox containerd's
//! `sandbox_image` names, and `matic-workload`, the test workload.
//! Both are built static (`-C target-feature=+crt-static`): an image layer
//! holds the one file and no libraries.
//!
//! Owns: the signal handling they share ([`sys`], the only `unsafe`).
//! Must never: depend on anything in the image but the binary itself.
#![deny(unsafe_code)]
#[allow(unsafe_code)]
pub mod sys;
