//! QR login (online, Onegini style; issue 14). The RP creates a login; the page
//! shows its QR (server URL, login id, one-time secret) and keeps a browser
//! handle that only it can poll with. The app scans the QR and claims the login
//! over its signed device channel; the claim seals an ordinary challenge for
//! that device, which it shows (with the page's IP, location and browser) and
//! answers like a push, under the same verification policy. No push service is
//! involved.
//!
//! Why no fatigue gate: a QR login reaches a phone only when its user scans the
//! page, so an attacker cannot spray it; the page's context on the phone is the
//! guard against a relayed QR, and the RP may add reverse number matching (the
//! phone shows a number that the user types on the page).

use std::sync::Arc;
use std::time::Duration;

use countersign_protocol::crypto::{ct_eq, sha256};
use countersign_protocol::login::{LoginClaim, LoginQr};
use countersign_protocol::{
    Challenge, ChallengeContext, ChallengeKind, NumberMatching, ServerUrl, Verification,
};
use serde::{Deserialize, Serialize};

use super::audit::{AuditSubject, audit};
use super::auth::{Device, Rp};
use super::challenge::{ContextIn, seal_copy, store_copy};
use super::{check_user_name, protocol_error};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::notify::{Event, wait_for_any};
use crate::store::{self, audit::AuditRecord};
use crate::util::{b64, now, random_digits, time_ordered_id, tx_id, unb64};

/// Reverse number matching of a QR login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QrMatchMode {
    /// No number.
    #[default]
    Off,
    /// The phone shows a number; the user types it on the page.
    Show,
}

/// `POST /v1/rp/logins`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrLoginRequest {
    /// The user signing in; absent: usernameless (any user of the RP whose
    /// device scans the QR).
    #[serde(default)]
    pub user: Option<String>,
    /// Where the browser is, shown on the phone.
    #[serde(default)]
    pub context: ContextIn,
    /// Display text.
    #[serde(default)]
    pub text: Option<String>,
    /// Verification before approving (default `none`).
    #[serde(default)]
    pub verification: Option<Verification>,
    /// `off` (default) or `show`.
    #[serde(default)]
    pub number_matching: Option<QrMatchMode>,
    /// Digits of the `show` number (2..=8, default 6).
    #[serde(default)]
    pub digits: Option<u8>,
    /// Lifetime of the QR and of the request it starts (10..=600 s, default 120).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

/// The answer to "create a QR login".
#[derive(Debug, Serialize, Deserialize)]
pub struct QrLoginCreated {
    /// The login id.
    pub login_id: String,
    /// The QR / deep-link content (`countersign://login?…`).
    pub uri: String,
    /// The QR as SVG.
    pub qr_svg: String,
    /// The QR as base64 PNG.
    pub qr_png: String,
    /// The secret only the page may poll with (`Authorization: Bearer …`);
    /// keep it in the browser session, never in the QR.
    pub browser_handle: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A QR login's state as the page sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct QrLoginStatus {
    /// The login id.
    pub login_id: String,
    /// `waiting` (not scanned), `scanned` (on the phone), `number_required`
    /// (approved; type the phone's number on the page), `approved`, `denied`,
    /// `expired`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Signed in as this user (once scanned).
    pub user: Option<String>,
    /// The device that scanned it.
    pub device_id: Option<String>,
    /// `not_me`, `mistake` or `wrong_number` for denials.
    pub deny_reason: Option<String>,
}

/// `POST /v1/logins/{id}/number`: the number the phone showed, typed on the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrNumber {
    /// The digits.
    pub number: String,
}

const DEFAULT_TIMEOUT_SECS: u32 = 120;

fn hash_text(secret: &str) -> String {
    b64(&sha256(secret.as_bytes()))
}

fn not_found() -> ApiError {
    ApiError::not_found("login")
}

