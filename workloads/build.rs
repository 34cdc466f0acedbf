//! Link `matic-pause` as a static, non-PIE executable with no C runtime
//! (it brings its own `_start`, src/sys.rs `entry!`), as matic-init is
//! linked; `matic-workload` (std) is untouched.
fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
    ] {
        println!("cargo:rustc-link-arg-bin=matic-pause={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
