//! Issue 12 over real HTTP: activation in two phases (a result the device
//! refuses never leaves an active device on the server; a lost or undeliverable
//! confirmation ends with one active device on both sides, or none), the
//! offer's attempt limit, and a wipe after too many wrong PINs that the server
//! hears about, at once or when the network is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use countersign_core::Error;
use countersign_core::authenticator::{AccountInfo, AccountKind};
use countersign_core::platform::HttpMethod;
use countersign_core::protocol::ActivationOffer;
use countersign_e2e::{Answer, Device, Fault, open_device, start_server, wait_pending, with_pin};
use countersign_test_support::{RpClient, temp_dir};
use serde_json::{Value, json};

const CONFIRM: &str = "/v1/device/activate/confirm";

/// The user's devices as the RP lists them.
async fn devices(rp: &RpClient, user: &str) -> Vec<Value> {
    let (st, list) = rp.get(&format!("/v1/rp/users/{user}/devices")).await;
    assert_eq!(st, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// The ids of the user's active devices.
async fn active_devices(rp: &RpClient, user: &str) -> Vec<String> {
    devices(rp, user)
        .await
        .iter()
        .filter(|d| d["status"] == "active")
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect()
}

fn device_id(acct: &AccountInfo) -> String {
    match &acct.kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

/// Files in the device's storage (the lock file holds nothing).
fn stored_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lock")
        .collect()
}

/// A push reaches nobody: the user has no active device.
/// Activates from `uri` while every confirmation fails to reach the server
/// (the network goes down right after the activation result): `Network`.
async fn activate_without_confirmation(dev: &Device, uri: &str) {
    dev.wire.set_faults(Some(Box::new(|req| {
        req.url.contains(CONFIRM).then_some(Fault::Unreachable)
    })));
    assert_eq!(
        dev.auth.activate_uri(uri, with_pin("123456")).await.err(),
        Some(Error::Network)
    );
}

async fn assert_no_push_target(rp: &RpClient, user: &str) {
    let (st, body) = rp.push(json!({ "user": user })).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (404, Some("no_device"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_shorter_than_the_offer_policy_is_refused_before_any_request() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-pin-early");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;
    assert!(offer.uri.ends_with("&pin=6"), "{}", offer.uri);
    assert_eq!(
        dev.auth
            .activate_uri(&offer.uri, with_pin("12345"))
            .await
            .err(),
        Some(Error::InvalidInput { what: "pin" })
    );
    assert!(dev.wire.exchanges.lock().unwrap().is_empty());
    assert!(stored_files(dir.path()).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_results_leave_no_device_and_the_offer_still_works() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-refused");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;

    // A typed code carries no policy: the PIN is refused after the result.
    assert_eq!(
        dev.auth
            .activate_code(&s.base(), &offer.code, None, with_pin("12345"))
            .await
            .err(),
        Some(Error::InvalidInput { what: "pin" })
    );
    assert_eq!(dev.wire.exchanges_to("/v1/device/activate").len(), 1);

    // A server key that does not match the pin in the offer.
    let mut wrong = ActivationOffer::parse_uri(&offer.uri).unwrap();
    wrong.server_key_fingerprint = [7; 32];
    assert_eq!(
        dev.auth
            .activate_uri(&wrong.to_uri(), with_pin("123456"))
            .await
            .err(),
        Some(Error::Tampered)
    );
    assert_eq!(dev.wire.exchanges_to("/v1/device/activate").len(), 2);

    // Neither was confirmed: no active device, no push target, nothing kept.
    assert!(dev.wire.exchanges_to(CONFIRM).is_empty());
    assert!(devices(&rp, "alice").await.is_empty());
    assert_no_push_target(&rp, "alice").await;
    assert!(dev.auth.accounts().unwrap().is_empty());
    assert!(stored_files(dir.path()).is_empty());

    // The same offer then activates a correct device.
    let acct = dev
        .auth
        .activate_uri(&offer.uri, with_pin("123456"))
        .await
        .unwrap();
    assert_eq!(active_devices(&rp, "alice").await, vec![device_id(&acct)]);
    assert_eq!(devices(&rp, "alice").await.len(), 1);
    assert_eq!(dev.auth.accounts().unwrap(), vec![acct]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_device_gets_no_push_until_its_confirmation_arrives() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-unconfirmed");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;
    // The network fails right after the activation result.
    activate_without_confirmation(&dev, &offer.uri).await;
    // Waiting: not listed on the phone, not active on the server.
    assert!(dev.auth.accounts().unwrap().is_empty());
    assert!(devices(&rp, "alice").await.is_empty());
    assert_no_push_target(&rp, "alice").await;
    // Still unreachable: the retry points keep it waiting.
    assert!(dev.auth.deliver_outbox().await.unwrap().is_empty());
    assert!(dev.auth.accounts().unwrap().is_empty());

    // The network is back: the next retry point confirms.
    dev.wire.set_faults(None);
    dev.auth.deliver_outbox().await.unwrap();
    let accounts = dev.auth.accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        active_devices(&rp, "alice").await,
        vec![device_id(&accounts[0])]
    );
    let started = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let got = wait_pending(&dev.auth, 1, 10).await;
    assert_eq!(got[0].tx_id, started["tx_id"].as_str().unwrap());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_confirms_is_never_active_and_is_dropped_after_expiry() {
    let s = start_server(|c| c.policy.enrollment_ttl_secs = 2).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-never");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;
    activate_without_confirmation(&dev, &offer.uri).await;
    assert_no_push_target(&rp, "alice").await;
    // The offer expires and the janitor (every 5 s) deletes the pending device.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(devices(&rp, "alice").await.is_empty());
    assert_no_push_target(&rp, "alice").await;
    // The late confirmation is refused for good: the phone drops the account.
    dev.wire.set_faults(None);
    dev.auth.deliver_outbox().await.unwrap();
    assert_eq!(dev.wire.exchanges_to(CONFIRM).len(), 1);
    assert!(dev.auth.accounts().unwrap().is_empty());
    assert!(stored_files(dir.path()).is_empty());
    // Nothing more to send.
    dev.auth.deliver_outbox().await.unwrap();
    assert_eq!(dev.wire.exchanges_to(CONFIRM).len(), 1);
    assert!(devices(&rp, "alice").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_confirmation_response_ends_with_one_active_device_on_both_sides() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-lost");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;
    let lost = AtomicBool::new(false);
    dev.wire.set_faults(Some(Box::new(move |req| {
        (req.url.contains(CONFIRM) && !lost.swap(true, Ordering::SeqCst))
            .then_some(Fault::LoseResponse)
    })));
    let acct = dev
        .auth
        .activate_uri(&offer.uri, with_pin("123456"))
        .await
        .unwrap();
    // The server made the device active on the first copy and answered the
    // retry with the same success.
    let confirms = dev.wire.exchanges_to(CONFIRM);
    assert_eq!(confirms.len(), 2);
    assert!(confirms.iter().all(|e| e.status == 200));
    assert_eq!(confirms[0].body, confirms[1].body);
    assert_eq!(active_devices(&rp, "alice").await, vec![device_id(&acct)]);
    assert_eq!(dev.auth.accounts().unwrap(), vec![acct.clone()]);
    // And it works.
    let started = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx = started["tx_id"].as_str().unwrap();
    let got = wait_pending(&dev.auth, 1, 10).await;
    assert_eq!(got[0].tx_id, tx);
    dev.auth.approve(&acct.id, tx, None).await.unwrap();
    assert_eq!(rp.status(tx).await["state"], "approved");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offer_attempt_limit_holds() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-limit");
    let dev = open_device(dir.path(), |_| {});
    let offer = rp.enroll("alice").await;
    // Five activations the device refuses (PIN too short for the result's policy).
    for _ in 0..5 {
        assert_eq!(
            dev.auth
                .activate_code(&s.base(), &offer.code, None, with_pin("12345"))
                .await
                .err(),
            Some(Error::InvalidInput { what: "pin" })
        );
    }
    // The sixth is refused by the server, even with a good PIN.
    assert_eq!(
        dev.auth
            .activate_code(&s.base(), &offer.code, None, with_pin("123456"))
            .await
            .err(),
        Some(Error::ServerRejected {
            code: "rate_limited".into()
        })
    );
    assert!(devices(&rp, "alice").await.is_empty());
    assert!(dev.auth.accounts().unwrap().is_empty());
    assert!(stored_files(dir.path()).is_empty());
    s.stop().await;
}

/// Activates with PIN 246810 and gets one push that needs the PIN.
async fn pin_account_with_a_challenge(rp: &RpClient, dev: &Device) -> (AccountInfo, String) {
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, with_pin("246810"))
        .await
        .unwrap();
    let v = rp
        .start_push(json!({
            "user": "alice", "number_matching": "off", "verification": "pin", "timeout_secs": 120
        }))
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    let data = HashMap::from([
        ("device_id".to_owned(), device_id(&acct)),
        ("tx_id".to_owned(), tx.clone()),
    ]);
    dev.auth.handle_push(&data).await.unwrap();
    (acct, tx)
}

/// Ten wrong PINs: the account is wiped.
async fn lock_out(dev: &Device, acct: &AccountInfo, tx: &str) {
    for attempt in 1..=10u32 {
        dev.user.will([Answer::Pin("000000".into())]);
        let r = dev.auth.approve(&acct.id, tx, None).await;
        if attempt < 10 {
            assert!(matches!(r, Err(Error::WrongPin { .. })), "{r:?}");
        } else {
            assert_eq!(r.err(), Some(Error::PinLocked));
        }
    }
    assert!(dev.auth.accounts().unwrap().is_empty());
}

/// The signed deregistrations the device sent.
fn deregistrations(dev: &Device) -> Vec<Vec<u8>> {
    dev.wire
        .exchanges_to("/v1/device")
        .into_iter()
        .filter(|e| e.request.method == HttpMethod::Delete)
        .map(|e| e.request.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_lockout_removes_the_device_on_the_server_and_ends_its_challenge() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-wipe");
    let dev = open_device(dir.path(), |c| c.pin_kdf_iterations = 1000);
    let (acct, tx) = pin_account_with_a_challenge(&rp, &dev).await;
    lock_out(&dev, &acct, &tx).await;
    let list = devices(&rp, "alice").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "removed");
    assert_eq!(rp.status(&tx).await["state"], "expired");
    assert_no_push_target(&rp, "alice").await;
    assert_eq!(
        deregistrations(&dev),
        vec![br#"{"reason":"wiped_on_device"}"#.to_vec()]
    );
    // Delivered: the tombstone and Dp are gone, nothing is sent again.
    assert!(stored_files(dir.path()).is_empty());
    dev.auth.deliver_outbox().await.unwrap();
    assert_eq!(deregistrations(&dev).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_lockout_offline_is_told_to_the_server_when_the_network_is_back() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("act-wipe-offline");
    let dev = open_device(dir.path(), |c| c.pin_kdf_iterations = 1000);
    let (acct, tx) = pin_account_with_a_challenge(&rp, &dev).await;
    dev.wire
        .set_faults(Some(Box::new(|_| Some(Fault::Unreachable))));
    lock_out(&dev, &acct, &tx).await;
    // The server has not heard yet.
    assert_eq!(active_devices(&rp, "alice").await, vec![device_id(&acct)]);
    assert_eq!(rp.status(&tx).await["state"], "pending");
    dev.auth.deliver_outbox().await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "pending");
    // The tombstone survives a restart.
    drop(dev);
    let dev = open_device(dir.path(), |c| c.pin_kdf_iterations = 1000);
    assert!(dev.auth.accounts().unwrap().is_empty());
    dev.auth.deliver_outbox().await.unwrap();
    let list = devices(&rp, "alice").await;
    assert_eq!(list[0]["status"], "removed");
    assert_eq!(rp.status(&tx).await["state"], "expired");
    assert_eq!(deregistrations(&dev).len(), 1);
    assert!(stored_files(dir.path()).is_empty());
    s.stop().await;
}
