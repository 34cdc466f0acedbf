//! `matic-init` binary entry point (placeholder until the init issue lands).
fn main() {
    eprintln!("matic-init: not implemented yet");
    std::process::exit(1);
}