/// Creates a QR login for the page.
pub async fn create(state: &AppState, rp: &Rp, req: QrLoginRequest) -> ApiResult<QrLoginCreated> {
    let timeout = req.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(10..=600).contains(&timeout) {
        return Err(ApiError::bad_request("timeout_secs must be in 10..=600"));
    }
    let digits = req.digits.unwrap_or(6);
    if !(2..=8).contains(&digits) {
        return Err(ApiError::bad_request("digits must be in 2..=8"));
    }
    let (number_mode, number) = match req.number_matching.unwrap_or_default() {
        QrMatchMode::Off => ("off", None),
        QrMatchMode::Show => ("show", Some(random_digits(digits)?)),
    };
    let user_id = match &req.user {
        None => None,
        Some(name) => {
            check_user_name(name)?;
            Some(
                store::users::find_id(&state.db, &rp.id, name)
                    .await?
                    .ok_or_else(|| {
                        ApiError::new(ErrorCode::NoDevice, "the user has no active device")
                    })?,
            )
        }
    };
    let context = context_of(&req.context, rp);
    // The phone checks these again; refuse here what it would refuse.
    let probe = challenge_for(
        "AAAAAAAAAAAAAAAAAAAAAA",
        "probe",
        0,
        1,
        &context,
        req.text.clone(),
        req.verification.unwrap_or(Verification::None),
        matching(number_mode, number.as_deref()),
    )?;
    probe
        .validate()
        .map_err(|e| ApiError::bad_request(format!("login: {e}")))?;
    let id = countersign_protocol::challenge::random_id().map_err(ApiError::internal)?;
    let secret = countersign_protocol::challenge::random_id().map_err(ApiError::internal)?;
    let handle = countersign_protocol::challenge::random_id().map_err(ApiError::internal)?;
    let t = now();
    let expires_at = t + i64::from(timeout);
    let request = serde_json::json!({
        "context": {
            "rp": context.rp, "ip": context.ip,
            "location": context.location, "user_agent": context.user_agent
        },
        "text": req.text,
    });
    store::qr_logins::insert(
        &state.db,
        &store::qr_logins::NewQrLogin {
            id: &id,
            rp_id: &rp.id,
            user_id: user_id.as_deref(),
            secret_hash: &hash_text(&secret),
            handle_hash: &hash_text(&handle),
            created_at: t,
            expires_at,
            verification: verification_name(probe.verification),
            number_mode,
            number: number.as_deref(),
            request: &request.to_string(),
        },
    )
    .await?;
    audit(
        &state.db,
        AuditSubject {
            rp: Some(&rp.id),
            user: user_id.as_deref(),
            tx: Some(&id),
            ..Default::default()
        },
        "qr_login_created",
        if user_id.is_some() {
            "for a user"
        } else {
            "usernameless"
        },
    )
    .await?;
    let qr = LoginQr {
        server_url: ServerUrl::parse(&state.public_url).map_err(ApiError::internal)?,
        login_id: id.clone(),
        secret: zeroize::Zeroizing::new(secret),
    };
    let uri = qr.to_uri().to_string();
    let (qr_svg, qr_png) = crate::qr::render(uri.as_bytes())?;
    Ok(QrLoginCreated {
        login_id: id,
        uri,
        qr_svg,
        qr_png,
        browser_handle: handle,
        expires_at,
    })
}

fn context_of(c: &ContextIn, rp: &Rp) -> ChallengeContext {
    ChallengeContext {
        rp: c.rp.clone().unwrap_or_else(|| rp.name.clone()),
        ip: c.ip.clone(),
        location: c.location.clone(),
        user_agent: c.user_agent.clone(),
    }
}

fn matching(mode: &str, number: Option<&str>) -> NumberMatching {
    match (mode, number) {
        ("show", Some(n)) => NumberMatching::Show {
            number: n.to_owned(),
        },
        _ => NumberMatching::Off,
    }
}

fn verification_name(v: Verification) -> &'static str {
    match v {
        Verification::None => "none",
        Verification::Pin => "pin",
        Verification::Biometric => "biometric",
    }
}

fn verification_of(name: &str) -> ApiResult<Verification> {
    Ok(match name {
        "none" => Verification::None,
        "pin" => Verification::Pin,
        "biometric" => Verification::Biometric,
        _ => return Err(ApiError::internal("stored verification")),
    })
}

#[allow(clippy::too_many_arguments)]
fn challenge_for(
    tx_id: &str,
    account_id: &str,
    issued_at: i64,
    expires_at: i64,
    context: &ChallengeContext,
    text: Option<String>,
    verification: Verification,
    number_matching: NumberMatching,
) -> ApiResult<Challenge> {
    Ok(Challenge {
        tx_id: tx_id.to_owned(),
        account_id: account_id.to_owned(),
        issued_at: u64::try_from(issued_at).unwrap_or(0),
        expires_at: u64::try_from(expires_at).unwrap_or(0),
        kind: ChallengeKind::Login,
        context: context.clone(),
        text,
        transaction: None,
        verification,
        number_matching,
        nonce: countersign_protocol::challenge::random_id().map_err(ApiError::internal)?,
    })
}

/// The stored request of a login: context and text.
#[derive(Deserialize)]
struct StoredRequest {
    context: ChallengeContext,
    text: Option<String>,
}

