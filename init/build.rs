//! Link `matic-init` as a static, non-PIE executable with no C runtime: it
//! brings its own `_start` and `mem*` (src/sys.rs). The flags go to that one
//! binary (and the no_std benchmark probe) only, so the std helper binary and build scripts are unaffected.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bin=matic-init={arg}");
    }
    // The respawn probe of the benchmark is built the same way, so its
    // start-up cost is exec alone (no dynamic loading, no libc init).
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bin=matic-init-probe={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
