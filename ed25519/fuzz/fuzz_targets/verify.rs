//! libFuzzer target: arbitrary bytes as (key, signature, message), our
//! verdict against ring's. Same body as the stable harness in
//! `ed25519/tests/fuzz.rs`; seeds: inputs it saved.
#![no_main]

#[path = "../../tests/fuzz_body/mod.rs"]
mod fuzz_body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_body::exercise(data);
});
