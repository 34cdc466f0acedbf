//! A deliberately broken `matic-agent` for end-to-end tests: it exits with
//! status 1 the moment it starts, so a slot carrying it can never be marked
//! successful and must roll back. Only `scripts/build-rootfs --variant
//! agent-exits` puts it into an image.

fn main() {
    eprintln!("matic-broken-agent: deliberately exiting at start (test image)");
    std::process::exit(1);
}
