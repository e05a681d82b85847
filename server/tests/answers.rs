//! Issue 11: a repeated answer (the device's retry after a lost response) gets
//! the same acceptance and is recorded once; a different answer for an answered
//! challenge is refused; the acceptance names the KEM key the server seals to;
//! `PUT /v1/device/kem` resynchronises it. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use std::time::Duration;

use countersign_protocol::DenyReason;
use countersign_protocol::crypto::AgreementKey;
use countersign_protocol::encoding::b64url;
use countersign_server::{RunningServer, Server};
use countersign_test_support::{Db, RpClient, TestDatabase, both_databases, now};
use serde_json::{Value, json};
use sqlx::Row;
use support::{TestDevice, WebhookLog, assert_error, audit_reasons, webhook_receiver};

/// A relying party with a webhook endpoint that records every hit.
struct Setup {
    server: RunningServer,
    rp: RpClient,
    dev: TestDevice,
    hooks: WebhookLog,
    _database: TestDatabase,
}

async fn setup(db: Db) -> Setup {
    let (hook_url, hooks) = webhook_receiver().await;

    let database = TestDatabase::new(db);
    let server = Server::start(database.config()).await.unwrap();
    let st = server.state();
    let created = countersign_server::admin::create_rp(&st.db, &st.master, "Shop", Some(&hook_url))
        .await
        .unwrap();
    let rp = RpClient::new(server.base_url(), created.api_key.clone());
    let offer = rp.enroll("alice").await;
    let dev = TestDevice::activate(&server.base_url(), &offer.uri).await;
    Setup {
        server,
        rp,
        dev,
        hooks,
        _database: database,
    }
}

async fn audit_count(s: &Setup, event: &str) -> usize {
    audit_reasons(&s.server, event).await.len()
}

async fn sealed_to(s: &Setup) -> String {
    sqlx::query("SELECT kem_key_id FROM devices WHERE id = $1")
        .bind(&s.dev.device_id)
        .fetch_one(&s.server.state().db.pool)
        .await
        .unwrap()
        .try_get("kem_key_id")
        .unwrap()
}

/// The challenge webhooks (not `device.enrolled` and the like) so far.
fn challenge_webhooks(s: &Setup) -> Vec<String> {
    s.hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body.contains("\"event\":\"challenge."))
        .map(|(_, body)| body.clone())
        .collect()
}

