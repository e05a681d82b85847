//! The `countersign otp` command, run as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::process::Command;

fn countersign(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .output()
        .expect("run countersign")
}

#[test]
fn prints_the_rfc6238_code_and_seconds_left() {
    // RFC 6238 Appendix B: SHA1 seed "12345678901234567890", T = 59 → 94287082.
    let uri = "otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8";
    let out = countersign(&["otp", "--json", "--time", "59", uri]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["code"], "94287082");
    assert_eq!(value["seconds_left"], 1);
    assert_eq!(value["issuer"], "RFC");
}

#[test]
fn rejects_a_bad_uri_with_a_hint_and_nonzero_exit() {
    let out = countersign(&["otp", "otpauth://totp/x?secret=not*base32"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("base32"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}
