//! `countersign demo --json`: every flow runs to OK against the embedded server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::process::Command;

#[test]
fn demo_json_reports_every_step_ok() {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["demo", "--json"])
        .output()
        .expect("run countersign demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(doc["ok"], true, "{doc:#}");
    let steps = doc["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "activation",
            "push_login",
            "push_otp",
            "attacker_at_the_login_page",
            "not_me",
            "timeout_resend",
            "totp_fallback",
            "offline_ocra",
            "qr_login",
            "step_up_pin",
            "deregistration"
        ]
    );
    for s in steps {
        assert_eq!(s["ok"], true, "step failed: {s:#}");
        assert!(s["ms"].is_u64(), "{s:#}");
        assert!(!s["transcript"].as_array().expect("transcript").is_empty());
    }
    assert_eq!(doc["failed"], 0);
    // The transcript never carries OTPs or the PIN: only their lengths.
    assert!(!stdout.contains("482613"), "the demo PIN leaked");
}
