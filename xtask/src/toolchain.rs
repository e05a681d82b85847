//! Toolchains for the binding tests, installed on first use and cached.
//!
//! * Kotlin: kotlinc 2.4.20 from the npm package `kotlin-compiler` (it carries the
//!   compiler, kotlinx-coroutines and kotlin-test), JNA and JUnit 5 from Debian.
//! * Swift: Swift 6 (`swiftlang`) in a Debian trixie root made with debootstrap.
//!
//! Everything lives under `target/toolchains/` (ignored by git). A second run finds
//! the finished installs (each marked by a file written last) and downloads nothing.
//! Mounts needed inside the trixie root are made in a private mount namespace
//! (`unshare --mount`): they vanish with the process even when it is killed, and
//! they are never visible to the host, so removing the cache can never follow a
//! bind mount into the project.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::Result;

/// The kotlinc release the tests are written for.
pub const KOTLIN_VERSION: &str = "2.4.20";
/// The Debian release that ships Swift 6 (`swiftlang`).
const SWIFT_SUITE: &str = "trixie";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                crate::root().join(dir)
            }
        }
        None => crate::root().join("target"),
    }
}

/// Where installed toolchains are cached.
pub fn cache_dir() -> PathBuf {
    target_dir().join("toolchains")
}

/// Runs `what`, printing what is installed and how long it took.
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("\n==> installing {what}");
    let started = Instant::now();
    let out = f();
    let secs = started.elapsed().as_secs_f64();
    match &out {
        Ok(_) => println!("<== installed {what} in {secs:.1}s"),
        Err(e) => println!("<== installing {what} failed after {secs:.1}s: {e}"),
    }
    out
}

/// Runs a command quietly-but-visibly: inherits stdout/stderr, fails on non-zero exit.
pub fn status(what: &str, cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Installs Debian packages on the host unless every file in `files` exists.
pub fn ensure_apt(packages: &[&str], files: &[&Path]) -> Result {
    if files.iter().all(|f| f.exists()) {
        return Ok(());
    }
    timed(&format!("Debian packages {}", packages.join(" ")), || {
        let sudo = if crate::is_root() { "" } else { "sudo " };
        let pkgs = packages.join(" ");
        // Try without `apt-get update` first: on a warm machine the lists are there.
        let script = format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             {sudo}apt-get install -y -qq --no-install-recommends {pkgs} </dev/null >/dev/null 2>&1 || \
             ({sudo}apt-get update -qq </dev/null && \
              {sudo}apt-get install -y -qq --no-install-recommends {pkgs} </dev/null)"
        );
        status(
            &format!("apt-get install {pkgs}"),
            Command::new("sh").args(["-c", &script]),
        )?;
        match files.iter().find(|f| !f.exists()) {
            Some(missing) => Err(format!(
                "{} is still missing after installing {pkgs}",
                missing.display()
            )),
            None => Ok(()),
        }
    })
}

/// The Kotlin/JVM toolchain: kotlinc and the jars the tests link against.
pub struct Kotlin {
    /// `kotlinc` (a shell script that needs `java` on PATH).
    pub kotlinc: PathBuf,
    /// kotlinx-coroutines-core-jvm (the generated bindings import it).
    pub coroutines: PathBuf,
    /// The Kotlin standard library.
    pub stdlib: PathBuf,
    /// JNA (`/usr/share/java/jna.jar`).
    pub jna: PathBuf,
    /// The JUnit 5 console launcher (standalone jar).
    pub junit_console: PathBuf,
    /// The JUnit Jupiter API jar (compile-time).
    pub junit_api: PathBuf,
    /// apiguardian (referenced by the Jupiter annotations).
    pub apiguardian: PathBuf,
    /// opentest4j (the assertion failures' types).
    pub opentest4j: PathBuf,
}

impl Kotlin {
    /// The compile class path: coroutines, JNA and JUnit's API.
    pub fn compile_classpath(&self) -> String {
        join_paths(&[
            &self.coroutines,
            &self.jna,
            &self.junit_api,
            &self.apiguardian,
            &self.opentest4j,
        ])
    }
}

