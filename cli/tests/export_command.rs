//! `countersign device export` (issue 15, moving between authenticator apps):
//! the exported `otpauth://` URIs re-import into another app with the same codes;
//! secrets are printed only after a yes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};

use countersign_test_support::temp_dir;
use serde_json::Value;

fn device(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("device")
        .arg("--home")
        .arg(home)
        .arg("--key-file")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run countersign")
}

fn codes(home: &Path) -> Vec<(String, String)> {
    let out = device(home, &["--json", "otp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut codes: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap().to_owned(),
                c["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    codes.sort();
    codes
}

#[test]
fn exported_uris_import_elsewhere_with_the_same_codes_and_need_a_yes() {
    let (old, new) = (temp_dir("export-old"), temp_dir("export-new"));
    for uri in [
        "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        "otpauth://totp/Bank:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bank&digits=8&algorithm=SHA256",
    ] {
        let out = device(old.path(), &["add", uri]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No terminal and no --yes: refused, and no secret on stdout.
    let out = device(old.path(), &["export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "secrets printed without a yes");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    let out = device(old.path(), &["--json", "export", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uris: Vec<&str> = exported
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris.len(), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 2 account(s), skipped 0"));
    for uri in &uris {
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        let out = device(new.path(), &["add", uri]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The other app makes the same codes. Both are read within one TOTP step;
    // if a step boundary fell between the reads, read again.
    let (mut a, mut b) = (codes(old.path()), codes(new.path()));
    if a != b {
        (a, b) = (codes(old.path()), codes(new.path()));
    }
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);

    // One account by label, as plain text.
    let out = device(old.path(), &["export", "--yes", "Example:alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("secret=JBSWY3DPEHPK3PXP"), "{text}");
}

/// Google Authenticator's export of two TOTP accounts (one with an issuer), from
/// the test data of scito/extract_otp_secrets (`example_export.txt`); the secret
/// is the Raspberry Pi blog's two-factor example.
const GOOGLE_EXPORT: &str = "otpauth-migration://offline?data=CigKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpIAEoATACCjUKEPqlBekzoNEukL7qlsjBCDYSDnBpQHJhc3BiZXJyeXBpGgtyYXNwYmVycnlwaSABKAEwAhABGAEgACiQ7OOa%2Bf%2F%2F%2F%2F8B";

#[test]
fn a_google_authenticator_export_imports_and_says_what_it_did() {
    let (google, plain) = (temp_dir("migration"), temp_dir("migration-plain"));
    let out = device(google.path(), &["add", GOOGLE_EXPORT]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Imported 2 account(s)") && said.contains("skipped 0"),
        "{said}"
    );
    // The same accounts added from their plain otpauth URIs make the same codes.
    for uri in [
        "otpauth://totp/pi%40raspberrypi?secret=7KSQL2JTUDIS5EF65KLMRQIIGY",
        "otpauth://totp/raspberrypi:pi%40raspberrypi?secret=7KSQL2JTUDIS5EF65KLMRQIIGY&issuer=raspberrypi",
    ] {
        let out = device(plain.path(), &["add", uri]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (mut a, mut b) = (codes(google.path()), codes(plain.path()));
    if a != b {
        (a, b) = (codes(google.path()), codes(plain.path()));
    }
    assert_eq!(a, b);
    // Not an export: a clear error, nothing added.
    let out = device(
        google.path(),
        &["add", "otpauth-migration://offline?data=***"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a readable Google Authenticator export")
    );
    assert_eq!(codes(google.path()).len(), 2);
}
