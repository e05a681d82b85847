//! `cargo xtask fuzz [--secs N] [--merge] [--seeds] [target ...]`: coverage-guided
//! fuzzing of everything an attacker can send (fuzz/README.md).
//!
//! Builds the `fuzz/` crate (outside the workspace) with libFuzzer's coverage
//! instrumentation on stable Rust, into `fuzz/target`, then runs each target for
//! `N` seconds on its committed corpus `fuzz/corpus/<target>`. New inputs go to
//! `fuzz/target/new-corpus/<target>`; `--merge` minimises the committed corpus
//! and those new inputs back into `fuzz/corpus/<target>` (`-merge=1`). Crashes,
//! timeouts and out-of-memory inputs are written under `fuzz/artifacts/<target>/`
//! and fail the command. `--seeds` (re)writes each target's valid seed inputs
//! into its corpus instead of fuzzing. The last line is `N passed, N failed`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use crate::{Result, root, run};

/// Every fuzz target (one `[[bin]]` each in fuzz/Cargo.toml).
pub const TARGETS: [&str; 10] = [
    "activation_uri",
    "activation_code",
    "otpauth",
    "signed_message",
    "sealed_challenge",
    "answer",
    "device_request",
    "activation",
    "offline_qr",
    "radius_packet",
];

/// Seconds per target of the short pass in `cargo xtask test`.
const SHORT_PASS_SECS: u64 = 6;

/// What `cargo fuzz build -s none` passes: libFuzzer's coverage feedback
/// (inline 8-bit counters, PC table, comparison tracing), no sanitizer (the
/// protocol crate forbids `unsafe`), debug assertions and overflow checks on.
const RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions -Coverflow-checks";

/// `cargo xtask fuzz …`.
pub fn command(args: &[String]) -> Result {
    let mut secs = 60;
    let mut merge = false;
    let mut seeds = false;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => {
                secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--secs needs a number of seconds")?;
            }
            "--merge" => merge = true,
            "--seeds" => seeds = true,
            name if TARGETS.contains(&name) => targets.push(name.to_owned()),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?}; targets: {}",
                    TARGETS.join(" ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    let bin_dir = build()?;
    if seeds {
        for target in &targets {
            write_seeds(&bin_dir, target)?;
        }
        return Ok(());
    }
    fuzz_all(&bin_dir, &targets, secs, merge)
}

/// The bounded pass of `cargo xtask test`: every target for a few seconds on its
/// committed corpus (about a minute, plus the build).
pub fn short_pass() -> Result {
    let started = Instant::now();
    // libfuzzer-sys compiles libFuzzer with the system C++ compiler.
    crate::ensure_debian_packages(&["g++"], &["c++"])?;
    let bin_dir = build()?;
    let targets: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    let outcome = fuzz_all(&bin_dir, &targets, SHORT_PASS_SECS, false);
    println!(
        "<== fuzz short pass (build included): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    outcome
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// The host triple: building for an explicit `--target` keeps the coverage flags
/// off build scripts and proc macros, as cargo-fuzz does.
fn host_triple() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV printed no host triple".into())
}

/// Builds every target (release, instrumented) and returns their directory.
fn build() -> Result<PathBuf> {
    let host = host_triple()?;
    let fuzz = fuzz_dir();
    let mut cmd = crate::cargo();
    cmd.current_dir(&fuzz)
        .args(["build", "--release", "--bins", "--target", &host])
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", fuzz.join("target"))
        // The workspace's setting would not apply here; keep the build lean.
        .env_remove("CARGO_BUILD_TARGET");
    run("cargo build fuzz targets (libFuzzer, coverage)", &mut cmd)?;
    Ok(fuzz.join("target").join(host).join("release"))
}

/// Runs a target in seed mode: it writes its valid seeds into its corpus.
fn write_seeds(bin_dir: &Path, target: &str) -> Result {
    let corpus = fuzz_dir().join("corpus").join(target);
    run(
        &format!("{target}: write seeds"),
        Command::new(bin_dir.join(target)).env("COUNTERSIGN_FUZZ_WRITE_SEEDS", &corpus),
    )
}

/// One target's run.
struct Outcome {
    executions: u64,
    exec_per_sec: u64,
    corpus_files: usize,
    findings: Vec<PathBuf>,
    failure: Option<String>,
}

fn fuzz_all(bin_dir: &Path, targets: &[String], secs: u64, merge: bool) -> Result {
    println!("\n==> fuzz: {} target(s), {secs}s each", targets.len());
    let mut failed = 0;
    let mut lines = Vec::new();
    for target in targets {
        let outcome = fuzz_one(bin_dir, target, secs, merge)?;
        let ok = outcome.findings.is_empty() && outcome.failure.is_none();
        if !ok {
            failed += 1;
        }
        let mut line = format!(
            "fuzz {target:<17} {secs:>5}s {:>12} execs {:>8} exec/s {:>6} corpus {:>2} findings",
            outcome.executions,
            outcome.exec_per_sec,
            outcome.corpus_files,
            outcome.findings.len()
        );
        for finding in &outcome.findings {
            line.push_str(&format!("\n    finding: {}", finding.display()));
        }
        if let Some(failure) = &outcome.failure {
            line.push_str(&format!("\n    {failure}"));
        }
        println!("{line}");
        lines.push(line);
    }
    println!("\n==> fuzz summary");
    for line in &lines {
        println!("{line}");
    }
    println!("{} passed, {failed} failed", targets.len() - failed);
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("fuzz: {failed} target(s) with findings"))
    }
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0)
}

