//! `matic-agent`: the node's gRPC API (placeholder until the API issue lands).
fn main() {
    eprintln!("matic-agent: not implemented yet");
    std::process::exit(1);
}
