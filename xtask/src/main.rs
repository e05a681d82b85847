//! `cargo xtask`: build and test automation.
fn main() {}
