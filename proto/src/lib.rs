//! `matic-proto`: the MaticOS machine API (`matic.machine.v1`), generated from
//! `proto/matic/machine/v1/machine.proto` at build time.
//!
//! It holds only the generated types and the API's default port: no
//! behaviour, no hand-written parsing, and it must never need a system
//! `protoc` to build (the `.proto` is compiled by `protox`, in Rust).

/// Version 1 of the machine API.
pub mod v1 {
    tonic::include_proto!("matic.machine.v1");
}

/// Default TCP port of the API.
pub const DEFAULT_PORT: u16 = 50051;
