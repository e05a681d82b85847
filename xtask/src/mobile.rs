//! Workstation builds of the mobile libraries (CI cannot run these: no Android NDK,
//! no Xcode there).
//!
//! * `cargo xtask android`: cargo-ndk builds `countersign-ffi` for the four Android
//!   ABIs, without the reqwest client (on Android the Kotlin library's default
//!   `HttpClient` is `UrlConnectionHttpClient` on the platform's network stack:
//!   reqwest's certificate check through rustls-platform-verifier would need a JNI
//!   initialisation), fills the Gradle module `bindings/kotlin` (AAR layout:
//!   `src/main/jniLibs/<abi>/libcountersign_ffi.so`, generated Kotlin under
//!   `src/main/generated/`), then runs Gradle to publish the AAR and its POM into
//!   the local Maven repository `target/maven/` (`org.countersign:countersign`).
//! * `cargo xtask apple [--no-reqwest] [--release-url URL]`: builds the static
//!   library for iOS devices, the iOS simulator (arm64 + x86_64) and macOS (arm64 +
//!   x86_64), merges the fat slices with `lipo`, makes
//!   `bindings/swift/countersignFFI.xcframework` with `xcodebuild
//!   -create-xcframework`, zips it (`ditto`) into
//!   `target/apple/countersignFFI.xcframework.zip` and computes the SwiftPM
//!   checksum. With `--release-url`, Package.swift's remote `binaryTarget` is set
//!   to that URL and checksum (upload the zip there).
//!
//! Both ship the `release-stripped` profile; the bindings are generated from the
//! unstripped host library first (stripping removes uniffi's metadata).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::bindings::{self, FFI_LIB, FFI_PACKAGE, NAMESPACE};
use crate::toolchain::target_dir;

/// Android ABIs and their Rust targets.
const ANDROID_ABIS: [(&str, &str); 4] = [
    ("arm64-v8a", "aarch64-linux-android"),
    ("armeabi-v7a", "armv7-linux-androideabi"),
    ("x86_64", "x86_64-linux-android"),
    ("x86", "i686-linux-android"),
];
/// minSdk of the Gradle module (Android 7.0); keep in step with build.gradle.kts.
/// The library itself needs no Keystore feature; a vault doing ECDH in the
/// Keystore (`PURPOSE_AGREE_KEY`) needs API 31, which the sample app requires.
const ANDROID_API: &str = "24";
/// The published version; keep in step with `version` in build.gradle.kts.
const ANDROID_VERSION: &str = "0.1.0";

const IOS_DEVICE: &str = "aarch64-apple-ios";
const IOS_SIMULATOR: [&str; 2] = ["aarch64-apple-ios-sim", "x86_64-apple-ios"];
const MACOS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];

/// The shipped (stripped) profile.
const SHIP_PROFILE: &str = "release-stripped";

/// Options of `cargo xtask apple`.
struct AppleOptions {
    /// Keep the core's reqwest HTTP client (`--no-reqwest` drops it).
    reqwest: bool,
    /// Where the release zip will be downloadable (`--release-url`).
    release_url: Option<String>,
}

const APPLE_USAGE: &str = "usage: cargo xtask apple [--no-reqwest] [--release-url URL]";

fn parse_apple(args: &[String]) -> Result<AppleOptions> {
    let mut options = AppleOptions {
        reqwest: true,
        release_url: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-reqwest" => options.reqwest = false,
            "--release-url" => match args.next() {
                Some(url) if url.starts_with("https://") && !url.contains('"') => {
                    options.release_url = Some(url.clone());
                }
                _ => return Err(format!("--release-url needs an https URL\n{APPLE_USAGE}")),
            },
            _ => return Err(APPLE_USAGE.into()),
        }
    }
    Ok(options)
}

/// Cargo feature arguments for the FFI crate.
fn feature_args(reqwest: bool) -> Vec<&'static str> {
    if reqwest {
        vec![]
    } else {
        vec!["--no-default-features"]
    }
}

/// Rust targets from `targets` that rustup has not installed.
fn missing_rust_targets(targets: &[&str]) -> Result<Vec<String>> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup not found ({e}): install Rust with rustup"))?;
    let installed = String::from_utf8_lossy(&out.stdout);
    Ok(targets
        .iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == **t))
        .map(|t| (*t).to_string())
        .collect())
}

