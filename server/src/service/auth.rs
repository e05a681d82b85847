//! Who is calling: relying parties by API key (`csk_<key id>.<secret>`), and
//! devices by a request signed with their possession key Dp (docs/PROTOCOL.md
//! §7: stale timestamps and reused nonces are refused, and the nonce is stored
//! before the request acts).
//!
//! What never changes (a key's hash and RP, a device's keys and ids) is cached
//! in [`AppState`]; what can change (revocation, device status) is checked in
//! the database on every request, inside a statement the request runs anyway.

use std::sync::Arc;

use countersign_protocol::crypto::{PublicKey, ct_eq, sha256};
use countersign_protocol::{RequestHeaders, verify_request};

use super::protocol_error;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store;
use crate::util::{now, now_u64, unb64};

/// An authenticated relying party.
#[derive(Debug, Clone)]
pub struct Rp {
    /// Its id.
    pub id: String,
    /// Its display name (shown on the phone as the challenge's `rp`).
    pub name: String,
    /// The API key id it authenticated with (hot paths re-check its revocation
    /// inside their own statement).
    pub key_id: String,
}

/// What never changes about an API key (cached by key id): its hash and RP.
#[derive(Debug)]
pub struct ApiKeyInfo {
    key_hash: String,
    rp: Rp,
}

/// The error for a missing, unknown, wrong or revoked API key.
pub fn unauthorized() -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, "missing or invalid API key")
}

/// An API key as presented: `csk_<key id>.<secret>`.
#[derive(Debug, Clone, Copy)]
pub struct PresentedKey<'a> {
    key_id: &'a str,
    secret: &'a str,
}

impl<'a> PresentedKey<'a> {
    /// Parses `csk_<16-character key id>.<secret>`.
    pub fn parse(key: &'a str) -> ApiResult<Self> {
        let key = key.strip_prefix("csk_").ok_or_else(unauthorized)?;
        let (key_id, secret) = key.split_once('.').ok_or_else(unauthorized)?;
        if key_id.len() != 16 || secret.len() > 64 {
            return Err(unauthorized());
        }
        Ok(Self { key_id, secret })
    }

    fn matches(&self, key_hash: &str) -> bool {
        let presented = hex::encode(sha256(self.secret.as_bytes()));
        ct_eq(presented.as_bytes(), key_hash.as_bytes())
    }
}

/// Checks the API key against the database (existence, hash, revocation) and
/// caches what never changes about it.
pub async fn authenticate_rp(state: &AppState, key: PresentedKey<'_>) -> ApiResult<Rp> {
    let row = store::api_keys::find_active(&state.db, key.key_id, now()).await?;
    // Hash and compare even for an unknown key id, so timing does not tell them apart.
    let (stored, rp) = match row {
        Some(r) => (
            r.key_hash,
            Some(Rp {
                id: r.rp_id,
                name: r.rp_name,
                key_id: key.key_id.to_string(),
            }),
        ),
        None => (String::new(), None),
    };
    match rp {
        Some(rp) if key.matches(&stored) => {
            state.api_keys.insert(
                key.key_id,
                ApiKeyInfo {
                    key_hash: stored,
                    rp: rp.clone(),
                },
            );
            Ok(rp)
        }
        _ => Err(unauthorized()),
    }
}

/// [`authenticate_rp`] without a statement, for the hot services (start a
/// push, challenge status): the secret is checked against the cached hash, and
/// the service's own statement requires the key to be unrevoked and calls
/// [`key_active`] when it finds nothing. A key not in the cache takes the full
/// check.
pub async fn authenticate_rp_cached(state: &AppState, key: PresentedKey<'_>) -> ApiResult<Rp> {
    let Some(info) = state.api_keys.get(key.key_id) else {
        return authenticate_rp(state, key).await;
    };
    if key.matches(&info.key_hash) {
        Ok(info.rp.clone())
    } else {
        Err(unauthorized())
    }
}

/// Whether the API key is (still) valid: the slow path after a hot statement
/// found nothing, to tell a revoked key from a missing row.
pub async fn key_active(state: &AppState, key_id: &str) -> ApiResult<bool> {
    Ok(store::api_keys::is_active(&state.db, key_id, now()).await?)
}

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
    let row = store::devices::keys(&state.db, device_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown device"))?;
    let key = |sec1: &str| -> ApiResult<PublicKey> {
        PublicKey::from_sec1(&unb64(sec1)?).map_err(ApiError::internal)
    };
    let info = DeviceInfo {
        possession_key: key(&row.possession_key)?,
        user_key: key(&row.verification_key)?,
        otp_digits: u8::try_from(row.otp_digits).map_err(ApiError::internal)?,
        account_id: row.account_id,
        user_id: row.user_id,
        rp_id: row.rp_id,
        otp_seed: row.otp_seed,
    };
    Ok(state.devices.insert(device_id, info))
}

