//! The relying-party API (`/v1/rp/…`), authenticated with per-RP API keys
//! (`Authorization: Bearer csk_<key id>.<secret>`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use countersign_protocol::crypto::{ct_eq, sha256};
use countersign_protocol::offline::{OFFLINE_KIND, OFFLINE_SUITE, OfflineChallenge};
use countersign_protocol::otp::{HotpParams, OcraInputs, OcraSuite, TotpParams};
use countersign_protocol::{
    ActivationOffer, ChallengeContext, ChallengeKind, NumberMatching, OfferCredentials,
    OtpAlgorithm, Purpose, ServerUrl, SignedMessage, TransactionDetails, Verification,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::AppState;
use crate::challenge::{self, PushOptions, PushStarted};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify::{Event, wait_for};
use crate::util::{AuditSubject, audit, now, random_digits, random_id};

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

fn unauthorized() -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, "missing or invalid API key")
}

/// The key id and secret of `Authorization: Bearer csk_<key id>.<secret>`.
fn presented_key(headers: &HeaderMap) -> ApiResult<(&str, &str)> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let key = value
        .strip_prefix("Bearer ")
        .and_then(|k| k.strip_prefix("csk_"))
        .ok_or_else(unauthorized)?;
    let (key_id, secret) = key.split_once('.').ok_or_else(unauthorized)?;
    if key_id.len() != 16 || secret.len() > 64 {
        return Err(unauthorized());
    }
    Ok((key_id, secret))
}

