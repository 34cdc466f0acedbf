//! `matic-tests`: helpers shared by the integration and end-to-end tests,
//! and the test-only programs that `scripts/build-rootfs` puts into test
//! images (`matic-probe`, `matic-broken-agent`); [`release`] builds signed
//! test releases; [`containerd`] runs Debian's containerd for a test.
//!
//! Test support only: nothing here may be a dependency of a program that
//! ships in a release image, and its programs go only into test images.

pub mod agent;
pub mod containerd;
pub mod disk;
pub mod node;
pub mod probe;
pub mod release;
