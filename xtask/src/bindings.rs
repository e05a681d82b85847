//! `cargo xtask bindings`: builds countersign-ffi and generates its Kotlin and Swift
//! bindings with the workspace's pinned `uniffi-bindgen`, from the unstripped library.
//!
//! Output (ignored by git): `target/bindings/kotlin/` and `target/bindings/swift/`.
//! The Swift package's generated files are also copied into `bindings/swift/Sources/`
//! (ignored there too) so `Package.swift` finds them.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::toolchain::{self, Kotlin, SwiftRoot, join_paths, target_dir};

/// The cargo package and library names of the FFI crate.
pub const FFI_PACKAGE: &str = "countersign-ffi";
/// The library file stem (`lib<stem>.so`, `lib<stem>.a`).
pub const FFI_LIB: &str = "countersign_ffi";
/// The uniffi namespace (`uniffi::setup_scaffolding!("countersign")`).
pub const NAMESPACE: &str = "countersign";

/// Where the generated sources go.
pub fn out_dir() -> PathBuf {
    target_dir().join("bindings")
}

/// What a generation produced.
pub struct Generated {
    /// The host library the bindings were generated from (unstripped).
    pub library: PathBuf,
    /// The directory holding `library` (for JNA / LD_LIBRARY_PATH / -L).
    pub library_dir: PathBuf,
    /// Generated Kotlin sources (a package tree).
    pub kotlin: PathBuf,
    /// Generated Swift: `countersign.swift`, `countersignFFI.h`, `countersignFFI.modulemap`.
    pub swift: PathBuf,
}

/// `cargo xtask bindings [--release]`.
pub fn command(args: &[String]) -> Result {
    let release = match args {
        [] => false,
        [flag] if flag == "--release" => true,
        [flag] if flag == "--test" => return run_tests(true, true),
        [flag] if flag == "--test-kotlin" => return run_tests(true, false),
        [flag] if flag == "--test-swift" => return run_tests(false, true),
        _ => {
            return Err(
                "usage: cargo xtask bindings [--release | --test | --test-kotlin | --test-swift]"
                    .into(),
            );
        }
    };
    let generated = generate(release)?;
    println!(
        "\nbindings generated from {}:\n  Kotlin: {}\n  Swift:  {}",
        generated.library.display(),
        generated.kotlin.display(),
        generated.swift.display()
    );
    Ok(())
}

/// Builds the host library (debug or release, never stripped) and the bindgen
/// binary, then generates Kotlin and Swift.
pub fn generate(release: bool) -> Result<Generated> {
    let profile = if release { "release" } else { "debug" };
    let mut build = crate::cargo();
    build.args([
        "build",
        "-p",
        FFI_PACKAGE,
        "--features",
        "cli",
        "--lib",
        "--bin",
        "uniffi-bindgen",
    ]);
    if release {
        build.arg("--release");
    }
    crate::run(
        &format!("build {FFI_PACKAGE} ({profile}) and uniffi-bindgen"),
        &mut build,
    )?;

    let library_dir = target_dir().join(profile);
    let library = library_dir.join(host_library_name());
    if !library.exists() {
        return Err(format!("{} was not built", library.display()));
    }
    let bindgen = library_dir.join("uniffi-bindgen");
    let out = out_dir();
    let kotlin = out.join("kotlin");
    let swift = out.join("swift");
    for (language, dir) in [("kotlin", &kotlin), ("swift", &swift)] {
        // Stale files from an older API must not survive.
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        crate::run(
            &format!("uniffi-bindgen generate --language {language}"),
            std::process::Command::new(&bindgen)
                .current_dir(crate::root())
                .arg("generate")
                .arg(&library)
                .args(["--language", language, "--no-format", "--out-dir"])
                .arg(dir),
        )?;
    }
    copy_into_swift_package(&swift)?;
    Ok(Generated {
        library,
        library_dir,
        kotlin,
        swift,
    })
}

/// `libcountersign_ffi.so` (Linux), `.dylib` (macOS).
fn host_library_name() -> String {
    if cfg!(target_os = "macos") {
        format!("lib{FFI_LIB}.dylib")
    } else {
        format!("lib{FFI_LIB}.so")
    }
}