/// Checks the API key against the database (existence, hash, revocation).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<Rp> {
    let (key_id, secret) = presented_key(headers)?;
    let row = sqlx::query(
        "SELECT k.key_hash, r.id, r.name FROM api_keys k JOIN relying_parties r ON r.id = k.rp_id \
         WHERE k.key_id = $1 AND k.revoked_at IS NULL",
    )
    .bind(key_id)
    .fetch_optional(&state.db.pool)
    .await?;
    // Hash and compare even for an unknown key id, so timing does not tell them apart.
    let (stored, rp) = match row {
        Some(r) => (
            r.try_get::<String, _>(0)?,
            Some(Rp {
                id: r.try_get(1)?,
                name: r.try_get(2)?,
                key_id: key_id.to_string(),
            }),
        ),
        None => (String::new(), None),
    };
    let presented = hex::encode(sha256(secret.as_bytes()));
    match rp {
        Some(rp) if ct_eq(presented.as_bytes(), stored.as_bytes()) => {
            state.api_keys.insert(
                key_id,
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

/// [`authenticate`] without a statement, for the hot endpoints (start a push,
/// challenge status): the secret is checked against the cached hash, and the
/// caller's own statement must require the key to be unrevoked (`EXISTS
/// (SELECT 1 FROM api_keys WHERE key_id = <rp.key_id> AND revoked_at IS NULL)`)
/// and call [`key_active`] when it finds nothing. A key not in the cache takes
/// the full check.
pub async fn authenticate_hot(state: &AppState, headers: &HeaderMap) -> ApiResult<Rp> {
    let (key_id, secret) = presented_key(headers)?;
    let Some(info) = state.api_keys.get(key_id) else {
        return authenticate(state, headers).await;
    };
    let presented = hex::encode(sha256(secret.as_bytes()));
    if ct_eq(presented.as_bytes(), info.key_hash.as_bytes()) {
        Ok(info.rp.clone())
    } else {
        Err(unauthorized())
    }
}

/// Whether the API key is (still) valid: the slow path after a hot statement
/// found nothing, to tell a revoked key from a missing row.
pub async fn key_active(state: &AppState, key_id: &str) -> ApiResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL")
            .bind(key_id)
            .fetch_optional(&state.db.pool)
            .await?
            .is_some(),
    )
}

/// Finds a user of `rp` by name.
async fn find_user(state: &AppState, rp: &Rp, user: &str) -> ApiResult<Option<String>> {
    let row = sqlx::query("SELECT id FROM users WHERE rp_id = $1 AND name = $2")
        .bind(&rp.id)
        .bind(user)
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

fn check_user_name(user: &str) -> ApiResult<()> {
    if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "user must be 1-128 characters without control characters",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Enrollment

/// `POST /v1/rp/enrollments`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// The RP's user name (unique per RP).
    pub user: String,
    /// Label shown in the app (defaults to `user`).
    pub label: Option<String>,
    /// Issuer shown in the app (defaults to the RP name).
    pub issuer: Option<String>,
}

/// The created offer.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollmentResponse {
    /// The offer id.
    pub offer_id: String,
    /// `countersign://activate?…` (QR / deep link).
    pub offer_uri: String,
    /// The typed code (five groups of five).
    pub code: String,
    /// The offer URI as an SVG QR code.
    pub qr_svg: String,
    /// The offer URI as a PNG QR code, base64 (standard alphabet).
    pub qr_png_base64: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Creates a single-use activation offer.
pub async fn create_enrollment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<EnrollmentRequest>,
) -> ApiResult<Json<EnrollmentResponse>> {
    let rp = authenticate(&state, &headers).await?;
    check_user_name(&req.user)?;
    let t = now();
    sqlx::query(
        "INSERT INTO users (id, rp_id, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (rp_id, name) DO NOTHING",
    )
    .bind(random_id("u_")?)
    .bind(&rp.id)
    .bind(&req.user)
    .bind(t)
    .execute(&state.db.pool)
    .await?;
    let user_id = find_user(&state, &rp, &req.user)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    let creds = OfferCredentials::generate().map_err(ApiError::internal)?;
    let server_url = ServerUrl::parse(&state.public_url)
        .map_err(|e| ApiError::internal(format_args!("public_url: {e}")))?;
    let label = req.label.unwrap_or_else(|| req.user.clone());
    let issuer = req.issuer.unwrap_or_else(|| rp.name.clone());
    let offer = ActivationOffer {
        server_url,
        credentials: creds.clone(),
        server_key_fingerprint: state.signing_key.public_key().fingerprint(),
        issuer: Some(issuer.clone()),
        label: Some(label.clone()),
    };
    offer
        .validate()
        .map_err(|e| ApiError::bad_request(format!("offer: {e}")))?;
    let uri = offer.to_uri();
    let code = creds.to_code();
    let offer_id = creds.id.to_text();
    let expires_at = t + i64::from(state.config.policy.enrollment_ttl_secs);
    let sealed = state.master.seal(
        &format!("enrollment_offers:{offer_id}"),
        creds.secret.as_bytes(),
    )?;
    sqlx::query(
        "INSERT INTO enrollment_offers (id, user_id, secret, issuer, label, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&offer_id)
    .bind(&user_id)
    .bind(sealed)
    .bind(&issuer)
    .bind(&label)
    .bind(t)
    .bind(expires_at)
    .execute(&state.db.pool)
    .await?;
    audit(
        &state.db,
        AuditSubject {
            rp: Some(&rp.id),
            user: Some(&user_id),
            ..Default::default()
        },
        "enrollment_offer",
        "offer created",
    )
    .await?;
    let (qr_svg, qr_png) = crate::qr::render(uri.as_bytes())?;
    Ok(Json(EnrollmentResponse {
        offer_id,
        offer_uri: uri.to_string(),
        code: code.to_string(),
        qr_svg,
        qr_png_base64: qr_png,
        expires_at,
    }))
}

// ---------------------------------------------------------------------------
// Push

/// Context the RP passes about the login attempt.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextIn {
    /// RP name shown (defaults to the registered RP name).
    pub rp: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// Coarse location ("Berlin, DE").
    pub location: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

/// Number-matching mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// No number.
    Off,
    /// Pick the shown number out of 3 on the phone.
    Pick,
    /// Type the shown number on the phone (NIST SP 800-63B-4).
    Type,
}

/// `POST /v1/rp/push` (also the options of a passcode-triggered push).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The user.
    #[serde(default)]
    pub user: String,
    /// Login context.
    #[serde(default)]
    pub context: ContextIn,
    /// Text to display (≤1024).
    pub text: Option<String>,
    /// Transaction to sign (makes it a transaction challenge).
    pub transaction: Option<TransactionDetails>,
    /// Required verification (default none).
    pub verification: Option<Verification>,
    /// Number matching (default `type`).
    pub number_matching: Option<MatchMode>,
    /// Digits for `type` / `pick` (default 2; 2..=8).
    pub digits: Option<u8>,
    /// `nist`: type 6 digits.
    pub profile: Option<String>,
    /// Timeout in seconds (default 30; 1..=600).
    pub timeout_secs: Option<u32>,
}

