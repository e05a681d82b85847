//! Shared helpers for the end-to-end tests in `tests/` (servers on loopback,
//! authenticators on temp-dir `FileStorage`, a scripted `UserVerifier`).
#![forbid(unsafe_code)]
