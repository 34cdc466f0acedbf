//! Stage 1 (placeholder until the slot mounting lands): never selected yet.
pub fn applies() -> bool {
    false
}
pub fn run() -> ! {
    crate::util::sleep_forever()
}