/// Joins paths into a `:`-separated class path.
pub fn join_paths(paths: &[&Path]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Makes sure kotlinc, JNA and JUnit 5 are installed; installs what is missing.
pub fn kotlin() -> Result<Kotlin> {
    if !crate::have("java") {
        return Err(
            "java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)".into(),
        );
    }
    let java = Path::new("/usr/share/java");
    let jna = java.join("jna.jar");
    let junit_console = java.join("junit-platform-console-standalone.jar");
    let junit_api = java.join("junit-jupiter-api.jar");
    let apiguardian = java.join("apiguardian-api.jar");
    let opentest4j = java.join("opentest4j.jar");
    ensure_apt(&["libjna-java"], &[&jna])?;
    ensure_apt(
        &["junit5"],
        &[&junit_console, &junit_api, &apiguardian, &opentest4j],
    )?;

    let home = cache_dir().join(format!("kotlin-{KOTLIN_VERSION}"));
    let package = home.join("package");
    let kotlinc = package.join("bin/kotlinc");
    let ready = home.join(".ready");
    if !ready.exists() {
        timed(
            &format!("kotlinc {KOTLIN_VERSION} (npm kotlin-compiler)"),
            || {
                if !crate::have("npm") {
                    return Err("npm not found: apt-get install npm".into());
                }
                if home.exists() {
                    fs::remove_dir_all(&home)
                        .map_err(|e| format!("cannot clear {}: {e}", home.display()))?;
                }
                fs::create_dir_all(&home)
                    .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
                status(
                    "npm pack kotlin-compiler",
                    Command::new("npm")
                        .args([
                            "pack",
                            "--silent",
                            &format!("kotlin-compiler@{KOTLIN_VERSION}"),
                        ])
                        .current_dir(&home),
                )?;
                let tgz = format!("kotlin-compiler-{KOTLIN_VERSION}.tgz");
                status(
                    "unpack kotlin-compiler",
                    Command::new("tar").args(["xzf", &tgz]).current_dir(&home),
                )?;
                // The tarball is ~100 MB and no longer needed.
                let _ = fs::remove_file(home.join(&tgz));
                if !kotlinc.exists() {
                    return Err(format!("{} missing after unpacking", kotlinc.display()));
                }
                fs::write(&ready, KOTLIN_VERSION)
                    .map_err(|e| format!("cannot write {}: {e}", ready.display()))
            },
        )?;
    }
    let lib = package.join("lib");
    let toolchain = Kotlin {
        kotlinc,
        coroutines: lib.join("kotlinx-coroutines-core-jvm.jar"),
        stdlib: lib.join("kotlin-stdlib.jar"),
        jna,
        junit_console,
        junit_api,
        apiguardian,
        opentest4j,
    };
    for jar in [&toolchain.coroutines, &toolchain.stdlib] {
        if !jar.exists() {
            return Err(format!(
                "{} missing from kotlin-compiler {KOTLIN_VERSION}; remove {} to reinstall",
                jar.display(),
                home.display()
            ));
        }
    }
    Ok(toolchain)
}

/// A Debian trixie root with Swift 6 installed.
pub struct SwiftRoot {
    /// The root directory.
    pub root: PathBuf,
}

/// A host directory made visible inside the Swift root for one run.
pub struct Bind<'a> {
    /// Host path.
    pub host: &'a Path,
    /// Absolute path inside the root (created if missing).
    pub guest: &'a str,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Makes sure the Swift root exists; debootstraps and installs swiftlang when missing.
pub fn swift_root() -> Result<SwiftRoot> {
    let root = cache_dir().join(format!("swift-{SWIFT_SUITE}"));
    let ready = root.join(".countersign-ready");
    let swift = SwiftRoot { root: root.clone() };
    if ready.exists() {
        // Roots made before the CA bundle was on the list (the default reqwest
        // client needs a trust store to start).
        if !root.join("etc/ssl/certs/ca-certificates.crt").exists() {
            timed("ca-certificates in the trixie root", || {
                swift.run(
                    "apt-get install ca-certificates",
                    "export DEBIAN_FRONTEND=noninteractive; \
                     apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && \
                     apt-get clean",
                    &[],
                )
            })?;
        }
        return Ok(swift);
    }
    if !crate::is_root() {
        return Err(
            "the Swift tests need root once, to debootstrap a Debian trixie root with swiftlang \
             (run `sudo cargo xtask test` once, or install Swift 6 yourself)"
                .into(),
        );
    }
    ensure_apt(&["debootstrap"], &[Path::new("/usr/sbin/debootstrap")])?;
    if root.exists() {
        // A half-made root from an interrupted run. Our mounts lived in private
        // namespaces, but refuse to delete anything that still has a mount in it.
        refuse_if_mounted(&root)?;
        timed("removal of an incomplete Swift root", || {
            fs::remove_dir_all(&root).map_err(|e| format!("cannot remove {}: {e}", root.display()))
        })?;
    }
    fs::create_dir_all(cache_dir()).map_err(|e| format!("cannot create cache dir: {e}"))?;
    timed(&format!("Debian {SWIFT_SUITE} root (debootstrap)"), || {
        // debootstrap prints a line per package: keep it in a log, show it on failure.
        let log_path = cache_dir().join("debootstrap.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "debootstrap"])
            .args(["--variant=minbase", SWIFT_SUITE])
            .arg(&root)
            .arg(DEBIAN_MIRROR)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null())
            .stdout(log);
        status("debootstrap", &mut cmd).map_err(|e| {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "{e}; last lines of {}:\n{}",
                log_path.display(),
                tail.join("\n")
            )
        })
    })?;
    timed("swiftlang in the trixie root", || {
        swift.run(
            "apt-get install swiftlang",
            "export DEBIAN_FRONTEND=noninteractive; \
             apt-get update -qq && \
             apt-get install -y -qq --no-install-recommends swiftlang libc6-dev ca-certificates >/dev/null && \
             apt-get clean",
            &[],
        )
    })?;
    if !root.join("usr/bin/swiftc").exists() {
        return Err(format!(
            "swiftc missing in {} after install",
            root.display()
        ));
    }
    fs::write(&ready, "swiftlang\n")
        .map_err(|e| format!("cannot write {}: {e}", ready.display()))?;
    Ok(swift)
}

