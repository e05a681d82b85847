//! Passcodes: validating what a user typed (push OTP, device TOTP, imported
//! TOTP/HOTP token) or starting the push it asked for, and importing OATH tokens.

use std::sync::Arc;

use countersign_protocol::OtpAlgorithm;
use countersign_protocol::crypto::{HmacAlgorithm, ct_eq};
use countersign_protocol::otp::{HotpParams, TotpParams};
use data_encoding::Specification;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::audit::{AuditSubject, audit};
use super::auth::Rp;
use super::challenge::{self, PushRequest, PushStarted};
use super::{check_user_name, policy};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{self, otp::OtpSource};
use crate::util::{now, random_id};

/// `POST /v1/rp/validate`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The user.
    pub user: String,
    /// What the user typed: an OTP, a push OTP, or a push trigger (empty, one
    /// character, or `push` in any case).
    pub passcode: String,
    /// The push login this passcode completes. A push OTP is accepted only with
    /// the tx id of the challenge whose approval carried it; without one, only
    /// TOTP/HOTP codes are checked.
    #[serde(default)]
    pub tx_id: Option<String>,
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

/// Is this passcode a push trigger (empty, one character, or `push`)?
fn is_push_trigger(passcode: &str) -> bool {
    passcode.eq_ignore_ascii_case("push") || passcode.chars().count() <= 1
}

/// How long after the approval its push OTP is accepted.
const PUSH_OTP_LIFETIME_SECS: i64 = 600;

fn invalid_otp() -> ApiError {
    ApiError::new(ErrorCode::InvalidOtp, "passcode is not valid")
}

