//! The attacker at the login page (issue 12): they know the password and push,
//! guess and retry. Each rule is tried over real HTTP on loopback, on SQLite and
//! PostgreSQL, with the test acting as the phone through countersign_protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use countersign_protocol::{Answer, Approval, DenyReason, NumberMatching, Verification};
use countersign_server::config::Config;
use countersign_test_support::{Db, RpClient, TestServer, both_databases, now};
use serde_json::{Value, json};
use sqlx::Row;
use support::{TestDevice, WebhookLog, assert_error, audit_reasons, webhook_receiver};

/// A server with `tweak`, an RP whose webhooks land in the returned log, and
/// alice's phone.
async fn setup(
    db: Db,
    tweak: impl FnOnce(&mut Config),
) -> (TestServer, RpClient, TestDevice, WebhookLog) {
    let (hook_url, hooks) = webhook_receiver().await;
    let s = TestServer::start_with(db, |c| {
        c.policy.push_max_per_window = 100;
        tweak(c);
    })
    .await;
    let st = s.server().state();
    let created = countersign_server::admin::create_rp(&st.db, &st.master, "Bank", Some(&hook_url))
        .await
        .unwrap();
    let rp = RpClient::new(s.base(), created.api_key);
    let offer = rp.enroll("alice").await;
    let dev = TestDevice::activate(&s.base(), &offer.uri).await;
    (s, rp, dev, hooks)
}

async fn audit_events(s: &TestServer, event: &str) -> Vec<String> {
    audit_reasons(s.server(), event).await
}

/// Webhook events for `tx`, once `count` of them arrived.
async fn hooks_for(hooks: &WebhookLog, tx: &str, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let got: Vec<String> = hooks
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap())
            .filter(|h| h["tx_id"] == tx)
            .map(|h| format!("{} {}", h["event"].as_str().unwrap(), h["deny_reason"]))
            .collect();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} webhooks for {tx}");
}

/// Starts a push for alice and fetches it on the phone.
async fn push(
    rp: &RpClient,
    dev: &mut TestDevice,
    body: Value,
) -> (
    String,
    Option<String>,
    countersign_protocol::OpenedChallenge,
) {
    let started = rp.start_push(body).await;
    let tx = started["tx_id"].as_str().unwrap().to_owned();
    let number = started["number"].as_str().map(str::to_owned);
    let opened = dev.fetch(&tx).await;
    (tx, number, opened)
}

/// A two-digit number other than `number`.
fn other_than(number: &str, k: u32) -> String {
    let n: u32 = number.parse().unwrap();
    format!("{:02}", (n + 1 + k) % 100)
}

async fn a_wrong_pick_ends_the_challenge(db: Db) {
    let (s, rp, mut dev, hooks) = setup(db, |_| {}).await;
    let (tx, number, opened) = push(
        &rp,
        &mut dev,
        json!({"user": "alice", "number_matching": "pick"}),
    )
    .await;
    let number = number.unwrap();
    let NumberMatching::Pick { choices } = &opened.challenge.number_matching else {
        panic!("pick mode")
    };
    let wrong = choices.iter().find(|c| **c != number).unwrap().clone();
    let bad = dev.approval(&opened, Some(&wrong));
    let refused = dev.post_answer(&bad).await;
    assert_error(&refused, 403, "wrong_number");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended")
    );
    // The right choice, tried next, no longer wins.
    let good = dev.approval(&opened, Some(&number));
    assert_error(&dev.post_answer(&good).await, 409, "already_answered");
    let status = rp.status(&tx).await;
    assert_eq!(status["state"], "denied");
    assert_eq!(status["deny_reason"], "wrong_number");
    assert_eq!(status["fraud_reported"], false);
    assert_eq!(
        hooks_for(&hooks, &tx, 1).await,
        ["challenge.denied \"wrong_number\""]
    );
    assert_eq!(audit_events(&s, "denial").await, ["wrong_number"]);
    s.stop().await;
}

