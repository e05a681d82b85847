//! Devices: activation (offer proof, grant sealed to the device), push
//! registration, KEM key resynchronisation, listing, removal by the RP and
//! deregistration by the device.

use countersign_protocol::api::{KemKeyAccepted, KemKeyUpdate};
use countersign_protocol::crypto::PublicKey;
use countersign_protocol::{
    ActivationGrant, ActivationRequest, ActivationResult, Ephemeral, OfferCredentials, OfferSecret,
    OtpAlgorithm, OtpParams, PushRegistration, SignedMessage, Verification, VerificationPolicy,
};
use serde::{Deserialize, Serialize};

use super::audit::{AuditSubject, audit, audit_on};
use super::auth::{Device, Rp};
use super::{check_user_name, protocol_error};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store;
use crate::store::notify::Event;
use crate::util::{b64, now, random_id, unb64};

/// OTP seed length for new accounts (160 bits, the RFC 4226 recommendation).
const SEED_LEN: usize = 20;

/// Activates a device: `body` is its signed activation request; the result is
/// the activation result signed by S (JSON).
pub async fn activate(state: &AppState, body: &[u8]) -> ApiResult<Vec<u8>> {
    let msg = SignedMessage::from_json(body).map_err(protocol_error)?;
    let req = ActivationRequest::verify(&msg).map_err(protocol_error)?;
    let offer_id = req.offer_id.to_text();
    let offer = store::offers::find(&state.db, &offer_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activation offer"))?;
    let who = AuditSubject {
        rp: Some(&offer.rp_id),
        user: Some(&offer.user_id),
        ..Default::default()
    };
    let t = now();
    if offer.used_at.is_some() {
        audit(&state.db, who, "enrollment_refused", "offer already used").await?;
        return Err(ApiError::new(
            ErrorCode::Replayed,
            "this offer was already used",
        ));
    }
    if t > offer.expires_at {
        audit(&state.db, who, "enrollment_refused", "offer expired").await?;
        return Err(ApiError::new(ErrorCode::Expired, "this offer has expired"));
    }
    if offer.attempts >= i64::from(state.config.policy.activation_max_attempts) {
        audit(
            &state.db,
            who,
            "enrollment_refused",
            "too many failed attempts",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many failed attempts for this offer",
        ));
    }
    let secret = state
        .master
        .open(&format!("enrollment_offers:{offer_id}"), &offer.secret)?;
    let secret: [u8; 10] = secret
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("stored offer secret length"))?;
    let creds = OfferCredentials {
        id: req.offer_id,
        secret: OfferSecret::from_bytes(secret),
    };
    if req.check_offer(&creds).is_err() {
        store::offers::add_failed_attempt(&state.db, &offer_id).await?;
        audit(&state.db, who, "enrollment_refused", "wrong offer proof").await?;
        return Err(ApiError::new(
            ErrorCode::BadSignature,
            "the offer proof does not verify (wrong code?)",
        ));
    }
    let skew = i64::from(state.config.policy.request_max_skew_secs);
    let device_time = i64::try_from(req.time).unwrap_or(i64::MAX);
    if (device_time - t).abs() > skew {
        return Err(ApiError::new(ErrorCode::Expired, "device clock is off"));
    }
    let device_id = random_id("dev_")?;
    let account_id = random_id("acct_")?;
    // Consume the offer before answering: exactly one activation wins.
    if !store::offers::consume(&state.db, &offer_id, &device_id, t).await? {
        return Err(ApiError::new(
            ErrorCode::Replayed,
            "this offer was already used",
        ));
    }
    let seed: zeroize::Zeroizing<[u8; SEED_LEN]> = zeroize::Zeroizing::new(
        countersign_protocol::crypto::random_array().map_err(ApiError::internal)?,
    );
    let otp = OtpParams {
        algorithm: OtpAlgorithm::Sha1,
        digits: 6,
        period: 30,
    };
    let grant = ActivationGrant {
        offer_id: req.offer_id,
        account_id: account_id.clone(),
        device_id: device_id.clone(),
        user_label: offer.label.clone(),
        issuer: offer.issuer.clone(),
        policy: VerificationPolicy {
            default: Verification::None,
            pin_min_length: 6,
            pin_max_attempts: 10,
            biometric_allowed: true,
        },
        otp,
        server_time: u64::try_from(t).unwrap_or(0),
    };
    let result = ActivationResult::seal(
        grant,
        state.signing_key.public_key(),
        &seed[..],
        &req.kem_key,
        Ephemeral::Random,
    )
    .map_err(ApiError::internal)?;
    let signed = result
        .sign(&state.signing_key)
        .and_then(|m| m.to_json())
        .map_err(ApiError::internal)?;
    let (provider, token) = push_columns(&req.push);
    let platform = serde_json::to_value(req.platform)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let sealed_seed = state
        .master
        .seal(&format!("devices:{device_id}:otp_seed"), &seed[..])?;
    store::devices::insert(
        &state.db,
        &store::devices::NewDevice {
            id: &device_id,
            account_id: &account_id,
            user_id: &offer.user_id,
            name: req.device_name.as_deref().unwrap_or_default(),
            platform: &platform,
            possession_key: &b64(&req.possession_key.to_sec1()),
            possession_key_id: &req.possession_key.key_id(),
            verification_key: &b64(&req.user_key.to_sec1()),
            kem_key: &b64(&req.kem_key.to_sec1()),
            kem_key_id: &req.kem_key.key_id(),
            push_provider: provider,
            push_token: token,
            otp_seed: &sealed_seed,
            otp_digits: i64::from(otp.digits),
            otp_period: i64::from(otp.period),
            created_at: t,
        },
    )
    .await?;
    audit(
        &state.db,
        AuditSubject {
            device: Some(&device_id),
            ..who
        },
        "enrollment",
        "device activated",
    )
    .await?;
    Ok(signed)
}

