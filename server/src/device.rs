//! The device API (`/v1/device/…`). Every request except activation is signed
//! with the device's possession key Dp (docs/PROTOCOL.md §7): stale timestamps
//! and reused nonces are refused, and the nonce is stored before the request acts.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use countersign_protocol::api::{AnswerAccepted, PendingChallenge, PendingList};
use countersign_protocol::crypto::{PublicKey, ct_eq};
use countersign_protocol::{
    ActivationGrant, ActivationRequest, ActivationResult, Answer, AnswerExpectation, Challenge,
    Decision, DenyReason, Ephemeral, NumberMatching, OfferCredentials, OfferSecret, OtpAlgorithm,
    OtpParams, ProtocolError, PushRegistration, RequestHeaders, SignedMessage, Verification,
    VerificationPolicy, verify_request,
};
use sqlx::Row;

use crate::AppState;
use crate::challenge::webhook;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify::{Event, wait_for};
use crate::rp::WaitQuery;
use crate::util::{AuditSubject, audit, audit_on, b64, now, now_u64, random_id, unb64};

/// OTP seed length for new accounts (160 bits, the RFC 4226 recommendation).
const SEED_LEN: usize = 20;

/// An authenticated device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Account id.
    pub account_id: String,
    /// User id.
    pub user_id: String,
    /// The user's relying party.
    pub rp_id: String,
    /// Possession key Dp.
    pub possession_key: PublicKey,
    /// User-verification key Du.
    pub user_key: PublicKey,
    /// Sealed OTP seed.
    pub otp_seed: String,
    /// OTP digits.
    pub otp_digits: u8,
}

fn bad_signature() -> ApiError {
    ApiError::new(ErrorCode::BadSignature, "signature does not verify")
}