/// A device request as received: its signature headers, method, path with
/// query, and body.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The parsed `Countersign-*` headers.
    pub headers: &'a RequestHeaders,
    /// The HTTP method.
    pub method: &'a str,
    /// Path and query, as signed.
    pub path: &'a str,
    /// The body, as signed.
    pub body: &'a [u8],
}

/// Verifies the request signature and records the nonce. Removed devices get
/// `device_removed` (after their signature verifies, so nobody can probe); a
/// device whose activation is not confirmed yet gets `unauthorized` (it may
/// only call [`authenticate_confirming_device`]'s endpoint).
///
/// The device's keys and ids come from a cache; its status is checked by the
/// nonce `INSERT` itself (it only inserts for an active device), so a removal by
/// any instance takes effect at once and a request costs one statement.
pub async fn authenticate_device(state: &AppState, req: SignedRequest<'_>) -> ApiResult<Device> {
    authenticate(state, req, false).await
}

/// [`authenticate_device`] that also admits a `pending` device: for the
/// activation confirmation (`POST /v1/device/activate/confirm`) alone.
pub async fn authenticate_confirming_device(
    state: &AppState,
    req: SignedRequest<'_>,
) -> ApiResult<Device> {
    authenticate(state, req, true).await
}

async fn authenticate(
    state: &AppState,
    req: SignedRequest<'_>,
    allow_pending: bool,
) -> ApiResult<Device> {
    let hdrs = req.headers;
    let info = device_info(state, &hdrs.device_id).await?;
    let skew = u64::from(state.config.policy.request_max_skew_secs);
    verify_request(
        &info.possession_key,
        hdrs,
        req.method,
        req.path,
        req.body,
        now_u64(),
        skew,
    )
    .map_err(protocol_error)?;
    // Remember the nonce with its signed timestamp (a replay repeats both) for
    // twice the skew: any replay within the timestamp window hits it. Stored
    // before the request does anything, and only while the device is active
    // (or pending, for the confirmation).
    let signed_at = i64::try_from(hdrs.timestamp).unwrap_or(i64::MAX);
    let fresh = store::nonces::insert_if_allowed(
        &state.db,
        &hdrs.device_id,
        &hdrs.nonce,
        signed_at,
        allow_pending,
    )
    .await?;
    if !fresh {
        // Refused: removed, pending (or deleted) device, or a replayed nonce.
        let status = store::devices::status(&state.db, &hdrs.device_id).await?;
        return Err(match status.as_deref() {
            None => {
                state.devices.remove(&hdrs.device_id);
                ApiError::new(ErrorCode::Unauthorized, "unknown device")
            }
            Some("pending") if !allow_pending => ApiError::new(
                ErrorCode::Unauthorized,
                "activation not confirmed: this device may only confirm",
            ),
            Some("active") | Some("pending") => {
                ApiError::new(ErrorCode::Replayed, "nonce already used")
            }
            Some(_) => device_removed(),
        });
    }
    Ok(Device {
        id: hdrs.device_id.clone(),
        account_id: info.account_id.clone(),
        user_id: info.user_id.clone(),
        rp_id: info.rp_id.clone(),
        possession_key: info.possession_key.clone(),
        user_key: info.user_key.clone(),
        otp_seed: info.otp_seed.clone(),
        otp_digits: info.otp_digits,
    })
}

/// The error a removed device gets: its core then wipes the account.
pub fn device_removed() -> ApiError {
    ApiError::new(
        ErrorCode::DeviceRemoved,
        "this device was removed: wipe the account",
    )
}

/// The relying party a RADIUS client signs users in for (its id, or else its
/// name), acting with its oldest unrevoked API key; `None` when there is no
/// such relying party or all its keys are revoked.
pub async fn rp_for_radius(state: &AppState, id_or_name: &str) -> ApiResult<Option<Rp>> {
    Ok(
        store::api_keys::rp_with_active_key(&state.db, id_or_name, now())
            .await?
            .map(|r| Rp {
                id: r.rp_id,
                name: r.rp_name,
                key_id: r.key_id,
            }),
    )
}
