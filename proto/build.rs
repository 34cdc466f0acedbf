//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so building
//! needs no system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/matic/machine/v1/machine.proto";
    println!("cargo:rerun-if-changed={file}");
    println!("cargo:rerun-if-changed=proto/matic/machine/v1/config.proto");
    println!("cargo:rerun-if-changed=proto/matic/machine/v1/workloads.proto");
    let fds = protox::compile([file], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The agent and osctl bring their own TLS transport.
        .build_transport(false)
        // Image chunks decode as `Bytes` slices of tonic's receive buffer:
        // no copy per chunk, and the agent hands one chunk to its writer
        // and its hasher without cloning the data.
        .bytes(".matic.machine.v1.InstallRequest.chunk")
        .bytes(".matic.machine.v1.ImageImportRequest.chunk")
        .compile_fds(fds)?;
    Ok(())
}