impl PushRequest {
    fn options(&self, state: &AppState, rp: &Rp) -> ApiResult<PushOptions> {
        let policy = &state.config.policy;
        let timeout = self
            .timeout_secs
            .unwrap_or(policy.default_push_timeout_secs);
        if !(1..=600).contains(&timeout) {
            return Err(ApiError::bad_request("timeout_secs must be in 1..=600"));
        }
        let nist = match self.profile.as_deref() {
            None => false,
            Some("nist") => true,
            Some(_) => return Err(ApiError::bad_request("profile must be nist")),
        };
        let mode = self.number_matching.unwrap_or(MatchMode::Type);
        let digits = self.digits.unwrap_or(if nist { 6 } else { 2 });
        if !(2..=8).contains(&digits) {
            return Err(ApiError::bad_request("digits must be in 2..=8"));
        }
        if nist && (mode != MatchMode::Type || digits < 6) {
            return Err(ApiError::bad_request(
                "the nist profile types at least 6 digits",
            ));
        }
        let (matching, number) = match mode {
            MatchMode::Off => (NumberMatching::Off, None),
            MatchMode::Type => (
                NumberMatching::Type { digits },
                Some(random_digits(digits)?),
            ),
            MatchMode::Pick => {
                let mut choices: Vec<String> = Vec::with_capacity(3);
                while choices.len() < 3 {
                    let c = random_digits(digits)?;
                    if !choices.contains(&c) {
                        choices.push(c);
                    }
                }
                let shown = choices
                    .get(crate::util::random_below(3)? as usize)
                    .cloned()
                    .ok_or_else(|| ApiError::internal("choice index"))?;
                (NumberMatching::Pick { choices }, Some(shown))
            }
        };
        let kind = if self.transaction.is_some() {
            ChallengeKind::Transaction
        } else {
            ChallengeKind::Login
        };
        Ok(PushOptions {
            context: ChallengeContext {
                rp: self.context.rp.clone().unwrap_or_else(|| rp.name.clone()),
                ip: self.context.ip.clone(),
                location: self.context.location.clone(),
                user_agent: self.context.user_agent.clone(),
            },
            kind,
            text: self.text.clone(),
            transaction: self.transaction.clone(),
            verification: self.verification.unwrap_or(Verification::None),
            matching,
            number,
            timeout: i64::from(timeout),
        })
    }
}

/// Starts a push login.
pub async fn start_push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<PushRequest>,
) -> ApiResult<Json<PushStarted>> {
    let rp = authenticate_hot(&state, &headers).await?;
    check_user_name(&req.user)?;
    let opts = req.options(&state, &rp)?;
    let started = challenge::start(&state, &rp, &req.user, opts, false).await?;
    Ok(Json(started))
}

/// `?wait=N` (seconds) for long-polls.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to wait for a change (0: answer now).
    pub wait: Option<u32>,
}

/// Challenge status.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeStatus {
    /// The tx id.
    pub tx_id: String,
    /// `pending`, `approved`, `denied`, `expired`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// When answered.
    pub answered_at: Option<i64>,
    /// Which device answered.
    pub device_id: Option<String>,
    /// `not_me` or `mistake` for denials.
    pub deny_reason: Option<String>,
    /// The push OTP the device returned with its approval (to fill an OTP form;
    /// validate it with `/v1/rp/validate`).
    pub push_otp: Option<String>,
}

async fn load_status(state: &AppState, rp: &Rp, tx: &str) -> ApiResult<ChallengeStatus> {
    let row = sqlx::query(
        "SELECT state, expires_at, answered_at, answered_by, deny_reason, push_otp \
         FROM challenges WHERE id = $1 AND rp_id = $2 \
         AND EXISTS (SELECT 1 FROM api_keys WHERE key_id = $3 AND revoked_at IS NULL)",
    )
    .bind(tx)
    .bind(&rp.id)
    .bind(&rp.key_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        return Err(if key_active(state, &rp.key_id).await? {
            ApiError::not_found("challenge")
        } else {
            unauthorized()
        });
    };
    let mut st: String = row.try_get(0)?;
    let expires_at: i64 = row.try_get(1)?;
    if st == "pending" && now() > expires_at {
        st = "expired".into();
    }
    let push_otp = match row.try_get::<Option<String>, _>(5)? {
        Some(sealed) if st == "approved" => {
            let otp = state
                .master
                .open(&format!("challenges:{tx}:push_otp"), &sealed)?;
            Some(String::from_utf8_lossy(&otp).into_owned())
        }
        _ => None,
    };
    Ok(ChallengeStatus {
        tx_id: tx.to_string(),
        state: st,
        expires_at,
        answered_at: row.try_get(2)?,
        device_id: row.try_get(3)?,
        deny_reason: row.try_get(4)?,
        push_otp,
    })
}

