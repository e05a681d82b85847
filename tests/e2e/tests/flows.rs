//! The authenticator core against the real countersign-server over loopback HTTP,
//! with FileStorage (key-file mode) and SoftwareKeyVault (issue 5, "Must show").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use countersign_core::Error;
use countersign_core::authenticator::{AccountKind, ActivationOptions, CancelHandle};
use countersign_core::platform::{HttpResponse, VerificationKind};
use countersign_core::protocol::{DenyReason, NumberMatching, Verification};
use countersign_e2e::{Answer, copy_dir, open_device, start_server, wait_pending, with_pin};
use countersign_test_support::temp_dir;
use serde_json::json;

fn device_id(kind: &AccountKind) -> String {
    match kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

fn push_data(device: &str, tx: &str) -> HashMap<String, String> {
    HashMap::from([
        ("device_id".to_owned(), device.to_owned()),
        ("tx_id".to_owned(), tx.to_owned()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_qr_and_code_three_accounts_on_two_servers_totp_and_push() {
    let a = start_server(|_| {}).await;
    let b = start_server(|_| {}).await;
    let rp_a = a.rp("Example Bank").await;
    let rp_b = b.rp("Example VPN").await;
    let dir = temp_dir("three");
    let dev = open_device(dir.path(), |_| {});

    let uri = rp_a.enroll("alice").await.uri;
    let alice = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let code = rp_a.enroll("bob").await.code;
    // Typed code, with the fingerprint the app was configured with.
    let bob = dev
        .auth
        .activate_code(
            &a.base(),
            &code,
            Some(a.key_fingerprint()),
            ActivationOptions::default(),
        )
        .await
        .unwrap();
    let code = rp_b.enroll("carol").await.code;
    // Typed code, trust on first use.
    let carol = dev
        .auth
        .activate_code(&b.base(), &code, None, ActivationOptions::default())
        .await
        .unwrap();
    // A code cannot be redeemed twice.
    assert_eq!(
        dev.auth
            .activate_code(&b.base(), &code, None, ActivationOptions::default())
            .await
            .err(),
        Some(Error::ServerRejected {
            code: "replayed".into()
        })
    );
    // A typed code with the wrong pinned fingerprint is refused.
    let code = rp_b.enroll("mallory").await.code;
    assert_eq!(
        dev.auth
            .activate_code(
                &b.base(),
                &code,
                Some([7u8; 32]),
                ActivationOptions::default()
            )
            .await
            .err(),
        Some(Error::Tampered)
    );
    assert_eq!(dev.auth.accounts().unwrap().len(), 3);
    assert_eq!(alice.label, "alice");
    assert_eq!(carol.issuer.as_deref(), Some("Example VPN"));

    // TOTP equal to the server's: each code validates on its server.
    for (rp, user, acct) in [
        (&rp_a, "alice", &alice),
        (&rp_a, "bob", &bob),
        (&rp_b, "carol", &carol),
    ] {
        let code = dev.auth.otp(&acct.id).unwrap();
        assert!(code.seconds_left.unwrap() <= 30);
        let (s, v) = rp.validate(user, &code.code).await;
        assert_eq!(s, 200, "{user}: {v}");
        assert_eq!(v["method"], "totp");
    }

    // One push per account, long-polled together, approved.
    let mut txs = Vec::new();
    for (rp, user) in [(&rp_a, "alice"), (&rp_a, "bob"), (&rp_b, "carol")] {
        let v = rp
            .start_push(json!({ "user": user, "number_matching": "off" }))
            .await;
        txs.push(v["tx_id"].as_str().unwrap().to_owned());
    }
    let pending = wait_pending(&dev.auth, 3, 20).await;
    assert_eq!(pending.len(), 3);
    for p in &pending {
        dev.auth
            .approve(&p.account_id, &p.tx_id, None)
            .await
            .unwrap();
    }
    for (rp, tx) in [(&rp_a, &txs[0]), (&rp_a, &txs[1]), (&rp_b, &txs[2])] {
        assert_eq!(rp.status(tx).await["state"], "approved");
    }

    // Everything survives a restart.
    drop(dev);
    let dev = open_device(dir.path(), |_| {});
    assert_eq!(dev.auth.accounts().unwrap().len(), 3);
    let v = rp_b
        .start_push(json!({ "user": "carol", "number_matching": "off" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    let req = dev
        .auth
        .handle_push(&push_data(&device_id(&carol.kind), tx))
        .await
        .unwrap();
    dev.auth
        .deny(&req.account_id, tx, DenyReason::Mistake)
        .await
        .unwrap();
    assert_eq!(rp_b.status(tx).await["deny_reason"], "mistake");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_matching_push_otp_and_deny_not_me() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("number");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let dev_id = device_id(&acct.kind);

    let v = rp
        .start_push(json!({
            "user": "alice",
            "context": { "ip": "203.0.113.7", "location": "Berlin, DE" },
            "text": "Sign in to the bank",
            "number_matching": "type",
            "digits": 2
        }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    let number = v["number"].as_str().unwrap();
    let req = dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
    assert_eq!(req.challenge.text.as_deref(), Some("Sign in to the bank"));
    assert_eq!(
        req.challenge.context.location.as_deref(),
        Some("Berlin, DE")
    );
    assert_eq!(
        req.challenge.number_matching,
        NumberMatching::Type { digits: 2 }
    );
    assert!(req.seconds_left > 0 && req.seconds_left <= 30);
    // A malformed number is refused locally; a wrong one by the server.
    assert_eq!(
        dev.auth.approve(&acct.id, tx, Some("1")).await.err(),
        Some(Error::InvalidInput { what: "number" })
    );
    let wrong = if number == "00" { "01" } else { "00" };
    assert_eq!(
        dev.auth.approve(&acct.id, tx, Some(wrong)).await.err(),
        Some(Error::ServerRejected {
            code: "wrong_number".into()
        })
    );
    let out = dev.auth.approve(&acct.id, tx, Some(number)).await.unwrap();
    assert_eq!(out.verification, Verification::None);
    let st = rp.status(tx).await;
    assert_eq!(st["state"], "approved");
    // The push OTP reached the server and is accepted (once) as a passcode.
    assert_eq!(st["push_otp"].as_str().unwrap(), out.push_otp.as_str());
    // Not without its tx: a push OTP belongs to the login it came with.
    let (code, v) = rp.validate("alice", &out.push_otp).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("invalid_otp"))
    );
    let (code, v) = rp.validate_for_tx("alice", &out.push_otp, tx).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["method"], "push_otp");
    // Answering again is refused locally.
    assert_eq!(
        dev.auth.approve(&acct.id, tx, Some(number)).await.err(),
        Some(Error::AlreadyAnswered)
    );

    // Deny "not me".
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    let pending = wait_pending(&dev.auth, 1, 10).await;
    assert_eq!(pending[0].tx_id, tx);
    dev.auth
        .deny(&acct.id, tx, DenyReason::NotMe)
        .await
        .unwrap();
    let st = rp.status(tx).await;
    assert_eq!(st["state"], "denied");
    assert_eq!(st["deny_reason"], "not_me");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_to_pin_and_to_biometric() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("stepup");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, with_pin("246810"))
        .await
        .unwrap();
    assert!(acct.pin_set && !acct.biometric_enabled);
    let dev_id = device_id(&acct.kind);

    // PIN step-up: cancelled first (nothing sent), then the right PIN.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off", "verification": "pin" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    let req = dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
    assert_eq!(req.challenge.verification, Verification::Pin);
    dev.user.will([Answer::Cancel]);
    assert_eq!(
        dev.auth.approve(&acct.id, tx, None).await.err(),
        Some(Error::VerificationCancelled)
    );
    assert_eq!(rp.status(tx).await["state"], "pending");
    dev.user.will([Answer::Pin("246810".into())]);
    let out = dev.auth.approve(&acct.id, tx, None).await.unwrap();
    assert_eq!(out.verification, Verification::Pin);
    assert_eq!(rp.status(tx).await["state"], "approved");

    // Biometric: enabling asks for the PIN once, then a biometric challenge uses
    // the UV-bound vault key.
    dev.user.will([Answer::Pin("246810".into())]);
    dev.auth.enable_biometric(&acct.id).await.unwrap();
    assert!(dev.auth.account(&acct.id).unwrap().biometric_enabled);
    let v = rp
        .start_push(
            json!({ "user": "alice", "number_matching": "off", "verification": "biometric" }),
        )
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
    dev.user.will([Answer::Fail]);
    assert_eq!(
        dev.auth.approve(&acct.id, tx, None).await.err(),
        Some(Error::VerificationFailed)
    );
    dev.user.will([Answer::Biometric]);
    let out = dev.auth.approve(&acct.id, tx, None).await.unwrap();
    assert_eq!(out.verification, Verification::Biometric);
    assert_eq!(rp.status(tx).await["state"], "approved");
    assert_eq!(
        dev.user.prompt_kinds(),
        vec![
            VerificationKind::Pin,
            VerificationKind::Pin,
            VerificationKind::Pin,
            VerificationKind::Biometric,
            VerificationKind::Biometric
        ]
    );

    // The user can require verification for every approval on the account.
    dev.auth
        .set_min_verification(&acct.id, Verification::Pin)
        .unwrap();
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
    dev.user.will([Answer::Biometric]);
    let out = dev.auth.approve(&acct.id, tx, None).await.unwrap();
    assert_eq!(out.verification, Verification::Biometric);

    // Changing the PIN: the old one no longer works.
    dev.auth
        .change_pin(&acct.id, "246810", "135790")
        .await
        .unwrap();
    assert_eq!(
        dev.auth
            .change_pin(&acct.id, "246810", "111111")
            .await
            .err(),
        Some(Error::WrongPin { attempts_left: 9 })
    );
    dev.auth
        .change_pin(&acct.id, "135790", "246810")
        .await
        .unwrap();
    assert_eq!(dev.auth.account(&acct.id).unwrap().pin_failures, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_wrong_pins_wipe_the_account() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("pinlock");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, with_pin("246810"))
        .await
        .unwrap();
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off", "verification": "pin" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    dev.auth
        .handle_push(&push_data(&device_id(&acct.kind), &tx))
        .await
        .unwrap();
    let mut dev = dev;
    for attempt in 1..=10u32 {
        dev.user.will([Answer::Pin("000000".into())]);
        let r = dev.auth.approve(&acct.id, &tx, None).await;
        if attempt < 10 {
            assert_eq!(
                r.err(),
                Some(Error::WrongPin {
                    attempts_left: 10 - attempt
                })
            );
        } else {
            assert_eq!(r.err(), Some(Error::PinLocked));
        }
        if attempt == 5 {
            // The counter is persisted: a restart does not reset it.
            drop(dev);
            dev = open_device(dir.path(), |_| {});
            assert_eq!(dev.auth.account(&acct.id).unwrap().pin_failures, 5);
            dev.auth
                .handle_push(&push_data(&device_id(&acct.kind), &tx))
                .await
                .unwrap();
        }
    }
    assert!(dev.auth.accounts().unwrap().is_empty());
    assert_eq!(dev.auth.otp(&acct.id).err(), Some(Error::AccountNotFound));
    let reopened = open_device(dir.path(), |_| {});
    assert!(reopened.auth.accounts().unwrap().is_empty());
    // Nothing of the account is left in storage.
    // (The storage's lock file holds nothing.)
    let files: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "lock")
        .collect();
    assert!(files.is_empty(), "{files:?}");
    // The wipe was told to the server (issue 12): the device is removed and its
    // pending challenge ended.
    assert_eq!(rp.status(&tx).await["state"], "expired");
    let (_, devices) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(devices[0]["status"], "removed", "{devices}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_replay_tampering_and_clock_estimate() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("expiry");
    let dev = open_device(dir.path(), |_| {});
    // The device clock is an hour slow; the server's signed times correct it.
    dev.clock.shift.store(-3600, Ordering::SeqCst);
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await;
    // The server refuses a device clock off by an hour at activation...
    assert_eq!(acct.err(), Some(Error::RequestExpired));
    // ...so activate with a 2-minute-slow clock instead, then drift another hour.
    dev.clock.shift.store(-120, Ordering::SeqCst);
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let dev_id = device_id(&acct.kind);
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx1 = v["tx_id"].as_str().unwrap().to_owned();
    let req = dev
        .auth
        .handle_push(&push_data(&dev_id, &tx1))
        .await
        .unwrap();
    assert!(
        req.seconds_left >= 25,
        "estimated server clock: {}",
        req.seconds_left
    );
    dev.auth.approve(&acct.id, &tx1, None).await.unwrap();

    // Replay: the old (validly signed) envelope again.
    let old = dev
        .wire
        .envelopes
        .lock()
        .unwrap()
        .get(&tx1)
        .cloned()
        .unwrap();
    assert_eq!(
        dev.auth.receive_challenge(&acct.id, &old).err(),
        Some(Error::AlreadyAnswered)
    );
    // ... and served by a malicious network in place of a new challenge.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx2 = v["tx_id"].as_str().unwrap().to_owned();
    let replay = old.clone();
    dev.wire
        .set_rewrite(Some(Box::new(move |req, mut resp: HttpResponse| {
            if req.url.contains("/v1/device/challenges/") && !req.url.contains("wait=") {
                resp.body = replay.clone();
            }
            resp
        })));
    assert_eq!(
        dev.auth.handle_push(&push_data(&dev_id, &tx2)).await.err(),
        Some(Error::AlreadyAnswered)
    );

    // Tampering: one flipped bit in the signed envelope.
    dev.wire
        .set_rewrite(Some(Box::new(|req, mut resp: HttpResponse| {
            if req.url.contains("/v1/device/challenges/") && !req.url.contains("wait=") {
                let mut v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
                let payload = v["payload"].as_str().unwrap().to_owned();
                let mut bytes: Vec<char> = payload.chars().collect();
                let i = bytes.len() / 2;
                bytes[i] = if bytes[i] == 'A' { 'B' } else { 'A' };
                v["payload"] = serde_json::Value::String(bytes.into_iter().collect());
                resp.body = serde_json::to_vec(&v).unwrap();
            }
            resp
        })));
    assert_eq!(
        dev.auth.handle_push(&push_data(&dev_id, &tx2)).await.err(),
        Some(Error::Tampered)
    );
    dev.wire.set_rewrite(None);
    // The genuine challenge still works.
    dev.auth
        .handle_push(&push_data(&dev_id, &tx2))
        .await
        .unwrap();

    // Local expiry against the estimated server clock: the device clock jumps
    // forward (or the app sat on the request) past the expiry.
    dev.clock.shift.store(-120 + 60, Ordering::SeqCst);
    assert_eq!(
        dev.auth.approve(&acct.id, &tx2, None).await.err(),
        Some(Error::RequestExpired)
    );
    // Nothing was sent; the request stays stored, and with the clock back the
    // server (the judge of expiry) takes the approval.
    assert!(dev.wire.exchanges_to(&format!("{tx2}/answer")).is_empty());
    dev.clock.shift.store(-120, Ordering::SeqCst);
    dev.auth.approve(&acct.id, &tx2, None).await.unwrap();
    assert_eq!(rp.status(&tx2).await["state"], "approved");

    // Server-side expiry: a 1-second challenge is gone after 2 seconds.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off", "timeout_secs": 1 }))
        .await;
    let tx3 = v["tx_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        dev.auth.handle_push(&push_data(&dev_id, &tx3)).await.err(),
        Some(Error::RequestExpired)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kem_rotation_old_key_cannot_open_new_challenge() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("kem");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let dev_id = device_id(&acct.kind);
    let first_kid = dev.auth.kem_key_ids(&acct.id).unwrap();
    assert_eq!(first_kid.len(), 1);

    // Snapshot the device's storage as it is now (holding only K0).
    let snap = temp_dir("kem-snapshot");
    copy_dir(dir.path(), snap.path());

    let mut kids = Vec::new();
    for _ in 0..6 {
        let v = rp
            .start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        let tx = v["tx_id"].as_str().unwrap();
        dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
        dev.auth.approve(&acct.id, tx, None).await.unwrap();
        kids = dev.auth.kem_key_ids(&acct.id).unwrap();
    }
    // Every answer rotated the key; the superseded ones stay only for the
    // grace period in which challenges sealed to them may still be pending
    // (their deletion after it is a unit test of the record).
    assert_eq!(kids.len(), 7);
    assert!(kids.contains(&first_kid[0]));

    // The next challenge is sealed to the newest key: the old state (K0) cannot
    // open it, the live device can.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap();
    let old = open_device(snap.path(), |_| {});
    assert_eq!(
        old.auth.handle_push(&push_data(&dev_id, tx)).await.err(),
        Some(Error::Tampered)
    );
    dev.auth.handle_push(&push_data(&dev_id, tx)).await.unwrap();
    dev.auth.approve(&acct.id, tx, None).await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_removal_wipes_and_user_removal_deregisters() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("removal");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let alice = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let uri = rp.enroll("bob").await.uri;
    let bob = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();

    // The admin removes alice's device: the next contact wipes the account.
    let (st, v) = rp
        .delete(&format!(
            "/v1/rp/users/alice/devices/{}",
            device_id(&alice.kind)
        ))
        .await;
    assert_eq!(st, 200, "{v}");
    let r = dev.auth.pending(0, &CancelHandle::new()).await;
    assert!(r.is_ok(), "bob's poll still works: {r:?}");
    let ids: Vec<String> = dev
        .auth
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![bob.id.clone()]);

    // Removing bob tells the server first.
    dev.auth.remove_account(&bob.id).await.unwrap();
    assert!(dev.auth.accounts().unwrap().is_empty());
    let (st, v) = rp.get("/v1/rp/users/bob/devices").await;
    assert_eq!(st, 200);
    let devices = v.as_array().cloned().unwrap_or_default();
    assert!(
        !devices.is_empty() && devices.iter().all(|d| d["status"] != "active"),
        "bob's device is deregistered: {v}"
    );
    // Push token update with no accounts left is a no-op.
    dev.auth
        .update_push_token(countersign_core::protocol::PushRegistration::Fcm {
            token: "new-token".into(),
        })
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistered_single_account_reports_it_and_push_token_update() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("dereg");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let alice = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    dev.auth
        .update_push_token(countersign_core::protocol::PushRegistration::Fcm {
            token: "fcm-token-1".into(),
        })
        .await
        .unwrap();
    rp.delete(&format!(
        "/v1/rp/users/alice/devices/{}",
        device_id(&alice.kind)
    ))
    .await;
    assert_eq!(
        dev.auth.pending(0, &CancelHandle::new()).await.err(),
        Some(Error::DeviceDeregistered)
    );
    assert!(dev.auth.accounts().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_qr_ocra_and_long_poll_cancel() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("ocra");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();

    let (st, off) = rp.post("/v1/rp/offline", json!({ "user": "alice" })).await;
    assert_eq!(st, 200, "{off}");
    let answer = dev
        .auth
        .answer_offline_qr(off["qr_payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(answer.account_id, acct.id);
    assert_eq!(answer.rp, "Example Bank");
    let (st, v) = rp
        .post(
            &format!("/v1/rp/offline/{}/verify", off["id"].as_str().unwrap()),
            json!({ "response": answer.code.as_str() }),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A forged QR (payload changed) is refused.
    let mut forged: serde_json::Value =
        serde_json::from_str(off["qr_payload"].as_str().unwrap()).unwrap();
    let payload = countersign_core::protocol::encoding::b64url_decode(
        "payload",
        forged["payload"].as_str().unwrap(),
        4096,
    )
    .unwrap();
    let mut p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    p["rp"] = json!("Evil Corp");
    forged["payload"] = json!(countersign_core::protocol::encoding::b64url(
        &serde_json::to_vec(&p).unwrap()
    ));
    assert_eq!(
        dev.auth.answer_offline_qr(&forged.to_string()).err(),
        Some(Error::Tampered)
    );

    // A long-poll with nothing pending is cancelled promptly.
    let cancel = CancelHandle::new();
    let c2 = cancel.clone();
    let auth = dev.auth.clone();
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { auth.pending(30, &c2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    assert_eq!(poll.await.unwrap().err(), Some(Error::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(5));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_pushes_across_accounts() {
    let s = start_server(|c| {
        c.policy.push_max_per_window = 1000;
        c.policy.max_pending = 100;
    })
    .await;
    let rp = Arc::new(s.rp("Example Bank").await);
    let dir = temp_dir("race");
    let dev = open_device(dir.path(), |_| {});
    let users = ["u0", "u1", "u2", "u3", "u4"];
    let mut devices = HashMap::new();
    for u in users {
        let uri = rp.enroll(u).await.uri;
        let a = dev
            .auth
            .activate_uri(&uri, ActivationOptions::default())
            .await
            .unwrap();
        devices.insert(u, device_id(&a.kind));
    }
    // 100 pushes, started concurrently by the RP (20 per account).
    let mut starts = Vec::new();
    for i in 0..100 {
        let rp = rp.clone();
        let user = users[i % users.len()];
        starts.push(tokio::spawn(async move {
            let v = rp
                .start_push(json!({ "user": user, "number_matching": "off" }))
                .await;
            (user, v["tx_id"].as_str().unwrap().to_owned())
        }));
    }
    let mut txs = Vec::new();
    for t in starts {
        txs.push(t.await.unwrap());
    }
    let run = async {
        // Every push handled concurrently...
        let mut handles = Vec::new();
        for (user, tx) in &txs {
            let auth = dev.auth.clone();
            let data = push_data(&devices[user], tx);
            handles.push(tokio::spawn(async move { auth.handle_push(&data).await }));
        }
        let mut reqs = Vec::new();
        for h in handles {
            reqs.push(h.await.unwrap().unwrap());
        }
        // ...then every one approved concurrently.
        let mut handles = Vec::new();
        for r in reqs {
            let auth = dev.auth.clone();
            handles.push(tokio::spawn(async move {
                auth.approve(&r.account_id, &r.tx_id, None).await
            }));
        }
        let mut ok = 0;
        for h in handles {
            h.await.unwrap().unwrap();
            ok += 1;
        }
        ok
    };
    let ok = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("no deadlock");
    assert_eq!(ok, 100);
    for (_, tx) in &txs {
        assert_eq!(rp.status(tx).await["state"], "approved");
    }
    // Exactly once: a second answer is refused.
    let (user, tx) = &txs[0];
    let acct = dev
        .auth
        .accounts()
        .unwrap()
        .into_iter()
        .find(|a| device_id(&a.kind) == devices[user])
        .unwrap();
    assert!(dev.auth.approve(&acct.id, tx, None).await.is_err());
    assert!(dev.auth.pending_requests().unwrap().is_empty());
    s.stop().await;
}
