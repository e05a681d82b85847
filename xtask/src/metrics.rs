//! The metrics test (issue 15): the server's `/metrics` text parsed by an
//! independent parser.
//!
//! Installs Python `prometheus-client` (pinned) from PyPI into a venv under
//! `target/toolchains/` once: a second run downloads nothing. The e2e test
//! `tests/e2e/tests/metrics.rs` runs `tests/metrics/check_metrics.py` with that
//! venv's python, named by [`PYTHON_ENV`]; without it the test fails (it does
//! not skip). `cargo xtask test` sets it for the whole `cargo test --workspace`
//! run; `cargo xtask metrics-test` runs that one test.

use std::path::PathBuf;

use crate::toolchain::{cache_dir, python_venv};
use crate::{Result, cargo, run};

/// The variable naming the venv python for the test.
pub const PYTHON_ENV: &str = "COUNTERSIGN_METRICS_PYTHON";

/// Pinned for repeatable runs.
const REQUIREMENTS: &[&str] = &["prometheus-client==0.26.0"];

fn venv_dir() -> PathBuf {
    cache_dir().join("metrics-py-promclient0.26.0")
}

/// The venv python with the pinned packages, installed when missing.
pub fn ensure_python() -> Result<PathBuf> {
    python_venv(&venv_dir(), REQUIREMENTS, "prometheus-client")
}

/// Just the metrics e2e test (`cargo xtask metrics-test`).
pub fn test() -> Result {
    let python = ensure_python()?;
    run(
        "metrics test (/metrics parsed by Python prometheus_client)",
        cargo()
            .args(["test", "-p", "countersign-e2e", "--test", "metrics"])
            .env(PYTHON_ENV, python),
    )
}