fn map_protocol(e: ProtocolError) -> ApiError {
    match e {
        ProtocolError::Expired { .. } | ProtocolError::NotYetValid { .. } => {
            ApiError::new(ErrorCode::Expired, "timestamp outside the accepted window")
        }
        ProtocolError::UnsupportedVersion { .. } => {
            ApiError::new(ErrorCode::Unsupported, e.to_string())
        }
        ProtocolError::BadSignature | ProtocolError::UnknownKey | ProtocolError::WrongPurpose => {
            bad_signature()
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// What never changes about a device once activated (cached by device id).
#[derive(Debug)]
pub struct DeviceInfo {
    account_id: String,
    user_id: String,
    rp_id: String,
    possession_key: PublicKey,
    user_key: PublicKey,
    otp_seed: String,
    otp_digits: u8,
}

/// The device's immutable data, from the cache or (once) from the database.
async fn device_info(state: &AppState, device_id: &str) -> ApiResult<Arc<DeviceInfo>> {
    if let Some(info) = state.devices.get(device_id) {
        return Ok(info);
    }
    let row = sqlx::query(
        "SELECT d.account_id, d.user_id, u.rp_id, d.possession_key, d.verification_key, \
         d.otp_seed, d.otp_digits FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
    )
    .bind(device_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown device"))?;
    let key = |i: usize| -> ApiResult<PublicKey> {
        PublicKey::from_sec1(&unb64(&row.try_get::<String, _>(i)?)?).map_err(ApiError::internal)
    };
    let info = DeviceInfo {
        account_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        rp_id: row.try_get(2)?,
        possession_key: key(3)?,
        user_key: key(4)?,
        otp_seed: row.try_get(5)?,
        otp_digits: u8::try_from(row.try_get::<i64, _>(6)?).map_err(ApiError::internal)?,
    };
    Ok(state.devices.insert(device_id, info))
}

/// Verifies the request signature and records the nonce. Removed devices get
/// `device_removed` (after their signature verifies, so nobody can probe).
///
/// The device's keys and ids come from a cache; its status is checked by the
/// nonce `INSERT` itself (it only inserts for an active device), so a removal by
/// any instance takes effect at once and a request costs one statement.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Device> {
    let hdrs = RequestHeaders::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map_err(|e| ApiError::new(ErrorCode::Unauthorized, format!("request signature: {e}")))?;
    let info = device_info(state, &hdrs.device_id).await?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let skew = u64::from(state.config.policy.request_max_skew_secs);
    verify_request(
        &info.possession_key,
        &hdrs,
        method.as_str(),
        path,
        body,
        now_u64(),
        skew,
    )
    .map_err(map_protocol)?;
    // Remember the nonce for twice the skew: any replay within the timestamp
    // window hits it. Stored before the request does anything, and only while
    // the device is active.
    let keep_until = i64::try_from(hdrs.timestamp.saturating_add(2 * skew)).unwrap_or(i64::MAX);
    let fresh = sqlx::query(
        "INSERT INTO used_nonces (device_id, nonce, expires_at) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM devices WHERE id = $1 AND status = 'active') \
         ON CONFLICT (device_id, nonce) DO NOTHING",
    )
    .bind(&hdrs.device_id)
    .bind(&hdrs.nonce)
    .bind(keep_until)
    .execute(&state.db.pool)
    .await?;
    if fresh.rows_affected() == 0 {
        // Refused: removed (or deleted) device, or a replayed nonce.
        let status = sqlx::query("SELECT status FROM devices WHERE id = $1")
            .bind(&hdrs.device_id)
            .fetch_optional(&state.db.pool)
            .await?;
        return Err(match status {
            None => {
                state.devices.remove(&hdrs.device_id);
                ApiError::new(ErrorCode::Unauthorized, "unknown device")
            }
            Some(r) if r.try_get::<String, _>(0)? != "active" => ApiError::new(
                ErrorCode::DeviceRemoved,
                "this device was removed: wipe the account",
            ),
            Some(_) => ApiError::new(ErrorCode::Replayed, "nonce already used"),
        });
    }
    Ok(Device {
        id: hdrs.device_id,
        account_id: info.account_id.clone(),
        user_id: info.user_id.clone(),
        rp_id: info.rp_id.clone(),
        possession_key: info.possession_key.clone(),
        user_key: info.user_key.clone(),
        otp_seed: info.otp_seed.clone(),
        otp_digits: info.otp_digits,
    })
}

fn signed_json(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

// ---------------------------------------------------------------------------
// Activation

/// `POST /v1/device/activate`: body is the signed activation request; the answer
/// is the activation result signed by S.
pub async fn activate(State(state): State<Arc<AppState>>, body: Bytes) -> ApiResult<Response> {
    let msg = SignedMessage::from_json(&body).map_err(map_protocol)?;
    let req = ActivationRequest::verify(&msg).map_err(map_protocol)?;
    let offer_id = req.offer_id.to_text();
    let row = sqlx::query(
        "SELECT o.user_id, o.secret, o.issuer, o.label, o.expires_at, o.attempts, o.used_at, u.rp_id \
         FROM enrollment_offers o JOIN users u ON u.id = o.user_id WHERE o.id = $1",
    )
    .bind(&offer_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("activation offer"))?;
    let user_id: String = row.try_get(0)?;
    let rp_id: String = row.try_get(7)?;
    let who = AuditSubject {
        rp: Some(&rp_id),
        user: Some(&user_id),
        ..Default::default()
    };
    let t = now();
    if row.try_get::<Option<i64>, _>(6)?.is_some() {
        audit(&state.db, who, "enrollment_refused", "offer already used").await?;
        return Err(ApiError::new(
            ErrorCode::Replayed,
            "this offer was already used",
        ));
    }
    if t > row.try_get::<i64, _>(4)? {
        audit(&state.db, who, "enrollment_refused", "offer expired").await?;
        return Err(ApiError::new(ErrorCode::Expired, "this offer has expired"));
    }
    if row.try_get::<i64, _>(5)? >= i64::from(state.config.policy.activation_max_attempts) {
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
    let secret = state.master.open(
        &format!("enrollment_offers:{offer_id}"),
        &row.try_get::<String, _>(1)?,
    )?;
    let secret: [u8; 10] = secret
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("stored offer secret length"))?;
    let creds = OfferCredentials {
        id: req.offer_id,
        secret: OfferSecret::from_bytes(secret),
    };
    if req.check_offer(&creds).is_err() {
        sqlx::query("UPDATE enrollment_offers SET attempts = attempts + 1 WHERE id = $1")
            .bind(&offer_id)
            .execute(&state.db.pool)
            .await?;
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
    let consumed = sqlx::query(
        "UPDATE enrollment_offers SET used_at = $1, device_id = $2 WHERE id = $3 AND used_at IS NULL",
    )
    .bind(t)
    .bind(&device_id)
    .bind(&offer_id)
    .execute(&state.db.pool)
    .await?;
    if consumed.rows_affected() == 0 {
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
        user_label: row.try_get(3)?,
        issuer: row.try_get(2)?,
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
    sqlx::query(
        "INSERT INTO devices (id, account_id, user_id, name, platform, possession_key, possession_key_id, \
         verification_key, kem_key, kem_key_id, push_provider, push_token, status, otp_seed, otp_algorithm, \
         otp_digits, otp_period, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13, 'SHA1', $14, $15, $16, $16)",
    )
    .bind(&device_id)
    .bind(&account_id)
    .bind(&user_id)
    .bind(req.device_name.clone().unwrap_or_default())
    .bind(platform)
    .bind(b64(&req.possession_key.to_sec1()))
    .bind(req.possession_key.key_id())
    .bind(b64(&req.user_key.to_sec1()))
    .bind(b64(&req.kem_key.to_sec1()))
    .bind(req.kem_key.key_id())
    .bind(provider)
    .bind(token)
    .bind(state.master.seal(&format!("devices:{device_id}:otp_seed"), &seed[..])?)
    .bind(i64::from(otp.digits))
    .bind(i64::from(otp.period))
    .bind(t)
    .execute(&state.db.pool)
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
    Ok(signed_json(signed))
}

fn push_columns(reg: &PushRegistration) -> (&'static str, Option<String>) {
    match reg {
        PushRegistration::Fcm { token } => ("fcm", Some(token.clone())),
        PushRegistration::Apns { token } => ("apns", Some(token.clone())),
        // No Web Push sender yet: such devices long-poll.
        PushRegistration::UnifiedPush { .. } => ("unifiedpush", None),
        PushRegistration::None {} => ("none", None),
    }
}

// ---------------------------------------------------------------------------
// Challenges

async fn pending_for(
    state: &AppState,
    device_id: &str,
) -> ApiResult<(bool, Vec<PendingChallenge>)> {
    let rows = sqlx::query(
        "SELECT c.id, c.expires_at, d.status FROM devices d \
         LEFT JOIN challenge_deliveries cd ON cd.device_id = d.id \
         LEFT JOIN challenges c ON c.id = cd.tx_id AND c.state = 'pending' AND c.expires_at >= $2 \
         WHERE d.id = $1 ORDER BY c.created_at",
    )
    .bind(device_id)
    .bind(now())
    .fetch_all(&state.db.pool)
    .await?;
    let mut active = true;
    let mut out = Vec::new();
    for r in rows {
        active = r.try_get::<String, _>(2)? == "active";
        if let Some(tx) = r.try_get::<Option<String>, _>(0)? {
            out.push(PendingChallenge {
                tx,
                exp: r.try_get::<Option<i64>, _>(1)?.unwrap_or(0),
            });
        }
    }
    Ok((active, out))
}

/// `GET /v1/device/challenges?wait=N`: long-polls until a challenge is pending
/// (or N seconds pass). Holds no database connection while waiting.
pub async fn poll(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<WaitQuery>,
    body: Bytes,
) -> ApiResult<Json<PendingList>> {
    let device = authenticate(&state, &method, &uri, &headers, &body).await?;
    touch(&state, &device.id).await?;
    let wait = q
        .wait
        .unwrap_or(0)
        .min(state.config.policy.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let wanted = Event::Device(device.id.clone());
    let mut stop = state.shutting_down.clone();
    loop {
        let mut rx = state.notifier.subscribe();
        let (active, list) = pending_for(&state, &device.id).await?;
        if !active {
            return Err(ApiError::new(
                ErrorCode::DeviceRemoved,
                "this device was removed: wipe the account",
            ));
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !list.is_empty() || remaining.is_zero() || *stop.borrow() {
            return Ok(Json(PendingList { challenges: list }));
        }
        tokio::select! {
            _ = wait_for(&mut rx, &wanted, remaining.min(Duration::from_secs(5))) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn touch(state: &AppState, device_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
        .bind(now())
        .bind(device_id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// `GET /v1/device/challenges/{tx}`: the challenge sealed for this device, signed by S.
pub async fn fetch(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(tx): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let device = authenticate(&state, &method, &uri, &headers, &body).await?;
    // One statement on the common path: mark it fetched and read it back, only
    // while the challenge is pending.
    let t = now();
    let row = sqlx::query(
        "UPDATE challenge_deliveries SET fetched_at = $1 WHERE tx_id = $2 AND device_id = $3 \
         AND EXISTS (SELECT 1 FROM challenges c WHERE c.id = $2 AND c.state = 'pending' \
         AND c.expires_at >= $1) RETURNING sealed",
    )
    .bind(t)
    .bind(&tx)
    .bind(&device.id)
    .fetch_optional(&state.db.pool)
    .await?;
    if let Some(row) = row {
        return Ok(signed_json(row.try_get::<String, _>(0)?.into_bytes()));
    }
    // Not sent to this device, or no longer pending: say which.
    let row = sqlx::query(
        "SELECT c.state, c.expires_at FROM challenge_deliveries cd \
         JOIN challenges c ON c.id = cd.tx_id WHERE cd.tx_id = $1 AND cd.device_id = $2",
    )
    .bind(&tx)
    .bind(&device.id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("challenge"))?;
    check_pending(&row.try_get::<String, _>(0)?, row.try_get(1)?)?;
    // Not reached in practice (pending and fresh now means it was at `t`).
    Err(ApiError::new(
        ErrorCode::Expired,
        "the challenge has expired",
    ))
}

fn check_pending(st: &str, expires_at: i64) -> ApiResult<()> {
    match st {
        "pending" if now() <= expires_at => Ok(()),
        "pending" | "expired" => Err(ApiError::new(
            ErrorCode::Expired,
            "the challenge has expired",
        )),
        _ => Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "the challenge was already answered",
        )),
    }
}

/// `POST /v1/device/challenges/{tx}/answer`: body is the signed answer.
pub async fn answer(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(tx): Path<String>,
    body: Bytes,
) -> ApiResult<Json<AnswerAccepted>> {
    let device = authenticate(&state, &method, &uri, &headers, &body).await?;
    let msg = SignedMessage::from_json(&body).map_err(map_protocol)?;
    let ans =
        Answer::verify(&msg, &device.possession_key, &device.user_key).map_err(map_protocol)?;
    if ans.tx_id != tx {
        return Err(ApiError::bad_request("answer is for another transaction"));
    }
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        tx: Some(&tx),
    };
    if ans.account_id != device.account_id {
        audit(&state.db, who, "answer_refused", "wrong account").await?;
        return Err(ApiError::new(
            ErrorCode::WrongAccount,
            "the answer is for another account",
        ));
    }
    let row = sqlx::query(
        "SELECT cd.display_hash, cd.plaintext, c.state, c.expires_at, c.number, c.rp_id, c.user_id, \
         CASE WHEN r.webhook_url IS NULL THEN 0 ELSE 1 END, u.denial_streak \
         FROM challenges c LEFT JOIN challenge_deliveries cd ON cd.tx_id = c.id AND cd.device_id = $2 \
         JOIN relying_parties r ON r.id = c.rp_id JOIN users u ON u.id = c.user_id \
         WHERE c.id = $1",
    )
    .bind(&tx)
    .bind(&device.id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("challenge"))?;
    let (Some(hash_text), Some(plaintext)) = (
        row.try_get::<Option<String>, _>(0)?,
        row.try_get::<Option<String>, _>(1)?,
    ) else {
        // The challenge exists but was not sent to this device.
        audit(&state.db, who, "answer_refused", "wrong account").await?;
        return Err(ApiError::new(
            ErrorCode::WrongAccount,
            "this challenge was not sent to this device",
        ));
    };
    check_pending(&row.try_get::<String, _>(2)?, row.try_get(3)?)?;
    let expected_hash = unb64(&hash_text)?;
    if !ct_eq(&ans.challenge_hash, &expected_hash) {
        audit(&state.db, who, "answer_refused", "wrong display hash").await?;
        return Err(ApiError::new(
            ErrorCode::WrongDisplayHash,
            "the answer signs a different challenge than the one sent",
        ));
    }
    let challenge = Challenge::from_json(&unb64(&plaintext)?).map_err(ApiError::internal)?;
    let number: Option<String> = row.try_get(4)?;
    let expected_hash: [u8; 32] = expected_hash
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("stored hash length"))?;
    if ans.decision == Decision::Approve {
        if challenge.verification != Verification::None && ans.verification == Verification::None {
            audit(&state.db, who, "answer_refused", "verification required").await?;
            return Err(ApiError::new(
                ErrorCode::VerificationRequired,
                "this challenge needs a PIN or biometric (Du-signed) approval",
            ));
        }
        let number_ok = match (
            &challenge.number_matching,
            ans.number.as_deref(),
            number.as_deref(),
        ) {
            (NumberMatching::Off, None, _) => true,
            (NumberMatching::Off, Some(_), _) => false,
            (_, Some(got), Some(want)) => ct_eq(got.as_bytes(), want.as_bytes()),
            _ => false,
        };
        if !number_ok {
            audit(&state.db, who, "answer_refused", "wrong number").await?;
            return Err(ApiError::new(
                ErrorCode::WrongNumber,
                "the number entered is not the one shown",
            ));
        }
    }
    // The core's own check, as a second line (binding, expiry, purpose).
    ans.check(&AnswerExpectation {
        challenge: &challenge,
        challenge_hash: &expected_hash,
        expected_number: number.as_deref(),
        now: now_u64(),
    })
    .map_err(map_protocol)?;
    let push_otp = match (&ans.decision, &ans.otp) {
        (Decision::Approve, Some(code)) => {
            let seed = state
                .master
                .open(&format!("devices:{}:otp_seed", device.id), &device.otp_seed)?;
            if ans.check_push_otp(&seed, device.otp_digits).is_err() {
                return Err(ApiError::new(
                    ErrorCode::InvalidOtp,
                    "push OTP does not verify",
                ));
            }
            Some(
                state
                    .master
                    .seal(&format!("challenges:{tx}:push_otp"), code.as_bytes())?,
            )
        }
        _ => None,
    };
    let (new_state, reason) = match ans.decision {
        Decision::Approve => ("approved", None),
        Decision::Deny => (
            "denied",
            Some(match ans.reason {
                Some(DenyReason::NotMe) => "not_me",
                _ => "mistake",
            }),
        ),
    };
    let t = now();
    let rp_id: String = row.try_get(5)?;
    let has_webhook = row.try_get::<i64, _>(7)? != 0;
    let denial_streak: i64 = row.try_get(8)?;
    // The outcome, the key rotation, the user's counters and the audit record
    // commit together (one commit instead of four). The first statement writes,
    // so SQLite takes the write lock up front.
    let mut dbtx = state.db.pool.begin().await?;
    let done = sqlx::query(
        "UPDATE challenges SET state = $1, answered_at = $2, answered_by = $3, deny_reason = $4, push_otp = $5 \
         WHERE id = $6 AND state = 'pending' AND expires_at >= $2",
    )
    .bind(new_state)
    .bind(t)
    .bind(&device.id)
    .bind(reason)
    .bind(push_otp)
    .bind(&tx)
    .execute(&mut *dbtx)
    .await?;
    if done.rows_affected() == 0 {
        dbtx.rollback().await?;
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "the challenge was already answered or has expired",
        ));
    }
    // Rotate the KEM key: the next challenge is sealed to the new one.
    sqlx::query(
        "UPDATE devices SET kem_key = $1, kem_key_id = $2, last_seen_at = $3 WHERE id = $4",
    )
    .bind(b64(&ans.next_kem.to_sec1()))
    .bind(ans.next_kem.key_id())
    .bind(t)
    .bind(&device.id)
    .execute(&mut *dbtx)
    .await?;
    match ans.decision {
        Decision::Approve => {
            if denial_streak != 0 {
                sqlx::query("UPDATE users SET denial_streak = 0 WHERE id = $1")
                    .bind(&device.user_id)
                    .execute(&mut *dbtx)
                    .await?;
            }
            audit_on(&mut dbtx, who, "approval", "approved on device").await?;
        }
        Decision::Deny => {
            let fraud = i64::from(ans.reason == Some(DenyReason::NotMe));
            let limit = i64::from(state.config.policy.denials_before_suppression);
            let r = sqlx::query(
                "UPDATE users SET denial_streak = denial_streak + 1, fraud_reports = fraud_reports + $2, \
                 suppressed = CASE WHEN denial_streak + 1 >= $3 THEN 1 ELSE suppressed END \
                 WHERE id = $1 RETURNING suppressed, denial_streak",
            )
            .bind(&device.user_id)
            .bind(fraud)
            .bind(limit)
            .fetch_one(&mut *dbtx)
            .await?;
            audit_on(&mut dbtx, who, "denial", reason.unwrap_or("mistake")).await?;
            if fraud == 1 {
                audit_on(&mut dbtx, who, "fraud_report", "user said it was not them").await?;
            }
            if r.try_get::<i64, _>(0)? == 1 && r.try_get::<i64, _>(1)? == limit {
                audit_on(&mut dbtx, who, "suppression", "consecutive denials").await?;
            }
        }
    }
    dbtx.commit().await?;
    state.notifier.publish(Event::Challenge(tx.clone())).await;
    if has_webhook {
        webhook(&state, &rp_id, &tx, new_state, reason);
    }
    Ok(Json(AnswerAccepted {
        state: new_state.into(),
    }))
}

// ---------------------------------------------------------------------------
// Push token, deregistration

/// `PUT /v1/device/push`: body is a push registration (`{"type":"fcm","token":…}`).
pub async fn update_push(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let device = authenticate(&state, &method, &uri, &headers, &body).await?;
    let reg: PushRegistration = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("body must be a push registration"))?;
    reg.validate().map_err(map_protocol)?;
    let (provider, token) = push_columns(&reg);
    sqlx::query(
        "UPDATE devices SET push_provider = $1, push_token = $2, last_seen_at = $3 WHERE id = $4",
    )
    .bind(provider)
    .bind(token)
    .bind(now())
    .bind(&device.id)
    .execute(&state.db.pool)
    .await?;
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
    Ok(Json(serde_json::json!({ "push_provider": provider })))
}

/// `DELETE /v1/device`: the device deregisters itself.
pub async fn deregister(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let device = authenticate(&state, &method, &uri, &headers, &body).await?;
    remove(
        &state,
        &device.rp_id,
        &device.user_id,
        &device.id,
        "deregistered by device",
    )
    .await?;
    Ok(Json(serde_json::json!({ "status": "removed" })))
}

/// Marks a device removed (idempotent for the audit trail) and wakes its long-polls.
pub async fn remove(
    state: &AppState,
    rp_id: &str,
    user_id: &str,
    device_id: &str,
    reason: &str,
) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE devices SET status = 'removed', removed_at = $1, removed_reason = $2, push_token = NULL \
         WHERE id = $3 AND user_id = $4 AND status = 'active'",
    )
    .bind(now())
    .bind(reason)
    .bind(device_id)
    .bind(user_id)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
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