/// `GET /v1/rp/challenges/{tx}?wait=N`: the state, waiting up to N seconds while
/// it is pending. Holds no database connection while waiting.
pub async fn challenge_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(tx): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<ChallengeStatus>> {
    let rp = authenticate_hot(&state, &headers).await?;
    if tx.len() > 64 {
        return Err(ApiError::not_found("challenge"));
    }
    let wait = q
        .wait
        .unwrap_or(0)
        .min(state.config.policy.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let wanted = Event::Challenge(tx.clone());
    let mut stop = state.shutting_down.clone();
    loop {
        let mut rx = state.notifier.subscribe();
        let status = load_status(&state, &rp, &tx).await?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if status.state != "pending" || remaining.is_zero() || *stop.borrow() {
            return Ok(Json(status));
        }
        // Wake at expiry too, to report `expired` promptly; re-check at least every
        // 5 s in case a cross-instance notification was lost.
        let until_expiry =
            Duration::from_secs(u64::try_from(status.expires_at - now() + 1).unwrap_or(0));
        let slice = remaining.min(until_expiry).min(Duration::from_secs(5));
        tokio::select! {
            _ = wait_for(&mut rx, &wanted, slice) => {}
            _ = stop.changed() => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Passcode validation

/// `POST /v1/rp/validate`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The user.
    pub user: String,
    /// What the user typed: an OTP, a push OTP, or a push trigger (empty, one
    /// character, or `push` in any case).
    pub passcode: String,
    /// Options for a triggered push (`user` inside is ignored).
    #[serde(default)]
    pub push: Option<PushRequest>,
}

/// The outcome.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ValidateResponse {
    /// The passcode is valid.
    Accepted {
        /// `totp`, `hotp` or `push_otp`.
        method: String,
        /// The device or token that matched.
        credential_id: String,
    },
    /// The passcode was a push trigger: a push was started.
    PushStarted(PushStarted),
}

/// Is this passcode a push trigger, and is it the explicit keyword?
fn trigger(passcode: &str) -> Option<bool> {
    if passcode.eq_ignore_ascii_case("push") {
        Some(true)
    } else if passcode.chars().count() <= 1 {
        Some(false)
    } else {
        None
    }
}

/// Validates a passcode or starts a push.
pub async fn validate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<ValidateRequest>,
) -> ApiResult<Json<ValidateResponse>> {
    let rp = authenticate(&state, &headers).await?;
    check_user_name(&req.user)?;
    if let Some(keyword) = trigger(&req.passcode) {
        let opts = req.push.clone().unwrap_or_default().options(&state, &rp)?;
        // Typing `push` is a deliberate request: it lifts a denial suppression.
        let started = challenge::start(&state, &rp, &req.user, opts, keyword).await?;
        return Ok(Json(ValidateResponse::PushStarted(started)));
    }
    let code = req.passcode.trim();
    if code.len() > 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            ErrorCode::InvalidOtp,
            "passcode is not valid",
        ));
    }
    let user_id = find_user(&state, &rp, &req.user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidOtp, "passcode is not valid"))?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    reserve_passcode_attempt(&state, who).await?;
    let outcome = check_otp(&state, &user_id, code).await;
    match &outcome {
        Ok((method, id)) => {
            // A valid OTP also lifts a denial suppression, and resets the failures.
            sqlx::query(
                "UPDATE users SET suppressed = 0, denial_streak = 0, otp_fail_count = 0, \
                 otp_fail_window_start = 0 WHERE id = $1",
            )
            .bind(&user_id)
            .execute(&state.db.pool)
            .await?;
            audit(
                &state.db,
                AuditSubject {
                    device: Some(id),
                    ..who
                },
                "otp_accepted",
                method,
            )
            .await?;
        }
        Err(e) => {
            audit(&state.db, who, "otp_rejected", e.code.as_str()).await?;
        }
    }
    let (method, credential_id) = outcome?;
    Ok(Json(ValidateResponse::Accepted {
        method,
        credential_id,
    }))
}