/// The value of libFuzzer's final `stat::<name>:` line.
fn stat(log: &str, name: &str) -> u64 {
    let key = format!("stat::{name}:");
    log.lines()
        .filter_map(|l| l.strip_prefix(&key))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

fn fuzz_one(bin_dir: &Path, target: &str, secs: u64, merge: bool) -> Result<Outcome> {
    let fuzz = fuzz_dir();
    let corpus = fuzz.join("corpus").join(target);
    let scratch = fuzz.join("target/new-corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    let logs = fuzz.join("target/logs");
    for dir in [&corpus, &scratch, &artifacts, &logs] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log_file = fs::File::create(&log_path).map_err(|e| format!("{target} log: {e}"))?;
    let started = SystemTime::now();
    let bin = bin_dir.join(target);
    // New inputs go to the first directory: the scratch one, not the committed corpus.
    let status = Command::new(&bin)
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&scratch)
        .arg(&corpus)
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .map_err(|e| format!("{}: cannot start: {e}", bin.display()))?;
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    let findings: Vec<PathBuf> = fs::read_dir(&artifacts)
        .map_err(|e| format!("{}: {e}", artifacts.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started)
        })
        .map(|e| e.path())
        .collect();
    let failure = (!status.success()).then(|| {
        format!(
            "libFuzzer exited with {status}; log: {}",
            log_path.display()
        )
    });
    if merge && failure.is_none() && findings.is_empty() {
        merge_corpus(&bin, target, &corpus, &scratch)?;
    }
    let corpus_files = if merge {
        count_files(&corpus)
    } else {
        count_files(&corpus) + count_files(&scratch)
    };
    Ok(Outcome {
        executions: stat(&log, "number_of_executed_units"),
        exec_per_sec: stat(&log, "average_exec_per_sec"),
        corpus_files,
        findings,
        failure,
    })
}

/// Minimises the committed corpus and the new inputs into the committed corpus.
fn merge_corpus(bin: &Path, target: &str, corpus: &Path, scratch: &Path) -> Result {
    let old = fuzz_dir().join("target/old-corpus").join(target);
    let _ = fs::remove_dir_all(&old);
    if let Some(parent) = old.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::rename(corpus, &old).map_err(|e| format!("move {}: {e}", corpus.display()))?;
    fs::create_dir_all(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let merged = run(
        &format!("{target}: merge corpus"),
        Command::new(bin)
            .arg("-merge=1")
            .arg(corpus)
            .arg(&old)
            .arg(scratch)
            .stderr(Stdio::null()),
    );
    if merged.is_err() {
        // Put the committed corpus back rather than lose it.
        let _ = fs::remove_dir_all(corpus);
        let _ = fs::rename(&old, corpus);
        return merged;
    }
    let _ = fs::remove_dir_all(&old);
    let _ = fs::remove_dir_all(scratch);
    Ok(())
}
