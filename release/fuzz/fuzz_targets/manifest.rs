//! libFuzzer target: arbitrary bytes as a manifest block. Same body as the
//! stable harness in `release/tests/fuzz.rs` (parse, verify with a stand-in
//! signature, render back to the same bytes, rebuild through
//! `Manifest::new`). Seeds: any release file's first 4 KiB, or inputs saved
//! by `cargo test -p matic-release --features ring --test fuzz`.
#![no_main]

#[path = "../../tests/fuzz_body/mod.rs"]
mod fuzz_body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_body::exercise(data);
});