/// Counts one passcode attempt against the user's failure limit before it is
/// checked (a success gives it back by resetting the count). Reserving first, in
/// one conditional `UPDATE`, keeps concurrent guesses (also across instances)
/// within the limit. Refused: `rate_limited` until the window, which starts at the
/// first failure, has passed.
async fn reserve_passcode_attempt(state: &AppState, who: AuditSubject<'_>) -> ApiResult<()> {
    let policy = &state.config.policy;
    let t = now();
    let counted = sqlx::query(
        "UPDATE users SET \
           otp_fail_count = CASE WHEN otp_fail_window_start <= $2 THEN 1 ELSE otp_fail_count + 1 END, \
           otp_fail_window_start = CASE WHEN otp_fail_window_start <= $2 THEN $3 ELSE otp_fail_window_start END \
         WHERE id = $1 AND (otp_fail_window_start <= $2 OR otp_fail_count < $4)",
    )
    .bind(who.user)
    .bind(t - i64::from(policy.passcode_failure_window_secs))
    .bind(t)
    .bind(i64::from(policy.passcode_max_failures))
    .execute(&state.db.pool)
    .await?;
    if counted.rows_affected() == 0 {
        audit(
            &state.db,
            who,
            "passcode_rate_limited",
            "too many failed passcodes",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many failed passcodes for this user; try again later",
        ));
    }
    Ok(())
}

fn otp_algorithm(name: &str) -> ApiResult<countersign_protocol::crypto::HmacAlgorithm> {
    let alg = match name {
        "SHA1" => OtpAlgorithm::Sha1,
        "SHA256" => OtpAlgorithm::Sha256,
        "SHA512" => OtpAlgorithm::Sha512,
        _ => return Err(ApiError::internal("stored OTP algorithm")),
    };
    Ok(alg.hmac())
}