/// Fails if anything is mounted at or below `dir` (in this mount namespace).
fn refuse_if_mounted(dir: &Path) -> Result {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    if let Some(line) = mounts.lines().find(|l| {
        l.split(' ')
            .nth(1)
            .is_some_and(|m| m == prefix || m.starts_with(&format!("{prefix}/")))
    }) {
        return Err(format!(
            "{} still has a mount ({line}); unmount it before reinstalling",
            dir.display()
        ));
    }
    Ok(())
}

impl SwiftRoot {
    /// [`SwiftRoot::run`] with the project mounted read-only at `/project` and
    /// `scratch` (build output, logs) writable at `/scratch`: how the Swift
    /// package is built and run.
    pub fn run_in_project(&self, what: &str, script: &str, scratch: &Path) -> Result {
        let root = crate::root();
        self.run(
            what,
            script,
            &[
                Bind {
                    host: &root,
                    guest: "/project",
                    read_only: true,
                },
                Bind {
                    host: scratch,
                    guest: "/scratch",
                    read_only: false,
                },
            ],
        )
    }

    /// Runs `script` with `sh` inside the root, with /proc and `binds` mounted for
    /// this run only. The mounts live in a private mount namespace and are
    /// unmounted on the way out (and die with the namespace whatever happens).
    pub fn run(&self, what: &str, script: &str, binds: &[Bind<'_>]) -> Result {
        let root = self.root.display().to_string();
        let mut setup = String::from("set -e\n");
        let mut unmount = vec![format!("umount '{root}/proc' 2>/dev/null || true")];
        setup.push_str(&format!("mount -t proc proc '{root}/proc'\n"));
        for bind in binds {
            if !bind.guest.starts_with('/') || bind.guest.contains('\'') {
                return Err(format!("bad guest path {}", bind.guest));
            }
            let host = bind.host.display().to_string();
            if host.contains('\'') {
                return Err(format!("unsupported host path {host}"));
            }
            let guest = format!("{root}{}", bind.guest);
            let ro = if bind.read_only { " -o ro" } else { "" };
            setup.push_str(&format!(
                "mkdir -p '{guest}'\nmount --bind{ro} '{host}' '{guest}'\n"
            ));
            unmount.push(format!("umount '{guest}' 2>/dev/null || true"));
        }
        unmount.reverse();
        let inner = script.replace('\'', r"'\''");
        let full = format!(
            "cleanup() {{ {}; }}\ntrap cleanup EXIT\n{setup}set +e\n\
             chroot '{root}' /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
             sh -c '{inner}'\n",
            unmount.join("; ")
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &full])
            .stdin(std::process::Stdio::null());
        status(what, &mut cmd)
    }
}

/// A Python venv at `venv` with the pinned `requirements` from PyPI, made once:
/// a marker file is written last, so a half-made venv is made again and a
/// second run downloads nothing. Returns the venv's python. `what` names the
/// packages in the progress lines.
pub fn python_venv(venv: &Path, requirements: &[&str], what: &str) -> Result<PathBuf> {
    let python = venv.join("bin/python3");
    let marker = venv.join("countersign-installed");
    if marker.exists() && python.exists() {
        println!("==> {what} present in {}", venv.display());
        return Ok(python);
    }
    println!("\n==> installing {what} (PyPI) into {}", venv.display());
    let _ = fs::remove_dir_all(venv);
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !created {
        // Debian's python3 needs python3-venv for `-m venv`.
        let _ = fs::remove_dir_all(venv);
        crate::ensure_debian_packages(
            &["python3-venv"],
            &["/usr/lib/python3.11/ensurepip/__init__.py"],
        )?;
        crate::run(
            "python3 -m venv",
            Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(venv),
        )?;
    }
    let installed = crate::run(
        &format!("pip install {what}"),
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements),
    )
    .and_then(|()| {
        fs::write(&marker, requirements.join("\n"))
            .map_err(|e| format!("write {}: {e}", marker.display()))
    });
    if let Err(e) = installed {
        // A half-made venv must not look installed next time.
        let _ = fs::remove_dir_all(venv);
        return Err(e);
    }
    Ok(python)
}
