//! Devices: activation (offer proof, grant sealed to the device), push
//! registration, KEM key resynchronisation, listing, removal by the RP and
//! deregistration by the device.

use std::sync::Arc;

use countersign_protocol::api::{
    ActivationConfirmed, DeregisterReason, Deregistration, KemKeyAccepted, KemKeyUpdate,
};
use countersign_protocol::crypto::PublicKey;
use countersign_protocol::{
    ActivationGrant, ActivationRequest, ActivationResult, Ephemeral, OfferCredentials, OfferSecret,
    OtpAlgorithm, OtpParams, PushRegistration, SignedMessage, Verification, VerificationPolicy,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::audit::{AuditSubject, audit, audit_on};
use super::auth::{Device, Rp};
use super::{check_user_name, protocol_error, webhook};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::push::webpush::Subscription;
use crate::store::notify::Event;
use crate::store::{self, Db};
use crate::util::{b64, now, random_id, unb64};

/// OTP seed length for new accounts (160 bits, the RFC 4226 recommendation).
const SEED_LEN: usize = 20;

/// The verification policy new accounts of relying party `rp_id` get (the
/// activation result's `policy`; its `pin_min_length` is also the offer URI's
/// `pin` parameter): the one an operator set (`countersign admin rp
/// set-policy`), or else [`account_policy`].
pub async fn account_policy_for(db: &Db, rp_id: &str) -> ApiResult<VerificationPolicy> {
    let Some(text) = store::relying_parties::account_policy(db, rp_id).await? else {
        return Ok(account_policy());
    };
    let policy: VerificationPolicy = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format_args!("stored account policy: {e}")))?;
    policy
        .validate()
        .map_err(|e| ApiError::internal(format_args!("stored account policy: {e}")))?;
    Ok(policy)
}

/// The server's default verification policy for new accounts.
pub fn account_policy() -> VerificationPolicy {
    VerificationPolicy {
        default: Verification::None,
        pin_min_length: 6,
        pin_max_attempts: 10,
        biometric_allowed: true,
    }
}

/// Phase one of activation: `body` is the device's signed activation request;
/// the result is the activation result signed by S (JSON).
///
/// Every call counts one attempt on the offer (at most
/// `policy.activation_max_attempts`, then `rate_limited`). A request that
/// verifies stores the device as `pending` (replacing an earlier pending device
/// of the same offer) and leaves the offer unused: only the device's signed
/// confirmation ([`confirm`]) uses the offer and makes the device active, so a
/// device that refuses the result (key pin mismatch, PIN policy) leaves no
/// active device behind, and the offer can be tried again.
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
    let max = i64::from(state.config.policy.activation_max_attempts);
    if let Some(refusal) = offer_refusal(&offer, t, max) {
        audit(&state.db, who, "enrollment_refused", refusal.1).await?;
        return Err(refusal.0);
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
    // The attempt is counted first, in the transaction that stores the pending
    // device: it also orders concurrent activations and the confirmation.
    // Read before the transaction: a statement on another connection while it
    // is open could wait for a connection that only its own commit frees.
    let policy = account_policy_for(&state.db, &offer.rp_id).await?;
    let mut dbtx = state.db.begin().await?;
    if !store::offers::count_attempt(&mut dbtx, &offer_id, max, t).await? {
        dbtx.rollback().await?;
        let offer = store::offers::find(&state.db, &offer_id)
            .await?
            .ok_or_else(|| ApiError::not_found("activation offer"))?;
        let (err, reason) = offer_refusal(&offer, t, max).unwrap_or((
            ApiError::new(ErrorCode::Replayed, "this offer was already used"),
            "offer already used",
        ));
        audit(&state.db, who, "enrollment_refused", reason).await?;
        return Err(err);
    }
    if req.check_offer(&creds).is_err() {
        audit_on(&mut dbtx, who, "enrollment_refused", "wrong offer proof").await?;
        dbtx.commit().await?;
        return Err(ApiError::new(
            ErrorCode::BadSignature,
            "the offer proof does not verify (wrong code?)",
        ));
    }
    let skew = i64::from(state.config.policy.request_max_skew_secs);
    let device_time = i64::try_from(req.time).unwrap_or(i64::MAX);
    if (device_time - t).abs() > skew {
        dbtx.commit().await?;
        return Err(ApiError::new(ErrorCode::Expired, "device clock is off"));
    }
    let device_id = random_id("dev_")?;
    let account_id = random_id("acct_")?;
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
        policy,
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
    let (provider, token) = push_columns(&req.push)?;
    let platform = serde_json::to_value(req.platform)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let sealed_seed = state
        .master
        .seal(&format!("devices:{device_id}:otp_seed"), &seed[..])?;
    if store::devices::delete_pending_for_offer(&mut dbtx, &offer_id).await? != 0 {
        audit_on(
            &mut dbtx,
            who,
            "enrollment_replaced",
            "a new activation replaced the unconfirmed one",
        )
        .await?;
    }
    store::devices::insert_pending(
        &mut dbtx,
        &store::devices::NewDevice {
            id: &device_id,
            offer_id: &offer_id,
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
            push_token: token.as_deref().map(String::as_str),
            otp_seed: &sealed_seed,
            otp_digits: i64::from(otp.digits),
            otp_period: i64::from(otp.period),
            created_at: t,
        },
    )
    .await?;
    audit_on(
        &mut dbtx,
        AuditSubject {
            device: Some(&device_id),
            ..who
        },
        "enrollment_pending",
        "device activated, awaiting its confirmation",
    )
    .await?;
    dbtx.commit().await?;
    Ok(signed)
}