/// Checks `code` against the user's push OTPs, device TOTP seeds and OATH tokens.
/// Every accepted code is consumed so it cannot be used again.
async fn check_otp(state: &AppState, user_id: &str, code: &str) -> ApiResult<(String, String)> {
    let t = now();
    let policy = &state.config.policy;
    let reused = || ApiError::new(ErrorCode::OtpReused, "this passcode was already used");

    // 1. Push OTPs of recent approvals (a login form filled by the approval).
    let rows = sqlx::query(
        "SELECT id, push_otp, push_otp_used FROM challenges WHERE user_id = $1 AND state = 'approved' \
         AND push_otp IS NOT NULL AND answered_at >= $2",
    )
    .bind(user_id)
    .bind(t - 600)
    .fetch_all(&state.db.pool)
    .await?;
    for r in rows {
        let tx: String = r.try_get(0)?;
        let sealed: String = r.try_get(1)?;
        let used: i64 = r.try_get(2)?;
        let otp = state
            .master
            .open(&format!("challenges:{tx}:push_otp"), &sealed)?;
        if ct_eq(&otp, code.as_bytes()) {
            if used != 0 {
                return Err(reused());
            }
            let done = sqlx::query(
                "UPDATE challenges SET push_otp_used = 1 WHERE id = $1 AND push_otp_used = 0",
            )
            .bind(&tx)
            .execute(&state.db.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(reused());
            }
            return Ok(("push_otp".into(), tx));
        }
    }

    // 2. Device seeds (TOTP) and imported OATH tokens (TOTP or HOTP).
    let rows = sqlx::query(
        "SELECT 'device', id, 'totp', otp_seed, otp_algorithm, otp_digits, otp_period, hotp_counter, totp_last_step \
         FROM devices WHERE user_id = $1 AND status = 'active' \
         UNION ALL \
         SELECT 'token', id, kind, secret, algorithm, digits, period, hotp_counter, totp_last_step \
         FROM oath_tokens WHERE user_id = $1 AND status = 'active'",
    )
    .bind(user_id)
    .fetch_all(&state.db.pool)
    .await?;
    for r in rows {
        let table: String = r.try_get(0)?;
        let id: String = r.try_get(1)?;
        let kind: String = r.try_get(2)?;
        let sealed: String = r.try_get(3)?;
        let alg = otp_algorithm(&r.try_get::<String, _>(4)?)?;
        let digits = u8::try_from(r.try_get::<i64, _>(5)?).map_err(ApiError::internal)?;
        let period = u32::try_from(r.try_get::<i64, _>(6)?).map_err(ApiError::internal)?;
        let counter = u64::try_from(r.try_get::<i64, _>(7)?).map_err(ApiError::internal)?;
        let last_step: i64 = r.try_get(8)?;
        let context = if table == "device" {
            format!("devices:{id}:otp_seed")
        } else {
            format!("oath_tokens:{id}:secret")
        };
        let seed = state.master.open(&context, &sealed)?;
        let table_name = if table == "device" {
            "devices"
        } else {
            "oath_tokens"
        };
        if kind == "totp" {
            let params = TotpParams::new(alg, digits, period).map_err(ApiError::internal)?;
            let window = u8::try_from(policy.totp_window.min(10)).unwrap_or(1);
            let t_u = u64::try_from(t).unwrap_or(0);
            let Some(step) =
                countersign_protocol::otp::totp_verify(&params, &seed, code, t_u, window)
                    .map_err(ApiError::internal)?
            else {
                continue;
            };
            let step = i64::try_from(step).map_err(ApiError::internal)?;
            if step <= last_step {
                return Err(reused());
            }
            let current = t / i64::from(period);
            let done = sqlx::query(&format!(
                "UPDATE {table_name} SET totp_last_step = $1, totp_drift = $2 \
                 WHERE id = $3 AND totp_last_step < $1"
            ))
            .bind(step)
            .bind(step - current)
            .bind(&id)
            .execute(&state.db.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(reused());
            }
            return Ok(("totp".into(), id));
        }
        let params = HotpParams::new(alg, digits).map_err(ApiError::internal)?;
        let look_ahead = policy.hotp_look_ahead.min(1000);
        if let Some(matched) =
            countersign_protocol::otp::hotp_verify(&params, &seed, code, counter, look_ahead)
                .map_err(ApiError::internal)?
        {
            let next = i64::try_from(matched.saturating_add(1)).map_err(ApiError::internal)?;
            let done = sqlx::query(&format!(
                "UPDATE {table_name} SET hotp_counter = $1 WHERE id = $2 AND hotp_counter < $1"
            ))
            .bind(next)
            .bind(&id)
            .execute(&state.db.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(reused());
            }
            return Ok(("hotp".into(), id));
        }
        // A code from just behind the counter was accepted before.
        let behind = counter.saturating_sub(u64::from(look_ahead));
        if counter > 0
            && countersign_protocol::otp::hotp_verify(
                &params,
                &seed,
                code,
                behind,
                u32::try_from(counter - behind - 1).unwrap_or(0),
            )
            .map_err(ApiError::internal)?
            .is_some()
        {
            return Err(reused());
        }
    }
    Err(ApiError::new(
        ErrorCode::InvalidOtp,
        "passcode is not valid",
    ))
}

// ---------------------------------------------------------------------------
// OATH tokens

/// `POST /v1/rp/users/{user}/oath-tokens`: imports a HOTP/TOTP token (hardware
/// or soft) so passcode validation accepts its codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OathTokenRequest {
    /// `hotp` or `totp`.
    pub kind: String,
    /// The secret, base32 (RFC 4648, padding optional).
    pub secret_base32: String,
    /// `SHA1` (default), `SHA256`, `SHA512`.
    pub algorithm: Option<String>,
    /// 6..=8 (default 6).
    pub digits: Option<u8>,
    /// TOTP period (default 30).
    pub period: Option<u32>,
    /// HOTP: the next counter (default 0).
    pub counter: Option<u64>,
}