async fn typed_guesses_stop_at_the_limit(db: Db) {
    let (s, rp, mut dev, hooks) = setup(db, |_| {}).await;
    // 98 wrong numbers were once refused and the 99th approved: now the third
    // wrong number ends the challenge, and the right one is refused after it.
    let (tx, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let number = number.unwrap();
    for k in 0..3 {
        let bad = dev.approval(&opened, Some(&other_than(&number, k)));
        let body = bad.sign(&dev.dp).unwrap().to_json().unwrap();
        let path = format!("/v1/device/challenges/{tx}/answer");
        let refused = dev.json("POST", &path, body.clone()).await;
        assert_error(&refused, 403, "wrong_number");
        // The same answer again (its response was lost) uses up no try.
        assert_error(&dev.json("POST", &path, body).await, 403, "wrong_number");
        let left = 2 - k;
        let message = refused.1["error"]["message"].as_str().unwrap().to_owned();
        if left > 0 {
            assert!(message.contains(&format!("{left} tries left")), "{message}");
            assert_eq!(rp.status(&tx).await["state"], "pending");
        } else {
            assert!(message.contains("ended"), "{message}");
        }
    }
    let good = dev.approval(&opened, Some(&number));
    assert_error(&dev.post_answer(&good).await, 409, "already_answered");
    let status = rp.status(&tx).await;
    assert_eq!(
        (status["state"].as_str(), status["deny_reason"].as_str()),
        (Some("denied"), Some("wrong_number"))
    );
    assert_eq!(
        hooks_for(&hooks, &tx, 1).await,
        ["challenge.denied \"wrong_number\""]
    );
    assert_eq!(audit_events(&s, "answer_refused").await.len(), 2);

    // Two wrong numbers, then the right one: approved.
    let (tx, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let number = number.unwrap();
    for k in 0..2 {
        let bad = dev.approval(&opened, Some(&other_than(&number, k)));
        assert_error(&dev.post_answer(&bad).await, 403, "wrong_number");
    }
    let good = dev.approval(&opened, Some(&number));
    assert_eq!(dev.post_answer(&good).await.0, 200);
    assert_eq!(rp.status(&tx).await["state"], "approved");
    s.stop().await;
}

async fn the_guess_limit_is_configurable(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| c.policy.number_match_max_failures = 1).await;
    let (tx, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let bad = dev.approval(&opened, Some(&other_than(&number.unwrap(), 0)));
    assert_error(&dev.post_answer(&bad).await, 403, "wrong_number");
    assert_eq!(rp.status(&tx).await["deny_reason"], "wrong_number");
    s.stop().await;
}

/// Denies a fresh push for alice with `reason`.
async fn deny_one(rp: &RpClient, dev: &mut TestDevice, reason: DenyReason) -> String {
    let (tx, _, opened) = push(rp, dev, json!({"user": "alice"})).await;
    let d = dev.denial(&opened, reason);
    assert_eq!(dev.post_answer(&d).await.0, 200);
    tx
}

/// The phone's current TOTP.
fn totp(dev: &TestDevice) -> String {
    let params = countersign_protocol::otp::TotpParams::new(
        countersign_protocol::otp::HmacAlgorithm::Sha1,
        dev.digits,
        dev.period,
    )
    .unwrap();
    countersign_protocol::otp::totp_at(&params, &dev.seed, now())
        .unwrap()
        .to_string()
}

async fn pending_on_phone(dev: &TestDevice) -> usize {
    let (st, list) = dev.poll(0).await;
    assert_eq!(st, 200, "{list}");
    list["challenges"].as_array().unwrap().len()
}

async fn typing_push_does_not_lift_suppression(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| c.policy.push_backoff_secs = 0).await;
    for _ in 0..3 {
        deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    }
    let refused = rp.push(json!({"user": "alice"})).await;
    assert_error(&refused, 429, "suppressed");
    // Every push trigger the login page can send is refused, says how to get
    // back in, and sends nothing to the phone.
    for trigger in ["push", "PUSH", "", "x"] {
        let v = rp.validate("alice", trigger).await;
        assert_error(&v, 429, "suppressed");
        let message = v.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("it was me") && message.contains("code"),
            "{message}"
        );
    }
    assert_eq!(pending_on_phone(&dev).await, 0, "no push reached the phone");
    let challenges: i64 = sqlx::query("SELECT COUNT(*) FROM challenges")
        .fetch_one(&s.server().state().db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(challenges, 3, "no challenge was created");

    // A valid TOTP from the phone lifts it.
    let totp = totp(&dev);
    assert_eq!(rp.validate("alice", &totp).await.0, 200);
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    s.stop().await;
}

async fn it_was_me_from_the_phone_lifts_suppression(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| c.policy.push_backoff_secs = 0).await;
    for _ in 0..3 {
        deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    }
    assert_error(&rp.push(json!({"user": "alice"})).await, 429, "suppressed");
    // Unsigned, or signed by a stranger: refused.
    let stranger = countersign_test_support::http_client()
        .post(format!("{}/v1/device/resume", s.base()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status().as_u16(), 401);
    let (st, body) = dev.json("POST", "/v1/device/resume", b"{}".to_vec()).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("resumed")));
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    assert_eq!(
        audit_events(&s, "suppression_lifted").await,
        ["it was me, from an enrolled device"]
    );
    s.stop().await;
}

