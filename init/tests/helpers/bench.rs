//! Benchmark driver (filled in below).
pub fn main(_args: Vec<String>) {}