/// Why an offer cannot be activated now (error and audit reason), if it cannot.
fn offer_refusal(
    offer: &store::offers::OfferRow,
    t: i64,
    max: i64,
) -> Option<(ApiError, &'static str)> {
    if offer.used_at.is_some() {
        return Some((
            ApiError::new(ErrorCode::Replayed, "this offer was already used"),
            "offer already used",
        ));
    }
    if t > offer.expires_at {
        return Some((
            ApiError::new(ErrorCode::Expired, "this offer has expired"),
            "offer expired",
        ));
    }
    if offer.attempts >= max {
        return Some((
            ApiError::new(
                ErrorCode::RateLimited,
                "too many activation attempts for this offer",
            ),
            "too many attempts",
        ));
    }
    None
}

/// Phase two of activation (`POST /v1/device/activate/confirm`, signed with
/// Dp by a pending or active device): uses the offer for this device and makes
/// it active, in one transaction, while the offer is unexpired and unused. A
/// repeated confirmation of a device that already confirmed (the response was
/// lost) gets the same answer.
///
/// For an offer a transfer made (docs/PROTOCOL.md §14) a pending device is
/// not made active here: see [`super::transfer::confirm_pending`].
pub async fn confirm(state: &Arc<AppState>, device: &Device) -> ApiResult<ActivationConfirmed> {
    let confirmed = || ActivationConfirmed {
        device_id: device.id.clone(),
        status: "active".into(),
        tx_id: None,
    };
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        tx: None,
    };
    let (offer_id, status) = store::devices::offer_and_status(&state.db, &device.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown device"))?;
    let Some(offer_id) = offer_id else {
        // Activated before two-phase activation: active already.
        return Ok(confirmed());
    };
    let t = now();
    if status == "pending"
        && let Some(tr) = store::transfers::for_offer(&state.db, &offer_id).await?
    {
        let offer = store::offers::find(&state.db, &offer_id)
            .await?
            .ok_or_else(|| ApiError::not_found("activation offer"))?;
        if let Some(answer) =
            super::transfer::confirm_pending(state, device, &offer_id, &offer, tr).await?
        {
            return Ok(answer);
        }
    } else if status == "pending" {
        let mut dbtx = state.db.begin().await?;
        if store::offers::confirm(&mut dbtx, &offer_id, &device.id, t).await? {
            if !store::devices::activate_pending(&mut dbtx, &device.id, t).await? {
                // Replaced by a newer activation meanwhile.
                dbtx.rollback().await?;
                return Err(ApiError::new(ErrorCode::Unauthorized, "unknown device"));
            }
            // No other activation of this offer can be confirmed now.
            store::devices::delete_pending_for_offer(&mut dbtx, &offer_id).await?;
            audit_on(&mut dbtx, who, "enrollment", "device activated").await?;
            dbtx.commit().await?;
            webhook::send_device(
                state,
                &device.rp_id,
                webhook::DeviceEvent::Enrolled,
                &device.id,
                None,
            );
            return Ok(confirmed());
        }
        dbtx.rollback().await?;
    }
    // Not confirmable now: already confirmed by this device (a retry), or the
    // offer expired or went to another device.
    let offer = store::offers::find(&state.db, &offer_id)
        .await?
        .ok_or_else(|| ApiError::not_found("activation offer"))?;
    // The offer names this device only if its confirmation committed (which
    // made it active in the same transaction): also a concurrent repeat.
    if offer.device_id.as_deref() == Some(device.id.as_str()) {
        // Came by a transfer: finish removing the old device if the server
        // stopped before it could.
        super::transfer::finish_removal(state, &offer_id).await?;
        return Ok(confirmed());
    }
    if offer.used_at.is_some() {
        audit(
            &state.db,
            who,
            "enrollment_refused",
            "offer used by another device",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "this activation was replaced",
        ));
    }
    audit(
        &state.db,
        who,
        "enrollment_refused",
        "offer expired before confirmation",
    )
    .await?;
    Err(ApiError::new(ErrorCode::Expired, "this offer has expired"))
}

/// Deletes pending devices whose offer expired or was used by another device
/// (run by the janitor).
pub async fn delete_stale_pending(state: &AppState) -> ApiResult<()> {
    let gone = store::devices::delete_stale_pending(&state.db, now()).await?;
    for id in gone {
        state.devices.remove(&id);
    }
    Ok(())
}