async fn pushes_wait_longer_after_each_miss(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| {
        c.policy.push_backoff_secs = 2;
        c.policy.denials_before_suppression = 10;
    })
    .await;
    // One miss costs nothing.
    deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    // After the second in a row: 2 s; after the third: 4 s.
    let v = rp.push(json!({"user": "alice"})).await;
    assert_error(&v, 429, "rate_limited");
    assert!(
        v.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed in")
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_error(
        &rp.push(json!({"user": "alice"})).await,
        429,
        "rate_limited",
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // An approval ends the streak and its wait.
    let (tx, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let good = dev.approval(&opened, number.as_deref());
    assert_eq!(dev.post_answer(&good).await.0, 200);
    assert_eq!(rp.status(&tx).await["state"], "approved");
    deny_one(&rp, &mut dev, DenyReason::Mistake).await;
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    s.stop().await;
}

async fn unanswered_pushes_count_as_misses(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| c.policy.push_backoff_secs = 0).await;
    for _ in 0..3 {
        let (tx, _, _) = push(&rp, &mut dev, json!({"user": "alice", "timeout_secs": 1})).await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        countersign_server::service::challenge::expire_overdue(s.server().state())
            .await
            .unwrap();
        assert_eq!(rp.status(&tx).await["state"], "expired");
    }
    assert_error(&rp.push(json!({"user": "alice"})).await, 429, "suppressed");
    assert_eq!(audit_events(&s, "expired").await.len(), 3);
    s.stop().await;
}

async fn not_me_locks_pushes_and_reports_fraud(db: Db) {
    let (s, rp, mut dev, hooks) = setup(db, |_| {}).await;
    let tx = deny_one(&rp, &mut dev, DenyReason::NotMe).await;
    let status = rp.status(&tx).await;
    assert_eq!(status["state"], "denied");
    assert_eq!(status["deny_reason"], "not_me");
    assert_eq!(status["fraud_reported"], true);
    let mut events = hooks_for(&hooks, &tx, 2).await;
    events.sort();
    assert_eq!(
        events,
        [
            "challenge.denied \"not_me\"",
            "challenge.fraud_reported \"not_me\""
        ]
    );
    assert_eq!(audit_events(&s, "fraud_report").await.len(), 1);

    // Locked: the RP's push, a typed `push`, and the phone's "it was me".
    assert_error(&rp.push(json!({"user": "alice"})).await, 403, "locked");
    assert_error(&rp.validate("alice", "push").await, 403, "locked");
    assert_eq!(
        dev.json("POST", "/v1/device/resume", b"{}".to_vec())
            .await
            .0,
        200
    );
    assert_error(&rp.push(json!({"user": "alice"})).await, 403, "locked");
    assert_eq!(pending_on_phone(&dev).await, 0);
    // A TOTP still signs the user in, and does not unlock pushes either.
    let totp = totp(&dev);
    assert_eq!(rp.validate("alice", &totp).await.0, 200);
    assert_error(&rp.push(json!({"user": "alice"})).await, 403, "locked");

    // An operator unlocks.
    let st = s.server().state();
    let rp_id: String = sqlx::query("SELECT id FROM relying_parties")
        .fetch_one(&st.db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let unknown = countersign_server::admin::unlock_user(&st.db, &rp_id, "mallory").await;
    assert_eq!(unknown.unwrap_err().code.as_str(), "not_found");
    countersign_server::admin::unlock_user(&st.db, &rp_id, "alice")
        .await
        .unwrap();
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    assert_eq!(audit_events(&s, "unlocked").await, ["by an operator"]);
    s.stop().await;
}

async fn the_fraud_lock_ends_after_its_time(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |c| c.policy.fraud_lock_secs = 2).await;
    deny_one(&rp, &mut dev, DenyReason::NotMe).await;
    assert_error(&rp.push(json!({"user": "alice"})).await, 403, "locked");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(rp.push(json!({"user": "alice"})).await.0, 200);
    s.stop().await;
}

async fn a_push_otp_is_bound_to_its_tx(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |_| {}).await;
    let (tx1, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let good = dev.approval(&opened, number.as_deref());
    assert_eq!(dev.post_answer(&good).await.0, 200);
    let otp = rp.status(&tx1).await["push_otp"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second login in progress: the first approval's OTP does not complete it.
    let (tx2, _, _) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    assert_error(
        &rp.validate_for_tx("alice", &otp, &tx2).await,
        403,
        "invalid_otp",
    );
    // Nor without a tx, nor for another user's view of the same tx.
    assert_error(&rp.validate("alice", &otp).await, 403, "invalid_otp");
    rp.enroll("bob").await;
    assert_error(
        &rp.validate_for_tx("bob", &otp, &tx1).await,
        403,
        "invalid_otp",
    );
    // Its own tx: once.
    let v = rp.validate_for_tx("alice", &otp, &tx1).await;
    assert_eq!((v.0, v.1["method"].as_str()), (200, Some("push_otp")));
    assert_error(
        &rp.validate_for_tx("alice", &otp, &tx1).await,
        403,
        "otp_reused",
    );
    s.stop().await;
}

async fn answers_outside_the_clock_window_are_refused(db: Db) {
    let (s, rp, mut dev, _) = setup(db, |_| {}).await;
    let (tx, number, opened) = push(&rp, &mut dev, json!({"user": "alice"})).await;
    let approval = |dev: &mut TestDevice, time: u64| {
        let otp = countersign_protocol::answer::push_otp(&opened, &dev.seed, dev.digits)
            .unwrap()
            .to_string();
        let next = countersign_protocol::crypto::AgreementKey::generate().unwrap();
        let next_public = next.public_key();
        dev.kems.push(next);
        Answer::approve(
            &opened,
            Approval {
                number: number.clone(),
                otp: Some(otp),
                verification: Verification::None,
            },
            next_public,
            time,
        )
        .unwrap()
    };
    let issued = opened.challenge.issued_at;
    // The future bound moves with the server's clock, which may have ticked
    // past this test's `now()` by the time the answer arrives (a slow CI
    // machine): leave it room. The exact boundary is a protocol unit test.
    for time in [issued - 301, now() + 330, 0, u64::MAX / 2] {
        let a = approval(&mut dev, time);
        assert_error(&dev.post_answer(&a).await, 410, "expired");
    }
    assert_eq!(rp.status(&tx).await["state"], "pending");
    // Within the window (a device clock a little behind): accepted.
    let a = approval(&mut dev, issued - 200);
    assert_eq!(dev.post_answer(&a).await.0, 200);
    s.stop().await;
}

both_databases!(
    a_wrong_pick_ends_the_challenge,
    typed_guesses_stop_at_the_limit,
    the_guess_limit_is_configurable,
    typing_push_does_not_lift_suppression,
    it_was_me_from_the_phone_lifts_suppression,
    pushes_wait_longer_after_each_miss,
    unanswered_pushes_count_as_misses,
    not_me_locks_pushes_and_reports_fraud,
    the_fraud_lock_ends_after_its_time,
    a_push_otp_is_bound_to_its_tx,
    answers_outside_the_clock_window_are_refused
);