/// Validates a passcode or starts a push.
pub async fn validate(
    state: &Arc<AppState>,
    rp: &Rp,
    req: ValidateRequest,
) -> ApiResult<ValidateResponse> {
    check_user_name(&req.user)?;
    if is_push_trigger(&req.passcode) {
        let push = req.push.unwrap_or_default();
        // The same gate as any push: whoever types here may be the attacker, so
        // typing `push` lifts no suppression or lock.
        let started = challenge::start_triggered(state, rp, &req.user, &push).await?;
        return Ok(ValidateResponse::PushStarted(started));
    }
    let code = req.passcode.trim();
    if code.len() > 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_otp());
    }
    let user_id = store::users::find_id(&state.db, &rp.id, &req.user)
        .await?
        .ok_or_else(invalid_otp)?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    policy::reserve_passcode_attempt(state, &user_id, who).await?;
    let outcome = check_otp(state, &user_id, code, req.tx_id.as_deref()).await;
    match &outcome {
        Ok((method, id)) => {
            // A valid OTP also lifts a denial suppression, and resets the failures.
            store::users::reset_after_valid_otp(&state.db, &user_id).await?;
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
    Ok(ValidateResponse::Accepted {
        method,
        credential_id,
    })
}

fn otp_algorithm(name: &str) -> ApiResult<HmacAlgorithm> {
    let alg = match name {
        "SHA1" => OtpAlgorithm::Sha1,
        "SHA256" => OtpAlgorithm::Sha256,
        "SHA512" => OtpAlgorithm::Sha512,
        _ => return Err(ApiError::internal("stored OTP algorithm")),
    };
    Ok(alg.hmac())
}

/// Checks `code` against the push OTP of challenge `tx` (when given), then the
/// user's device TOTP seeds and OATH tokens. Every accepted code is consumed so
/// it cannot be used again.
async fn check_otp(
    state: &AppState,
    user_id: &str,
    code: &str,
    tx: Option<&str>,
) -> ApiResult<(String, String)> {
    let t = now();
    let policy = &state.config.policy;
    let reused = || ApiError::new(ErrorCode::OtpReused, "this passcode was already used");

    // 1. The push OTP of this login's approval (a login form filled by the
    //    approval): bound to its tx, so an approval of another login cannot be
    //    replayed here, and one row is read instead of every recent approval.
    let push_otp = match tx {
        Some(tx) if tx.len() <= 64 => {
            store::challenges::push_otp_of(&state.db, tx, user_id, t - PUSH_OTP_LIFETIME_SECS)
                .await?
        }
        _ => None,
    };
    if let Some(r) = push_otp {
        let otp = state
            .master
            .open(&format!("challenges:{}:push_otp", r.id), &r.push_otp)?;
        if ct_eq(&otp, code.as_bytes()) {
            if r.push_otp_used != 0
                || !store::challenges::consume_push_otp(&state.db, &r.id).await?
            {
                return Err(reused());
            }
            return Ok(("push_otp".into(), r.id));
        }
    }

    // 2. Device seeds (TOTP) and imported OATH tokens (TOTP or HOTP).
    for r in store::otp::credentials(&state.db, user_id).await? {
        let source = r.source();
        let alg = otp_algorithm(&r.algorithm)?;
        let digits = u8::try_from(r.digits).map_err(ApiError::internal)?;
        let period = u32::try_from(r.period).map_err(ApiError::internal)?;
        let counter = u64::try_from(r.hotp_counter).map_err(ApiError::internal)?;
        let context = match source {
            OtpSource::Device => format!("devices:{}:otp_seed", r.id),
            OtpSource::Token => format!("oath_tokens:{}:secret", r.id),
        };
        let seed = state.master.open(&context, &r.secret)?;
        if r.kind == "totp" {
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
            if step <= r.totp_last_step {
                return Err(reused());
            }
            let current = t / i64::from(period);
            if !store::otp::advance_totp(&state.db, source, &r.id, step, step - current).await? {
                return Err(reused());
            }
            return Ok(("totp".into(), r.id));
        }
        let params = HotpParams::new(alg, digits).map_err(ApiError::internal)?;
        let look_ahead = policy.hotp_look_ahead.min(1000);
        if let Some(matched) =
            countersign_protocol::otp::hotp_verify(&params, &seed, code, counter, look_ahead)
                .map_err(ApiError::internal)?
        {
            let next = i64::try_from(matched.saturating_add(1)).map_err(ApiError::internal)?;
            if !store::otp::advance_hotp(&state.db, source, &r.id, next).await? {
                return Err(reused());
            }
            return Ok(("hotp".into(), r.id));
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
    Err(invalid_otp())
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

/// The imported token.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Its id.
    pub token_id: String,
}

/// Decodes an RFC 4648 base32 secret: either case, padding optional but exact
/// when present, unused low bits of the last character ignored (as
/// authenticators do).
fn decode_base32(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    let rest = data.len() % 8;
    if padding != 0 && padding != (8 - rest) % 8 {
        return None;
    }
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.check_trailing_bits = false;
    let encoding = spec.encoding().ok()?;
    encoding.decode(data.as_bytes()).ok().map(Zeroizing::new)
}

/// Imports an OATH token for a user (creating the user if needed).
pub async fn import_oath_token(
    state: &AppState,
    rp: &Rp,
    user: &str,
    req: OathTokenRequest,
) -> ApiResult<TokenCreated> {
    check_user_name(user)?;
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
    let secret = decode_base32(&req.secret_base32)
        .ok_or_else(|| ApiError::bad_request("secret_base32 is not valid base32"))?;
    if secret.len() < 10 || secret.len() > 128 {
        return Err(ApiError::bad_request("secret must be 10..=128 bytes"));
    }
    let counter = i64::try_from(req.counter.unwrap_or(0))
        .map_err(|_| ApiError::bad_request("counter too large"))?;
    store::users::insert_if_absent(&state.db, &random_id("u_")?, &rp.id, user, now()).await?;
    let user_id = store::users::find_id(&state.db, &rp.id, user)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    let id = random_id("tok_")?;
    let sealed = state
        .master
        .seal(&format!("oath_tokens:{id}:secret"), &secret)?;
    store::otp::insert_oath_token(
        &state.db,
        &store::otp::NewOathToken {
            id: &id,
            user_id: &user_id,
            kind: &req.kind,
            secret: &sealed,
            algorithm: &algorithm,
            digits: i64::from(digits),
            period: i64::from(period),
            hotp_counter: counter,
            created_at: now(),
        },
    )
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
    Ok(TokenCreated { token_id: id })
}

#[cfg(test)]
mod tests {
    use super::decode_base32;

    #[test]
    fn base32_accepts_what_authenticators_accept() {
        let want = b"12345678901234567890".to_vec();
        let upper = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for text in [upper, &upper.to_ascii_lowercase()] {
            assert_eq!(decode_base32(text).as_deref(), Some(&want));
        }
        // Padding optional, but exact when present.
        assert_eq!(decode_base32("MZXQ").as_deref(), Some(&b"fo".to_vec()));
        assert_eq!(decode_base32("MZXQ====").as_deref(), Some(&b"fo".to_vec()));
        assert_eq!(decode_base32("MZXQ==="), None);
        // Unused low bits of the last character are ignored.
        assert_eq!(decode_base32("MZXR").as_deref(), Some(&b"fo".to_vec()));
        // Lengths no encoding produces, and foreign characters.
        assert_eq!(decode_base32("MZXQ"), decode_base32("mzxq"));
        assert_eq!(decode_base32("GEZDGNBV========"), None);
        assert_eq!(decode_base32("M"), None);
        assert_eq!(decode_base32("MZX"), None);
        assert_eq!(decode_base32("MZ1Q"), None);
    }
}
