//! Link `matic-init` as a static, non-PIE executable with no C runtime: it
//! brings its own `_start` and `mem*` (src/sys.rs). The flags go to that one
//! binary (and the no_std benchmark probe) only, so the std helper binary
//! and build scripts are unaffected.
fn main() {
    // No unwinder ever reads the unwind tables' index (panic = "abort").
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--no-eh-frame-hdr",
        // Nothing to gain from either in a static binary that fits in
        // 64 KiB: RELRO protects dynamic relocations (there are none, and
        // no loader would mprotect them), the build id names a build for
        // debuggers of separate debug info (there is none). Each costs a
        // program header and some bytes.
        "-Wl,-z,norelro",
        "-Wl,--build-id=none",
        "-Wl,--icf=all",
    ] {
        println!("cargo:rustc-link-arg-bin=matic-init={arg}");
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bin=matic-init=-Wl,-T,{dir}/link-no-unwind.ld");
    println!("cargo:rerun-if-changed=link-no-unwind.ld");
    // Strip symbols from release builds (the profile's `strip` does not
    // reach this custom link); scripts/test.d/20-init-static sets
    // MATIC_INIT_KEEP_SYMBOLS=1 for the copy whose symbols it checks.
    println!("cargo:rerun-if-env-changed=MATIC_INIT_KEEP_SYMBOLS");
    if std::env::var("PROFILE").as_deref() == Ok("release")
        && std::env::var_os("MATIC_INIT_KEEP_SYMBOLS").is_none()
    {
        println!("cargo:rustc-link-arg-bin=matic-init=-Wl,--strip-all");
    }
    // The respawn probe of the benchmark is built the same way, so its
    // start-up cost is exec alone (no dynamic loading, no libc init).
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bin=matic-init-probe={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
