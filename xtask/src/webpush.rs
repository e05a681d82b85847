//! The Web Push test (issue 14): the server's real UnifiedPush messages
//! decrypted and checked by an independent implementation.
//!
//! Installs Python `http_ece` and `py_vapid` (pinned, with the `cryptography`
//! they need) from PyPI into a venv under `target/toolchains/` once: a second
//! run downloads nothing. The e2e test `tests/e2e/tests/webpush.rs` runs
//! `tests/webpush/endpoint.py` with that venv's python, named by
//! [`PYTHON_ENV`]; without it the test fails (it does not skip). `cargo xtask
//! test` sets it for the whole `cargo test --workspace` run; `cargo xtask
//! webpush-test` runs that one test.

use std::path::PathBuf;

use crate::toolchain::{cache_dir, python_venv};
use crate::{Result, cargo, run};

/// The variable naming the venv python for the test.
pub const PYTHON_ENV: &str = "COUNTERSIGN_WEBPUSH_PYTHON";

/// Pinned for repeatable runs (`cryptography` too: the test CA and keys).
const REQUIREMENTS: &[&str] = &["http-ece==1.2.1", "py-vapid==1.9.6", "cryptography==50.0.2"];

fn venv_dir() -> PathBuf {
    cache_dir().join("webpush-py-ece1.2.1-vapid1.9.6-crypto50.0.2")
}

/// The venv python with the pinned packages, installed when missing.
pub fn ensure_python() -> Result<PathBuf> {
    python_venv(&venv_dir(), REQUIREMENTS, "http-ece and py-vapid")
}

/// Just the Web Push e2e test (`cargo xtask webpush-test`).
pub fn test() -> Result {
    let python = ensure_python()?;
    run(
        "Web Push test (independent decrypt with http_ece, VAPID with py_vapid)",
        cargo()
            .args(["test", "-p", "countersign-e2e", "--test", "webpush"])
            .env(PYTHON_ENV, python),
    )
}