/// Waits for the challenge webhooks to arrive, then a little longer for any
/// extra one.
async fn webhooks_after_settling(s: &Setup, want: usize) -> Vec<String> {
    for _ in 0..100 {
        if challenge_webhooks(s).len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    challenge_webhooks(s)
}

async fn post(dev: &TestDevice, tx: &str, body: &[u8]) -> (u16, Value) {
    dev.json(
        "POST",
        &format!("/v1/device/challenges/{tx}/answer"),
        body.to_vec(),
    )
    .await
}

async fn repeated_answer_is_accepted_once(db: Db) {
    let mut s = setup(db).await;
    let started =
        s.rp.start_push(json!({"user": "alice", "number_matching": "type"}))
            .await;
    let tx = started["tx_id"].as_str().unwrap().to_owned();
    let number = started["number"].as_str().unwrap().to_owned();
    let opened = s.dev.fetch(&tx).await;
    let answer = s.dev.approval(&opened, Some(&number));
    let body = answer.sign(&s.dev.dp).unwrap().to_json().unwrap();

    let first = post(&s.dev, &tx, &body).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["state"], "approved");
    assert_eq!(
        first.1["kem_kid"].as_str(),
        Some(answer.next_kem.key_id().as_str()),
        "the acceptance names the key now sealed to"
    );
    assert_eq!(sealed_to(&s).await, answer.next_kem.key_id());
    let status = s.rp.status(&tx).await;

    // The same bytes again (a new signed request), twice at once, and the same
    // answer signed again: the same acceptance each time.
    let again = post(&s.dev, &tx, &body).await;
    assert_eq!(again, first);
    let (x, y) = tokio::join!(post(&s.dev, &tx, &body), post(&s.dev, &tx, &body));
    assert_eq!(x, first);
    assert_eq!(y, first);
    let resigned = s.dev.post_answer(&answer).await;
    assert_eq!(resigned, first);

    // A different answer is refused: a denial, another approval (another key).
    let deny = s.dev.denial(&opened, DenyReason::NotMe);
    assert_error(&s.dev.post_answer(&deny).await, 409, "already_answered");
    let other = s.dev.approval(&opened, Some(&number));
    assert_error(&s.dev.post_answer(&other).await, 409, "already_answered");

    // One decision: status, audit, webhook, push OTP, key.
    assert_eq!(s.rp.status(&tx).await, status);
    assert_eq!(audit_count(&s, "approval").await, 1);
    assert_eq!(audit_count(&s, "denial").await, 0);
    // Counted once on /metrics too (issue 15).
    let metrics = s.server.state().metrics.render().unwrap();
    for line in [
        "countersign_pushes_approved_total 1\n",
        "countersign_push_answer_seconds_count 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains("countersign_pushes_denied_total{"),
        "{metrics}"
    );
    let hooks = webhooks_after_settling(&s, 1).await;
    assert_eq!(hooks.len(), 1, "one webhook: {hooks:?}");
    assert!(hooks[0].contains("challenge.approved"));
    assert_eq!(sealed_to(&s).await, answer.next_kem.key_id());
    let otp = status["push_otp"].as_str().unwrap();
    assert_eq!(s.rp.validate_for_tx("alice", otp, &tx).await.0, 200);
    assert_error(
        &s.rp.validate_for_tx("alice", otp, &tx).await,
        403,
        "otp_reused",
    );

    // The next challenge is sealed to the confirmed key.
    let next =
        s.rp.start_push(json!({"user": "alice", "number_matching": "off"}))
            .await;
    let tx2 = next["tx_id"].as_str().unwrap();
    let kid = answer.next_kem.key_id();
    s.dev.kems.retain(|k| k.public_key().key_id() == kid);
    let opened2 = s.dev.fetch(tx2).await;
    let deny = s.dev.denial(&opened2, DenyReason::Mistake);
    let body = deny.sign(&s.dev.dp).unwrap().to_json().unwrap();
    let first = post(&s.dev, tx2, &body).await;
    assert_eq!(first.0, 200);
    assert_eq!(first.1["state"], "denied");
    assert_eq!(post(&s.dev, tx2, &body).await, first);
    assert_eq!(audit_count(&s, "denial").await, 1);
    assert_eq!(webhooks_after_settling(&s, 2).await.len(), 2);
    s.server.shutdown().await;
}

async fn kem_key_resync(db: Db) {
    let mut s = setup(db).await;
    let fresh = AgreementKey::generate().unwrap();
    let kid = fresh.public_key().key_id();
    let body = json!({"kem_key": b64url(&fresh.public_key().to_sec1())}).to_string();
    let (st, v) = s
        .dev
        .json("PUT", "/v1/device/kem", body.clone().into_bytes())
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"kem_kid": kid}));
    assert_eq!(sealed_to(&s).await, kid);
    assert_eq!(audit_count(&s, "kem_key_resynced").await, 1);

    // Only that key opens the next challenge.
    s.dev.kems = vec![fresh];
    let started =
        s.rp.start_push(json!({"user": "alice", "number_matching": "off"}))
            .await;
    s.dev.fetch(started["tx_id"].as_str().unwrap()).await;

    // Malformed bodies and keys; a request not signed by Dp.
    for bad in [
        json!({}),
        json!({"kem_key": "not base64!"}),
        json!({"kem_key": b64url(&[4; 65])}),
        json!({"kem_key": b64url(&[1; 33]), "extra": 1}),
    ] {
        let got = s
            .dev
            .json("PUT", "/v1/device/kem", bad.to_string().into_bytes())
            .await;
        assert_eq!(got.0, 400, "{bad}: {}", got.1);
    }
    let r = s
        .dev
        .send_as(&s.dev.du, now(), "PUT", "/v1/device/kem", body.into_bytes())
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(sealed_to(&s).await, kid);
    s.server.shutdown().await;
}

both_databases!(repeated_answer_is_accepted_once, kem_key_resync);