/// The `push_provider` and `push_token` columns of a registration.
fn push_columns(reg: &PushRegistration) -> (&'static str, Option<&str>) {
    match reg {
        PushRegistration::Fcm { token } => ("fcm", Some(token)),
        PushRegistration::Apns { token } => ("apns", Some(token)),
        // No Web Push sender yet: such devices long-poll.
        PushRegistration::UnifiedPush { .. } => ("unifiedpush", None),
        PushRegistration::None {} => ("none", None),
    }
}

/// Replaces the device's push registration (`body`: `{"type":"fcm","token":…}`);
/// returns the provider now stored.
pub async fn update_push(
    state: &AppState,
    device: &Device,
    body: &[u8],
) -> ApiResult<&'static str> {
    let reg: PushRegistration = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("body must be a push registration"))?;
    reg.validate().map_err(protocol_error)?;
    let (provider, token) = push_columns(&reg);
    store::devices::set_push(&state.db, &device.id, provider, token, now()).await?;
    audit(
        &state.db,
        AuditSubject {
            rp: Some(&device.rp_id),
            user: Some(&device.user_id),
            device: Some(&device.id),
            tx: None,
        },
        "push_token_updated",
        provider,
    )
    .await?;
    Ok(provider)
}

/// Points the device's future challenges at the KEM key it names (`body`:
/// `{"kem_key":"<base64url SEC1>"}`, covered by the Dp request signature): the
/// resynchronisation a device runs when it cannot tell which of its keys the
/// server seals to. Returns the key id now sealed to.
pub async fn update_kem_key(
    state: &AppState,
    device: &Device,
    body: &[u8],
) -> ApiResult<KemKeyAccepted> {
    let req: KemKeyUpdate = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("body must be {\"kem_key\":…}"))?;
    let key = unb64(&req.kem_key)
        .ok()
        .and_then(|sec1| PublicKey::from_sec1(&sec1).ok())
        .ok_or_else(|| ApiError::bad_request("kem_key must be a base64url P-256 public key"))?;
    let kem_kid = key.key_id();
    let mut conn = state.db.pool.acquire().await?;
    store::devices::rotate_kem_key(&mut conn, &device.id, &b64(&key.to_sec1()), &kem_kid, now())
        .await?;
    audit_on(
        &mut conn,
        AuditSubject {
            rp: Some(&device.rp_id),
            user: Some(&device.user_id),
            device: Some(&device.id),
            tx: None,
        },
        "kem_key_resynced",
        "device named its KEM key",
    )
    .await?;
    Ok(KemKeyAccepted { kem_kid })
}

/// The device deregisters itself.
pub async fn deregister(state: &AppState, device: &Device) -> ApiResult<()> {
    remove(
        state,
        &device.rp_id,
        &device.user_id,
        &device.id,
        "deregistered by device",
    )
    .await
}

/// The RP removes one of its user's devices.
pub async fn remove_for_rp(
    state: &AppState,
    rp: &Rp,
    user: &str,
    device_id: &str,
) -> ApiResult<()> {
    check_user_name(user)?;
    let user_id = store::users::find_id(&state.db, &rp.id, user)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    remove(
        state,
        &rp.id,
        &user_id,
        device_id,
        "removed by relying party",
    )
    .await
}

/// Marks a device removed (idempotent for the audit trail) and wakes its
/// long-polls: its next request gets `device_removed` and its core wipes the
/// account.
async fn remove(
    state: &AppState,
    rp_id: &str,
    user_id: &str,
    device_id: &str,
    reason: &str,
) -> ApiResult<()> {
    if !store::devices::remove(&state.db, device_id, user_id, reason, now()).await? {
        return Err(ApiError::not_found("active device"));
    }
    audit(
        &state.db,
        AuditSubject {
            rp: Some(rp_id),
            user: Some(user_id),
            device: Some(device_id),
            tx: None,
        },
        "deregistration",
        reason,
    )
    .await?;
    state
        .notifier
        .publish(Event::Device(device_id.to_string()))
        .await;
    Ok(())
}

/// One device as the RP sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// Device id.
    pub device_id: String,
    /// User-chosen name.
    pub name: String,
    /// `android`, `ios`, `desktop`.
    pub platform: String,
    /// `none`, `fcm`, `apns`, `unifiedpush`.
    pub push_provider: String,
    /// `active` or `removed`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

/// A user's devices, oldest first.
pub async fn list(state: &AppState, rp: &Rp, user: &str) -> ApiResult<Vec<DeviceSummary>> {
    check_user_name(user)?;
    let rows = store::devices::list_for_user(&state.db, &rp.id, user).await?;
    Ok(rows
        .into_iter()
        .map(|r| DeviceSummary {
            device_id: r.id,
            name: r.name,
            platform: r.platform,
            push_provider: r.push_provider,
            status: r.status,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
        })
        .collect())
}
