//! `matic-tests`: helpers shared by the integration and end-to-end tests,
//! and the test-only programs that `scripts/build-rootfs` puts into test
//! images (`matic-probe`, `matic-broken-agent`).

pub mod agent;
pub mod probe;
