//! Workstation builds of the mobile libraries (CI cannot run these: no Android NDK,
//! no Xcode there).
//!
//! * `cargo xtask android [--no-reqwest]`: cargo-ndk builds `countersign-ffi` for the
//!   four Android ABIs and fills the Gradle module `bindings/kotlin` (AAR layout):
//!   `src/main/jniLibs/<abi>/libcountersign_ffi.so` and the generated Kotlin under
//!   `src/main/generated/`. Then `gradle -p bindings/kotlin assembleRelease`.
//! * `cargo xtask apple [--no-reqwest]`: builds the static library for iOS devices,
//!   the iOS simulator (arm64 + x86_64) and macOS (arm64 + x86_64), merges the fat
//!   slices with `lipo` and makes `bindings/swift/countersignFFI.xcframework` with
//!   `xcodebuild -create-xcframework`; the generated Swift goes into the package.
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
const ANDROID_API: &str = "24";

const IOS_DEVICE: &str = "aarch64-apple-ios";
const IOS_SIMULATOR: [&str; 2] = ["aarch64-apple-ios-sim", "x86_64-apple-ios"];
const MACOS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];

/// The shipped (stripped) profile.
const SHIP_PROFILE: &str = "release-stripped";

/// Parses `[--no-reqwest]`: `true` keeps the core's reqwest HTTP client.
fn parse_reqwest(command: &str, args: &[String]) -> Result<bool> {
    match args {
        [] => Ok(true),
        [flag] if flag == "--no-reqwest" => Ok(false),
        _ => Err(format!("usage: cargo xtask {command} [--no-reqwest]")),
    }
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

/// `cargo xtask android [--no-reqwest]`.
pub fn android(args: &[String]) -> Result {
    let reqwest = parse_reqwest("android", args)?;
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
        .args(feature_args(reqwest));
    crate::run("cargo ndk (4 ABIs)", &mut build)?;
    for (abi, _) in ANDROID_ABIS {
        let lib = jni_libs.join(abi).join(format!("lib{FFI_LIB}.so"));
        let size = fs::metadata(&lib)
            .map_err(|e| format!("{} missing after cargo ndk: {e}", lib.display()))?
            .len();
        println!("  {abi:<12} {:>8} KiB  {}", size / 1024, lib.display());
    }
    println!(
        "\nAAR layout ready in {}.\nNext: gradle -p bindings/kotlin assembleRelease \
         (AGP 8.7+, JDK 17) -> bindings/kotlin/build/outputs/aar/",
        module.display()
    );
    Ok(())
}

/// `cargo xtask apple [--no-reqwest]`.
pub fn apple(args: &[String]) -> Result {
    let reqwest = parse_reqwest("apple", args)?;
    if !cfg!(target_os = "macos") {
        return Err(
            "the XCFramework needs macOS with Xcode 16+ (xcodebuild, lipo); run `cargo xtask \
             apple` on a Mac"
                .into(),
        );
    }
    for tool in ["xcodebuild", "lipo"] {
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
    println!(
        "\n{} ready; the Swift package (Package.swift at the repository root) uses it as a \
         binaryTarget on Apple platforms.",
        xcframework.display()
    );
    Ok(())
}
