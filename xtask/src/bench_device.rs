//! `cargo xtask bench-device [--smoke]`: the device's costs (issue 16), each
//! measured beside its primitives in the same run, written as a markdown report
//! to stdout and `target/bench/device.md`.
//!
//! 1. Device costs: criterion, `core/benches/device.rs` (handle_push, approve
//!    without and with a PIN, TOTP through the core's API; each primitive alone;
//!    the former hot spots for the before/after).
//! 2. FFI overhead: `ping(u64)` from Rust (`bindings/benches/ffi_baseline.rs`),
//!    from Kotlin (JVM + JNA, `bindings/benches/kotlin/FfiBench.kt`) and from
//!    Swift (Linux, the `FfiBench` executable of `Package.swift`), on the release
//!    library (`--smoke`: the debug library; Swift built in debug).
//! 3. Library size: the release cdylib of countersign-ffi, stripped, with and
//!    without the reqwest HTTP client, and its largest contributors by crate
//!    (`nm --size-sort` of the unstripped build).
//!
//! `--smoke` builds nothing in release (criterion with the dev profile, the
//! dev library, its size as a pipeline check) and bounds every part (criterion with tiny measurement times, few
//! Kotlin/Swift iterations), checks what can fail (ping echoes, handle_push
//! opens the challenge, sizes are positive, the report is written) and ends with
//! `N passed, N failed`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::toolchain::{self, join_paths, target_dir};

/// Targets of issue 16.
const PUSH_RATIO_TARGET: f64 = 1.2;
const APPROVE_RATIO_TARGET: f64 = 1.2;
const KOTLIN_TARGET_NS: f64 = 5_000.0;
const SWIFT_TARGET_NS: f64 = 1_000.0;
/// 4 MB (decimal, as the sizes are printed).
const SIZE_TARGET_BYTES: u64 = 4_000_000;

/// `cargo xtask bench-device [--smoke]`.
pub fn command(args: &[String]) -> Result {
    match args {
        [] => report(false),
        [flag] if flag == "--smoke" => report(true),
        _ => Err("usage: cargo xtask bench-device [--smoke]".into()),
    }
}

