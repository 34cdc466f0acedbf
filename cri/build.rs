//! Compiles the CRI proto with protox (a pure-Rust protobuf compiler), as
//! `proto/` does for our own API, so building needs no system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/runtime/v1/api.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        // No server: a fake runtime would have to implement every call;
        // tests that need one run Debian's containerd.
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