fn need_targets(targets: &[&str]) -> Result {
    let missing = missing_rust_targets(targets)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing Rust targets; install them with:\n    rustup target add {}",
            missing.join(" ")
        ))
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest)?;
        } else {
            fs::copy(&path, &dest).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn recreate(dir: &Path) -> Result {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// `cargo xtask android`.
pub fn android(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err("usage: cargo xtask android".into());
    }
    // Check every prerequisite before building anything.
    let ndk_ok = crate::cargo()
        .args(["ndk", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ndk_ok {
        return Err("cargo-ndk is not installed: cargo install cargo-ndk --locked".into());
    }
    let ndk_home = ["ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "ANDROID_NDK"]
        .iter()
        .find_map(std::env::var_os);
    if ndk_home.is_none() {
        return Err(
            "no Android NDK: install NDK r27 or newer (Android Studio > SDK Manager > NDK, or \
             `sdkmanager 'ndk;27.2.12479018'`) and export ANDROID_NDK_HOME=<sdk>/ndk/<version>"
                .into(),
        );
    }
    if !crate::have("gradle") {
        return Err(
            "gradle not found: install Gradle 8.9+ (with JDK 17 and the Android SDK; set \
             ANDROID_HOME) to build and publish the AAR"
                .into(),
        );
    }
    let rust_targets: Vec<&str> = ANDROID_ABIS.iter().map(|(_, t)| *t).collect();
    need_targets(&rust_targets)?;

    // Kotlin comes from the unstripped host library.
    let generated = bindings::generate(true)?;
    let module = crate::root().join("bindings/kotlin");
    let jni_libs = module.join("src/main/jniLibs");
    let kotlin_out = module.join("src/main/generated");
    recreate(&jni_libs)?;
    recreate(&kotlin_out)?;
    copy_dir(&generated.kotlin, &kotlin_out)?;

    let mut build = crate::cargo();
    build.arg("ndk");
    for (abi, _) in ANDROID_ABIS {
        build.args(["-t", abi]);
    }
    build
        .args(["--platform", ANDROID_API, "-o"])
        .arg(&jni_libs)
        .args([
            "build",
            "-p",
            FFI_PACKAGE,
            "--lib",
            "--profile",
            SHIP_PROFILE,
        ])
        .args(feature_args(false));
    crate::run("cargo ndk (4 ABIs)", &mut build)?;
    for (abi, _) in ANDROID_ABIS {
        let lib = jni_libs.join(abi).join(format!("lib{FFI_LIB}.so"));
        let size = fs::metadata(&lib)
            .map_err(|e| format!("{} missing after cargo ndk: {e}", lib.display()))?
            .len();
        println!("  {abi:<12} {:>8} KiB  {}", size / 1024, lib.display());
    }

    // The AAR and its POM, into a Maven repository an app's Gradle can use.
    let maven = target_dir().join("maven");
    let mut gradle = Command::new("gradle");
    gradle
        .arg("-p")
        .arg(&module)
        .arg(format!("-PcountersignMavenRepo={}", maven.display()))
        .arg("publishReleasePublicationToLocalRepository");
    crate::run("gradle publish (AAR + POM)", &mut gradle)?;
    let artifact = maven.join(format!("org/countersign/countersign/{ANDROID_VERSION}"));
    for ext in ["aar", "pom"] {
        let file = artifact.join(format!("countersign-{ANDROID_VERSION}.{ext}"));
        let size = fs::metadata(&file)
            .map_err(|e| format!("{} missing after gradle publish: {e}", file.display()))?
            .len();
        println!("  {ext:<4} {:>8} KiB  {}", size / 1024, file.display());
    }
    println!(
        "\nMaven repository ready: {}\nIn the app: repositories {{ maven(url = \"{}\") }} and \
         implementation(\"org.countersign:countersign:{ANDROID_VERSION}\")",
        maven.display(),
        maven.display()
    );
    Ok(())
}

/// `cargo xtask apple [--no-reqwest] [--release-url URL]`.
pub fn apple(args: &[String]) -> Result {
    let options = parse_apple(args)?;
    let reqwest = options.reqwest;
    if !cfg!(target_os = "macos") {
        return Err(
            "the XCFramework needs macOS with Xcode 16+ (xcodebuild, lipo); run `cargo xtask \
             apple` on a Mac"
                .into(),
        );
    }
    for tool in ["xcodebuild", "lipo", "ditto", "swift"] {
        if !crate::have(tool) {
            return Err(format!(
                "{tool} not found: install Xcode 16+ and run `xcode-select --install`"
            ));
        }
    }
    let mut all: Vec<&str> = vec![IOS_DEVICE];
    all.extend(IOS_SIMULATOR);
    all.extend(MACOS);
    need_targets(&all)?;

    let generated = bindings::generate(true)?;
    for target in &all {
        let mut build = crate::cargo();
        build
            .args([
                "build",
                "-p",
                FFI_PACKAGE,
                "--lib",
                "--profile",
                SHIP_PROFILE,
                "--target",
            ])
            .arg(target)
            .args(feature_args(reqwest));
        // Match the deployment targets of Package.swift.
        if target.contains("ios") {
            build.env("IPHONEOS_DEPLOYMENT_TARGET", "15.0");
        } else {
            build.env("MACOSX_DEPLOYMENT_TARGET", "12.0");
        }
        crate::run(&format!("cargo build --target {target}"), &mut build)?;
    }

    let static_lib = |target: &str| -> PathBuf {
        target_dir()
            .join(target)
            .join(SHIP_PROFILE)
            .join(format!("lib{FFI_LIB}.a"))
    };
    let work = target_dir().join("apple");
    recreate(&work)?;
    let fat = |name: &str, targets: &[&str]| -> Result<PathBuf> {
        let dir = work.join(name);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = dir.join(format!("lib{FFI_LIB}.a"));
        let mut lipo = Command::new("lipo");
        lipo.arg("-create");
        for t in targets {
            lipo.arg(static_lib(t));
        }
        lipo.arg("-output").arg(&out);
        crate::run(&format!("lipo {name}"), &mut lipo)?;
        Ok(out)
    };
    let simulator = fat("ios-simulator", &IOS_SIMULATOR)?;
    let macos = fat("macos", &MACOS)?;

    // Headers: the C header plus a module map named module.modulemap.
    let headers = work.join("headers");
    fs::create_dir_all(&headers).map_err(|e| format!("cannot create headers dir: {e}"))?;
    let header = format!("{NAMESPACE}FFI.h");
    fs::copy(generated.swift.join(&header), headers.join(&header))
        .map_err(|e| format!("cannot copy {header}: {e}"))?;
    fs::copy(
        generated.swift.join(format!("{NAMESPACE}FFI.modulemap")),
        headers.join("module.modulemap"),
    )
    .map_err(|e| format!("cannot copy the module map: {e}"))?;

    let xcframework = crate::root().join(format!("bindings/swift/{NAMESPACE}FFI.xcframework"));
    if xcframework.exists() {
        fs::remove_dir_all(&xcframework)
            .map_err(|e| format!("cannot remove {}: {e}", xcframework.display()))?;
    }
    let mut xc = Command::new("xcodebuild");
    xc.arg("-create-xcframework");
    for lib in [static_lib(IOS_DEVICE), simulator, macos] {
        xc.arg("-library").arg(lib).arg("-headers").arg(&headers);
    }
    xc.arg("-output").arg(&xcframework);
    crate::run("xcodebuild -create-xcframework", &mut xc)?;

    // The release artefact: the zip SwiftPM downloads, and its checksum.
    let zip = work.join(format!("{NAMESPACE}FFI.xcframework.zip"));
    let mut ditto = Command::new("ditto");
    ditto
        .args(["-c", "-k", "--sequesterRsrc", "--keepParent"])
        .arg(&xcframework)
        .arg(&zip);
    crate::run("ditto (zip)", &mut ditto)?;
    let out = Command::new("swift")
        .args(["package", "compute-checksum"])
        .arg(&zip)
        .current_dir(crate::root())
        .output()
        .map_err(|e| format!("swift package compute-checksum: {e}"))?;
    let checksum = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success()
        || checksum.len() != 64
        || !checksum.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(format!(
            "swift package compute-checksum failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let checksum_file = work.join(format!("{NAMESPACE}FFI.xcframework.zip.checksum"));
    fs::write(&checksum_file, format!("{checksum}\n"))
        .map_err(|e| format!("cannot write {}: {e}", checksum_file.display()))?;
    println!(
        "\n{} ready (used by Package.swift on Apple platforms while it exists).\nRelease zip: {}\nChecksum:    {checksum}",
        xcframework.display(),
        zip.display()
    );
    match options.release_url {
        Some(url) => {
            set_release(&crate::root().join("Package.swift"), &url, &checksum)?;
            println!("Package.swift now points at {url}: upload the zip there, commit, and tag.");
        }
        None => println!(
            "For a release: upload the zip, then run `cargo xtask apple --release-url <its URL>` \
             (or set releaseURL and releaseChecksum in Package.swift)."
        ),
    }
    Ok(())
}

/// Rewrites Package.swift's `releaseURL` and `releaseChecksum` lines.
fn set_release(manifest: &Path, url: &str, checksum: &str) -> Result {
    let text = fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let mut found = (false, false);
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("let releaseURL = ") {
                found.0 = true;
                format!("let releaseURL = \"{url}\"")
            } else if line.starts_with("let releaseChecksum = ") {
                found.1 = true;
                format!("let releaseChecksum = \"{checksum}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    if found != (true, true) {
        return Err(format!(
            "{} has no releaseURL / releaseChecksum lines",
            manifest.display()
        ));
    }
    fs::write(manifest, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", manifest.display()))
}
