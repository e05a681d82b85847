//! FCM HTTP v1: a service-account RS256 JWT is exchanged for an OAuth2 access token
//! (cached until shortly before it expires), then a data-only message is sent to
//! `{base}/v1/projects/{project}/messages:send`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::jwt::Rs256;
use super::{
    BoxFuture, PushError, PushSender, WakeUp, endpoint, http_client, parse_base_url, unix_now,
};
use crate::config::FcmConfig;

/// The OAuth2 scope FCM v1 needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a Google service-account JSON file that we use.
#[derive(Deserialize)]
pub struct ServiceAccount {
    /// The account's e-mail (JWT `iss`).
    pub client_email: String,
    /// PKCS#8 PEM RSA private key.
    pub private_key: String,
    /// Key id (JWT header `kid`).
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// OAuth2 token endpoint (JWT `aud`).
    pub token_uri: String,
    /// The project.
    #[serde(default)]
    pub project_id: Option<String>,
}

impl Drop for ServiceAccount {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'static str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct CachedToken {
    token: zeroize::Zeroizing<String>,
    valid_until: Instant,
}

/// The FCM HTTP v1 sender.
pub struct FcmSender {
    client: reqwest::Client,
    token_client: reqwest::Client,
    base_url: url::Url,
    project_id: String,
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    signer: Rs256,
    cache: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSender")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl FcmSender {
    /// Builds a sender from configuration (reads the service-account file).
    pub fn from_config(config: &FcmConfig) -> Result<Self, PushError> {
        let sa = read_service_account(&config.service_account_file)?;
        let project = config
            .project_id
            .clone()
            .or_else(|| sa.project_id.clone())
            .ok_or_else(|| PushError::Config("FCM project_id missing".into()))?;
        Self::new(sa, project, &config.base_url)
    }

    /// Builds a sender from a parsed service account.
    pub fn new(sa: ServiceAccount, project_id: String, base_url: &str) -> Result<Self, PushError> {
        let signer = Rs256::from_pem(&sa.private_key)?;
        Ok(Self {
            client: http_client(base_url, false)?,
            token_client: http_client(&sa.token_uri, false)?,
            base_url: parse_base_url(base_url)?,
            project_id,
            client_email: sa.client_email.clone(),
            key_id: sa.private_key_id.clone(),
            token_uri: sa.token_uri.clone(),
            signer,
            cache: Mutex::new(None),
        })
    }

    /// The signed assertion for the token endpoint.
    fn assertion(&self) -> Result<String, PushError> {
        let iat = unix_now();
        self.signer.sign(
            &Header {
                alg: "RS256",
                typ: "JWT",
                kid: self.key_id.as_deref(),
            },
            &Claims {
                iss: &self.client_email,
                scope: FCM_SCOPE,
                aud: &self.token_uri,
                iat,
                exp: iat + 3600,
            },
        )
    }

    /// A valid access token, from cache or freshly fetched.
    async fn access_token(&self) -> Result<zeroize::Zeroizing<String>, PushError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.valid_until > Instant::now()
        {
            return Ok(c.token.clone());
        }
        let assertion = self.assertion()?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let resp = self
            .token_client
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| PushError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(PushError::Rejected {
                status: status.as_u16(),
                reason: "OAuth2 token request failed".into(),
            });
        }
        let tr: TokenResponse = resp
            .json()
            .await
            .map_err(|e| PushError::Transport(format!("token response: {}", e.without_url())))?;
        // Refresh a minute early so a token never expires in flight.
        let life = tr.expires_in.unwrap_or(3600).saturating_sub(60).max(1);
        let token = zeroize::Zeroizing::new(tr.access_token);
        *cache = Some(CachedToken {
            token: token.clone(),
            valid_until: Instant::now() + Duration::from_secs(life),
        });
        Ok(token)
    }

    /// The message body: data only, so the app decides what to show after it has
    /// fetched and decrypted the challenge.
    pub fn message_body(wake: &WakeUp) -> serde_json::Value {
        let ttl = (wake.expires_at - unix_now()).max(0);
        serde_json::json!({
            "message": {
                "token": wake.token,
                "data": { "device_id": wake.device_id, "tx_id": wake.tx_id },
                "android": { "priority": "HIGH", "ttl": format!("{ttl}s") }
            }
        })
    }
}

impl PushSender for FcmSender {
    fn provider(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(&'a self, wake: &'a WakeUp) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async move {
            let token = self.access_token().await?;
            let url = endpoint(
                &self.base_url,
                &["v1", "projects", &self.project_id, "messages:send"],
            )?;
            let resp = self
                .client
                .post(url)
                .bearer_auth(token.as_str())
                .json(&Self::message_body(wake))
                .send()
                .await
                .map_err(|e| PushError::Transport(e.without_url().to_string()))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            if status.as_u16() == 401 {
                // The cached token was revoked: fetch a new one next time.
                *self.cache.lock().await = None;
            }
            let text = resp.text().await.unwrap_or_default();
            if status.as_u16() == 404 || text.contains("UNREGISTERED") {
                return Err(PushError::Unregistered);
            }
            Err(PushError::Rejected {
                status: status.as_u16(),
                reason: fcm_reason(&text),
            })
        })
    }
}

fn fcm_reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/status")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Reads and parses a service-account JSON file.
pub fn read_service_account(path: &Path) -> Result<ServiceAccount, PushError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| PushError::Config(format!("service account file: {e}")))?,
    );
    serde_json::from_str(&text).map_err(|e| PushError::Config(format!("service account JSON: {e}")))
}