/// The `push_provider` and `push_token` columns of a registration. A Web Push
/// subscription is kept whole as JSON in the token column (see
/// `push::webpush::Subscription`).
fn push_columns(reg: &PushRegistration) -> ApiResult<(&'static str, Option<Zeroizing<String>>)> {
    Ok(match reg {
        PushRegistration::Fcm { token } => ("fcm", Some(Zeroizing::new(token.clone()))),
        PushRegistration::Apns { token } => ("apns", Some(Zeroizing::new(token.clone()))),
        PushRegistration::UnifiedPush {
            endpoint,
            p256dh,
            auth,
        } => {
            let sub = Subscription {
                endpoint: endpoint.clone(),
                p256dh: p256dh.clone(),
                auth: auth.clone(),
            };
            let token = sub
                .to_token()
                .map_err(|_| ApiError::bad_request("body must be a push registration"))?;
            ("unifiedpush", Some(token))
        }
        PushRegistration::None {} => ("none", None),
    })
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
    let (provider, token) = push_columns(&reg)?;
    store::devices::set_push(
        &state.db,
        &device.id,
        provider,
        token.as_deref().map(String::as_str),
        now(),
    )
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
    let mut conn = state.db.conn().await?;
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

/// The device deregisters itself. `body` is empty or a [`Deregistration`]
/// (`{"reason":"wiped_on_device"}`: the device wiped the account after too
/// many wrong PINs), recorded as the removal reason.
pub async fn deregister(state: &Arc<AppState>, device: &Device, body: &[u8]) -> ApiResult<()> {
    let reason = if body.is_empty() {
        "deregistered"
    } else {
        let d: Deregistration = serde_json::from_slice(body).map_err(|_| {
            ApiError::bad_request("body must be empty or {\"reason\":\"wiped_on_device\"}")
        })?;
        match d.reason {
            DeregisterReason::WipedOnDevice => "wiped_on_device",
        }
    };
    remove(state, &device.rp_id, &device.user_id, &device.id, reason).await
}

/// The RP removes one of its user's devices.
pub async fn remove_for_rp(
    state: &Arc<AppState>,
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

/// `countersign admin device remove`: removes device `device_id` whoever's it
/// is (audited "removed by an operator"); returns its relying party and user.
pub async fn remove_by_operator(
    state: &Arc<AppState>,
    device_id: &str,
) -> ApiResult<store::devices::OwnerRow> {
    let owner = store::devices::owner(&state.db, device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    remove(
        state,
        &owner.rp_id,
        &owner.user_id,
        device_id,
        "removed by an operator",
    )
    .await?;
    Ok(owner)
}

/// Marks a device removed (idempotent for the audit trail) and wakes its
/// long-polls: its next request gets `device_removed` and its core wipes the
/// account. The one place a device is removed, so every caller (the device
/// itself, the RP, an operator) sends the `device.removed` webhook. Its pending challenges that no other active device can answer
/// end as `expired` in the same transaction (audited, webhook `expired`): no
/// answer can come for them any more.
pub async fn remove(
    state: &Arc<AppState>,
    rp_id: &str,
    user_id: &str,
    device_id: &str,
    reason: &str,
) -> ApiResult<()> {
    let who = AuditSubject {
        rp: Some(rp_id),
        user: Some(user_id),
        device: Some(device_id),
        tx: None,
    };
    let mut dbtx = state.db.begin().await?;
    if !store::devices::remove(&mut dbtx, device_id, user_id, reason, now()).await? {
        dbtx.rollback().await?;
        return Err(ApiError::not_found("active device"));
    }
    audit_on(&mut dbtx, who, "deregistration", reason).await?;
    let ended = store::challenges::expire_for_removed_device(&mut dbtx, device_id).await?;
    for c in &ended {
        audit_on(
            &mut dbtx,
            AuditSubject {
                tx: Some(&c.id),
                ..who
            },
            "expired",
            "the device was removed before answering",
        )
        .await?;
    }
    dbtx.commit().await?;
    state.metrics.pushes_expired(ended.len());
    state
        .notifier
        .publish(Event::Device(device_id.to_string()))
        .await;
    for c in ended {
        state.notifier.publish(Event::Challenge(c.id.clone())).await;
        webhook::send(state, &c.rp_id, &c.id, "expired", None);
    }
    webhook::send_device(
        state,
        rp_id,
        webhook::DeviceEvent::Removed,
        device_id,
        Some(reason),
    );
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
    /// `active` or `removed` (devices whose activation is not confirmed are
    /// not listed).
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

/// A user's devices, oldest first.
pub async fn list(state: &AppState, rp: &Rp, user: &str) -> ApiResult<Vec<DeviceSummary>> {
    list_for_rp(&state.db, &rp.id, user).await
}

/// The devices of user `user` of relying party `rp_id`, oldest first.
pub async fn list_for_rp(db: &Db, rp_id: &str, user: &str) -> ApiResult<Vec<DeviceSummary>> {
    check_user_name(user)?;
    let rows = store::devices::list_for_user(db, rp_id, user).await?;
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
