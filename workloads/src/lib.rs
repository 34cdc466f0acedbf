//! The node's own container programs, each packaged as a one-layer OCI
//! image at build time (scripts/lib/common.sh `matic_build_workloads`,
//! `oci-archive`): `matic-pause`, the pod sandbox containerd's
//! `sandbox_image` names, and `matic-workload`, the test workload.
//! Both are built static (`-C target-feature=+crt-static`): an image layer
//! holds the one file and no libraries; `matic-pause` is `no_std` with no
//! libc at all.
//!
//! Owns: the signal handling they share ([`sys`], the only `unsafe`, raw
//! syscalls). Must never: depend on anything in the image but the binary
//! itself, or on `std` (the pause binary links none).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#[allow(unsafe_code)]
pub mod sys;
