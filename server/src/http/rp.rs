//! The relying-party API (`/v1/rp/…`), authenticated with per-RP API keys
//! (`Authorization: Bearer csk_<key id>.<secret>`).

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{CachedRpAuth, RpAuth};
use super::extract::{Json, Path, Query};
use crate::AppState;
use crate::error::ApiResult;
use crate::service::challenge::{self, ChallengeStatus, PushRequest, PushStarted};
use crate::service::devices::{self, DeviceSummary};
use crate::service::enrollment::{self, EnrollmentRequest, EnrollmentResponse};
use crate::service::offline::{
    self, OfflineAccepted, OfflineRequest, OfflineResponse, OfflineVerifyRequest,
};
use crate::service::otp::{
    self, OathTokenRequest, TokenCreated, ValidateRequest, ValidateResponse,
};
use crate::service::passwords::{self, PasswordRequest, PasswordStatus};
use crate::service::qr_login::{self, QrLoginCreated, QrLoginRequest};

/// `?wait=N` (seconds) for long-polls.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to wait for a change (0: answer now).
    pub wait: Option<u32>,
}

/// `POST /v1/rp/enrollments`: creates a single-use activation offer.
pub async fn create_enrollment(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Json(req): Json<EnrollmentRequest>,
) -> ApiResult<Json<EnrollmentResponse>> {
    Ok(Json(enrollment::create(&state, &rp, req).await?))
}

/// `POST /v1/rp/push`: starts a push login.
pub async fn start_push(
    State(state): State<Arc<AppState>>,
    CachedRpAuth(rp): CachedRpAuth,
    Json(req): Json<PushRequest>,
) -> ApiResult<Json<PushStarted>> {
    Ok(Json(challenge::start_push(&state, &rp, &req).await?))
}

/// `GET /v1/rp/challenges/{tx}?wait=N`: the state, waiting up to N seconds while
/// it is pending.
pub async fn challenge_status(
    State(state): State<Arc<AppState>>,
    CachedRpAuth(rp): CachedRpAuth,
    Path(tx): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<ChallengeStatus>> {
    Ok(Json(
        challenge::wait_status(&state, &rp, &tx, q.wait).await?,
    ))
}

/// `POST /v1/rp/validate`: validates a passcode or starts a push.
pub async fn validate(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Json(req): Json<ValidateRequest>,
) -> ApiResult<Json<ValidateResponse>> {
    Ok(Json(otp::validate(&state, &rp, req).await?))
}

/// `POST /v1/rp/users/{user}/oath-tokens`: imports an OATH token.
pub async fn add_oath_token(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path(user): Path<String>,
    Json(req): Json<OathTokenRequest>,
) -> ApiResult<Json<TokenCreated>> {
    Ok(Json(otp::import_oath_token(&state, &rp, &user, req).await?))
}

/// `PUT /v1/rp/users/{user}/password`: sets the user's static password (the
/// first factor of RADIUS `password_otp` clients).
pub async fn set_password(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path(user): Path<String>,
    Json(req): Json<PasswordRequest>,
) -> ApiResult<Json<PasswordStatus>> {
    Ok(Json(passwords::set(&state, &rp, &user, req).await?))
}

/// `DELETE /v1/rp/users/{user}/password`: removes the user's static password.
pub async fn remove_password(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path(user): Path<String>,
) -> ApiResult<Json<PasswordStatus>> {
    Ok(Json(passwords::remove(&state, &rp, &user).await?))
}

/// `POST /v1/rp/offline`: creates an offline QR challenge.
pub async fn create_offline(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Json(req): Json<OfflineRequest>,
) -> ApiResult<Json<OfflineResponse>> {
    Ok(Json(offline::create(&state, &rp, req).await?))
}

/// `POST /v1/rp/offline/{id}/verify`: verifies the typed OCRA response.
pub async fn verify_offline(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path(id): Path<String>,
    Json(req): Json<OfflineVerifyRequest>,
) -> ApiResult<Json<OfflineAccepted>> {
    Ok(Json(offline::verify(&state, &rp, &id, req).await?))
}

/// `POST /v1/rp/logins`: creates a QR login for the page to show.
pub async fn create_login(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Json(req): Json<QrLoginRequest>,
) -> ApiResult<Json<QrLoginCreated>> {
    Ok(Json(qr_login::create(&state, &rp, req).await?))
}

/// `GET /v1/rp/users/{user}/devices`: lists a user's devices.
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<DeviceSummary>>> {
    Ok(Json(devices::list(&state, &rp, &user).await?))
}

/// `DELETE /v1/rp/users/{user}/devices/{device}`: removes a device; its next
/// request gets `device_removed` and its core wipes the account.
pub async fn remove_device(
    State(state): State<Arc<AppState>>,
    RpAuth(rp): RpAuth,
    Path((user, device)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    devices::remove_for_rp(&state, &rp, &user, &device).await?;
    Ok(Json(json!({ "device_id": device, "status": "removed" })))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The API key cache must not outlive a revocation: the hot endpoints check
    /// `revoked_at` in their own statement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_key_is_refused_after_caching() {
        let dir = tempfile::Builder::new()
            .prefix("cs-rp-cache-")
            .tempdir()
            .unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.path().join("t.db").display()),
            ..Config::default()
        };
        let server = crate::Server::start(config).await.unwrap();
        let state = server.state().clone();
        let rp = crate::admin::create_rp(&state.db, &state.master, "Bank", None)
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let base = server.base_url();
        let status = |path: &'static str| {
            let (http, base, key) = (http.clone(), base.clone(), rp.api_key.clone());
            async move {
                http.get(format!("{base}{path}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let push = || {
            let (http, base, key) = (http.clone(), base.clone(), rp.api_key.clone());
            async move {
                http.post(format!("{base}/v1/rp/push"))
                    .bearer_auth(key)
                    .json(&serde_json::json!({"user": "nobody"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // Valid key, cached: missing things are 404 / no device (not 401).
        assert_eq!(status("/v1/rp/challenges/tx_none").await, 404);
        assert_ne!(push().await, 401);
        // `csk_<16-character key id>.<secret>`
        let key_id = &rp.api_key[4..20];
        assert!(state.api_keys.get(key_id).is_some(), "key cached");
        sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE key_id = $1")
            .bind(key_id)
            .execute(&state.db.pool)
            .await
            .unwrap();
        assert_eq!(status("/v1/rp/challenges/tx_none").await, 401);
        assert_eq!(push().await, 401);
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
