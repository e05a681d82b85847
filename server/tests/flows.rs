//! Every flow of issue 4 over real HTTP on loopback, on SQLite and PostgreSQL,
//! with the test acting as the device through countersign_protocol's protocol code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use countersign_protocol::otp::{HmacAlgorithm, OcraInputs, OcraSuite, TotpParams};
use countersign_protocol::{DenyReason, sign_request};
use countersign_test_support::{Db, RpClient, TestServer, both_databases, http_client, now};
use serde_json::json;
use support::{TestDevice, assert_error};

async fn setup(db: Db) -> (TestServer, RpClient, TestDevice) {
    setup_with(db, |_| {}).await
}

async fn setup_with(
    db: Db,
    tweak: impl FnOnce(&mut countersign_server::config::Config),
) -> (TestServer, RpClient, TestDevice) {
    let s = TestServer::start_with(db, tweak).await;
    let rp = s.rp("Example Bank").await;
    let offer = rp.enroll("alice").await;
    let dev = TestDevice::activate(&s.base(), &offer.uri).await;
    (s, rp, dev)
}

async fn audit_events(s: &TestServer) -> Vec<String> {
    use sqlx::Row;
    sqlx::query("SELECT event FROM audit_log ORDER BY at, id")
        .fetch_all(&s.server().state().db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect()
}

/// Posts an activation request for `creds` (with fresh keys); the answer.
async fn post_activation(
    s: &TestServer,
    creds: &countersign_protocol::OfferCredentials,
) -> (u16, serde_json::Value) {
    let (_, _, _, body) = TestDevice::activation_request(creds);
    let r = http_client()
        .post(format!("{}/v1/device/activate", s.base()))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn enrollment_and_activation(db: Db) {
    let s = TestServer::start(db).await;
    let rp = s.rp("Example Bank").await;
    let offer = rp.enroll("alice").await;
    assert!(offer.uri.starts_with("countersign://activate?v=1&url="));
    assert!(offer.json["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        offer.json["qr_png_base64"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(offer.json["expires_at"].as_i64().unwrap() <= now() as i64 + 600);
    let code = &offer.code;
    assert_eq!(code.len(), 29);

    let uri = &offer.uri;
    let dev = TestDevice::activate(&s.base(), uri).await;
    assert!(dev.device_id.starts_with("dev_"));
    assert_eq!(dev.seed.len(), 20);

    // Single use: the same offer cannot activate a second device.
    let (_, creds) = support::offer_credentials(uri);
    let got = post_activation(&s, &creds).await;
    assert_error(&got, 409, "replayed");

    // The typed code activates like the QR code.
    let offer2 = rp.enroll("bob").await;
    let creds2 = countersign_protocol::OfferCredentials::parse_code(&offer2.code).unwrap();
    let got = post_activation(&s, &creds2).await;
    assert_eq!(got.0, 200, "{}", got.1);

    // Wrong secrets are counted and then rate-limited.
    let offer3 = rp.enroll("carol").await;
    let (_, mut creds3) = support::offer_credentials(&offer3.uri);
    let good = creds3.clone();
    creds3.secret = countersign_protocol::OfferSecret::from_bytes([7u8; 10]);
    for _ in 0..5 {
        let got = post_activation(&s, &creds3).await;
        assert_error(&got, 401, "bad_signature");
    }
    let got = post_activation(&s, &good).await;
    assert_error(&got, 429, "rate_limited");

    let events = audit_events(&s).await;
    // Two activations (QR, typed code); the first alone was confirmed.
    assert!(events.iter().filter(|e| *e == "enrollment").count() >= 1);
    assert!(events.iter().filter(|e| *e == "enrollment_pending").count() >= 2);
    assert!(events.iter().any(|e| e == "enrollment_refused"));
    s.stop().await;
}

async fn push_approve_with_number_and_push_otp(db: Db) {
    let (s, rp, mut dev) = setup(db).await;
    let (st, started) = rp
        .push(json!({
            "user": "alice",
            "context": {"ip": "203.0.113.7", "location": "Berlin, DE", "user_agent": "Firefox"},
            "text": "Sign in to Example Bank"
        }))
        .await;
    assert_eq!(st, 200, "{started}");
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();
    assert_eq!(number.len(), 2, "2 digits by default");

    let (st, pending) = dev.poll(5).await;
    assert_eq!(st, 200);
    assert_eq!(pending["challenges"][0]["tx"], tx.as_str());
    let opened = dev.fetch(&tx).await;
    assert_eq!(opened.challenge.context.rp, "Example Bank");
    assert_eq!(opened.challenge.context.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        opened.challenge.text.as_deref(),
        Some("Sign in to Example Bank")
    );
    assert_eq!(
        opened.challenge.number_matching,
        countersign_protocol::NumberMatching::Type { digits: 2 },
        "the challenge carries only the digit count, never the number"
    );

    // The RP long-polls while the user decides.
    let rp2 = rp.on(rp.base());
    let tx2 = tx.clone();
    let waiter =
        tokio::spawn(async move { rp2.get(&format!("/v1/rp/challenges/{tx2}?wait=20")).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = dev.approval(&opened, Some(&number));
    let (st, body) = dev.post_answer(&answer).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["state"], "approved");
    let (st, status) = waiter.await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(status["state"], "approved");
    assert_eq!(status["device_id"], dev.device_id.as_str());
    let push_otp = status["push_otp"].as_str().unwrap().to_string();
    assert_eq!(push_otp.len(), 6);

    // Answering again: already answered.
    let again = dev.approval(&opened, Some(&number));
    assert_error(&dev.post_answer(&again).await, 409, "already_answered");

    // The push OTP fills the login form once.
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": push_otp, "tx_id": tx}),
        )
        .await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["result"], "accepted");
    assert_eq!(v.1["method"], "push_otp");
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": push_otp, "tx_id": tx}),
        )
        .await;
    assert_error(&v, 403, "otp_reused");

    let events = audit_events(&s).await;
    for e in ["enrollment", "push", "approval", "otp_accepted"] {
        assert!(events.iter().any(|x| x == e), "audit has {e}: {events:?}");
    }
    s.stop().await;
}

async fn pick_and_nist_number_matching(db: Db) {
    let (s, rp, mut dev) = setup(db).await;
    let (_, started) = rp
        .push(json!({"user": "alice", "number_matching": "pick"}))
        .await;
    let tx = started["tx_id"].as_str().unwrap();
    let number = started["number"].as_str().unwrap();
    let opened = dev.fetch(tx).await;
    let countersign_protocol::NumberMatching::Pick { choices } = &opened.challenge.number_matching
    else {
        panic!("pick mode")
    };
    assert_eq!(choices.len(), 3);
    assert!(choices.iter().any(|c| c == number));
    // (A wrong pick ends the challenge: tests/attacker.rs.)
    let good = dev.approval(&opened, Some(number));
    assert_eq!(dev.post_answer(&good).await.0, 200);

    let (_, started) = rp.push(json!({"user": "alice", "profile": "nist"})).await;
    assert_eq!(started["number"].as_str().unwrap().len(), 6);
    let tx = started["tx_id"].as_str().unwrap();
    let opened = dev.fetch(tx).await;
    assert_eq!(
        opened.challenge.number_matching,
        countersign_protocol::NumberMatching::Type { digits: 6 }
    );
    s.stop().await;
}

async fn transaction_and_step_up(db: Db) {
    let (s, rp, mut dev) = setup(db).await;
    let (st, started) = rp
        .push(json!({
            "user": "alice",
            "transaction": {"amount": "1250.00", "currency": "EUR", "payee": "ACME GmbH"},
            "verification": "pin",
            "number_matching": "off"
        }))
        .await;
    assert_eq!(st, 200, "{started}");
    assert!(started["number"].is_null());
    let tx = started["tx_id"].as_str().unwrap();
    let opened = dev.fetch(tx).await;
    assert_eq!(
        opened.challenge.transaction.as_ref().unwrap().payee,
        "ACME GmbH"
    );
    let otp = countersign_protocol::answer::push_otp(&opened, &dev.seed, dev.digits)
        .unwrap()
        .to_string();
    // An approval without the required verification (a one-tap, Dp-signed
    // approval) has its own error code.
    let mut one_tap = countersign_protocol::Answer::approve(
        &opened,
        countersign_protocol::Approval {
            number: None,
            otp: Some(otp.clone()),
            verification: countersign_protocol::Verification::Pin,
        },
        countersign_protocol::crypto::AgreementKey::generate()
            .unwrap()
            .public_key(),
        now(),
    )
    .unwrap();
    one_tap.verification = countersign_protocol::Verification::None;
    assert_eq!(
        one_tap.purpose(),
        countersign_protocol::Purpose::Answer,
        "signed by Dp"
    );
    assert_error(
        &dev.post_answer(&one_tap).await,
        403,
        "verification_required",
    );
    assert!(audit_events(&s).await.iter().any(|e| e == "answer_refused"));
    // An approval with PIN verification is signed by Du.
    let next = countersign_protocol::crypto::AgreementKey::generate().unwrap();
    let answer = countersign_protocol::Answer::approve(
        &opened,
        countersign_protocol::Approval {
            number: None,
            otp: Some(otp),
            verification: countersign_protocol::Verification::Pin,
        },
        next.public_key(),
        now(),
    )
    .unwrap();
    dev.kems.push(next);
    let (st, body) = dev.post_answer(&answer).await;
    assert_eq!(st, 200, "{body}");
    s.stop().await;
}

async fn totp_validation_and_triggers(db: Db) {
    let (s, rp, dev) = setup(db).await;
    let params = TotpParams::new(HmacAlgorithm::Sha1, dev.digits, dev.period).unwrap();
    let code = countersign_protocol::otp::totp_at(&params, &dev.seed, now()).unwrap();
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": code}),
        )
        .await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["method"], "totp");
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": code}),
        )
        .await;
    assert_error(&v, 403, "otp_reused");
    // A code one step ahead (clock drift) is accepted and the drift recorded.
    let ahead =
        countersign_protocol::otp::totp_at(&params, &dev.seed, now() + u64::from(dev.period))
            .unwrap();
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": ahead}),
        )
        .await;
    assert_eq!(v.0, 200, "{}", v.1);
    {
        use sqlx::Row;
        let drift: i64 = sqlx::query("SELECT totp_drift FROM devices WHERE id = $1")
            .bind(&dev.device_id)
            .fetch_one(&s.server().state().db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert!((0..=1).contains(&drift), "drift recorded: {drift}");
    }
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": "000000"}),
        )
        .await;
    if v.0 != 200 {
        assert_error(&v, 403, "invalid_otp");
    }
    // Triggers: empty, one character, `push` in any case.
    for p in ["", "x", "PuSh"] {
        let v = rp
            .post("/v1/rp/validate", json!({"user": "alice", "passcode": p}))
            .await;
        assert_eq!(v.0, 200, "{}", v.1);
        assert_eq!(v.1["result"], "push_started", "{p:?}");
        assert!(v.1["tx_id"].is_string());
    }
    s.stop().await;
}

