//! Server throughput (`cargo xtask bench`), privacyIDEA side by side
//! (`cargo xtask bench-peer`) and the bounded smoke `cargo xtask test` runs.
//!
//! The measuring is `countersign-bench` (bench/): it starts the server,
//! PostgreSQL and gunicorn on free loopback ports, re-executes itself as worker
//! processes that simulate the devices, and writes `target/bench/report.md`.
//! The server measured is the release build; the driver is a dev build (its
//! dependencies are optimised in dev builds too, and it is one build less).

use std::path::PathBuf;
use std::process::Command;

use crate::toolchain::{cache_dir, python_venv, target_dir};
use crate::{Result, cargo, run};

/// privacyIDEA as the comparison runs it: the release the figures are for,
/// served by gunicorn.
const PRIVACYIDEA: &[&str] = &["privacyidea==3.14", "gunicorn"];

/// privacyIDEA's venv (cached: a second run downloads nothing).
fn privacyidea_venv() -> Result<PathBuf> {
    let venv = cache_dir().join("privacyidea-venv");
    python_venv(&venv, PRIVACYIDEA, "privacyIDEA 3.14 and gunicorn")?;
    Ok(venv)
}

/// Builds the bench driver (dev profile, with the host binaries: one feature
/// resolution); answers its path.
fn build_driver() -> Result<PathBuf> {
    crate::build_host_binaries()?;
    Ok(target_dir().join("debug/countersign-bench"))
}

/// Builds the release server; answers its path.
fn build_release_server() -> Result<PathBuf> {
    run(
        "cargo build --release countersign-server",
        cargo().args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "countersign-server",
            "--bin",
            "countersign-server",
        ]),
    )?;
    Ok(target_dir().join("release/countersign-server"))
}

/// The driver with the paths every subcommand needs.
fn driver(subcommand: &str, driver: &PathBuf, server: &PathBuf, what: &str) -> Command {
    let bench = target_dir().join("bench");
    let mut cmd = Command::new(driver);
    cmd.current_dir(crate::root())
        .arg(subcommand)
        .arg("--server-bin")
        .arg(server)
        .arg("--work-dir")
        .arg(bench.join(format!("work-{what}")))
        .arg("--report")
        .arg(bench.join(format!("{what}.md")));
    cmd
}

/// `cargo xtask bench [flags]`: the throughput report (bench/src/main.rs lists
/// the flags: --logins, --concurrency, --secs, --db, --big-logins,
/// --sqlite-synchronous, --quick). `cargo xtask bench --smoke` runs only the
/// smoke that `cargo xtask test` runs.
pub fn command(args: &[String]) -> Result {
    if args.iter().any(|a| a == "--smoke") {
        return smoke();
    }
    crate::ensure_debian_packages(&["postgresql"], &["/usr/lib/postgresql/15/bin/initdb"])?;
    let server = build_release_server()?;
    let bench = build_driver()?;
    let mut cmd = driver("run", &bench, &server, "report");
    cmd.args(args);
    run("countersign-bench run", &mut cmd)
}

/// Where `bench-peer --tmpfs` keeps both servers' databases: in memory, so that
/// neither waits for the disk. privacyIDEA's SQLite (rollback journal,
/// `synchronous = FULL`) syncs every commit, Countersign's default (`normal`,
/// WAL) does not: on disk the comparison would mostly measure the disk.
const PEER_TMPFS: &str = "/dev/shm/countersign-bench-peer";

/// `cargo xtask bench-peer [--tmpfs] [flags]`: Countersign and privacyIDEA 3.14
/// side by side.
pub fn peer(args: &[String]) -> Result {
    // openssl makes the simulated phones' RSA keys.
    crate::ensure_debian_packages(&["openssl"], &["openssl"])?;
    let venv = privacyidea_venv()?;
    let server = build_release_server()?;
    let bench = build_driver()?;
    let tmpfs = args.iter().any(|a| a == "--tmpfs");
    let what = if tmpfs { "peer-tmpfs" } else { "peer" };
    let mut cmd = driver("peer", &bench, &server, what);
    if tmpfs {
        // A later --work-dir wins over the one `driver` set.
        cmd.arg("--work-dir").arg(PEER_TMPFS);
    }
    cmd.arg("--venv")
        .arg(venv)
        .args(args.iter().filter(|a| *a != "--tmpfs"));
    let outcome = run("countersign-bench peer", &mut cmd);
    if tmpfs {
        // Memory, not disk: give it back (the report is in target/bench).
        let _ = std::fs::remove_dir_all(PEER_TMPFS);
    }
    outcome
}

/// The bench code's smoke: a few hundred logins on SQLite, a few on
/// PostgreSQL, the statement count, the crypto bound and a dozen privacyIDEA
/// logins, with assertions; ends with `N passed, N failed`. Uses the dev
/// server: it checks that the code works, not how fast.
pub fn smoke() -> Result {
    crate::ensure_debian_packages(&["openssl"], &["openssl"])?;
    crate::ensure_debian_packages(&["postgresql"], &["/usr/lib/postgresql/15/bin/initdb"])?;
    let venv = privacyidea_venv()?;
    let bench = build_driver()?;
    let server = target_dir().join("debug/countersign-server");
    let mut cmd = driver("smoke", &bench, &server, "smoke");
    cmd.arg("--venv").arg(venv);
    run("bench smoke", &mut cmd)
}
