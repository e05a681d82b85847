//! Two harmless calls for apps and benchmarks: [`ping`] measures the cost of one
//! call across the FFI boundary, [`core_version`] names the library an app loaded.

/// Returns `value` unchanged. Does nothing else (no lock, no allocation, no hook):
/// timing it measures the FFI's own per-call overhead (`cargo xtask bench-device`).
#[uniffi::export]
pub fn ping(value: u64) -> u64 {
    value
}

/// The version of the Countersign core in this library (`0.1.0`), e.g. for an
/// app's "about" screen or to check that the library matches its bindings.
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_echoes_and_version_is_the_crate_version() {
        assert_eq!(ping(0), 0);
        assert_eq!(ping(u64::MAX), u64::MAX);
        assert_eq!(core_version(), env!("CARGO_PKG_VERSION"));
        assert!(!core_version().is_empty());
    }
}
