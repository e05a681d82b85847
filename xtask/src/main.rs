//! `cargo xtask`: build and test automation for Countersign.
//!
//! * `cargo xtask test`: installs what the tests need (idempotently), then runs
//!   formatting, clippy and every test suite, printing each suite's counts.
//! * `cargo xtask demo`: the end-to-end demo (the README's main command).
//! * `cargo xtask fuzz [--secs N] [--merge] [target ...]`: coverage-guided fuzzing
//!   of every parser an attacker can reach (fuzz/README.md).
//! * `cargo xtask bench`, `bench-peer`, `bench-device`: the performance reports
//!   (BENCHMARKS.md). Not part of `test`, which runs a bounded smoke of each.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod api;
mod bench;
mod bench_device;
mod bindings;
mod browser;
mod fuzz;
mod metrics;
mod mobile;
mod toolchain;
mod webpush;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(&args[1..]),
        Some("bindings") => bindings::command(&args[1..]),
        Some("api-test") => api::test(),
        Some("browser-test") => browser::test(),
        Some("webpush-test") => webpush::test(),
        Some("metrics-test") => metrics::test(),
        Some("fuzz") => fuzz::command(&args[1..]),
        Some("bench") => bench::command(&args[1..]),
        Some("bench-peer") => bench::peer(&args[1..]),
        Some("bench-device") => bench_device::command(&args[1..]),
        Some("android") => mobile::android(&args[1..]),
        Some("apple") => mobile::apple(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|demo|bindings|api-test|browser-test|webpush-test|metrics-test|fuzz|bench|bench-peer|bench-device|android|apple>"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    if env::var_os("CI").is_some() {
        // A clean CI clone never reuses incremental state: it only costs disk and time.
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

/// Prints the free space where the build goes. A full disk fails a build far from its
/// cause (CI once died unpacking Swift with "No space left on device").
fn report_free_space() {
    let free = Command::new("df")
        .args(["-Pk", "."])
        .current_dir(root())
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text.lines().nth(1)?.to_owned();
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        });
    match free {
        Some(kib) if kib < 8 * 1024 * 1024 => println!(
            "xtask: WARNING only {:.1} GiB free; the full test run needs about 8 GiB",
            kib as f64 / 1048576.0
        ),
        Some(kib) => println!("xtask: {:.1} GiB free", kib as f64 / 1048576.0),
        None => println!("xtask: free disk space unknown (df failed)"),
    }
}

/// Runs a command to completion, failing with its description if it fails.
fn run(what: &str, cmd: &mut Command) -> Result {
    println!("\n==> {what}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    println!("<== {what}: {:.1}s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Whether `program` is on PATH (or, when it is a path, whether it exists).
fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs Debian packages that provide `programs`, only when one is missing.
fn ensure_debian_packages(packages: &[&str], programs: &[&str]) -> Result {
    if programs.iter().all(|p| have(p)) {
        println!("==> tools present: {}", programs.join(", "));
        return Ok(());
    }
    let sudo = if have("id") && !is_root() {
        "sudo "
    } else {
        ""
    };
    let script = format!(
        "export DEBIAN_FRONTEND=noninteractive; {sudo}apt-get install -y -qq {pkgs} >/dev/null 2>&1 || \
         ({sudo}apt-get update -qq && {sudo}apt-get install -y -qq {pkgs})",
        pkgs = packages.join(" ")
    );
    run(
        &format!("install {}", packages.join(" ")),
        Command::new("sh").args(["-c", &script]),
    )?;
    match programs.iter().find(|p| !have(p)) {
        Some(missing) => Err(format!("{missing} is still missing after installing")),
        None => Ok(()),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Builds the `countersign` and `countersign-server` binaries and the benchmark
/// driver `countersign-bench` (debug) in one cargo call. The browser, API,
/// binding and benchmark tests all ask for it: one feature resolution, so later
/// calls find everything built (separate `-p` builds resolve features
/// differently and recompile shared dependencies: the driver alone took 190 s).
pub fn build_host_binaries() -> Result {
    run(
        "cargo build countersign, countersign-server and countersign-bench",
        cargo().args([
            "build",
            "--quiet",
            "-p",
            "countersign-cli",
            "-p",
            "countersign-server",
            "-p",
            "countersign-bench",
            "--bins",
        ]),
    )
}

fn test() -> Result {
    let started = Instant::now();
    report_free_space();
    // oathtool: the independent OTP implementation we cross-check against.
    ensure_debian_packages(&["oathtool"], &["oathtool"])?;
    // PostgreSQL: the server suite runs on SQLite and on a throwaway PostgreSQL cluster.
    ensure_debian_packages(&["postgresql"], &["/usr/lib/postgresql/15/bin/initdb"])?;
    // radclient (FreeRADIUS 3.2): the NAS of the RADIUS end-to-end test (issue 14).
    ensure_debian_packages(&["freeradius-utils"], &["radclient"])?;
    // A private GNOME Keyring on a session D-Bus backs the FileStorage keyring test.
    ensure_debian_packages(
        &["gnome-keyring", "dbus", "dbus-x11", "libsecret-tools"],
        &["gnome-keyring-daemon", "dbus-run-session", "secret-tool"],
    )?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The Web Push e2e test decrypts with Python http_ece / py_vapid (issue 14).
    let webpush_python = webpush::ensure_python()?;
    // The metrics e2e test parses /metrics with Python prometheus_client (issue 15).
    let metrics_python = metrics::ensure_python()?;
    // --nocapture lets the known-answer suites print their per-file case counts.
    run(
        "cargo test (all crates)",
        cargo()
            .args(["test", "--workspace", "--", "--nocapture"])
            .env(webpush::PYTHON_ENV, webpush_python)
            .env(metrics::PYTHON_ENV, metrics_python),
    )?;
    // Every fuzz target for a few seconds on its committed corpus (fuzz/README.md).
    fuzz::short_pass()?;
    // The server benchmark and the privacyIDEA comparison, bounded to seconds, so
    // the benchmark code cannot rot (the full report is `cargo xtask bench`).
    bench::smoke()?;
    // The demo pages in headless Chromium, the CLI as the phone (issue 7).
    browser::test()?;
    // Requests generated from /openapi.json against a live server (issue 12).
    api::test()?;
    // Kotlin (JVM, JNA) and Swift (Linux) binding tests against a live server (issue 6).
    report_free_space();
    bindings::test_kotlin_and_swift()?;
    // Device costs, FFI calls from Kotlin and Swift, library size: bounded smoke.
    bench_device::report(true)?;
    println!(
        "\nall suites passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo(extra: &[String]) -> Result {
    // Every flow end to end: embedded server on loopback, the core as the device.
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "countersign-cli",
        "--",
        "demo",
    ]);
    cmd.args(extra);
    run("countersign demo", &mut cmd)
}