async fn hotp_token_with_look_ahead(db: Db) {
    let (s, rp, _dev) = setup(db).await;
    let secret = b"12345678901234567890";
    let b32 = countersign_protocol::otp::base32::encode(secret);
    let (st, body) = rp
        .post(
            "/v1/rp/users/alice/oath-tokens",
            json!({"kind": "hotp", "secret_base32": b32}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // RFC 4226 vectors: counter 3 is "969429", 5 is "254676".
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": "969429"}),
        )
        .await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["method"], "hotp");
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": "969429"}),
        )
        .await;
    assert_error(&v, 403, "otp_reused");
    let v = rp
        .post(
            "/v1/rp/validate",
            json!({"user": "alice", "passcode": "254676"}),
        )
        .await;
    assert_eq!(v.0, 200, "{}", v.1);
    s.stop().await;
}

async fn rejections(db: Db) {
    let (s, rp, mut dev) = setup_with(db, |c| c.policy.max_pending = 10).await;
    let (_, started) = rp.push(json!({"user": "alice"})).await;
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();
    let opened = dev.fetch(&tx).await;

    // Wrong number.
    let wrong = if number == "00" { "01" } else { "00" };
    let a = dev.approval(&opened, Some(wrong));
    assert_error(&dev.post_answer(&a).await, 403, "wrong_number");

    // Wrong display hash: the answer signs something else than what was sent.
    let mut a = dev.approval(&opened, Some(&number));
    a.challenge_hash[0] ^= 1;
    assert_error(&dev.post_answer(&a).await, 403, "wrong_display_hash");

    // Wrong account.
    let mut a = dev.approval(&opened, Some(&number));
    a.account_id = "acct_someoneelse".into();
    assert_error(&dev.post_answer(&a).await, 403, "wrong_account");

    // Bad signature: signed by a key that is not the device's.
    let a = dev.approval(&opened, Some(&number));
    let stranger = countersign_protocol::crypto::SigningKey::generate().unwrap();
    let body = a.sign(&stranger).unwrap().to_json().unwrap();
    let path = format!("/v1/device/challenges/{tx}/answer");
    let r = dev.send("POST", &path, body).await;
    let got = (r.status().as_u16(), r.json().await.unwrap());
    assert_error(&got, 401, "bad_signature");
    // … and a request signature by another key.
    let r = dev
        .send_as(&stranger, now(), "GET", "/v1/device/challenges", vec![])
        .await;
    let got = (r.status().as_u16(), r.json().await.unwrap());
    assert_error(&got, 401, "bad_signature");

    // Stale timestamp.
    let r = dev
        .send_as(
            &dev.dp,
            now() - 3600,
            "GET",
            "/v1/device/challenges",
            vec![],
        )
        .await;
    let got = (r.status().as_u16(), r.json().await.unwrap());
    assert_error(&got, 410, "expired");

    // Replayed nonce: the same signed request twice.
    let hdrs = sign_request(
        &dev.dp,
        &dev.device_id,
        "GET",
        "/v1/device/challenges",
        b"",
        now(),
    )
    .unwrap();
    let pairs = hdrs.to_pairs();
    let r = dev
        .send_with(&pairs, "GET", "/v1/device/challenges", vec![])
        .await;
    assert_eq!(r.status(), 200);
    let r = dev
        .send_with(&pairs, "GET", "/v1/device/challenges", vec![])
        .await;
    let got = (r.status().as_u16(), r.json().await.unwrap());
    assert_error(&got, 409, "replayed");

    // Expired challenge.
    let (_, short) = rp.push(json!({"user": "alice", "timeout_secs": 1})).await;
    let short_tx = short["tx_id"].as_str().unwrap().to_string();
    let short_number = short["number"].as_str().unwrap().to_string();
    let opened_short = dev.fetch(&short_tx).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let a = dev.approval(&opened_short, Some(&short_number));
    assert_error(&dev.post_answer(&a).await, 410, "expired");
    let st = rp.get(&format!("/v1/rp/challenges/{short_tx}")).await;
    assert_eq!(st.1["state"], "expired");

    // Timeout bounds.
    let r = rp.push(json!({"user": "alice", "timeout_secs": 601})).await;
    assert_error(&r, 400, "bad_request");
    // Wrong API key.
    let bad = RpClient::new(rp.base(), format!("{}x", rp.api_key()));
    assert_error(
        &bad.push(json!({"user": "alice"})).await,
        401,
        "unauthorized",
    );

    // The right answer still works.
    let a = dev.approval(&opened, Some(&number));
    assert_eq!(dev.post_answer(&a).await.0, 200);
    s.stop().await;
}