/// A device claims login `id` with the QR's secret (`body`: [`LoginClaim`]).
/// The answer is the challenge sealed for it and signed by S, exactly as
/// `GET /v1/device/challenges/{tx}` returns it; the device answers it there.
/// The same device claiming again (its response was lost) gets the same
/// challenge. Unknown id and wrong secret look the same.
pub async fn claim(
    state: &Arc<AppState>,
    device: &Device,
    id: &str,
    body: &[u8],
) -> ApiResult<Vec<u8>> {
    let claim: LoginClaim = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("body must be {\"secret\": …}"))?;
    claim.validate().map_err(protocol_error)?;
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        tx: Some(id),
    };
    let row = if id.len() <= 64 {
        store::qr_logins::find(&state.db, id).await?
    } else {
        None
    };
    let presented = sha256(claim.secret.as_bytes());
    let Some(row) = row else {
        return Err(not_found());
    };
    if !ct_eq(&presented, &unb64(&row.secret_hash)?) {
        audit(&state.db, who, "qr_login_refused", "wrong secret").await?;
        return Err(not_found());
    }
    if let (Some(claimer), Some(tx)) = (&row.device_id, &row.tx_id) {
        if claimer == &device.id {
            // A retry whose response was lost: the same challenge again.
            return super::challenge::fetch(state, device, tx).await;
        }
        audit(
            &state.db,
            who,
            "qr_login_refused",
            "claimed by another device",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "another device already scanned this login",
        ));
    }
    let t = now();
    if t > row.expires_at {
        return Err(ApiError::new(ErrorCode::Expired, "this login has expired"));
    }
    if row.rp_id != device.rp_id || row.user_id.as_ref().is_some_and(|u| u != &device.user_id) {
        audit(&state.db, who, "qr_login_refused", "wrong account").await?;
        return Err(ApiError::new(
            ErrorCode::WrongAccount,
            "this login is for another account",
        ));
    }
    let kem_key = store::qr_logins::claimer_kem_key(&state.db, &device.id)
        .await?
        .ok_or_else(super::auth::device_removed)?;
    let stored: StoredRequest = serde_json::from_str(&row.request).map_err(ApiError::internal)?;
    let tx_id = tx_id()?;
    let matching = matching(&row.number_mode, row.number.as_deref());
    let challenge = challenge_for(
        &tx_id,
        &device.account_id,
        t,
        row.expires_at,
        &stored.context,
        stored.text,
        verification_of(&row.verification)?,
        matching,
    )?;
    let copy = seal_copy(state, &challenge, &device.id, &kem_key)?;
    let mut dbtx = state.db.begin().await?;
    if !store::qr_logins::bind(&mut dbtx, id, &device.id, &tx_id).await? {
        dbtx.rollback().await?;
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "another device already scanned this login",
        ));
    }
    store::challenges::insert(
        &mut dbtx,
        &store::challenges::NewChallenge {
            id: &tx_id,
            rp_id: &device.rp_id,
            user_id: &device.user_id,
            kind: "login",
            created_at: t,
            expires_at: row.expires_at,
            number_mode: &row.number_mode,
            number: row.number.as_deref(),
            verification: &row.verification,
            request: &row.request,
        },
    )
    .await?;
    // The device scanned the QR: no wake-up, it fetches at once.
    store_copy(&mut dbtx, &tx_id, &copy, ("none", "not_configured")).await?;
    let audit_id = time_ordered_id("au_")?;
    store::audit::insert(
        &mut dbtx,
        &AuditRecord {
            id: &audit_id,
            at: t,
            who: AuditSubject {
                tx: Some(&tx_id),
                ..who
            },
            event: "qr_login_claimed",
            reason: id,
        },
    )
    .await?;
    dbtx.commit().await?;
    state.metrics.push_started();
    tracing::info!(login = %id, tx = %tx_id, device = %device.id, "QR login scanned");
    state
        .notifier
        .publish(Event::Challenge(id.to_owned()))
        .await;
    super::challenge::fetch(state, device, &tx_id).await
}

/// The login, if `handle` is its browser handle (compared in constant time;
/// an unknown id and a wrong handle look the same).
async fn load(state: &AppState, id: &str, handle: &str) -> ApiResult<store::qr_logins::QrLoginRow> {
    let row = if id.len() <= 64 {
        store::qr_logins::find(&state.db, id).await?
    } else {
        None
    };
    let presented = sha256(handle.as_bytes());
    match row {
        Some(row) if ct_eq(&presented, &unb64(&row.handle_hash)?) => Ok(row),
        _ => Err(not_found()),
    }
}