/// Imports an OATH token for a user (creating the user if needed).
pub async fn add_oath_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Json(req): Json<OathTokenRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let rp = authenticate(&state, &headers).await?;
    check_user_name(&user)?;
    if req.kind != "hotp" && req.kind != "totp" {
        return Err(ApiError::bad_request("kind must be hotp or totp"));
    }
    let algorithm = req.algorithm.clone().unwrap_or_else(|| "SHA1".into());
    let alg = match algorithm.as_str() {
        "SHA1" | "SHA256" | "SHA512" => otp_algorithm(&algorithm)?,
        _ => {
            return Err(ApiError::bad_request(
                "algorithm must be SHA1, SHA256 or SHA512",
            ));
        }
    };
    let digits = req.digits.unwrap_or(6);
    let period = req.period.unwrap_or(30);
    TotpParams::new(alg, digits, period)
        .map_err(|_| ApiError::bad_request("digits must be 6..=8 and period valid"))?;
    let secret = countersign_protocol::otp::base32::decode(&req.secret_base32)
        .map_err(|_| ApiError::bad_request("secret_base32 is not valid base32"))?;
    if secret.len() < 10 || secret.len() > 128 {
        return Err(ApiError::bad_request("secret must be 10..=128 bytes"));
    }
    let counter = i64::try_from(req.counter.unwrap_or(0))
        .map_err(|_| ApiError::bad_request("counter too large"))?;
    sqlx::query(
        "INSERT INTO users (id, rp_id, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (rp_id, name) DO NOTHING",
    )
    .bind(random_id("u_")?)
    .bind(&rp.id)
    .bind(&user)
    .bind(now())
    .execute(&state.db.pool)
    .await?;
    let user_id = find_user(&state, &rp, &user)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    let id = random_id("tok_")?;
    let sealed = state
        .master
        .seal(&format!("oath_tokens:{id}:secret"), &secret)?;
    sqlx::query(
        "INSERT INTO oath_tokens (id, user_id, kind, secret, algorithm, digits, period, hotp_counter, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&user_id)
    .bind(&req.kind)
    .bind(sealed)
    .bind(&algorithm)
    .bind(i64::from(digits))
    .bind(i64::from(period))
    .bind(counter)
    .bind(now())
    .execute(&state.db.pool)
    .await?;
    audit(
        &state.db,
        AuditSubject {
            rp: Some(&rp.id),
            user: Some(&user_id),
            device: Some(&id),
            ..Default::default()
        },
        "enrollment",
        "oath token imported",
    )
    .await?;
    Ok(Json(serde_json::json!({ "token_id": id })))
}

// ---------------------------------------------------------------------------
// Offline QR (OCRA)

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
pub async fn create_offline(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<OfflineRequest>,
) -> ApiResult<Json<OfflineResponse>> {
    let rp = authenticate(&state, &headers).await?;
    check_user_name(&req.user)?;
    let timeout = req.timeout_secs.unwrap_or(300);
    if !(30..=600).contains(&timeout) {
        return Err(ApiError::bad_request("timeout_secs must be in 30..=600"));
    }
    let row = sqlx::query(
        "SELECT d.id, d.account_id, u.id FROM devices d JOIN users u ON u.id = d.user_id \
         WHERE u.rp_id = $1 AND u.name = $2 AND d.status = 'active' AND ($3 = '' OR d.id = $3) \
         ORDER BY d.created_at DESC LIMIT 1",
    )
    .bind(&rp.id)
    .bind(&req.user)
    .bind(req.device_id.clone().unwrap_or_default())
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::NoDevice, "the user has no active device"))?;
    let device_id: String = row.try_get(0)?;
    let account_id: String = row.try_get(1)?;
    let user_id: String = row.try_get(2)?;
    let id = random_id("off_")?;
    let question = random_digits(8)?;
    let t = now();
    let expires_at = t + i64::from(timeout);
    // Field order as in docs/PROTOCOL.md §11 (`v` first).
    let payload = serde_json::to_vec(&OfflineChallenge {
        v: 1,
        kind: OFFLINE_KIND.to_owned(),
        id: id.clone(),
        account: account_id,
        device: device_id.clone(),
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
    sqlx::query(
        "INSERT INTO offline_challenges (id, rp_id, user_id, device_id, suite, question, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&rp.id)
    .bind(&user_id)
    .bind(&device_id)
    .bind(OFFLINE_SUITE)
    .bind(&question)
    .bind(t)
    .bind(expires_at)
    .execute(&state.db.pool)
    .await?;
    let (qr_svg, _) = crate::qr::render(qr_payload.as_bytes())?;
    Ok(Json(OfflineResponse {
        id,
        question,
        qr_payload,
        qr_svg,
        expires_at,
    }))
}

/// `POST /v1/rp/offline/{id}/verify`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineVerifyRequest {
    /// The response code the user typed.
    pub response: String,
}

/// Verifies the typed OCRA response (single use, 5 attempts).
pub async fn verify_offline(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<OfflineVerifyRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let rp = authenticate(&state, &headers).await?;
    let row = sqlx::query(
        "SELECT o.user_id, o.device_id, o.suite, o.question, o.expires_at, o.attempts, o.used_at, \
         d.otp_seed, d.status FROM offline_challenges o JOIN devices d ON d.id = o.device_id \
         WHERE o.id = $1 AND o.rp_id = $2",
    )
    .bind(&id)
    .bind(&rp.id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("offline challenge"))?;
    let user_id: String = row.try_get(0)?;
    let device_id: String = row.try_get(1)?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        device: Some(&device_id),
        tx: Some(&id),
    };
    if row.try_get::<Option<i64>, _>(6)?.is_some() {
        return Err(ApiError::new(ErrorCode::Replayed, "already used"));
    }
    if now() > row.try_get::<i64, _>(4)? {
        return Err(ApiError::new(
            ErrorCode::Expired,
            "offline challenge expired",
        ));
    }
    if row.try_get::<i64, _>(5)? >= 5 {
        return Err(ApiError::new(ErrorCode::RateLimited, "too many attempts"));
    }
    if row.try_get::<String, _>(8)? != "active" {
        return Err(ApiError::new(
            ErrorCode::DeviceRemoved,
            "device was removed",
        ));
    }
    reserve_passcode_attempt(&state, who).await?;
    let suite = OcraSuite::parse(&row.try_get::<String, _>(2)?).map_err(ApiError::internal)?;
    let question: String = row.try_get(3)?;
    let seed = state.master.open(
        &format!("devices:{device_id}:otp_seed"),
        &row.try_get::<String, _>(7)?,
    )?;
    let inputs = OcraInputs {
        question: &question,
        ..OcraInputs::default()
    };
    let ok = req.response.len() <= 16
        && countersign_protocol::otp::ocra_verify(&suite, &seed, &inputs, &req.response)
            .map_err(ApiError::internal)?;
    if !ok {
        sqlx::query("UPDATE offline_challenges SET attempts = attempts + 1 WHERE id = $1")
            .bind(&id)
            .execute(&state.db.pool)
            .await?;
        audit(&state.db, who, "offline_rejected", "wrong response").await?;
        return Err(ApiError::new(ErrorCode::InvalidOtp, "wrong response"));
    }
    let done =
        sqlx::query("UPDATE offline_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now())
            .bind(&id)
            .execute(&state.db.pool)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::new(ErrorCode::Replayed, "already used"));
    }
    sqlx::query("UPDATE users SET otp_fail_count = 0, otp_fail_window_start = 0 WHERE id = $1")
        .bind(&user_id)
        .execute(&state.db.pool)
        .await?;
    audit(&state.db, who, "offline_approval", "ocra response verified").await?;
    Ok(Json(
        serde_json::json!({ "result": "accepted", "device_id": device_id }),
    ))
}

