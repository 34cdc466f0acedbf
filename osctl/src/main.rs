//! `osctl`: the MaticOS operator CLI (thin wrapper over the `osctl` library).
fn main() {
    std::process::exit(osctl::cli::main());
}
