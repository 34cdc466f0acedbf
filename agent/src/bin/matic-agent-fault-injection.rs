//! The test images' agent: [`matic_agent::daemon`] built with the
//! `fault-injection` feature (`ServiceRestart fault:abort-agent` aborts
//! it). Never in a release image: `scripts/build-rootfs --variant
//! fault-injection` alone packages it, as `/usr/bin/matic-agent`.
#![deny(unsafe_code)]

fn main() {
    matic_agent::daemon::main()
}