// ---------------------------------------------------------------------------
// Devices

/// One device as the RP sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceInfoOut {
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

/// Lists a user's devices.
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<DeviceInfoOut>>> {
    let rp = authenticate(&state, &headers).await?;
    let rows = sqlx::query(
        "SELECT d.id, d.name, d.platform, d.push_provider, d.status, d.created_at, d.last_seen_at \
         FROM devices d JOIN users u ON u.id = d.user_id WHERE u.rp_id = $1 AND u.name = $2 \
         ORDER BY d.created_at",
    )
    .bind(&rp.id)
    .bind(&user)
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(DeviceInfoOut {
            device_id: r.try_get(0)?,
            name: r.try_get(1)?,
            platform: r.try_get(2)?,
            push_provider: r.try_get(3)?,
            status: r.try_get(4)?,
            created_at: r.try_get(5)?,
            last_seen_at: r.try_get(6)?,
        });
    }
    Ok(Json(out))
}

/// Removes a device: its next request gets `device_removed` and its core wipes
/// the account.
pub async fn remove_device(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((user, device)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let rp = authenticate(&state, &headers).await?;
    let user_id = find_user(&state, &rp, &user)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    crate::device::remove(
        &state,
        &rp.id,
        &user_id,
        &device,
        "removed by relying party",
    )
    .await?;
    Ok(Json(
        serde_json::json!({ "device_id": device, "status": "removed" }),
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The API key cache must not outlive a revocation: the hot endpoints check
    /// `revoked_at` in their own statement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_key_is_refused_after_caching() {
        let dir = std::env::temp_dir().join(format!(
            "cs-rp-cache-{}-{}",
            std::process::id(),
            crate::util::random_id("t").unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.join("t.db").display()),
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
