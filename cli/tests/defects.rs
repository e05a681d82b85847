//! Defects found by using `countersign` as a new user would (issue 11), run as a
//! real process: tx ids that begin with `-`, a closed stdout, the otpauth
//! parser's reasons, and activation errors in activation words.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};

use countersign_test_support::{Db, TestServer, temp_dir, web_page_server};

fn device(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("device")
        .arg("--home")
        .arg(home)
        .arg("--key-file")
        .args(args)
        .output()
        .expect("run countersign")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn approve_and_deny_take_a_tx_id_that_begins_with_a_hyphen() {
    let dir = temp_dir("hyphen-tx");
    for args in [
        &["approve", "-Qx3kP9_aZ2mN7vB1cD4eF", "--number", "42"][..],
        &["deny", "-Qx3kP9_aZ2mN7vB1cD4eF", "--not-me"][..],
        &["deny", "--not-me", "-Qx3kP9_aZ2mN7vB1cD4eF"][..],
    ] {
        let out = device(dir.path(), args);
        let err = stderr(&out);
        // Parsed: the command ran and found no account (clap would exit 2).
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(err.contains("not activated"), "{args:?}: {err}");
    }
}

/// Runs countersign with its stdout a pipe whose reader is already closed.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run countersign")
}

#[test]
fn a_closed_stdout_ends_quietly_without_a_panic() {
    let dir = temp_dir("epipe");
    let home = dir.path().to_str().unwrap();
    let uri = "otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8";
    for args in [
        &["otp", "--time", "59", uri][..],
        &["otp", "--json", uri][..],
        &["device", "--home", home, "--key-file", "list"][..],
    ] {
        let out = with_closed_stdout(args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
    }
}

#[test]
fn device_add_tells_what_is_wrong_with_the_uri() {
    let dir = temp_dir("add-reason");
    let cases = [
        (
            "otpauth://totp/Example:bob?secret=GEZDGNBV",
            "a secret of 5 bytes is not accepted (10 to 128)",
        ),
        (
            "otpauth://totp/Example:bob?secret=GEZDGNBVGY3TQOJQ&digits=9",
            "digits must be 6, 7 or 8",
        ),
        (
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQ",
            "hotp URI has no counter",
        ),
        // An HOTP account that could never give out a code.
        (
            "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQ&counter=18446744073709551615",
            "at least one code is left",
        ),
    ];
    for (uri, reason) in cases {
        let out = device(dir.path(), &["add", uri]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{uri}: {err}");
        assert!(err.contains(reason), "{uri}: {err}");
        assert!(err.contains("hint:"), "{uri}: {err}");
    }
    let out = device(dir.path(), &["--json", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn activation_errors_name_the_offer_and_the_server() {
    let dir = temp_dir("activation-words");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async {
        (
            TestServer::start(Db::Sqlite).await,
            TestServer::start(Db::Sqlite).await,
        )
    });
    let code = rt.block_on(async { a.rp("Example Bank").await.enroll("alice").await.code });

    // Server B never issued this offer.
    let out = device(dir.path(), &["activate", &code, "--server", &b.base()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the server at {} does not know this activation offer",
            b.base()
        )),
        "{err}"
    );
    assert!(!err.contains("request not found"), "{err}");

    // A web server that is not Countersign is named as such, not as a key mismatch.
    let web = web_page_server();
    let out = device(dir.path(), &["activate", &code, "--server", &web]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("not a Countersign server at {web}")),
        "{err}"
    );
    assert!(!err.contains("key"), "{err}");

    // The offer itself is fine.
    let out = device(dir.path(), &["activate", &code, "--server", &a.base()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // ...and used once only.
    let out = device(dir.path(), &["activate", &code, "--server", &a.base()]);
    assert!(
        stderr(&out).contains("this activation offer was used already"),
        "{}",
        stderr(&out)
    );
    rt.block_on(async {
        a.stop().await;
        b.stop().await;
    });
}

#[test]
fn outbox_with_nothing_waiting_says_so() {
    let dir = temp_dir("outbox-empty");
    let out = device(dir.path(), &["outbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Every answer has reached its server"),
        "{out:?}"
    );
    let out = device(dir.path(), &["--json", "outbox"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
}
