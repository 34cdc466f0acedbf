//! `matic-proto`: the MaticOS machine API (`matic.machine.v1`), generated from
//! `proto/matic/machine/v1/machine.proto` at build time.

/// Version 1 of the machine API.
pub mod v1 {
    tonic::include_proto!("matic.machine.v1");
}

/// Default TCP port of the API.
pub const DEFAULT_PORT: u16 = 50051;