fn status_of(id: &str, row: &store::qr_logins::QrLoginRow, limit: i64) -> QrLoginStatus {
    let past = now() > row.expires_at;
    let (state, reason) = match row.tx_state.as_deref() {
        None if past => ("expired", None),
        None => ("waiting", None),
        Some("pending") if past => ("expired", None),
        Some("pending") => ("scanned", None),
        Some("approved") if row.number_mode == "show" && row.number_entered_at.is_none() => {
            if row.number_failures >= limit {
                ("denied", Some("wrong_number".to_owned()))
            } else if past {
                ("expired", None)
            } else {
                ("number_required", None)
            }
        }
        Some("approved") => ("approved", None),
        Some("denied") => ("denied", row.deny_reason.clone()),
        Some(_) => ("expired", None),
    };
    let claimed = row.tx_id.is_some();
    QrLoginStatus {
        login_id: id.to_owned(),
        state: state.to_owned(),
        expires_at: row.expires_at,
        user: if claimed { row.user_name.clone() } else { None },
        device_id: row.device_id.clone(),
        deny_reason: reason,
    }
}

/// The login's state for the page holding `handle`, waiting up to `wait`
/// seconds (capped by the policy) while it is `waiting` or `scanned`. Holds no
/// database connection while waiting.
pub async fn wait_status(
    state: &AppState,
    id: &str,
    handle: &str,
    wait: Option<u32>,
) -> ApiResult<QrLoginStatus> {
    let wait = wait
        .unwrap_or(0)
        .min(state.config.policy.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let limit = i64::from(state.config.policy.number_match_max_failures);
    let mut stop = state.shutting_down.clone();
    loop {
        let mut rx = state.notifier.subscribe();
        let row = load(state, id, handle).await?;
        let status = status_of(id, &row, limit);
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let open = matches!(status.state.as_str(), "waiting" | "scanned");
        if !open || remaining.is_zero() || *stop.borrow() {
            return Ok(status);
        }
        let until_expiry =
            Duration::from_secs(u64::try_from(status.expires_at - now() + 1).unwrap_or(0));
        let slice = remaining.min(until_expiry).min(Duration::from_secs(5));
        let tx = row.tx_id.clone();
        let wanted = move |e: &Event| match e {
            Event::Challenge(c) => c == id || tx.as_deref() == Some(c.as_str()),
            _ => false,
        };
        tokio::select! {
            _ = wait_for_any(&mut rx, wanted, slice) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The page types the number the phone showed (`show` matching). Right: the
/// login is `approved`. Wrong: refused, and after
/// `policy.number_match_max_failures` wrong numbers the login is `denied`.
pub async fn enter_number(
    state: &AppState,
    id: &str,
    handle: &str,
    body: QrNumber,
) -> ApiResult<QrLoginStatus> {
    if body.number.len() > 16 {
        return Err(ApiError::bad_request("number must be at most 16 digits"));
    }
    let row = load(state, id, handle).await?;
    let limit = i64::from(state.config.policy.number_match_max_failures);
    let status = status_of(id, &row, limit);
    if status.state != "number_required" {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("no number is expected: the login is {}", status.state),
        ));
    }
    let want = row.number.as_deref().unwrap_or_default();
    let who = AuditSubject {
        rp: Some(&row.rp_id),
        device: row.device_id.as_deref(),
        tx: row.tx_id.as_deref(),
        ..Default::default()
    };
    if ct_eq(body.number.as_bytes(), want.as_bytes()) {
        store::qr_logins::number_entered(&state.db, id, now()).await?;
        audit(
            &state.db,
            who,
            "qr_login_number",
            "right number typed on the page",
        )
        .await?;
    } else {
        let counted = store::qr_logins::count_wrong_number(&state.db, id, limit).await?;
        audit(
            &state.db,
            who,
            "qr_login_number",
            "wrong number typed on the page",
        )
        .await?;
        let left = limit - counted.unwrap_or(limit);
        if left > 0 {
            return Err(ApiError::new(
                ErrorCode::WrongNumber,
                format!("that is not the number on the phone; {left} tries left"),
            ));
        }
    }
    state
        .notifier
        .publish(Event::Challenge(id.to_owned()))
        .await;
    let row = load(state, id, handle).await?;
    Ok(status_of(id, &row, limit))
}

/// Deletes logins that expired over an hour ago (run by the janitor).
pub async fn delete_expired(state: &AppState) -> ApiResult<()> {
    store::qr_logins::delete_expired(&state.db, now() - 3600).await?;
    Ok(())
}
