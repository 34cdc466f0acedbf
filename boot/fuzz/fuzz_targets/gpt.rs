//! libFuzzer target: arbitrary bytes as a disk. Same body as the stable
//! harness in `boot/tests/fuzz.rs` (open, every accessor, transitions,
//! write, reopen to the same state). Seed corpus: `cargo test -p matic-boot
//! --test fuzz` saves failing inputs; any disk image works as a seed.
#![no_main]

#[path = "../../tests/fuzz_body/mod.rs"]
mod fuzz_body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_body::exercise(data);
});
