//! The browser test of the demo pages (issue 7), run by `cargo xtask test`.
//!
//! Installs Debian's chromium and chromium-driver (once), playwright-core from
//! npm into `target/browser-test/` (once: a second run downloads nothing), builds
//! the `countersign` binary, then runs `tests/browser/run.mjs`: it starts
//! `countersign server --demo` on a free loopback port, lets the `countersign
//! device` CLI act as the phone, drives the pages in headless Chromium and saves
//! screenshots under `tests/artifacts/browser/`. The runner ends with
//! `N passed, N failed`.

use std::path::Path;
use std::process::Command;

use crate::toolchain::target_dir;
use crate::{Result, ensure_debian_packages, root, run};

/// playwright-core drives the system Chromium over CDP; pinned for repeatable runs.
const PLAYWRIGHT_CORE: &str = "playwright-core@1.65.1";

/// Everything the browser test needs, then the test itself.
pub fn test() -> Result {
    ensure_debian_packages(
        &["chromium", "chromium-driver"],
        &["chromium", "chromedriver"],
    )?;
    ensure_debian_packages(&["nodejs", "npm"], &["node", "npm"])?;
    let root = root();
    let deps = target_dir().join("browser-test");
    ensure_playwright(&deps)?;
    crate::build_host_binaries()?;
    let bin = target_dir().join("debug/countersign");
    let artifacts = root.join("tests/artifacts/browser");
    std::fs::create_dir_all(&artifacts)
        .map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
    run(
        "browser test (headless Chromium, countersign device as the phone)",
        Command::new("node")
            .arg(root.join("tests/browser/run.mjs"))
            .current_dir(&root)
            .env("NODE_PATH", deps.join("node_modules"))
            .env("COUNTERSIGN_BIN", &bin)
            .env("CHROMIUM", "/usr/bin/chromium")
            .env("ARTIFACTS", &artifacts),
    )
}

fn ensure_playwright(deps: &Path) -> Result {
    let marker = deps.join("node_modules/playwright-core/package.json");
    let wanted = PLAYWRIGHT_CORE.rsplit('@').next().unwrap_or_default();
    if let Ok(text) = std::fs::read_to_string(&marker)
        && text.contains(&format!("\"version\": \"{wanted}\""))
    {
        println!("==> {PLAYWRIGHT_CORE} present in {}", deps.display());
        return Ok(());
    }
    std::fs::create_dir_all(deps).map_err(|e| format!("cannot create {}: {e}", deps.display()))?;
    // A private package.json keeps npm from walking up into the workspace.
    let manifest = deps.join("package.json");
    if !manifest.exists() {
        std::fs::write(
            &manifest,
            "{\"name\":\"countersign-browser-test\",\"private\":true}\n",
        )
        .map_err(|e| format!("cannot write {}: {e}", manifest.display()))?;
    }
    run(
        &format!("npm install {PLAYWRIGHT_CORE}"),
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--save-exact",
                PLAYWRIGHT_CORE,
            ])
            .current_dir(deps)
            // Browsers come from Debian; playwright must not try to download any.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
    )
}
