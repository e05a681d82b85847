//! The property-based API test (issue 12), run by `cargo xtask test`.
//!
//! Installs schemathesis from PyPI into a venv under `target/toolchains/` (once:
//! a second run downloads nothing), builds the `countersign` binary, then runs
//! `tests/api/run.py`: it starts `countersign server --demo` on a free loopback
//! port and lets schemathesis generate requests for every operation in the
//! server's `/openapi.json`, checking status codes, content types and response
//! schemas. The runner ends with `N passed, N failed`.

use std::path::PathBuf;
use std::process::Command;

use crate::toolchain::{cache_dir, python_venv, target_dir};
use crate::{Result, root, run};

/// Pinned for repeatable runs.
const SCHEMATHESIS: &str = "4.32.5";

/// Everything the API test needs, then the test itself.
pub fn test() -> Result {
    let cli = ensure_schemathesis()?;
    crate::build_host_binaries()?;
    let root = root();
    run(
        "API test (schemathesis, requests generated from /openapi.json)",
        Command::new(venv_dir().join("bin/python3"))
            .arg(root.join("tests/api/run.py"))
            .current_dir(&root)
            .env("COUNTERSIGN_BIN", target_dir().join("debug/countersign"))
            .env("SCHEMATHESIS", &cli)
            .env("ARTIFACTS", root.join("tests/artifacts/api")),
    )
}

fn venv_dir() -> PathBuf {
    cache_dir().join(format!("schemathesis-{SCHEMATHESIS}"))
}

/// The schemathesis CLI in its venv, installed when missing.
fn ensure_schemathesis() -> Result<PathBuf> {
    let venv = venv_dir();
    let requirement = format!("schemathesis=={SCHEMATHESIS}");
    let python = python_venv(
        &venv,
        &[&requirement],
        &format!("schemathesis {SCHEMATHESIS}"),
    )?;
    Ok(python.with_file_name("schemathesis"))
}