async fn rate_limit_and_pending_bound(db: Db) {
    let (s, rp, _dev) = setup_with(db, |c| c.policy.max_pending = 100).await;
    for _ in 0..5 {
        assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    }
    assert_error(
        &rp.push(json!({"user": "alice"})).await,
        429,
        "rate_limited",
    );
    s.stop().await;

    let (s, rp, _dev) = setup_with(db, |c| c.policy.max_pending = 2).await;
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    assert_error(
        &rp.push(json!({"user": "alice"})).await,
        429,
        "rate_limited",
    );
    s.stop().await;
}

async fn suppression_after_denials(db: Db) {
    let (s, rp, mut dev) = setup_with(db, |c| {
        c.policy.push_max_per_window = 50;
        c.policy.push_backoff_secs = 0;
    })
    .await;
    for i in 0..3 {
        let (st, started) = rp.push(json!({"user": "alice"})).await;
        assert_eq!(st, 200, "push {i}: {started}");
        let opened = dev.fetch(started["tx_id"].as_str().unwrap()).await;
        let d = dev.denial(&opened, DenyReason::Mistake);
        let (st, body) = dev.post_answer(&d).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["state"], "denied");
        let status = rp
            .get(&format!(
                "/v1/rp/challenges/{}",
                started["tx_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status.1["state"], "denied");
    }
    assert_error(&rp.push(json!({"user": "alice"})).await, 429, "suppressed");
    // No push trigger lifts it (what does: tests/attacker.rs).
    for passcode in ["", "push"] {
        let v = rp
            .post(
                "/v1/rp/validate",
                json!({"user": "alice", "passcode": passcode}),
            )
            .await;
        assert_error(&v, 429, "suppressed");
    }
    let events = audit_events(&s).await;
    for e in ["denial", "suppression", "push_refused"] {
        assert!(events.iter().any(|x| x == e), "audit has {e}: {events:?}");
    }
    s.stop().await;
}

async fn deregistration(db: Db) {
    let (s, rp, dev) = setup(db).await;
    let (st, list) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["device_id"], dev.device_id.as_str());
    assert_eq!(list[0]["status"], "active");
    assert_eq!(list[0]["platform"], "android");
    // A long-poll in progress learns about the removal.
    let (st, _) = rp.push(json!({"user": "alice"})).await;
    assert_eq!(st, 200);
    let (st, _) = rp
        .delete(&format!("/v1/rp/users/alice/devices/{}", dev.device_id))
        .await;
    assert_eq!(st, 200);
    assert_error(&dev.poll(0).await, 410, "device_removed");
    let (_, list) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(list[0]["status"], "removed");
    assert_error(&rp.push(json!({"user": "alice"})).await, 404, "no_device");

    // Self-deregistration.
    let offer = rp.enroll("bob").await;
    let bob = TestDevice::activate(&s.base(), &offer.uri).await;
    let (st, _) = bob.json("DELETE", "/v1/device", vec![]).await;
    assert_eq!(st, 200);
    assert_error(&bob.poll(0).await, 410, "device_removed");
    assert!(
        audit_events(&s)
            .await
            .iter()
            .filter(|e| *e == "deregistration")
            .count()
            == 2
    );
    s.stop().await;
}

/// `POST /v1/device/activate/confirm` from `d`.
async fn confirm_activation(d: &TestDevice) -> (u16, serde_json::Value) {
    d.json("POST", "/v1/device/activate/confirm", b"{}".to_vec())
        .await
}

/// Issue 12: activation in two phases, and deregistration that ends challenges.
async fn two_phase_activation(db: Db) {
    let s = TestServer::start(db).await;
    let rp = s.rp("Example Bank").await;
    let offer = rp.enroll("alice").await;
    assert!(offer.uri.ends_with("&pin=6"), "{}", offer.uri);
    // Phase one alone: the device is pending, invisible and unreachable.
    let first = TestDevice::activate_unconfirmed(&s.base(), &offer.uri).await;
    let (_, list) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(list, json!([]));
    assert_error(&rp.push(json!({"user": "alice"})).await, 404, "no_device");
    assert_error(&first.poll(0).await, 401, "unauthorized");
    let (st, _) = first.json("DELETE", "/v1/device", vec![]).await;
    assert_eq!(st, 401);
    // A second activation of the same offer replaces the pending device.
    let second = TestDevice::activate_unconfirmed(&s.base(), &offer.uri).await;
    let confirm = confirm_activation;
    assert_error(&confirm(&first).await, 401, "unauthorized");
    let (st, body) = confirm(&second).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["device_id"], second.device_id.as_str());
    assert_eq!(body["status"], "active");
    // A repeat (the response was lost) gets the same answer.
    assert_eq!(confirm(&second).await, (200, body));
    assert_eq!(second.poll(0).await.0, 200);
    let (_, list) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "active");
    // The offer is used now.
    let (_, creds) = support::offer_credentials(&offer.uri);
    let got = post_activation(&s, &creds).await;
    assert_error(&got, 409, "replayed");

    // Every activation counts against the offer's attempts, right or wrong.
    let offer2 = rp.enroll("bob").await;
    for _ in 0..5 {
        TestDevice::activate_unconfirmed(&s.base(), &offer2.uri).await;
    }
    let (_, creds2) = support::offer_credentials(&offer2.uri);
    let got = post_activation(&s, &creds2).await;
    assert_error(&got, 429, "rate_limited");

    // A device wiped locally deregisters with a reason; its pending challenge ends.
    let started = rp
        .start_push(json!({"user": "alice", "timeout_secs": 120}))
        .await;
    let tx = started["tx_id"].as_str().unwrap();
    let body = br#"{"reason":"wiped_on_device"}"#.to_vec();
    let (st, _) = second.json("DELETE", "/v1/device", body).await;
    assert_eq!(st, 200);
    assert_eq!(rp.status(tx).await["state"], "expired");
    assert_error(&second.poll(0).await, 410, "device_removed");
    assert_error(&confirm(&second).await, 410, "device_removed");
    use sqlx::Row;
    let reason: String = sqlx::query("SELECT removed_reason FROM devices WHERE id = $1")
        .bind(second.device_id.as_str())
        .fetch_one(&s.server().state().db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(reason, "wiped_on_device");
    let events = audit_events(&s).await;
    assert!(events.iter().any(|e| e == "enrollment_replaced"));
    assert!(events.iter().any(|e| e == "expired"));
    s.stop().await;
}

