//! Offline QR challenges (OCRA `OCRA-1:HOTP-SHA256-8:QN08`, keyed with the
//! account's OTP seed): a question signed by S for the phone to scan without a
//! network, and the typed response checked once (5 attempts).

use countersign_protocol::offline::{OFFLINE_KIND, OFFLINE_SUITE, OfflineChallenge};
use countersign_protocol::otp::{OcraInputs, OcraSuite};
use countersign_protocol::{Purpose, SignedMessage};
use serde::{Deserialize, Serialize};

use super::audit::{AuditSubject, audit};
use super::auth::Rp;
use super::{check_user_name, policy};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store;
use crate::util::{now, random_digits, random_id};

/// `POST /v1/rp/offline`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRequest {
    /// The user.
    pub user: String,
    /// Which device (default: the most recently activated active one).
    pub device_id: Option<String>,
    /// Lifetime in seconds (default 300, 30..=600).
    pub timeout_secs: Option<u32>,
}

/// The offline challenge.
#[derive(Debug, Serialize, Deserialize)]
pub struct OfflineResponse {
    /// Its id (for verification).
    pub id: String,
    /// The numeric question (also inside the QR payload).
    pub question: String,
    /// The signed QR payload: `{"v":1,"kid":…,"payload":…,"sig":…}`, signed by S
    /// for [`Purpose::OfflineChallenge`] (docs/PROTOCOL.md §11).
    pub qr_payload: String,
    /// The QR code as SVG.
    pub qr_svg: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Creates an offline QR challenge.
pub async fn create(state: &AppState, rp: &Rp, req: OfflineRequest) -> ApiResult<OfflineResponse> {
    check_user_name(&req.user)?;
    let timeout = req.timeout_secs.unwrap_or(300);
    if !(30..=600).contains(&timeout) {
        return Err(ApiError::bad_request("timeout_secs must be in 30..=600"));
    }
    let target = store::devices::offline_target(
        &state.db,
        &rp.id,
        &req.user,
        req.device_id.as_deref().unwrap_or_default(),
    )
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::NoDevice, "the user has no active device"))?;
    let id = random_id("off_")?;
    let question = random_digits(8)?;
    let t = now();
    let expires_at = t + i64::from(timeout);
    // Field order as in docs/PROTOCOL.md §11 (`v` first).
    let payload = serde_json::to_vec(&OfflineChallenge {
        v: 1,
        kind: OFFLINE_KIND.to_owned(),
        id: id.clone(),
        account: target.account_id,
        device: target.device_id.clone(),
        suite: OFFLINE_SUITE.to_owned(),
        question: question.clone(),
        rp: rp.name.clone(),
        exp: u64::try_from(expires_at).map_err(ApiError::internal)?,
    })
    .map_err(ApiError::internal)?;
    let signed = SignedMessage::sign(Purpose::OfflineChallenge, payload, &state.signing_key)
        .and_then(|m| m.to_json())
        .map_err(ApiError::internal)?;
    let qr_payload = String::from_utf8(signed).map_err(ApiError::internal)?;
    store::offline::insert(
        &state.db,
        &store::offline::NewOfflineChallenge {
            id: &id,
            rp_id: &rp.id,
            user_id: &target.user_id,
            device_id: &target.device_id,
            suite: OFFLINE_SUITE,
            question: &question,
            created_at: t,
            expires_at,
        },
    )
    .await?;
    let (qr_svg, _) = crate::qr::render(qr_payload.as_bytes())?;
    Ok(OfflineResponse {
        id,
        question,
        qr_payload,
        qr_svg,
        expires_at,
    })
}

/// `POST /v1/rp/offline/{id}/verify`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineVerifyRequest {
    /// The response code the user typed.
    pub response: String,
}

/// An accepted response.
#[derive(Debug, Serialize, Deserialize)]
pub struct OfflineAccepted {
    /// Always `accepted`.
    pub result: String,
    /// The device whose seed answered.
    pub device_id: String,
}

/// Verifies the typed OCRA response to offline challenge `id` (single use,
/// 5 attempts, and the user's failed-passcode limit).
pub async fn verify(
    state: &AppState,
    rp: &Rp,
    id: &str,
    req: OfflineVerifyRequest,
) -> ApiResult<OfflineAccepted> {
    let row = store::offline::find(&state.db, id, &rp.id)
        .await?
        .ok_or_else(|| ApiError::not_found("offline challenge"))?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&row.user_id),
        device: Some(&row.device_id),
        tx: Some(id),
    };
    if row.used_at.is_some() {
        return Err(ApiError::new(ErrorCode::Replayed, "already used"));
    }
    if now() > row.expires_at {
        return Err(ApiError::new(
            ErrorCode::Expired,
            "offline challenge expired",
        ));
    }
    if row.attempts >= 5 {
        return Err(ApiError::new(ErrorCode::RateLimited, "too many attempts"));
    }
    if row.status != "active" {
        return Err(ApiError::new(
            ErrorCode::DeviceRemoved,
            "device was removed",
        ));
    }
    policy::reserve_passcode_attempt(state, &row.user_id, who).await?;
    let suite = OcraSuite::parse(&row.suite).map_err(ApiError::internal)?;
    let seed = state.master.open(
        &format!("devices:{}:otp_seed", row.device_id),
        &row.otp_seed,
    )?;
    let inputs = OcraInputs {
        question: &row.question,
        ..OcraInputs::default()
    };
    let ok = req.response.len() <= 16
        && countersign_protocol::otp::ocra_verify(&suite, &seed, &inputs, &req.response)
            .map_err(ApiError::internal)?;
    if !ok {
        store::offline::add_failed_attempt(&state.db, id).await?;
        audit(&state.db, who, "offline_rejected", "wrong response").await?;
        return Err(ApiError::new(ErrorCode::InvalidOtp, "wrong response"));
    }
    if !store::offline::consume(&state.db, id, now()).await? {
        return Err(ApiError::new(ErrorCode::Replayed, "already used"));
    }
    // Like a valid OTP, a verified offline code proves the phone is in hand: it
    // also lifts a suppression after misses.
    store::users::reset_after_valid_otp(&state.db, &row.user_id).await?;
    audit(&state.db, who, "offline_approval", "ocra response verified").await?;
    Ok(OfflineAccepted {
        result: "accepted".into(),
        device_id: row.device_id.clone(),
    })
}
