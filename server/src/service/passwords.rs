//! Static passwords: the first factor of the RADIUS `password_otp` mode. The
//! relying party sets and removes them (`PUT/DELETE /v1/rp/users/{user}/password`);
//! they are stored as Argon2id PHC strings (RustCrypto `argon2`, its default
//! parameters: 19 MiB, 2 passes, 1 lane, the OWASP minimum) and checked on a
//! blocking thread, since a check takes tens of milliseconds by design.
//!
//! Wrong passwords count against the same per-user failure limit as wrong
//! passcodes (`policy.passcode_max_failures`).

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use countersign_protocol::crypto::random_array;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::audit::{AuditSubject, audit};
use super::auth::Rp;
use super::{check_user_name, policy};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store;
use crate::util::{now, random_id};

/// Longest static password in bytes: with an 8-digit code appended it still
/// fits RADIUS's 128-byte User-Password.
pub const MAX_PASSWORD_BYTES: usize = 120;

/// `PUT /v1/rp/users/{user}/password`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The password: 1–120 bytes of UTF-8 without NUL.
    pub password: String,
}

impl std::fmt::Debug for PasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordRequest(<redacted>)")
    }
}

/// The answer to setting or removing a password.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordStatus {
    /// The user.
    pub user: String,
    /// `set` or `removed`.
    pub password: String,
}

fn hash(password: &[u8]) -> ApiResult<String> {
    let salt: [u8; 16] = random_array().map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Ok(Argon2::default()
        .hash_password(password, &salt)
        .map_err(ApiError::internal)?
        .to_string())
}

/// Argon2 computations at once: each takes 19 MiB and a core for tens of
/// milliseconds, so a burst of sign-ins queues here instead of filling the
/// blocking thread pool (and memory).
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Runs argon2 work on a blocking thread, at most [`ARGON2_SLOTS`] at once.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let _slot = ARGON2_SLOTS.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// Sets user `user`'s static password (creating the user if needed). Audited.
pub async fn set(
    state: &AppState,
    rp: &Rp,
    user: &str,
    req: PasswordRequest,
) -> ApiResult<PasswordStatus> {
    check_user_name(user)?;
    let password = Zeroizing::new(req.password);
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES || password.contains('\0') {
        return Err(ApiError::bad_request(
            "password must be 1-120 bytes without NUL",
        ));
    }
    let phc = blocking(move || hash(password.as_bytes())).await?;
    store::users::insert_if_absent(&state.db, &random_id("u_")?, &rp.id, user, now()).await?;
    let user_id = store::users::find_id(&state.db, &rp.id, user)
        .await?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    store::users::set_password_hash(&state.db, &user_id, Some(&phc)).await?;
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    audit(&state.db, who, "password_set", "static password set").await?;
    Ok(PasswordStatus {
        user: user.to_owned(),
        password: "set".into(),
    })
}

/// Removes user `user`'s static password; `not_found` for an unknown user.
/// Audited.
pub async fn remove(state: &AppState, rp: &Rp, user: &str) -> ApiResult<PasswordStatus> {
    check_user_name(user)?;
    let user_id = store::users::find_id(&state.db, &rp.id, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if !store::users::set_password_hash(&state.db, &user_id, None).await? {
        return Err(ApiError::not_found("user"));
    }
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    audit(
        &state.db,
        who,
        "password_removed",
        "static password removed",
    )
    .await?;
    Ok(PasswordStatus {
        user: user.to_owned(),
        password: "removed".into(),
    })
}

/// A hash to check against when the user or its password does not exist, so
/// the answer takes as long either way.
fn decoy_hash() -> ApiResult<&'static str> {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(decoy) = DECOY.get() {
        return Ok(decoy);
    }
    let made = hash(b"countersign decoy password")?;
    Ok(DECOY.get_or_init(|| made))
}

/// Which of `candidates` is user `user`'s static password, trying them in
/// order (the RADIUS front's ways of splitting password and code). `None`
/// when none is (or the user has no password), after counting a failure;
/// `rate_limited` over the failure limit.
pub async fn check(
    state: &Arc<AppState>,
    rp: &Rp,
    user: &str,
    candidates: Vec<Zeroizing<String>>,
) -> ApiResult<Option<usize>> {
    let user_id = store::users::find_id(&state.db, &rp.id, user).await?;
    let stored = match &user_id {
        Some(id) => store::users::password_hash(&state.db, id).await?.flatten(),
        None => None,
    };
    if let Some(id) = &user_id {
        let who = AuditSubject {
            rp: Some(&rp.id),
            user: Some(id),
            ..Default::default()
        };
        policy::reserve_passcode_attempt(state, id, who).await?;
    }
    let known = stored.is_some();
    let matched = blocking(move || {
        let phc = match &stored {
            Some(phc) => phc.as_str(),
            None => decoy_hash()?,
        };
        let parsed = PasswordHash::new(phc).map_err(ApiError::internal)?;
        let argon = Argon2::default();
        Ok(candidates
            .iter()
            .position(|c| argon.verify_password(c.as_bytes(), &parsed).is_ok()))
    })
    .await?
    .filter(|_| known);
    if let Some(id) = &user_id {
        let who = AuditSubject {
            rp: Some(&rp.id),
            user: Some(id),
            ..Default::default()
        };
        if matched.is_some() {
            store::users::release_passcode_attempt(&state.db, id).await?;
        } else {
            let reason = if known {
                "wrong static password"
            } else {
                "no static password set"
            };
            audit(&state.db, who, "password_rejected", reason).await?;
        }
    }
    Ok(matched)
}
