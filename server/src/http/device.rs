//! The device API (`/v1/device/…`). Every request except activation is signed
//! with the device's possession key Dp (docs/PROTOCOL.md §7); the
//! [`SignedDevice`] extractor verifies it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use countersign_protocol::api::{
    ActivationConfirmed, AnswerAccepted, KemKeyAccepted, PendingList, TransferStarted,
};
use serde_json::{Value, json};

use super::auth::{ConfirmingDevice, SignedDevice};
use super::extract::{Json, Path, Query, RawBody};
use super::signed_json;
use crate::AppState;
use crate::error::ApiResult;
use crate::service::{challenge, devices, policy, qr_login, transfer};

/// `POST /v1/device/activate`: body is the signed activation request; the answer
/// is the activation result signed by S.
pub async fn activate(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    Ok(signed_json(devices::activate(&state, &body).await?))
}

/// `POST /v1/device/activate/confirm`: phase two of activation, signed with Dp
/// by the device the activation result named (body `{}`); the answer is
/// `{"device_id":…,"status":"active"}`, the same again for a repeated call,
/// or `202 {"device_id":…,"status":"awaiting_approval","tx_id":…}` while a
/// transfer waits for the old device (docs/PROTOCOL.md §14).
pub async fn confirm_activation(
    State(state): State<Arc<AppState>>,
    ConfirmingDevice(signed): ConfirmingDevice,
) -> ApiResult<(StatusCode, Json<ActivationConfirmed>)> {
    let confirmed = devices::confirm(&state, &signed.device).await?;
    let status = if confirmed.status == "active" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(confirmed)))
}

/// `POST /v1/device/transfers`: body `{"remove_old":bool}` (or empty); the
/// answer is an activation offer for the new phone (docs/PROTOCOL.md §14).
pub async fn start_transfer(
    State(state): State<Arc<AppState>>,
    signed: SignedDevice,
) -> ApiResult<Json<TransferStarted>> {
    Ok(Json(
        transfer::start(&state, &signed.device, &signed.body).await?,
    ))
}

/// `?wait=N&known=tx1,tx2` for the device's long-poll.
#[derive(Debug, serde::Deserialize)]
pub struct PollQuery {
    /// Seconds to wait for a change (0: answer now).
    pub wait: Option<u32>,
    /// The pending challenges the device already holds, comma-separated.
    pub known: Option<String>,
}

/// `GET /v1/device/challenges?wait=N&known=…`: long-polls until the pending
/// set differs from the `known` one (or N seconds pass).
pub async fn poll(
    State(state): State<Arc<AppState>>,
    Query(q): Query<PollQuery>,
    signed: SignedDevice,
) -> ApiResult<Json<PendingList>> {
    let known = challenge::parse_known(q.known.as_deref())?;
    Ok(Json(
        challenge::poll(&state, &signed.device, q.wait, &known).await?,
    ))
}

/// `GET /v1/device/challenges/{tx}`: the challenge sealed for this device, signed by S.
pub async fn fetch(
    State(state): State<Arc<AppState>>,
    Path(tx): Path<String>,
    signed: SignedDevice,
) -> ApiResult<Response> {
    Ok(signed_json(
        challenge::fetch(&state, &signed.device, &tx).await?,
    ))
}

/// `POST /v1/device/challenges/{tx}/answer`: body is the signed answer.
pub async fn answer(
    State(state): State<Arc<AppState>>,
    Path(tx): Path<String>,
    signed: SignedDevice,
) -> ApiResult<Json<AnswerAccepted>> {
    Ok(Json(
        challenge::answer(&state, &signed.device, &tx, &signed.body).await?,
    ))
}

/// `POST /v1/device/logins/{id}/claim`: body `{"secret":…}` from the scanned QR;
/// the answer is the login's challenge sealed for this device, signed by S.
pub async fn claim_login(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    signed: SignedDevice,
) -> ApiResult<Response> {
    Ok(signed_json(
        qr_login::claim(&state, &signed.device, &id, &signed.body).await?,
    ))
}

/// `PUT /v1/device/push`: body is a push registration (`{"type":"fcm","token":…}`).
pub async fn update_push(
    State(state): State<Arc<AppState>>,
    signed: SignedDevice,
) -> ApiResult<Json<Value>> {
    let provider = devices::update_push(&state, &signed.device, &signed.body).await?;
    Ok(Json(json!({ "push_provider": provider })))
}

/// `GET /v1/device/webpush`: the VAPID public key a device passes to its
/// UnifiedPush distributor (`{"vapid_public_key":…}`, `null` when the server
/// sends no Web Push). Public: it is the server's public key, needed before
/// the device registers.
pub async fn webpush_key(State(state): State<Arc<AppState>>) -> Json<Value> {
    let key = state.senders.iter().find_map(|s| s.vapid_public_key());
    Json(json!({ "vapid_public_key": key }))
}

/// `PUT /v1/device/kem`: body names the KEM public key to seal to from now on
/// (`{"kem_key":…}`); the answer is `{"kem_kid":…}`.
pub async fn update_kem_key(
    State(state): State<Arc<AppState>>,
    signed: SignedDevice,
) -> ApiResult<Json<KemKeyAccepted>> {
    Ok(Json(
        devices::update_kem_key(&state, &signed.device, &signed.body).await?,
    ))
}

/// `DELETE /v1/device`: the device deregisters itself.
pub async fn deregister(
    State(state): State<Arc<AppState>>,
    signed: SignedDevice,
) -> ApiResult<Json<Value>> {
    devices::deregister(&state, &signed.device, &signed.body).await?;
    Ok(Json(json!({ "status": "removed" })))
}

/// `POST /v1/device/resume`: "it was me" from the app. Lifts the user's push
/// suppression after misses (not a fraud lock); the answer is `{"status":"resumed"}`.
pub async fn resume_pushes(
    State(state): State<Arc<AppState>>,
    signed: SignedDevice,
) -> ApiResult<Json<Value>> {
    policy::resume_by_device(&state, &signed.device).await?;
    Ok(Json(json!({ "status": "resumed" })))
}
