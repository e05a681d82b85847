//! A push starts a wake-up through the configured sender (device id and tx id
//! only), and the RP's webhook receives the outcome signed with HMAC-SHA256.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use std::sync::{Arc, Mutex};

use countersign_server::push::{BoxFuture, PushError, PushSender, WakeUp};
use countersign_test_support::{Db, RpClient, TestDatabase, both_databases};
use serde_json::json;
use support::TestDevice;

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<WakeUp>>);

impl PushSender for Recorder {
    fn provider(&self) -> &'static str {
        "fcm"
    }
    fn send<'a>(&'a self, wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        self.0.lock().unwrap().push(wake.clone());
        Box::pin(async { Ok(()) })
    }
}

async fn wakeup_and_webhook(db: Db) {
    // The RP's webhook endpoint.
    let (hook_url, hits) = support::webhook_receiver().await;

    let database = TestDatabase::new(db);
    let recorder = Arc::new(Recorder::default());
    let server = countersign_server::Server::start_with_push(
        database.config(),
        vec![recorder.clone() as Arc<dyn PushSender>],
    )
    .await
    .unwrap();
    let st = server.state();
    let created = countersign_server::admin::create_rp(&st.db, &st.master, "Shop", Some(&hook_url))
        .await
        .unwrap();
    let rp = RpClient::new(server.base_url(), created.api_key.clone());
    let offer = rp.enroll("dave").await;
    let mut dev = TestDevice::activate(&server.base_url(), &offer.uri).await;
    let (_, started) = rp
        .push(json!({"user": "dave", "text": "secret context", "number_matching": "off"}))
        .await;
    let tx = started["tx_id"].as_str().unwrap().to_string();

    // The wake-up: only the token, device id, tx id and expiry.
    let mut woke = Vec::new();
    for _ in 0..50 {
        woke = recorder.0.lock().unwrap().clone();
        if !woke.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        woke,
        vec![WakeUp {
            token: "fcm-test-token".into(),
            device_id: dev.device_id.clone(),
            tx_id: tx.clone(),
            expires_at: started["expires_at"].as_i64().unwrap(),
        }]
    );

    // The RP's status shows the wake-up went out, not yet fetched.
    let mut st = rp.status(&tx).await;
    for _ in 0..50 {
        if st["delivery"][0]["state"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        st = rp.status(&tx).await;
    }
    let d = &st["delivery"][0];
    assert_eq!(d["device_id"], dev.device_id.as_str(), "{st}");
    assert_eq!(d["provider"], "fcm");
    assert_eq!(d["state"], "sent");
    assert!(d["at"].as_i64().unwrap() > 0);
    assert_eq!(d["error"], serde_json::Value::Null);
    assert_eq!(d["fetched"], false);
    let metrics = server.state().metrics.render().unwrap();
    assert!(
        metrics.contains("countersign_wakeups_sent_total{provider=\"fcm\"} 1\n"),
        "{metrics}"
    );

    let opened = dev.fetch(&tx).await;
    assert_eq!(rp.status(&tx).await["delivery"][0]["fetched"], true);
    let d = dev.denial(&opened, countersign_protocol::DenyReason::NotMe);
    assert_eq!(dev.post_answer(&d).await.0, 200);

    // The enrollment, then "not me": the denial, the fraud report and the
    // user's suppression, each signed.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = hits.lock().unwrap().clone();
        if got.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 4, "four webhooks: {got:?}");
    let secret = created.webhook_secret.unwrap();
    let mut events = Vec::new();
    for (sig, body) in &got {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        if v["event"].as_str().unwrap().starts_with("challenge.") {
            assert_eq!(v["tx_id"], tx.as_str());
            assert_eq!(v["deny_reason"], "not_me");
        }
        assert!(
            !body.contains("secret context"),
            "webhooks carry no challenge text"
        );
        let (t, mac) = sig
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .expect("t=<unix>,v1=<hex>");
        let want = countersign_protocol::crypto::hmac(
            countersign_protocol::crypto::HmacAlgorithm::Sha256,
            secret.as_bytes(),
            format!("{t}.{body}").as_bytes(),
        );
        assert_eq!(mac, hex::encode(want), "webhook HMAC verifies");
        events.push(v["event"].as_str().unwrap().to_owned());
    }
    events.sort();
    assert_eq!(
        events,
        [
            "challenge.denied",
            "challenge.fraud_reported",
            "device.enrolled",
            "user.suppressed"
        ]
    );
    server.shutdown().await;
}

/// A provider that fails with a transport error naming the endpoint.
#[derive(Debug, Default)]
struct Failing;

impl PushSender for Failing {
    fn provider(&self) -> &'static str {
        "fcm"
    }
    fn send<'a>(&'a self, _wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async {
            Err(PushError::Transport(
                "https://push.example/send/fcm-test-token: connection refused".into(),
            ))
        })
    }
}

/// A failed wake-up shows in the status with a short reason that names no
/// token or endpoint; the device can still fetch by long-polling.
async fn failed_wakeup_in_status(db: Db) {
    let database = TestDatabase::new(db);
    let server = countersign_server::Server::start_with_push(
        database.config(),
        vec![Arc::new(Failing) as Arc<dyn PushSender>],
    )
    .await
    .unwrap();
    let rp = RpClient::create(&server, "Shop").await;
    let offer = rp.enroll("erin").await;
    let dev = TestDevice::activate(&server.base_url(), &offer.uri).await;
    let (_, started) = rp
        .push(json!({"user": "erin", "number_matching": "off"}))
        .await;
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let mut st = rp.status(&tx).await;
    for _ in 0..50 {
        if st["delivery"][0]["state"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        st = rp.status(&tx).await;
    }
    let d = &st["delivery"][0];
    assert_eq!(d["device_id"], dev.device_id.as_str(), "{st}");
    assert_eq!(d["state"], "failed", "{st}");
    assert_eq!(d["error"], "the provider could not be reached");
    assert!(!st.to_string().contains("fcm-test-token"), "{st}");
    assert!(!st.to_string().contains("push.example"), "{st}");
    let metrics = server.state().metrics.render().unwrap();
    assert!(
        metrics.contains("countersign_wakeups_failed_total{provider=\"fcm\"} 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("countersign_wakeups_sent_total{"),
        "{metrics}"
    );
    server.shutdown().await;
}

both_databases!(wakeup_and_webhook, failed_wakeup_in_status);
