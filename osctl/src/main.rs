//! `osctl`: the operator CLI (placeholder until the API issue lands).
fn main() {
    eprintln!("osctl: not implemented yet");
    std::process::exit(1);
}