async fn push_token_update(db: Db) {
    let (s, _rp, dev) = setup(db).await;
    let body = serde_json::to_vec(&json!({"type": "apns", "token": "a1b2c3"})).unwrap();
    let (st, v) = dev.json("PUT", "/v1/device/push", body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["push_provider"], "apns");
    let body = serde_json::to_vec(&json!({"type": "fcm", "token": ""})).unwrap();
    let (st, _) = dev.json("PUT", "/v1/device/push", body).await;
    assert_eq!(st, 400);

    // A Web Push subscription is kept whole as JSON in push_token, and an
    // Unregistered answer clears it (on both databases).
    let sub = json!({
        "type": "unifiedpush",
        "endpoint": "https://push.example.com/up/abc",
        "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        "auth": "BTBZMqHH6r4Tts7J_aSIgg"
    });
    let (st, v) = dev
        .json("PUT", "/v1/device/push", serde_json::to_vec(&sub).unwrap())
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["push_provider"], "unifiedpush");
    let token = || async {
        use sqlx::Row;
        sqlx::query("SELECT push_token FROM devices WHERE id = $1")
            .bind(dev.device_id.as_str())
            .fetch_one(&s.server().state().db.pool)
            .await
            .unwrap()
            .try_get::<Option<String>, _>(0)
            .unwrap()
    };
    let stored = token().await.unwrap();
    let parsed = countersign_server::push::webpush::Subscription::from_token(&stored).unwrap();
    assert_eq!(parsed.endpoint, sub["endpoint"]);
    assert_eq!(parsed.p256dh, sub["p256dh"]);
    assert_eq!(parsed.auth, sub["auth"]);
    countersign_server::store::devices::clear_push_token(
        &s.server().state().db,
        &dev.device_id,
        &stored,
    )
    .await
    .unwrap();
    assert_eq!(token().await, None);
    // An http endpoint is refused by protocol rule.
    let mut plain = sub.clone();
    plain["endpoint"] = json!("http://push.example.com/up/abc");
    let (st, _) = dev
        .json(
            "PUT",
            "/v1/device/push",
            serde_json::to_vec(&plain).unwrap(),
        )
        .await;
    assert_eq!(st, 400);
    // Without a Web Push sender the server publishes no VAPID key.
    let key: serde_json::Value = http_client()
        .get(format!("{}/v1/device/webpush", s.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key, json!({"vapid_public_key": null}));
    s.stop().await;
}

