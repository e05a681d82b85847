//! The server tests' helpers. The device ([`TestDevice`]), servers, databases and
//! the relying party come from `countersign_test_support` (the benchmark uses the
//! same device).

#![allow(dead_code)]

pub mod process;

// Not every test binary uses both.
#[allow(unused_imports)]
pub use countersign_test_support::{TestDevice, offer_credentials};
use serde_json::Value;

/// Asserts an error response's code.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert_eq!(got.0, status, "body: {}", got.1);
}

/// What a relying party's webhook endpoint received: each hit's
/// `Countersign-Signature` header and body.
pub type WebhookLog = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook endpoint on a free loopback port; returns its URL and the log.
pub async fn webhook_receiver() -> (String, WebhookLog) {
    let log = WebhookLog::default();
    let hits = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let hits = hits.clone();
            async move {
                let sig = headers
                    .get("countersign-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                hits.lock().unwrap().push((sig, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

/// The reasons of the audit records of `event`, oldest first.
pub async fn audit_reasons(server: &countersign_server::RunningServer, event: &str) -> Vec<String> {
    use sqlx::Row;
    sqlx::query("SELECT reason FROM audit_log WHERE event = $1 ORDER BY at, id")
        .bind(event)
        .fetch_all(&server.state().db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect()
}
