//! Child process of the crash-safety test (`tests/crash.rs`): opens the device in
//! `argv[1]` and enters wrong PINs for its only account forever, printing the
//! persisted failure count after each attempt. The parent kills it with SIGKILL
//! at a random moment, usually in the middle of a storage write.
//!
//! With `keyring` as `argv[2]`, instead checks FileStorage in OS-keyring mode
//! (run under a private Secret Service): writes, reopens, reads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test program

use std::io::Write;
use std::path::Path;

use countersign_core::Error;
use countersign_core::platform::{FileStorage, KeySource, SecureStorage};
use countersign_e2e::open_device;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: crash_child DIR [keyring]");
        std::process::exit(2);
    };
    if args.get(2).map(String::as_str) == Some("keyring") {
        keyring_mode(Path::new(dir));
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dev = open_device(Path::new(dir), |c| c.pin_max_attempts = u32::MAX);
    let accounts = dev.auth.accounts().unwrap();
    let Some(acct) = accounts.first() else {
        eprintln!("no account");
        std::process::exit(3);
    };
    let mut out = std::io::stdout().lock();
    loop {
        match rt.block_on(dev.auth.change_pin(&acct.id, "000000", "111111")) {
            Err(Error::WrongPin { attempts_left }) => {
                writeln!(out, "{}", u32::MAX - attempts_left).expect("stdout");
                out.flush().expect("flush");
            }
            other => {
                eprintln!("unexpected: {other:?}");
                std::process::exit(4);
            }
        }
    }
}

fn keyring_mode(dir: &Path) {
    let source = KeySource::OsKeyring {
        service: "countersign-e2e".into(),
        user: format!("test-{}", std::process::id()),
    };
    let s = FileStorage::open(dir.join("kr"), &source).expect("open with keyring key");
    s.put("k", b"kept by the keyring key").expect("put");
    drop(s);
    let s = FileStorage::open(dir.join("kr"), &source).expect("reopen with keyring key");
    let v = s.get("k").expect("get").expect("value");
    assert_eq!(v.as_slice(), b"kept by the keyring key");
    // A key file cannot read what the keyring key wrote.
    let other = FileStorage::open(dir.join("kr"), &KeySource::KeyFile(dir.join("other.key")))
        .expect("open with key file");
    assert!(other.get("k").is_err());
    println!("keyring ok");
}
