//! Compiles containerd's content, images and leases services with protox
//! (a pure-Rust protobuf compiler), as `proto/` and `cri/` do, so building
//! needs no system `protoc`. Google's well-known types come with protox.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = "github.com/containerd/containerd/api";
    let files = [
        format!("{api}/services/content/v1/content.proto"),
        format!("{api}/services/images/v1/images.proto"),
        format!("{api}/services/leases/v1/leases.proto"),
        format!("{api}/types/descriptor.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let fds = protox::compile(&files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        // No server: tests that need one run Debian's containerd.
        .build_server(false)
        .build_transport(false)
        // Content chunks as `Bytes`: a chunk read from an archive is sent
        // without another copy.
        .bytes(".containerd.services.content.v1.WriteContentRequest.data")
        .compile_fds(fds)?;
    Ok(())
}
