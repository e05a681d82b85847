//! The relying-party API as a test client: bearer API key, JSON over real HTTP.

use countersign_server::RunningServer;
use serde_json::{Value, json};

use crate::http_client;

/// A relying party's client: every call sends `Authorization: Bearer <API key>`
/// and answers `(HTTP status, JSON body or null)`. No `Debug`: it holds the API key.
pub struct RpClient {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

/// An activation offer (`POST /v1/rp/enrollments`).
#[derive(Debug, Clone)]
pub struct Offer {
    /// The offer URI (what the QR code holds).
    pub uri: String,
    /// The code a user can type instead.
    pub code: String,
    /// The whole response body.
    pub json: Value,
}

impl RpClient {
    /// A client for the RP API at `base` with `api_key`.
    pub fn new(base: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            api_key: api_key.into(),
            http: http_client(),
        }
    }

    /// Creates a relying party named `name` on `server` (as the operator does)
    /// and a client with its API key.
    pub async fn create(server: &RunningServer, name: &str) -> Self {
        let state = server.state();
        let created = countersign_server::admin::create_rp(&state.db, &state.master, name, None)
            .await
            .expect("create rp");
        Self::new(server.base_url(), created.api_key)
    }

    /// The same API key against another instance (a client of its own).
    pub fn on(&self, base: &str) -> Self {
        Self::new(base, self.api_key.clone())
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("rp request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// `GET {base}{path}`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `DELETE {base}{path}`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Creates an activation offer for `user`; asserts it succeeded.
    pub async fn enroll(&self, user: &str) -> Offer {
        let (status, json) = self
            .post("/v1/rp/enrollments", json!({ "user": user }))
            .await;
        assert_eq!(status, 200, "enroll: {json}");
        Offer {
            uri: json["offer_uri"].as_str().expect("offer_uri").to_owned(),
            code: json["code"].as_str().expect("code").to_owned(),
            json,
        }
    }

    /// Starts a push (`POST /v1/rp/push`), whatever the answer.
    pub async fn push(&self, body: Value) -> (u16, Value) {
        self.post("/v1/rp/push", body).await
    }

    /// Starts a push and asserts it started; returns the body (tx_id, number,
    /// expires_at).
    pub async fn start_push(&self, body: Value) -> Value {
        let (status, json) = self.push(body).await;
        assert_eq!(status, 200, "push: {json}");
        json
    }

    /// The challenge's status, without waiting; asserts it was found.
    pub async fn status(&self, tx: &str) -> Value {
        let (status, json) = self.get(&format!("/v1/rp/challenges/{tx}")).await;
        assert_eq!(status, 200, "status: {json}");
        json
    }

    /// Validates a passcode for `user` (TOTP/HOTP: no push login bound).
    pub async fn validate(&self, user: &str, passcode: &str) -> (u16, Value) {
        self.post(
            "/v1/rp/validate",
            json!({ "user": user, "passcode": passcode }),
        )
        .await
    }

    /// Validates a passcode for `user` in push login `tx` (a push OTP is
    /// accepted only for the challenge it came with).
    pub async fn validate_for_tx(&self, user: &str, passcode: &str, tx: &str) -> (u16, Value) {
        self.post(
            "/v1/rp/validate",
            json!({ "user": user, "passcode": passcode, "tx_id": tx }),
        )
        .await
    }
}