async fn offline_ocra(db: Db) {
    let (s, rp, dev) = setup(db).await;
    let (st, off) = rp.post("/v1/rp/offline", json!({"user": "alice"})).await;
    assert_eq!(st, 200, "{off}");
    assert!(off["qr_svg"].as_str().unwrap().contains("<svg"));
    // The device checks S's signature on the QR payload, then computes OCRA.
    let env: serde_json::Value = serde_json::from_str(off["qr_payload"].as_str().unwrap()).unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        env["payload"].as_str().unwrap(),
    )
    .unwrap();
    let sig = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        env["sig"].as_str().unwrap(),
    )
    .unwrap();
    // The envelope is a core signed message for Purpose::OfflineChallenge.
    let msg = countersign_protocol::SignedMessage::from_json(
        off["qr_payload"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(msg.kid(), dev.server_key.key_id());
    let verified = msg
        .verify(
            countersign_protocol::Purpose::OfflineChallenge,
            &dev.server_key,
        )
        .expect("QR payload signed by S for the offline-challenge purpose");
    assert_eq!(verified, payload.as_slice());
    let mut input = b"countersign/v1/offline-challenge\0".to_vec();
    input.extend_from_slice(&payload);
    dev.server_key
        .verify(
            &input,
            &countersign_protocol::crypto::Signature::from_raw(&sig).unwrap(),
        )
        .expect("the label is the one docs/PROTOCOL.md §11 names");
    for purpose in countersign_protocol::Purpose::ALL {
        if purpose != countersign_protocol::Purpose::OfflineChallenge {
            assert!(msg.verify(purpose, &dev.server_key).is_err(), "{purpose:?}");
        }
    }
    // Field order as specified: `v` first.
    let text = std::str::from_utf8(&payload).unwrap();
    assert!(text.starts_with(r#"{"v":1,"kind":"ocra","id":"#), "{text}");
    let p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(p["device"], dev.device_id.as_str());
    assert_eq!(p["rp"], "Example Bank");
    assert_eq!(p["account"], dev.account_id.as_str());
    let suite = OcraSuite::parse(p["suite"].as_str().unwrap()).unwrap();
    let question = p["question"].as_str().unwrap();
    let response = countersign_protocol::otp::ocra(
        &suite,
        &dev.seed,
        &OcraInputs {
            question,
            ..OcraInputs::default()
        },
    )
    .unwrap();
    let id = off["id"].as_str().unwrap();
    let path = format!("/v1/rp/offline/{id}/verify");
    let bad = rp.post(&path, json!({"response": "00000000"})).await;
    if response != "00000000" {
        assert_error(&bad, 403, "invalid_otp");
    }
    let ok = rp.post(&path, json!({"response": response})).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_error(
        &rp.post(&path, json!({"response": response})).await,
        409,
        "replayed",
    );
    s.stop().await;
}

/// A code that none of the device's TOTP steps around now accepts.
fn wrong_code(dev: &TestDevice) -> String {
    let params = TotpParams::new(HmacAlgorithm::Sha1, dev.digits, dev.period).unwrap();
    let t = now();
    let near: Vec<String> = [t - 60, t - 30, t, t + 30, t + 60, t + 90]
        .iter()
        .map(|&at| countersign_protocol::otp::totp_at(&params, &dev.seed, at).unwrap())
        .collect();
    (0..10u32)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn passcode_failures_rate_limited(db: Db) {
    let (s, rp, dev) = setup_with(db, |c| {
        c.policy.passcode_max_failures = 5;
        c.policy.passcode_failure_window_secs = 2;
    })
    .await;
    let params = TotpParams::new(HmacAlgorithm::Sha1, dev.digits, dev.period).unwrap();
    let validate = |code: String| {
        let rp = rp.on(rp.base());
        async move {
            rp.post(
                "/v1/rp/validate",
                json!({"user": "alice", "passcode": code}),
            )
            .await
        }
    };
    let bad = wrong_code(&dev);
    // Four failures, then a success resets the count.
    for _ in 0..4 {
        assert_error(&validate(bad.clone()).await, 403, "invalid_otp");
    }
    let good = countersign_protocol::otp::totp_at(&params, &dev.seed, now()).unwrap();
    let v = validate(good).await;
    assert_eq!(v.0, 200, "{}", v.1);
    // Five more failures are answered normally …
    for _ in 0..5 {
        assert_error(&validate(bad.clone()).await, 403, "invalid_otp");
    }
    // … then even a correct code is refused until the window has passed.
    let ahead = || {
        countersign_protocol::otp::totp_at(&params, &dev.seed, now() + u64::from(dev.period))
            .unwrap()
    };
    assert_error(&validate(ahead()).await, 429, "rate_limited");
    assert_error(&validate(bad.clone()).await, 429, "rate_limited");
    // The offline response check shares the user's limit.
    let (st, off) = rp.post("/v1/rp/offline", json!({"user": "alice"})).await;
    assert_eq!(st, 200, "{off}");
    let path = format!("/v1/rp/offline/{}/verify", off["id"].as_str().unwrap());
    assert_error(
        &rp.post(&path, json!({"response": "12345678"})).await,
        429,
        "rate_limited",
    );
    // Push triggers are not passcodes: they still start a push.
    let v = validate("push".into()).await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["result"], "push_started");
    let events = audit_events(&s).await;
    assert!(
        events.iter().filter(|e| *e == "otp_rejected").count() >= 9,
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| *e == "passcode_rate_limited")
            .count()
            >= 3,
        "{events:?}"
    );
    // After the window a correct code is accepted again.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let v = validate(ahead()).await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["method"], "totp");
    s.stop().await;
}

async fn activation_failures_stay_rate_limited(db: Db) {
    let s = TestServer::start_with(db, |c| c.policy.activation_max_attempts = 3).await;
    let rp = s.rp("Example Bank").await;
    let offer = rp.enroll("carol").await;
    let (_, good) = support::offer_credentials(&offer.uri);
    let mut wrong = good.clone();
    wrong.secret = countersign_protocol::OfferSecret::from_bytes([9u8; 10]);
    let activate = |creds: countersign_protocol::OfferCredentials| {
        let base = s.base();
        async move {
            let (_, _, _, body) = TestDevice::activation_request(&creds);
            let r = http_client()
                .post(format!("{base}/v1/device/activate"))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        }
    };
    for _ in 0..3 {
        assert_error(&activate(wrong.clone()).await, 401, "bad_signature");
    }
    // The offer is burnt: the right code, now and later, is refused.
    assert_error(&activate(good.clone()).await, 429, "rate_limited");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_error(&activate(good.clone()).await, 429, "rate_limited");
    assert_error(&activate(wrong).await, 429, "rate_limited");
    let refused = audit_events(&s)
        .await
        .iter()
        .filter(|e| *e == "enrollment_refused")
        .count();
    assert_eq!(refused, 6, "every refused activation is audited");
    assert!(
        !audit_events(&s).await.iter().any(|e| e == "enrollment"),
        "no device was activated"
    );
    s.stop().await;
}

/// The (method, path) pairs the router in src/http/mod.rs serves, read from its
/// source: `.route("<path>", <method>(…)` (chained methods included).
fn routes_in_router() -> Vec<(String, String)> {
    let source: String = include_str!("../src/http/mod.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut routes = Vec::new();
    for part in source.split(".route(\"").skip(1) {
        let Some((path, rest)) = part.split_once('"') else {
            continue;
        };
        let call = rest.trim_start_matches(',');
        for method in ["get", "post", "put", "delete"] {
            if call.starts_with(&format!("{method}(")) || call.contains(&format!(").{method}(")) {
                routes.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

async fn openapi_matches_the_router(db: Db) {
    let s = TestServer::start(db).await;
    let doc: serde_json::Value = http_client()
        .get(format!("{}/openapi.json", s.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut served = routes_in_router();
    served.sort();
    assert!(served.len() >= 20, "router parsed: {served:?}");
    assert_eq!(documented, served, "every route documented, nothing else");
    // And each documented operation answers as a route (not the 404 / 405 fallback).
    for (method, path) in &documented {
        let url = format!("{}{}", s.base(), path.replace(['{', '}'], ""));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = http_client().request(m, &url).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("no such route"),
            "{method} {path}: {status} {body}"
        );
    }
    s.stop().await;
}

/// The ids of a poll's answer.
fn listed(pending: &serde_json::Value) -> Vec<String> {
    pending["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tx"].as_str().unwrap().to_string())
        .collect()
}

/// `known` (docs/PROTOCOL.md §12.4): a device that names what it holds waits
/// while nothing changes, and wakes when a known challenge is answered or a new
/// one arrives; without `known` it answers at once as before.
async fn long_poll_waits_for_a_change(db: Db) {
    use std::time::{Duration, Instant};
    let (s, rp, mut dev) = setup(db).await;
    let (st, started) = rp.push(json!({"user": "alice"})).await;
    assert_eq!(st, 200, "{started}");
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();

    // Without `known`: at once, as before.
    let t0 = Instant::now();
    let (st, pending) = dev.poll(2).await;
    assert_eq!(st, 200, "{pending}");
    assert_eq!(listed(&pending), [tx.as_str()]);
    let at_once = t0.elapsed();
    assert!(at_once < Duration::from_millis(1000), "{at_once:?}");

    // With it known: the whole wait, then the unchanged list.
    let t0 = Instant::now();
    let (st, pending) = dev.poll_known(2, &[&tx]).await;
    assert_eq!(st, 200, "{pending}");
    assert_eq!(listed(&pending), [tx.as_str()]);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_millis(4000),
        "{waited:?}"
    );
    // Knowing something that is not pending (or not knowing what is): at once.
    let t0 = Instant::now();
    let (_, pending) = dev.poll_known(5, &[&tx, "tx_gone"]).await;
    assert_eq!(listed(&pending), [tx.as_str()]);
    assert!(t0.elapsed() < Duration::from_millis(1000));

    // A new push wakes it early with both.
    let t0 = Instant::now();
    let (polled, pushed) = tokio::join!(dev.poll_known(10, &[&tx]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rp.push(json!({"user": "alice"})).await
    });
    assert_eq!(pushed.0, 200, "{}", pushed.1);
    let tx2 = pushed.1["tx_id"].as_str().unwrap().to_string();
    let woke = t0.elapsed();
    assert_eq!(polled.0, 200, "{}", polled.1);
    assert_eq!(listed(&polled.1), [tx.as_str(), tx2.as_str()]);
    assert!(woke < Duration::from_millis(3000), "{woke:?}");
    println!("new push woke the poll after {woke:?}");

    // Answering a known one (from another task) wakes it early without it.
    let opened = dev.fetch(&tx).await;
    let answer = dev.approval(&opened, Some(&number));
    let t0 = Instant::now();
    let (polled, answered) = tokio::join!(dev.poll_known(10, &[&tx, &tx2]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dev.post_answer(&answer).await
    });
    assert_eq!(answered.0, 200, "{}", answered.1);
    let woke = t0.elapsed();
    assert_eq!(polled.0, 200, "{}", polled.1);
    assert_eq!(listed(&polled.1), [tx2.as_str()]);
    assert!(woke < Duration::from_millis(3000), "{woke:?}");

    // The last one answered: the poll wakes with an empty list.
    let opened2 = dev.fetch(&tx2).await;
    let number2 = pushed.1["number"].as_str().unwrap().to_string();
    let answer2 = dev.approval(&opened2, Some(&number2));
    let t0 = Instant::now();
    let (polled, answered) = tokio::join!(dev.poll_known(10, &[&tx2]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dev.post_answer(&answer2).await
    });
    assert_eq!(answered.0, 200, "{}", answered.1);
    let woke = t0.elapsed();
    assert_eq!(polled.0, 200, "{}", polled.1);
    assert!(listed(&polled.1).is_empty(), "{}", polled.1);
    assert!(woke < Duration::from_millis(3000), "{woke:?}");
    println!(
        "answer woke the poll after {woke:?}; wait=2 with it known took {waited:?}, without known {at_once:?}"
    );

    // `known` is validated like other parameters.
    let long = "a".repeat(65);
    assert_error(&dev.poll_known(0, &[&long]).await, 400, "bad_request");
    assert_error(&dev.poll_known(0, &["a", ""]).await, 400, "bad_request");
    let many: Vec<String> = (0..65).map(|i| format!("tx{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_error(&dev.poll_known(0, &many).await, 400, "bad_request");
    assert_eq!(dev.poll_known(0, &[]).await.0, 200, "empty means none");
    s.stop().await;
}

/// Nonces are keyed by the signed timestamp (migration 0012): the same signed
/// request twice is refused, a nonce recorded before the migration (in
/// `used_nonces`) is still refused, and the sweep drops only what can no
/// longer be replayed, from both tables.
async fn nonces_from_before_the_time_keyed_table_stay_refused(db: Db) {
    use countersign_protocol::sign_request_with_nonce;
    use sqlx::Row;
    let (s, _rp, dev) = setup(db).await;
    let pool = &s.server().state().db.pool;
    let device_id = dev.device_id.as_str();
    let count = |table: &'static str| async move {
        sqlx::query(&format!(
            "SELECT COUNT(*) FROM {table} WHERE device_id = $1"
        ))
        .bind(device_id)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
    };
    let path = "/v1/device/challenges";
    let send = |nonce: &str, ts: u64| {
        let hdrs =
            sign_request_with_nonce(&dev.dp, &dev.device_id, "GET", path, b"", ts, nonce.into())
                .unwrap();
        let dev = &dev;
        async move {
            let r = dev.send_with(&hdrs.to_pairs(), "GET", path, vec![]).await;
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };

    // The activation's confirmation left its own nonce.
    let recorded = count("request_nonces").await;
    // A nonce the server recorded before the migration, kept for 600 s.
    let old = "AAECAwQFBgcICQoLDA0ODw";
    sqlx::query("INSERT INTO used_nonces (device_id, nonce, expires_at) VALUES ($1, $2, $3)")
        .bind(device_id)
        .bind(old)
        .bind(now() as i64 + 600)
        .execute(pool)
        .await
        .unwrap();
    assert_error(&send(old, now()).await, 409, "replayed");
    assert_eq!(
        count("request_nonces").await,
        recorded,
        "a refused nonce is not recorded"
    );

    // A new nonce is recorded once, with its timestamp; the same request again is refused.
    let fresh = "EBESExQVFhcYGRobHB0eHw";
    let ts = now();
    assert_eq!(send(fresh, ts).await.0, 200);
    assert_error(&send(fresh, ts).await, 409, "replayed");
    assert_eq!(count("request_nonces").await, recorded + 1);

    // The sweep keeps both while they could be replayed, then drops them.
    let t = now() as i64;
    let db = &s.server().state().db;
    countersign_server::store::nonces::delete_expired(db, t - 600, t)
        .await
        .unwrap();
    assert_eq!(
        (count("used_nonces").await, count("request_nonces").await),
        (1, recorded + 1)
    );
    countersign_server::store::nonces::delete_expired(db, ts as i64 + 1, t + 601)
        .await
        .unwrap();
    assert_eq!(
        (count("used_nonces").await, count("request_nonces").await),
        (0, 0)
    );
}

both_databases!(
    long_poll_waits_for_a_change,
    nonces_from_before_the_time_keyed_table_stay_refused,
    enrollment_and_activation,
    push_approve_with_number_and_push_otp,
    pick_and_nist_number_matching,
    transaction_and_step_up,
    totp_validation_and_triggers,
    hotp_token_with_look_ahead,
    rejections,
    rate_limit_and_pending_bound,
    suppression_after_denials,
    deregistration,
    two_phase_activation,
    push_token_update,
    offline_ocra,
    passcode_failures_rate_limited,
    activation_failures_stay_rate_limited,
    openapi_matches_the_router,
);

/// Two instances share one PostgreSQL: a challenge started through A is answered
/// through B, and a long-poll waiting on A returns the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances() {
    let a = TestServer::start(Db::Postgres).await;
    let b = countersign_server::Server::start(a.database().config())
        .await
        .unwrap();
    let rp_a = a.rp("Example Bank").await;
    let rp_b = rp_a.on(&b.base_url());
    let offer = rp_a.enroll("alice").await;
    let mut dev = TestDevice::activate(&b.base_url(), &offer.uri).await;
    let (_, started) = rp_a.push(json!({"user": "alice"})).await;
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();
    let rp_wait = rp_a.on(rp_a.base());
    let tx2 = tx.clone();
    let t0 = std::time::Instant::now();
    let waiter = tokio::spawn(async move {
        rp_wait
            .get(&format!("/v1/rp/challenges/{tx2}?wait=30"))
            .await
    });
    let (_, pending) = dev.poll(5).await; // through B
    assert_eq!(pending["challenges"][0]["tx"], tx.as_str());
    let opened = dev.fetch(&tx).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = dev.approval(&opened, Some(&number));
    assert_eq!(dev.post_answer(&answer).await.0, 200);
    let (st, status) = waiter.await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(status["state"], "approved");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(4),
        "A's long-poll was woken by B's NOTIFY, not by its 5 s re-check"
    );
    let (_, st_b) = rp_b.get(&format!("/v1/rp/challenges/{tx}")).await;
    assert_eq!(st_b["state"], "approved");
    b.shutdown().await;
    a.stop().await;
}
