//! Request ids (issue 15): every response carries `x-request-id` (the caller's
//! when it is 1–64 visible ASCII characters, else a fresh one), and the JSON log
//! lines written while serving the request carry it in their `request` span.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use countersign_test_support::{Db, RpClient, TestServer, http_client};
use serde_json::{Value, json};
use support::TestDevice;

/// The JSON log lines written so far (one subscriber for this test binary).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_in_header_and_json_log() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let s = TestServer::start(Db::Sqlite).await;
    let rp = RpClient::create(s.server(), "Shop").await;
    let offer = rp.enroll("alice").await;
    let _dev = TestDevice::activate(&s.base(), &offer.uri).await;
    let http = http_client();

    // The caller's id comes back and is on the request's log lines.
    let r = http
        .post(format!("{}/v1/rp/push", s.base()))
        .bearer_auth(rp.api_key())
        .header("x-request-id", "lb-7f3a/42")
        .json(&json!({"user": "alice", "number_matching": "off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "lb-7f3a/42");
    let started = logs
        .lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == "push started")
        .expect("a \"push started\" log line");
    assert_eq!(started["span"]["request_id"], "lb-7f3a/42", "{started}");
    assert_eq!(started["span"]["name"], "request");

    // Invalid ids (too long, a space) are replaced; errors and unknown routes
    // get one too.
    for (path, sent) in [
        ("/healthz", Some("x".repeat(65))),
        ("/healthz", Some("two words".to_owned())),
        ("/v1/no-such-route", None),
        ("/v1/rp/challenges/tx_none", Some("ok-id".to_owned())),
    ] {
        let mut req = http.get(format!("{}{path}", s.base()));
        if let Some(id) = &sent {
            req = req.header("x-request-id", id);
        }
        let r = req.send().await.unwrap();
        let got = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        match sent.as_deref() {
            Some("ok-id") => assert_eq!(got, "ok-id"),
            _ => {
                assert!(got.starts_with("req_") && got.len() <= 64, "{path}: {got}");
                assert_ne!(Some(got.as_str()), sent.as_deref());
            }
        }
    }
    s.stop().await;
}
