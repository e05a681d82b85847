//! Child process of the crash-safety test (`tests/crash.rs`): opens the device in
//! `argv[1]` and enters wrong PINs for its only account forever, printing the
//! persisted failure count after each attempt. The parent kills it with SIGKILL
//! at a random moment, usually in the middle of a storage write.
//!
//! With `keyring` as `argv[2]`, instead checks FileStorage in OS-keyring mode
//! (run under a private Secret Service): writes, reopens, reads back.
//!
//! With `answer TX DECISION STEP` (`tests/crash.rs`, the answer test): receives
//! request TX, approves or denies it, and stops dead at STEP, printing
//! `AT STEP` so the parent can SIGKILL it there:
//! * `receive`: the challenge was fetched, nothing of it persisted yet;
//! * `persist`: the answer is persisted, not yet sent;
//! * `send`: the server processed the answer, its response is not yet read;
//! * `ack`: the acknowledgement is persisted.
//!
//! With `approve TX...`: one of two processes sharing the storage (an app and
//! its push extension): receives and approves each TX, then prints `approved N`.
//!
//! With `recover TX DECISION STEP`: the restarted app. It delivers the outbox;
//! only when the kill came before the user's decision was saved (`receive`)
//! does the user decide again. Prints `recovered`.
//!
//! With `activate URI STEP` (the activation test): activates from URI and stops
//! dead at STEP, printing `AT STEP`:
//! * `result`: the server answered the activation request (it holds a pending
//!   device), nothing is saved on the phone yet;
//! * `saved`: the account is saved as waiting, the confirmation not yet sent;
//! * `sent`: the server processed the confirmation, its response is not yet read.
//!
//! With `reactivate URI`: the restarted app. It runs the retry points; if the
//! phone holds no account (the kill came before anything was saved), the user
//! scans the same offer again. Prints `recovered DEVICE_ID`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test program

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use countersign_core::Error;
use countersign_core::authenticator::{AccountKind, ActivationOptions, Delivery};
use countersign_core::platform::{FileStorage, KeySource, SecureStorage};
use countersign_core::protocol::DenyReason;
use countersign_e2e::{Device, open_device};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: crash_child DIR [keyring]");
        std::process::exit(2);
    };
    match args.get(2).map(String::as_str) {
        Some("keyring") => return keyring_mode(Path::new(dir)),
        Some("approve") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let dev = open_device(Path::new(dir), |_| {});
            rt.block_on(approve_all(&dev, &args[3..]));
            return;
        }
        Some(mode @ ("activate" | "reactivate")) => {
            let [uri, step] = [3, 4].map(|i| args.get(i).cloned().unwrap_or_default());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let dev = open_device(Path::new(dir), |_| {});
            if mode == "activate" {
                rt.block_on(activate_mode(&dev, &uri, &step));
            } else {
                rt.block_on(reactivate_mode(&dev, &uri));
            }
            return;
        }
        Some(mode @ ("answer" | "recover")) => {
            let [tx, decision, step] = [3, 4, 5].map(|i| args.get(i).cloned().unwrap_or_default());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let dev = open_device(Path::new(dir), |_| {});
            if mode == "answer" {
                rt.block_on(answer_mode(&dev, &tx, &decision, &step));
            } else {
                rt.block_on(recover_mode(&dev, &tx, &decision, &step));
            }
            return;
        }
        _ => {}
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

