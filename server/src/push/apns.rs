//! APNs with token-based authentication: an ES256 provider token (header
//! `{alg: ES256, kid}`, claims `{iss: team id, iat}`) signed with the .p8 key and
//! reused for 50 minutes (Apple refuses tokens older than an hour and throttles
//! tokens renewed more often than every 20 minutes), sent over HTTP/2 to
//! `{base}/3/device/{token}`.
//!
//! Payload choice: an `alert` push with `mutable-content: 1` and a generic,
//! localisable alert (`loc-key` `COUNTERSIGN_SIGN_IN_REQUEST`) in the category
//! `COUNTERSIGN_REQUEST`, whose Approve and Deny actions the app registers. The app's
//! Notification Service Extension fetches and decrypts the sealed challenge and
//! rewrites the alert with the real context. Background (`content-available`)
//! pushes are not used: iOS throttles and may drop them, and a login request must
//! reach the user within its 30-second lifetime. The only custom keys are the
//! device id and the tx id; no context goes through Apple.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::jwt::Es256;
use super::{
    BoxFuture, PushError, PushSender, WakeUp, endpoint, http_client, parse_base_url, unix_now,
};
use crate::config::ApnsConfig;

/// How long a provider token is reused.
pub const TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);

/// The generic alert key the app localises ("Sign-in request").
pub const ALERT_LOC_KEY: &str = "COUNTERSIGN_SIGN_IN_REQUEST";

/// The notification category the app registers with Approve and Deny actions
/// (`UNNotificationCategory`). Deny may run from the lock screen; Approve asks
/// for Face ID / Touch ID (`.authenticationRequired`) and opens nothing.
pub const CATEGORY: &str = "COUNTERSIGN_REQUEST";

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

#[derive(Deserialize)]
struct ApnsErrorBody {
    #[serde(default)]
    reason: String,
}

/// The APNs sender.
pub struct ApnsSender {
    client: reqwest::Client,
    base_url: url::Url,
    team_id: String,
    key_id: String,
    topic: String,
    signer: Es256,
    cache: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ApnsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsSender")
            .field("base_url", &self.base_url)
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ApnsSender {
    /// Builds a sender from configuration (reads the .p8 key file).
    pub fn from_config(config: &ApnsConfig) -> Result<Self, PushError> {
        let pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(&config.key_file)
                .map_err(|e| PushError::Config(format!("APNs key file: {e}")))?,
        );
        Self::new(
            &pem,
            &config.team_id,
            &config.key_id,
            &config.topic,
            &config.base_url,
        )
    }

    /// Builds a sender from a PEM key.
    pub fn new(
        key_pem: &str,
        team_id: &str,
        key_id: &str,
        topic: &str,
        base_url: &str,
    ) -> Result<Self, PushError> {
        Ok(Self {
            client: http_client(base_url, true)?,
            base_url: parse_base_url(base_url)?,
            team_id: team_id.to_string(),
            key_id: key_id.to_string(),
            topic: topic.to_string(),
            signer: Es256::from_pem(key_pem)?,
            cache: Mutex::new(None),
        })
    }

    async fn provider_token(&self, force_new: bool) -> Result<String, PushError> {
        let mut cache = self.cache.lock().await;
        if !force_new
            && let Some((token, made)) = cache.as_ref()
            && made.elapsed() < TOKEN_REUSE
        {
            return Ok(token.clone());
        }
        let token = self.signer.sign(
            &Header {
                alg: "ES256",
                kid: &self.key_id,
            },
            &Claims {
                iss: &self.team_id,
                iat: unix_now(),
            },
        )?;
        *cache = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// The notification body (see the module docs for why it looks like this).
    pub fn payload(wake: &WakeUp) -> serde_json::Value {
        serde_json::json!({
            "aps": {
                "alert": { "loc-key": ALERT_LOC_KEY },
                "category": CATEGORY,
                "mutable-content": 1,
                "sound": "default"
            },
            "device_id": wake.device_id,
            "tx_id": wake.tx_id
        })
    }

    async fn send_once(
        &self,
        wake: &WakeUp,
        force_new: bool,
    ) -> Result<reqwest::Response, PushError> {
        let token = self.provider_token(force_new).await?;
        // Device tokens are hex; refuse anything that could change the path.
        if wake.token.is_empty() || !wake.token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PushError::Unregistered);
        }
        let url = endpoint(&self.base_url, &["3", "device", &wake.token])?;
        self.client
            .post(url)
            .header("authorization", format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", wake.expires_at.max(0).to_string())
            .header("apns-collapse-id", &wake.tx_id)
            .json(&Self::payload(wake))
            .send()
            .await
            .map_err(|e| PushError::Transport(e.without_url().to_string()))
    }
}

impl PushSender for ApnsSender {
    fn provider(&self) -> &'static str {
        "apns"
    }

    fn send<'a>(&'a self, wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async move {
            let (mut status, mut reason) = outcome(self.send_once(wake, false).await?).await;
            if status == 403
                && (reason == "ExpiredProviderToken" || reason == "InvalidProviderToken")
            {
                (status, reason) = outcome(self.send_once(wake, true).await?).await;
            }
            if (200..300).contains(&status) {
                return Ok(());
            }
            if status == 410 || reason == "BadDeviceToken" || reason == "Unregistered" {
                return Err(PushError::Unregistered);
            }
            Err(PushError::Rejected { status, reason })
        })
    }
}

/// Status and APNs `reason` of a response.
async fn outcome(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return (status, String::new());
    }
    let reason = resp
        .json::<ApnsErrorBody>()
        .await
        .map(|b| b.reason)
        .unwrap_or_default();
    (status, reason)
}