/// Checks of the run (what can fail).
#[derive(Default)]
struct Checks {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(what.to_owned());
            println!("CHECK FAILED: {what}");
        }
    }

    /// Records a part that failed to run at all.
    fn part<T>(&mut self, what: &str, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => {
                self.passed += 1;
                Some(v)
            }
            Err(e) => {
                self.failed += 1;
                self.failures.push(format!("{what}: {e}"));
                println!("PART FAILED: {what}: {e}");
                None
            }
        }
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// A criterion id's mean in ns (`target/criterion/<id>/new/estimates.json`).
fn criterion_mean(id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(id)
        .join("new/estimates.json");
    let text = fs::read_to_string(path).ok()?;
    let rest = text.split_once("\"mean\"")?.1;
    let rest = rest.split_once("\"point_estimate\"")?.1;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// ns as a short human figure.
fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Bytes in decimal megabytes.
fn mib(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// FNV-1a over the files' names and contents: whether sources changed (the
/// binding generator rewrites its files, so their times say nothing).
fn fingerprint(files: &[PathBuf]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let bytes = fs::read(file).unwrap_or_default();
        for b in file.to_string_lossy().as_bytes().iter().chain(&bytes) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Generates the bindings unless those in place were generated from the
/// current library (the binding tests just did): regenerating rewrites the
/// Swift package's sources, which SwiftPM would then recompile.
fn ensure_bindings() -> Result<PathBuf> {
    let mut build = crate::cargo();
    build.args([
        "build",
        "--quiet",
        "-p",
        crate::bindings::FFI_PACKAGE,
        "--features",
        "cli",
        "--lib",
        "--bin",
        "uniffi-bindgen",
    ]);
    crate::run(
        "build countersign-ffi (debug) and uniffi-bindgen",
        &mut build,
    )?;
    let library = target_dir().join("debug/libcountersign_ffi.so");
    let kotlin = crate::bindings::out_dir().join("kotlin");
    let swift =
        crate::root().join("bindings/swift/Sources/Countersign/Generated/countersign.swift");
    let time = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match (time(&library), time(&kotlin), time(&swift)) {
        (Some(lib), Some(k), Some(s)) => k >= lib && s >= lib,
        _ => false,
    };
    if fresh {
        println!("==> bindings up to date with {}", library.display());
        return Ok(kotlin);
    }
    Ok(crate::bindings::generate(false)?.kotlin)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpus() -> String {
    std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Criterion arguments: bounded in smoke mode.
fn criterion_args(smoke: bool) -> Vec<&'static str> {
    if smoke {
        vec![
            "--warm-up-time",
            "0.05",
            "--measurement-time",
            "0.1",
            "--sample-size",
            "10",
        ]
    } else {
        vec!["--warm-up-time", "1", "--measurement-time", "3"]
    }
}

/// Runs a criterion bench of `package`. `--smoke` builds it with the dev profile,
/// whose dependencies the test run has already compiled (the bench profile is
/// an LTO release build of everything, minutes on a fresh machine).
fn run_criterion(package: &str, bench: &str, smoke: bool) -> Result {
    let mut cmd = crate::cargo();
    cmd.args(["bench", "--quiet", "-p", package, "--bench", bench]);
    if smoke {
        cmd.args(["--profile", "dev"]);
    }
    cmd.arg("--").args(criterion_args(smoke));
    crate::run(
        &format!("cargo bench -p {package} --bench {bench}"),
        &mut cmd,
    )
}

/// `RESULT key=value` lines and the final `N passed, N failed` of a runner.
struct RunnerOutput {
    results: BTreeMap<String, f64>,
    passed: u64,
    failed: u64,
}

fn parse_runner(text: &str) -> RunnerOutput {
    let mut results = BTreeMap::new();
    let mut counts = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("RESULT ") {
            for pair in rest.split_whitespace() {
                if let Some((k, v)) = pair.split_once('=')
                    && let Ok(v) = v.parse::<f64>()
                {
                    results.insert(k.to_owned(), v);
                }
            }
        }
        if line.contains(" passed, ") && line.ends_with(" failed") {
            let numbers: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            if let [p, f] = numbers.as_slice() {
                counts = (*p, *f);
            }
        }
    }
    RunnerOutput {
        results,
        passed: counts.0,
        failed: counts.1,
    }
}

/// The release library with the default features (reqwest), built in its own
/// target folder: `cargo bench` of the FFI crate writes the same file name in
/// `target/release`, and the two would relink each other's every run.
fn release_library() -> PathBuf {
    target_dir().join("size-full/release/libcountersign_ffi.so")
}

/// Compiles (when a source changed) and runs the Kotlin bench on the release library.
fn kotlin_bench(smoke: bool) -> Result<RunnerOutput> {
    let kotlin = toolchain::kotlin()?;
    let generated = ensure_bindings()?;
    let root = crate::root();
    let bench_source = root.join("bindings/benches/kotlin/FfiBench.kt");
    let mut files = Vec::new();
    crate::bindings::sources(&generated, "kt", &mut files)?;
    files.push(bench_source);
    let out = target_dir().join("bench/kotlin");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let jar = out.join("ffi-bench.jar");
    let stamp = out.join("sources.fnv");
    let sources = fingerprint(&files);
    let built = fs::read_to_string(&stamp).unwrap_or_default();
    if !jar.exists() || built != sources {
        let mut kotlinc = Command::new(&kotlin.kotlinc);
        kotlinc
            .arg("-nowarn")
            .args(["-jvm-target", "17", "-cp"])
            .arg(join_paths(&[&kotlin.coroutines, &kotlin.jna]))
            .arg("-d")
            .arg(&jar)
            .args(&files)
            .env("JAVA_OPTS", "-Xmx1g");
        crate::run("kotlinc FfiBench", &mut kotlinc)?;
        fs::write(&stamp, &sources)
            .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    } else {
        println!("==> FfiBench.jar up to date");
    }
    // `--smoke`: the dev library the bindings were generated from (no release build).
    let library = if smoke {
        target_dir().join("debug/libcountersign_ffi.so")
    } else {
        release_library()
    };
    let lib_dir = library.parent().map(Path::to_path_buf).unwrap_or_default();
    // Each of the runner's four loops warms up on a fifth of this, then runs it
    // in five rounds (about a minute in the full run).
    let iterations = if smoke { "100000" } else { "5000000" };
    let classpath = join_paths(&[&jar, &kotlin.stdlib, &kotlin.coroutines, &kotlin.jna]);
    println!("\n==> Kotlin FfiBench ({iterations} calls)");
    let output = Command::new("java")
        .arg(format!("-Djna.library.path={}", lib_dir.display()))
        .arg("-cp")
        .arg(classpath)
        .arg("org.countersign.bench.FfiBenchKt")
        .arg(iterations)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start java: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let parsed = parse_runner(&text);
    if !output.status.success() && parsed.failed == 0 {
        return Err(format!("Kotlin FfiBench failed ({})", output.status));
    }
    Ok(parsed)
}

/// Builds and runs the Swift `FfiBench` in the trixie root. The full run
/// builds it in release against the release library; `--smoke` builds it in
/// debug against the debug library, in the binding tests' build folder, where
/// everything but the bench itself is already compiled.
fn swift_bench(smoke: bool) -> Result<RunnerOutput> {
    let swift = toolchain::swift_root()?;
    // The generated Swift in the package (the Kotlin part made sure of it).
    ensure_bindings()?;
    let root = crate::root();
    let (scratch, config, library) = if smoke {
        (
            target_dir().join("binding-tests/swift"),
            "debug",
            target_dir().join("debug/libcountersign_ffi.so"),
        )
    } else {
        (
            target_dir().join("bench/swift"),
            "release",
            release_library(),
        )
    };
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let lib_dir = library
        .parent()
        .and_then(|d| d.strip_prefix(&root).ok())
        .map(|p| format!("/project/{}", p.display()))
        .ok_or("the library is outside the project")?;
    let iterations = if smoke { "1000000" } else { "50000000" };
    let script = format!(
        "cd /project && export COUNTERSIGN_LIB_DIR={lib_dir} LD_LIBRARY_PATH={lib_dir}; \
         {{ swift build -c {config} --product FfiBench --scratch-path /scratch/build && \
         /scratch/build/{config}/FfiBench {iterations}; }} >/scratch/ffi-bench.log 2>&1; \
         status=$?; cat /scratch/ffi-bench.log; exit $status"
    );
    println!("\n==> Swift FfiBench ({iterations} calls)");
    let outcome = swift.run_in_project("Swift FfiBench", &script, &scratch);
    let text = fs::read_to_string(scratch.join("ffi-bench.log")).unwrap_or_default();
    let parsed = parse_runner(&text);
    if let Err(e) = outcome
        && parsed.failed == 0
    {
        return Err(format!("Swift FfiBench: {e}"));
    }
    Ok(parsed)
}

/// One size measurement: the stripped library and the unstripped one's
/// largest crates.
struct Size {
    stripped: u64,
    by_crate: Vec<(String, u64)>,
}

/// Builds the release cdylib (`lean`: without reqwest), each variant in its own
/// target folder so both stay built (and `cargo bench` of the FFI crate, which
/// writes the same file in `target/release`, relinks neither), then measures it.
fn measure_size(lean: bool) -> Result<Size> {
    let (folder, label) = if lean {
        ("size-lean", "without reqwest")
    } else {
        ("size-full", "with reqwest")
    };
    let dir = target_dir().join(folder);
    let mut cmd = crate::cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "countersign-ffi",
        "--lib",
        "--release",
    ])
    .arg("--target-dir")
    .arg(&dir);
    if lean {
        cmd.arg("--no-default-features");
    }
    crate::run(
        &format!("cargo build -p countersign-ffi --release ({label})"),
        &mut cmd,
    )?;
    size_of(
        &dir.join("release/libcountersign_ffi.so"),
        &format!("libcountersign_ffi.{folder}.stripped.so"),
    )
}

/// `--smoke`: the size pipeline on the dev library the binding tests built (no
/// release build: three LTO builds would add minutes to every test run). The
/// figure is not the shipped size; the report says so.
fn measure_dev_size() -> Result<Size> {
    ensure_bindings()?;
    size_of(
        &target_dir().join("debug/libcountersign_ffi.so"),
        "libcountersign_ffi.dev.stripped.so",
    )
}

/// Strips a copy of `library` like `release-stripped` does (`strip --strip-all`)
/// and sums the unstripped symbols by crate.
fn size_of(library: &Path, stripped_name: &str) -> Result<Size> {
    let out = target_dir().join("bench");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let stripped = out.join(stripped_name);
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(library)
        .status()
        .map_err(|e| format!("cannot start strip: {e}"))?;
    if !status.success() {
        return Err(format!("strip {} failed", library.display()));
    }
    let size = fs::metadata(&stripped)
        .map_err(|e| format!("{}: {e}", stripped.display()))?
        .len();
    Ok(Size {
        stripped: size,
        by_crate: symbols_by_crate(library)?,
    })
}

/// `nm -S -C --defined-only` sizes summed by the first path segment.
fn symbols_by_crate(library: &Path) -> Result<Vec<(String, u64)>> {
    let output = Command::new("nm")
        .args(["-S", "-C", "--defined-only", "--size-sort"])
        .arg(library)
        .output()
        .map_err(|e| format!("cannot start nm: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(_), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        *sums.entry(crate_of(name)).or_default() += size;
    }
    let mut list: Vec<(String, u64)> = sums.into_iter().collect();
    list.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    Ok(list)
}

/// The crate a demangled symbol belongs to (C symbols: `ring` for ring's
/// `ring_core_*`, else `C/other`).
fn crate_of(name: &str) -> String {
    let name = name.trim_start_matches('<').trim_start_matches('&');
    let name = name.strip_prefix("impl ").unwrap_or(name);
    if name.starts_with("ring_core_") {
        return "ring (C/asm)".into();
    }
    match name.split_once("::") {
        Some((head, _)) if !head.contains(' ') && !head.is_empty() => head.to_owned(),
        _ => "C/other".into(),
    }
}

/// Runs everything and writes the report.
pub fn report(smoke: bool) -> Result {
    let started = Instant::now();
    let mut checks = Checks::default();
    let load_before = load_average();
    let mode = if smoke { "smoke" } else { "full" };
    let command = if smoke {
        "cargo xtask bench-device --smoke"
    } else {
        "cargo xtask bench-device"
    };
    let mut md = format!(
        "# Device performance (issue 16)\n\nReproduce: `{command}` ({mode} run; the full run \
         measures 3 s per figure, `--smoke` only checks the pipeline and its figures are rough).\n\n"
    );

    // 3. Library size (first: the full run's Kotlin and Swift benches load this build).
    let (with, without) = if smoke {
        (
            checks.part("library size (dev library)", measure_dev_size()),
            None,
        )
    } else {
        (
            checks.part("library size (with reqwest)", measure_size(false)),
            checks.part("library size (without reqwest)", measure_size(true)),
        )
    };

    // 1. Device costs.
    let device_run = run_criterion("countersign-core", "device", smoke);
    checks.part("criterion core/benches/device.rs", device_run);
    // 2. FFI: the Rust side (a fraction of a nanosecond). Building the bench
    // links the FFI crate's cdylib and staticlib with LTO (about a minute), so
    // `--smoke` shows the last full run's figures instead.
    if !smoke {
        let ffi_run = run_criterion("countersign-ffi", "ffi_baseline", smoke);
        checks.part("criterion bindings/benches/ffi_baseline.rs", ffi_run);
    }
    let kotlin = checks.part("Kotlin FfiBench", kotlin_bench(smoke));
    let swift = checks.part("Swift FfiBench", swift_bench(smoke));
    let load_after = load_average();

    md.push_str(&format!(
        "Machine: {} CPUs; load average before {load_before}, after {load_after}. \
         Criterion means; ratios are of means measured in this one run.\n\n",
        cpus()
    ));

    // -- Device costs
    let m = |id: &str| criterion_mean(id);
    let push = m("device/handle_push");
    let verify = m("primitive/verify");
    let hpke_open = m("primitive/hpke_open");
    let parse = m("primitive/parse");
    md.push_str("## 1. Device costs (core API vs primitives)\n\n");
    md.push_str("| figure | mean |\n|---|---|\n");
    for (label, id) in [
        (
            "handle_push (core API, mock server in process)",
            "device/handle_push",
        ),
        ("approve, no UV", "device/approve_none"),
        (
            "approve, PIN (PBKDF2 10 000 iterations)",
            "device/approve_pin",
        ),
        (
            "TOTP through the API (seed opened by the vault)",
            "device/totp",
        ),
        ("primitive: ECDSA P-256 verify", "primitive/verify"),
        ("primitive: ECDH (static key)", "primitive/ecdh"),
        (
            "primitive: HKDF-SHA256 (one extract + expand)",
            "primitive/hkdf",
        ),
        (
            "primitive: AES-128-GCM open (challenge)",
            "primitive/aes_gcm_open",
        ),
        (
            "primitive: HPKE open (ECDH + key schedule + AES-GCM)",
            "primitive/hpke_open",
        ),
        ("primitive: HPKE seal", "primitive/hpke_seal"),
        ("primitive: challenge parse", "primitive/parse"),
        ("primitive: ECDSA P-256 sign", "primitive/sign"),
        ("primitive: KEM keygen (ring)", "primitive/kem_keygen"),
        (
            "primitive: PBKDF2 PIN (10 000 iterations)",
            "primitive/pbkdf2_pin",
        ),
        ("primitive: push OTP HMAC-SHA256", "primitive/push_otp_hmac"),
        ("primitive: TOTP (RFC 6238, SHA-1)", "primitive/totp"),
        (
            "primitive: OCRA (OCRA-1:HOTP-SHA256-8:QN08)",
            "primitive/ocra",
        ),
        (
            "before: vault sign, key re-parsed",
            "before/vault_sign_reparsed",
        ),
        (
            "before: vault ECDH, key re-parsed",
            "before/vault_ecdh_reparsed",
        ),
        ("before: KEM keygen through p256", "before/kem_keygen_p256"),
    ] {
        let value = m(id);
        checks.check(
            &format!("criterion figure {id}"),
            value.is_some_and(|v| v > 0.0),
        );
        md.push_str(&format!(
            "| {label} | {} |\n",
            value.map(human).unwrap_or_else(|| "n/a".into())
        ));
    }
    md.push('\n');
    if let (Some(push), Some(verify), Some(open), Some(parse)) = (push, verify, hpke_open, parse) {
        let sum = verify + open + parse;
        let ratio = push / sum;
        let sign = m("primitive/sign").unwrap_or(0.0);
        md.push_str(&format!(
            "* handle_push {} vs verify + HPKE open + parse = {} → **{ratio:.2}×** \
             (target ≤ {PUSH_RATIO_TARGET}×: {}); with the fetch's request signature \
             (+ {}) → {:.2}×\n",
            human(push),
            human(sum),
            met(ratio <= PUSH_RATIO_TARGET),
            human(sign),
            push / (sum + sign)
        ));
    }
    if let (Some(none), Some(sign)) = (m("device/approve_none"), m("primitive/sign")) {
        let ratio = none / sign;
        let keygen = m("primitive/kem_keygen").unwrap_or(0.0);
        let otp = m("primitive/push_otp_hmac").unwrap_or(0.0);
        let aes = m("primitive/aes_gcm_open").unwrap_or(0.0);
        // The answer's signature, the HTTP request's signature (Dp), the next
        // KEM key, the push OTP and the seed opened by the vault.
        let all = 2.0 * sign + keygen + otp + aes;
        md.push_str(&format!(
            "* approve (no UV) {} vs one signature {} → **{ratio:.2}×** (target ≤ \
             {APPROVE_RATIO_TARGET}×: {}); vs every primitive it runs (2 signatures: answer \
             and request, + next KEM key + push OTP + seed open = {}) → {:.2}×\n",
            human(none),
            human(sign),
            met(ratio <= APPROVE_RATIO_TARGET),
            human(all),
            none / all
        ));
    }
    if let (Some(pin), Some(sign), Some(uv)) = (
        m("device/approve_pin"),
        m("primitive/sign"),
        m("primitive/pbkdf2_pin"),
    ) {
        let ratio = pin / (sign + uv);
        md.push_str(&format!(
            "* approve (PIN) {} vs one signature + PBKDF2 {} → **{ratio:.2}×** (target ≤ \
             {APPROVE_RATIO_TARGET}×: {})\n",
            human(pin),
            human(sign + uv),
            met(ratio <= APPROVE_RATIO_TARGET)
        ));
    }
    if let (Some(before), Some(after)) = (m("before/kem_keygen_p256"), m("primitive/kem_keygen")) {
        md.push_str(&format!(
            "* KEM keygen: p256 {} → ring {} ({:.1}× faster)\n",
            human(before),
            human(after),
            before / after
        ));
    }
    if let (Some(before), Some(after)) = (m("before/vault_sign_reparsed"), m("primitive/sign")) {
        md.push_str(&format!(
            "* vault sign: key re-parsed each time {} → cached {} (+ storage read)\n",
            human(before),
            human(after)
        ));
    }
    md.push('\n');

    // -- FFI
    md.push_str("## 2. FFI overhead (`ping(u64) -> u64`)\n\n| caller | per call |\n|---|---|\n");
    let rust_ping = m("ffi/ping_rust");
    let rust_c = m("ffi/ping_c_abi");
    let rust_note = if smoke { " (last full run)" } else { "" };
    for (label, value) in [
        ("Rust, direct call", rust_ping),
        ("Rust, through the C ABI scaffolding", rust_c),
    ] {
        md.push_str(&format!(
            "| {label}{rust_note} | {} |\n",
            value.map(human).unwrap_or_else(|| "n/a".into())
        ));
    }
    let baseline = rust_c.or(rust_ping).unwrap_or(0.0);
    if let Some(k) = &kotlin {
        checks.check("Kotlin FfiBench checks", k.failed == 0 && k.passed > 0);
        let wall = k.results.get("kotlin_ping_wall_ns").copied();
        let cpu = k.results.get("kotlin_ping_cpu_ns").copied();
        let version = k.results.get("kotlin_core_version_cpu_ns").copied();
        if let (Some(wall), Some(cpu)) = (wall, cpu) {
            md.push_str(&format!(
                "| Kotlin (JVM + JNA), wall | {} |\n| Kotlin (JVM + JNA), CPU (median of 5 rounds \
                 after warm-up) | {} (overhead {} over Rust; target ≤ 5 µs: {}) |\n",
                human(wall),
                human(cpu),
                human(cpu - baseline),
                met(cpu - baseline <= KOTLIN_TARGET_NS)
            ));
        }
        // Where the time goes: each part of a generated call timed alone.
        for (label, key) in [
            (
                "Kotlin, part: a JNA direct call of ints only (JNA's floor), CPU",
                "kotlin_jna_direct_cpu_ns",
            ),
            (
                "Kotlin, part: the generated native `ping`, one call status reused, CPU",
                "kotlin_ping_reused_status_cpu_ns",
            ),
            (
                "Kotlin, part: `UniffiRustCallStatus()` alone (every generated call makes one), CPU",
                "kotlin_status_alloc_cpu_ns",
            ),
        ] {
            if let Some(v) = k.results.get(key).copied() {
                md.push_str(&format!("| {label} | {} |\n", human(v)));
            }
        }
        if let Some(v) = version {
            md.push_str(&format!(
                "| Kotlin `coreVersion()` (string), CPU | {} |\n",
                human(v)
            ));
        }
        md.push_str(&format!(
            "| Kotlin runner | {} passed, {} failed |\n",
            k.passed, k.failed
        ));
    }
    if let Some(s) = &swift {
        checks.check("Swift FfiBench checks", s.failed == 0 && s.passed > 0);
        if let Some(ns) = s.results.get("swift_ping_ns").copied() {
            md.push_str(&format!(
                "| Swift (Linux, {}) | {} (overhead {} over Rust; target ≤ 1 µs: {}) |\n",
                if smoke {
                    "debug build"
                } else {
                    "release build"
                },
                human(ns),
                human(ns - baseline),
                met(ns - baseline <= SWIFT_TARGET_NS)
            ));
        }
        if let Some(v) = s.results.get("swift_core_version_ns").copied() {
            md.push_str(&format!(
                "| Swift `coreVersion()` (string) | {} |\n",
                human(v)
            ));
        }
        md.push_str(&format!(
            "| Swift runner | {} passed, {} failed |\n",
            s.passed, s.failed
        ));
    }
    md.push('\n');

    // -- Size
    md.push_str(if smoke {
        "## 3. Library size (smoke: the dev library, stripped; not the shipped size)\n\n"
    } else {
        "## 3. Library size (x86_64, release, stripped)\n\n"
    });
    if let Some(w) = &with {
        checks.check("stripped size with reqwest > 0", w.stripped > 0);
        let verdict = if smoke {
            "a dev build: the target applies to the release build".to_owned()
        } else {
            format!("target ≤ 4 MB: {}", met(w.stripped <= SIZE_TARGET_BYTES))
        };
        md.push_str(&format!(
            "* with reqwest: **{}** ({verdict})\n",
            mib(w.stripped)
        ));
    }
    if let Some(wo) = &without {
        checks.check("stripped size without reqwest > 0", wo.stripped > 0);
        md.push_str(&format!("* without reqwest: **{}**", mib(wo.stripped)));
        if let Some(w) = &with {
            md.push_str(&format!(
                " (the HTTP client costs {})",
                mib(w.stripped.saturating_sub(wo.stripped))
            ));
        }
        md.push('\n');
    }
    if let Some(w) = &with {
        md.push_str(
            "\nLargest contributors (unstripped symbols by crate, with reqwest; generic code \
             is counted where it is defined, e.g. `core`):\n\n| crate | bytes |\n|---|---|\n",
        );
        for (name, bytes) in w.by_crate.iter().take(15) {
            md.push_str(&format!("| {name} | {} |\n", mib(*bytes)));
        }
    }
    md.push('\n');

    md.push_str(&format!(
        "Run took {:.0} s. Checks: {} passed, {} failed.\n",
        started.elapsed().as_secs_f64(),
        checks.passed,
        checks.failed
    ));
    for f in &checks.failures {
        md.push_str(&format!("* failed: {f}\n"));
    }
    let out = target_dir().join("bench/device.md");
    let written = out
        .parent()
        .map(fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|()| fs::write(&out, &md));
    println!("\n{md}");
    checks.check("report written", written.is_ok());
    println!("report: {}", out.display());
    println!("{} passed, {} failed", checks.passed, checks.failed);
    if checks.failed > 0 {
        return Err(format!("bench-device: {} check(s) failed", checks.failed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runner_output_and_crates() {
        let out = parse_runner("RESULT a=1.5 b=2\nnoise\n3 passed, 1 failed\n");
        assert_eq!(out.results.get("a"), Some(&1.5));
        assert_eq!(out.results.get("b"), Some(&2.0));
        assert_eq!((out.passed, out.failed), (3, 1));
        assert_eq!(
            crate_of("<reqwest::Client as core::Clone>::clone"),
            "reqwest"
        );
        assert_eq!(crate_of("ring_core_0_17_14_p256_point_mul"), "ring (C/asm)");
        assert_eq!(crate_of("memcpy"), "C/other");
        assert_eq!(human(1_500.0), "1.5 µs");
    }
}