/// Announces the step and waits to be killed.
fn stop_at(step: &str) -> ! {
    println!("AT {step}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// The only push account's local id.
fn account(dev: &Device) -> String {
    let accounts = dev.auth.accounts().expect("accounts");
    accounts.first().expect("an account").id.clone()
}

async fn decide(dev: &Device, account: &str, tx: &str, decision: &str) -> Result<(), Error> {
    if decision == "approve" {
        dev.auth.approve(account, tx, None).await.map(|_| ())
    } else {
        dev.auth
            .deny(account, tx, DenyReason::Mistake)
            .await
            .map(|_| ())
    }
}

async fn answer_mode(dev: &Device, tx: &str, decision: &str, step: &str) {
    let account = account(dev);
    let challenge = format!("/v1/device/challenges/{tx}");
    let answer = format!("{challenge}/answer");
    let step = step.to_owned();
    let (fetch_url, answer_url) = (challenge.clone(), answer.clone());
    // Before a request leaves: the answer was persisted first.
    let before = step.clone();
    dev.wire.set_faults(Some(Box::new(move |req| {
        if before == "persist" && req.url.ends_with(&answer_url) {
            stop_at("persist");
        }
        None
    })));
    // After the server answered, before the core reads the response.
    let after = step.clone();
    dev.wire.set_rewrite(Some(Box::new(move |req, resp| {
        if after == "receive" && req.url.ends_with(&fetch_url) {
            stop_at("receive");
        }
        if after == "send" && req.url.ends_with(&answer) {
            stop_at("send");
        }
        resp
    })));
    let data = HashMap::from([
        ("device_id".to_owned(), device_id(dev)),
        ("tx_id".to_owned(), tx.to_owned()),
    ]);
    if let Err(e) = dev.auth.handle_push(&data).await {
        eprintln!("receive failed: {e:?}");
        std::process::exit(5);
    }
    if let Err(e) = decide(dev, &account, tx, decision).await {
        eprintln!("{decision} failed: {e:?}");
        std::process::exit(6);
    }
    if step == "ack" {
        stop_at("ack");
    }
    eprintln!("step {step} was never reached");
    std::process::exit(7);
}

async fn approve_all(dev: &Device, txs: &[String]) {
    let account = account(dev);
    for tx in txs {
        let data = HashMap::from([
            ("device_id".to_owned(), device_id(dev)),
            ("tx_id".to_owned(), tx.clone()),
        ]);
        if let Err(e) = dev.auth.handle_push(&data).await {
            eprintln!("receive {tx} failed: {e:?}");
            std::process::exit(5);
        }
        match dev.auth.approve(&account, tx, None).await {
            Ok(o) if o.delivery == Delivery::Delivered => {}
            other => {
                eprintln!("approve {tx}: {other:?}");
                std::process::exit(6);
            }
        }
    }
    println!("approved {}", txs.len());
}

async fn recover_mode(dev: &Device, tx: &str, decision: &str, step: &str) {
    let account = account(dev);
    // What the app does when it starts.
    let outbox = match dev.auth.deliver_outbox().await {
        Ok(outbox) => outbox,
        Err(e) => {
            eprintln!("deliver_outbox failed: {e:?}");
            std::process::exit(8);
        }
    };
    if !outbox.is_empty() {
        eprintln!("undelivered after restart: {outbox:?}");
        std::process::exit(9);
    }
    if step == "receive" {
        // The user never decided before the kill: the request is shown again.
        if let Err(e) = decide(dev, &account, tx, decision).await {
            eprintln!("{decision} after restart failed: {e:?}");
            std::process::exit(10);
        }
    }
    println!("recovered");
}

const ACTIVATE: &str = "/v1/device/activate";
const CONFIRM: &str = "/v1/device/activate/confirm";

async fn activate_mode(dev: &Device, uri: &str, step: &str) {
    let before = step.to_owned();
    dev.wire.set_faults(Some(Box::new(move |req| {
        if before == "saved" && req.url.ends_with(CONFIRM) {
            stop_at("saved");
        }
        None
    })));
    let after = step.to_owned();
    dev.wire.set_rewrite(Some(Box::new(move |req, resp| {
        if after == "result" && req.url.ends_with(ACTIVATE) {
            stop_at("result");
        }
        if after == "sent" && req.url.ends_with(CONFIRM) {
            stop_at("sent");
        }
        resp
    })));
    let outcome = dev
        .auth
        .activate_uri(uri, ActivationOptions::default())
        .await;
    eprintln!("step {step} was never reached: {outcome:?}");
    std::process::exit(7);
}

async fn reactivate_mode(dev: &Device, uri: &str) {
    // What the app does when it starts.
    if let Err(e) = dev.auth.deliver_outbox().await {
        eprintln!("deliver_outbox failed: {e:?}");
        std::process::exit(8);
    }
    if dev.auth.accounts().expect("accounts").is_empty()
        && let Err(e) = dev
            .auth
            .activate_uri(uri, ActivationOptions::default())
            .await
    {
        eprintln!("activation again failed: {e:?}");
        std::process::exit(9);
    }
    println!("recovered {}", device_id(dev));
}

fn device_id(dev: &Device) -> String {
    match dev
        .auth
        .accounts()
        .expect("accounts")
        .first()
        .map(|a| a.kind.clone())
    {
        Some(AccountKind::Push { device_id, .. }) => device_id,
        _ => {
            eprintln!("no push account");
            std::process::exit(3);
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