/// Copies the generated Swift into the Swift package layout:
/// `Sources/Countersign/countersign.swift` and the C module's header for Linux
/// (`Sources/countersignFFI/`, next to its checked-in `module.modulemap`).
pub fn copy_into_swift_package(generated: &Path) -> Result {
    let package = crate::root().join("bindings/swift/Sources");
    let copies = [
        (
            generated.join(format!("{NAMESPACE}.swift")),
            package
                .join("Countersign/Generated")
                .join(format!("{NAMESPACE}.swift")),
        ),
        (
            generated.join(format!("{NAMESPACE}FFI.h")),
            package.join(format!("{NAMESPACE}FFI/{NAMESPACE}FFI.h")),
        ),
    ];
    for (from, to) in copies {
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        fs::copy(&from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Installs the toolchains (first run only), then compiles and runs the Kotlin and
/// Swift binding tests (and the sample apps' shared logic) against a
/// `countersign server` on loopback. Each suite ends with `N passed, N failed`.
pub fn test_kotlin_and_swift() -> Result {
    run_tests(true, true)
}

/// Runs the Kotlin and/or Swift suites.
fn run_tests(with_kotlin: bool, with_swift: bool) -> Result {
    let started = Instant::now();
    let kotlin = if with_kotlin {
        Some(toolchain::kotlin()?)
    } else {
        None
    };
    let swift = if with_swift {
        Some(toolchain::swift_root()?)
    } else {
        None
    };
    let generated = generate(false)?;
    crate::build_host_binaries()?;
    let server = TestServer::start()?;
    let kotlin_result = kotlin.map(|k| run_kotlin(&k, &generated, &server));
    let swift_result = swift.map(|s| run_swift(&s, &generated, &server));
    drop(server);
    let mut summary = Vec::new();
    for (name, result) in [("Kotlin", kotlin_result), ("Swift", swift_result)] {
        if let Some(result) = result {
            let c = result?;
            summary.push(format!("{name} {} passed, {} failed", c.passed, c.failed));
        }
    }
    println!(
        "\nbinding tests: {} ({:.0}s)",
        summary.join("; "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Test counts of one suite.
#[derive(Debug, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    /// Prints the summary line and fails when a test failed or none ran.
    fn check(self, suite: &str) -> Result<Self> {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed > 0 {
            Err(format!("{suite}: {} test(s) failed", self.failed))
        } else if self.passed == 0 {
            Err(format!("{suite}: no test ran"))
        } else {
            Ok(self)
        }
    }
}

/// A `countersign server` on a free loopback port with SQLite in a temp folder,
/// and one relying party. Killed on drop.
struct TestServer {
    child: Child,
    url: String,
    api_key: String,
    dir: PathBuf,
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Pulls `"field": "value"` out of a JSON text (the server's own, flat output).
fn json_string_field(text: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let rest = text.split_once(&key)?.1;
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    rest.split_once('"').map(|(v, _)| v.to_string())
}

impl TestServer {
    fn start() -> Result<Self> {
        let binary = target_dir().join("debug/countersign");
        let dir = target_dir().join("binding-tests/server");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let db = format!("sqlite://{}?mode=rwc", dir.join("countersign.db").display());
        let master = random_hex(32)?;
        // No growing wait between pushes after denials: the binding tests deny
        // several pushes of one user in a row (the wait itself is tested in
        // server/tests/attacker.rs).
        let config = dir.join("server.toml");
        fs::write(&config, "[policy]\npush_backoff_secs = 0\n")
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let base = |cmd: &mut Command| {
            cmd.arg("--config")
                .arg(&config)
                .arg("--database-url")
                .arg(&db)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--public-url")
                .arg(&url)
                .arg("--master-key")
                .arg(&master)
                .env("COUNTERSIGN_LOG", "warn")
                .stdin(Stdio::null());
        };
        let mut create = Command::new(&binary);
        create
            .args(["admin", "--json", "--database-url"])
            .arg(&db)
            .arg("--master-key")
            .arg(&master)
            .args(["rp", "create", "--name", "Binding Tests"])
            .env("COUNTERSIGN_LOG", "warn")
            .stdin(Stdio::null());
        let out = create
            .output()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        if !out.status.success() {
            return Err(format!(
                "countersign admin rp create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let api_key = json_string_field(&text, "api_key")
            .ok_or_else(|| format!("admin rp create printed no api_key: {text}"))?;

        let log = fs::File::create(dir.join("server.log"))
            .map_err(|e| format!("cannot create server log: {e}"))?;
        let err_log = log.try_clone().map_err(|e| format!("server log: {e}"))?;
        let mut serve = Command::new(&binary);
        serve.arg("server");
        base(&mut serve);
        serve.arg("serve").stdout(log).stderr(err_log);
        let child = serve
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let server = Self {
            child,
            url,
            api_key,
            dir,
        };
        server.wait_healthy()?;
        println!(
            "==> countersign server on {} (log: {})",
            server.url,
            server.dir.join("server.log").display()
        );
        Ok(server)
    }

    /// Polls `/healthz` with a raw HTTP/1.1 request (no client crate needed).
    fn wait_healthy(&self) -> Result {
        let addr = self.url.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
                let request =
                    format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                let mut response = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut response).is_ok()
                    && response.starts_with("HTTP/1.1 200")
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "countersign server did not become healthy on {}; log:\n{log}",
            self.url
        ))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Only the child we started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` ending in `ext`, sorted.
pub fn sources(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result {
    if !dir.exists() {
        return Err(format!("{} is missing", dir.display()));
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// Compiles the generated Kotlin, the library facade, the Android sample's shared
/// logic and the tests with kotlinc, then runs them with the JUnit 5 console launcher.
fn run_kotlin(kotlin: &Kotlin, generated: &Generated, server: &TestServer) -> Result<Counts> {
    let root = crate::root();
    let mut files = Vec::new();
    sources(&generated.kotlin, "kt", &mut files)?;
    sources(
        &root.join("bindings/kotlin/src/main/kotlin"),
        "kt",
        &mut files,
    )?;
    sources(
        &root.join("android-sample/shared/src/main/kotlin"),
        "kt",
        &mut files,
    )?;
    sources(&root.join("tests/kotlin"), "kt", &mut files)?;
    let out = target_dir().join("binding-tests/kotlin");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let jar = out.join("countersign-tests.jar");
    let _ = fs::remove_file(&jar);
    let mut kotlinc = Command::new(&kotlin.kotlinc);
    kotlinc
        .arg("-nowarn")
        .args(["-jvm-target", "17", "-cp"])
        .arg(kotlin.compile_classpath())
        .arg("-d")
        .arg(&jar)
        .args(&files)
        .env("JAVA_OPTS", "-Xmx1g");
    crate::run(&format!("kotlinc ({} files)", files.len()), &mut kotlinc)?;

    let classpath = join_paths(&[&jar, &kotlin.stdlib, &kotlin.coroutines, &kotlin.jna]);
    println!("\n==> Kotlin tests (JUnit 5, JNA)");
    let test_started = Instant::now();
    let output = Command::new("java")
        .arg(format!(
            "-Djna.library.path={}",
            generated.library_dir.display()
        ))
        .arg("-jar")
        .arg(&kotlin.junit_console)
        .args([
            "--disable-banner",
            "--disable-ansi-colors",
            "--details=tree",
            "--details-theme=ascii",
            "--fail-if-no-tests",
            "--class-path",
        ])
        .arg(&classpath)
        .arg("--scan-class-path")
        .arg(&jar)
        .env("COUNTERSIGN_SERVER_URL", &server.url)
        .env("COUNTERSIGN_RP_API_KEY", &server.api_key)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start java: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    println!(
        "<== Kotlin tests: {:.1}s",
        test_started.elapsed().as_secs_f64()
    );
    // The launcher's summary: "[         9 tests successful      ]".
    let count = |label: &str| -> Option<u64> {
        text.lines().find(|l| l.contains(label)).and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.trim_start_matches('[').parse().ok())
        })
    };
    let counts = Counts {
        passed: count("tests successful").unwrap_or(0),
        failed: count("tests failed").unwrap_or(0),
    };
    if !output.status.success() && counts.failed == 0 {
        return Err(format!("Kotlin test launcher failed ({})", output.status));
    }
    counts.check("Kotlin")
}

/// Runs `swift test` on the package (Linux configuration) in the trixie root:
/// the generated Swift, the async facade, the iOS sample's shared logic and the
/// XCTest suite.
fn run_swift(swift: &SwiftRoot, generated: &Generated, server: &TestServer) -> Result<Counts> {
    let root = crate::root();
    let scratch = target_dir().join("binding-tests/swift");
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let log = scratch.join("swift-test.log");
    let lib_dir = generated
        .library_dir
        .strip_prefix(&root)
        .map(|p| format!("/project/{}", p.display()))
        .map_err(|_| format!("{} is outside the project", generated.library_dir.display()))?;
    let script = format!(
        "cd /project && export COUNTERSIGN_LIB_DIR={lib_dir} LD_LIBRARY_PATH={lib_dir} \
         COUNTERSIGN_SERVER_URL={url} COUNTERSIGN_RP_API_KEY={key}; \
         {{ swift build --product NotificationExtensionHarness --scratch-path /scratch/build && \
         swift test --disable-swift-testing --scratch-path /scratch/build; }} >/scratch/swift-test.log 2>&1; \
         status=$?; cat /scratch/swift-test.log; exit $status",
        url = server.url,
        key = server.api_key,
    );
    println!("\n==> Swift tests (swift test in the Debian trixie root)");
    let test_started = Instant::now();
    let outcome = swift.run_in_project("swift test", &script, &scratch);
    println!(
        "<== Swift tests: {:.1}s",
        test_started.elapsed().as_secs_f64()
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    // XCTest: "Executed 8 tests, with 0 failures (0 unexpected) in 1.2 seconds".
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains("Executed ") && l.contains(" tests, with "))
        .ok_or_else(|| {
            format!(
                "swift test printed no XCTest summary (log: {})",
                log.display()
            )
        })?;
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (executed, failures) = match numbers.as_slice() {
        [executed, failures, ..] => (*executed, *failures),
        _ => return Err(format!("cannot read the XCTest summary: {summary}")),
    };
    let counts = Counts {
        passed: executed.saturating_sub(failures),
        failed: failures,
    };
    if outcome.is_err() && counts.failed == 0 {
        return Err(format!("swift test failed (log: {})", log.display()));
    }
    counts.check("Swift")
}
