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

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::cache_dir;
use crate::{Result, cargo, ensure_debian_packages, run};

/// The variable naming the venv python for the test.
pub const PYTHON_ENV: &str = "COUNTERSIGN_WEBPUSH_PYTHON";

/// Pinned for repeatable runs (`cryptography` too: the test CA and keys).
const REQUIREMENTS: &[&str] = &["http-ece==1.2.1", "py-vapid==1.9.6", "cryptography==50.0.2"];

fn venv_dir() -> PathBuf {
    cache_dir().join("webpush-py-ece1.2.1-vapid1.9.6-crypto50.0.2")
}

/// Written last: a venv without it is half made and is made again.
fn marker(venv: &Path) -> PathBuf {
    venv.join("countersign-installed")
}

/// The venv python with the pinned packages, installed when missing.
pub fn ensure_python() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin/python3");
    if marker(&venv).exists() && python.exists() {
        println!("==> http-ece and py-vapid present in {}", venv.display());
        return Ok(python);
    }
    println!(
        "\n==> installing {} (PyPI) into {}",
        REQUIREMENTS.join(" "),
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
        "pip install http-ece py-vapid",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
    )
    .and_then(|()| {
        std::fs::write(marker(&venv), REQUIREMENTS.join("\n"))
            .map_err(|e| format!("write {}: {e}", marker(&venv).display()))
    });
    if let Err(e) = installed {
        // A half-made venv must not look installed next time.
        let _ = std::fs::remove_dir_all(&venv);
        return Err(e);
    }
    Ok(python)
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
