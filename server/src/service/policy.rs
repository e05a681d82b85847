//! Per-user limits: the pending-challenge bound and push window, suppression
//! after repeated denials (and fraud reports), and failed-passcode limits.
//! Every limit is enforced by one conditional statement, so it holds across
//! concurrent requests and instances.

use sqlx::AnyConnection;

use super::audit::{AuditSubject, audit, audit_on};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{self, Tx};
use crate::util::now;

/// Refuses a push while the user's pushes are suppressed after denials, unless
/// the user asked for it (typed `push`).
pub async fn check_suppression(
    state: &AppState,
    who: AuditSubject<'_>,
    suppressed: bool,
    lift_suppression: bool,
) -> ApiResult<()> {
    if suppressed && !lift_suppression {
        audit(&state.db, who, "push_refused", "suppressed after denials").await?;
        return Err(ApiError::new(
            ErrorCode::Suppressed,
            "pushes are suppressed after repeated denials; type `push` or an OTP",
        ));
    }
    Ok(())
}

/// Counts the push in the user's window atomically, and only while the user has
/// room for another pending challenge (one statement), in the transaction that
/// stores the challenge: one commit per push. Its first statement writes, so
/// SQLite takes the write lock up front. Typing `push` also clears suppression
/// and the denial streak. Refused: the transaction is rolled back and a second
/// look says which limit it was.
pub async fn admit_push(
    state: &AppState,
    mut dbtx: Tx,
    user_id: &str,
    who: AuditSubject<'_>,
    lift_suppression: bool,
    t: i64,
) -> ApiResult<Tx> {
    let policy = &state.config.policy;
    let admitted = store::users::admit_push(
        &mut dbtx,
        &store::users::PushAdmission {
            user_id,
            window_start: t - i64::from(policy.push_window_secs),
            now: t,
            max_per_window: i64::from(policy.push_max_per_window),
            lift_suppression,
            max_pending: i64::from(policy.max_pending),
        },
    )
    .await?;
    if admitted {
        return Ok(dbtx);
    }
    dbtx.rollback().await?;
    let pending = store::challenges::count_pending(&state.db, user_id, t).await?;
    if pending >= i64::from(policy.max_pending) {
        audit(
            &state.db,
            who,
            "push_refused",
            "too many pending challenges",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many pending challenges for this user",
        ));
    }
    audit(&state.db, who, "push_refused", "push rate limit").await?;
    Err(ApiError::new(
        ErrorCode::RateLimited,
        "too many pushes for this user; try again later",
    ))
}

/// Counts one passcode attempt against the user's failure limit before it is
/// checked (a success gives it back by resetting the count). Reserving first, in
/// one conditional `UPDATE`, keeps concurrent guesses (also across instances)
/// within the limit. Refused: `rate_limited` until the window, which starts at the
/// first failure, has passed.
pub async fn reserve_passcode_attempt(
    state: &AppState,
    user_id: &str,
    who: AuditSubject<'_>,
) -> ApiResult<()> {
    let policy = &state.config.policy;
    let t = now();
    let counted = store::users::reserve_passcode_attempt(
        &state.db,
        user_id,
        t - i64::from(policy.passcode_failure_window_secs),
        t,
        i64::from(policy.passcode_max_failures),
    )
    .await?;
    if !counted {
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

/// How the user answered a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Approved.
    Approved,
    /// Denied as a mistake.
    Denied,
    /// Denied with "it was not me": also a fraud report.
    Fraud,
}

/// Updates the user's denial streak (and suppression, fraud reports) for an
/// answer and audits it, inside the answer's transaction. An approval ends a
/// streak (written only when there is one); enough consecutive denials suppress
/// pushes.
pub async fn record_answer(
    state: &AppState,
    conn: &mut AnyConnection,
    user_id: &str,
    who: AuditSubject<'_>,
    outcome: Outcome,
    denial_streak: i64,
) -> ApiResult<()> {
    if outcome == Outcome::Approved {
        if denial_streak != 0 {
            store::users::reset_denial_streak(conn, user_id).await?;
        }
        return audit_on(conn, who, "approval", "approved on device").await;
    }
    let fraud = outcome == Outcome::Fraud;
    let limit = i64::from(state.config.policy.denials_before_suppression);
    let counters = store::users::record_denial(conn, user_id, fraud, limit).await?;
    let reason = if fraud { "not_me" } else { "mistake" };
    audit_on(conn, who, "denial", reason).await?;
    if fraud {
        audit_on(conn, who, "fraud_report", "user said it was not them").await?;
    }
    if counters.suppressed == 1 && counters.denial_streak == limit {
        audit_on(conn, who, "suppression", "consecutive denials").await?;
    }
    Ok(())
}
