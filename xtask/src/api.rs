//! The property-based API test (issue 12), run by `cargo xtask test`.
//!
//! Installs schemathesis from PyPI into a venv under `target/toolchains/` (once:
//! a second run downloads nothing), builds the `countersign` binary, then runs
//! `tests/api/run.py`: it starts `countersign server --demo` on a free loopback
//! port and lets schemathesis generate requests for every operation in the
//! server's `/openapi.json`, checking status codes, content types and response
//! schemas. The runner ends with `N passed, N failed`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::{cache_dir, target_dir};
use crate::{Result, ensure_debian_packages, root, run};

/// Pinned for repeatable runs.
const SCHEMATHESIS: &str = "4.32.5";

/// Everything the API test needs, then the test itself.
pub fn test() -> Result {
    let cli = ensure_schemathesis()?;
    crate::build_host_binaries()?;
    let root = root();
    run(
        "API test (schemathesis, requests generated from /openapi.json)",
        Command::new(venv_python(&venv_dir()))
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

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin/python3")
}

/// The schemathesis CLI in its venv, installed when missing.
fn ensure_schemathesis() -> Result<PathBuf> {
    let venv = venv_dir();
    let cli = venv.join("bin/schemathesis");
    if cli.exists() {
        println!(
            "==> schemathesis {SCHEMATHESIS} present in {}",
            venv.display()
        );
        return Ok(cli);
    }
    println!(
        "\n==> installing schemathesis {SCHEMATHESIS} (PyPI) into {}",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !created {
        // Debian's python3 needs python3-venv for `-m venv`.
        let _ = std::fs::remove_dir_all(&venv);
        ensure_debian_packages(
            &["python3-venv"],
            &["/usr/lib/python3.11/ensurepip/__init__.py"],
        )?;
        run(
            "python3 -m venv",
            Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
    }
    let installed = run(
        "pip install schemathesis",
        Command::new(venv_python(&venv)).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS}"),
        ]),
    );
    if let Err(e) = installed {
        // A half-made venv must not look installed next time.
        let _ = std::fs::remove_dir_all(&venv);
        return Err(e);
    }
    Ok(cli)
}
