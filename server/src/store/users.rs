//! `users`: a relying party's users, with their counters (push window, denial
//! streak and suppression, failed passcodes).

use sqlx::{AnyConnection, FromRow, Row};

use super::{Db, StoreResult};

/// Creates user `name` of `rp_id` unless it exists.
pub async fn insert_if_absent(
    db: &Db,
    id: &str,
    rp_id: &str,
    name: &str,
    created_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, rp_id, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (rp_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(rp_id)
    .bind(name)
    .bind(created_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The id of user `name` of `rp_id`.
pub async fn find_id(db: &Db, rp_id: &str, name: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT id FROM users WHERE rp_id = $1 AND name = $2")
        .bind(rp_id)
        .bind(name)
        .fetch_optional(&db.pool)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()
}

/// Counts one passcode attempt unless the user already has `max_failures`
/// inside the window that started after `window_start`; `false` when refused.
pub async fn reserve_passcode_attempt(
    db: &Db,
    user_id: &str,
    window_start: i64,
    now: i64,
    max_failures: i64,
) -> StoreResult<bool> {
    let counted = sqlx::query(
        "UPDATE users SET \
           otp_fail_count = CASE WHEN otp_fail_window_start <= $2 THEN 1 ELSE otp_fail_count + 1 END, \
           otp_fail_window_start = CASE WHEN otp_fail_window_start <= $2 THEN $3 ELSE otp_fail_window_start END \
         WHERE id = $1 AND (otp_fail_window_start <= $2 OR otp_fail_count < $4)",
    )
    .bind(user_id)
    .bind(window_start)
    .bind(now)
    .bind(max_failures)
    .execute(&db.pool)
    .await?;
    Ok(counted.rows_affected() != 0)
}

/// Forgets the user's failed passcodes.
pub async fn reset_passcode_failures(db: &Db, user_id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET otp_fail_count = 0, otp_fail_window_start = 0 WHERE id = $1")
        .bind(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// After a valid OTP: lifts a denial suppression and forgets failed passcodes.
pub async fn reset_after_valid_otp(db: &Db, user_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE users SET suppressed = 0, denial_streak = 0, otp_fail_count = 0, \
         otp_fail_window_start = 0 WHERE id = $1",
    )
    .bind(user_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The limits a push is counted against.
#[derive(Debug, Clone, Copy)]
pub struct PushAdmission<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Windows that started at or before this have passed.
    pub window_start: i64,
    /// Unix seconds.
    pub now: i64,
    /// Pushes allowed per window.
    pub max_per_window: i64,
    /// The user typed `push`: clear suppression and denial streak.
    pub lift_suppression: bool,
    /// Pending challenges allowed at once.
    pub max_pending: i64,
}

/// Counts a push in the user's window, only while the window and the pending
/// bound have room (one statement); `false` when refused.
pub async fn admit_push(conn: &mut AnyConnection, a: &PushAdmission<'_>) -> StoreResult<bool> {
    let counted = sqlx::query(
        "UPDATE users SET \
           push_count = CASE WHEN push_window_start <= $2 THEN 1 ELSE push_count + 1 END, \
           push_window_start = CASE WHEN push_window_start <= $2 THEN $3 ELSE push_window_start END, \
           suppressed = CASE WHEN $5 = 1 THEN 0 ELSE suppressed END, \
           denial_streak = CASE WHEN $5 = 1 THEN 0 ELSE denial_streak END \
         WHERE id = $1 AND (push_window_start <= $2 OR push_count < $4) \
           AND (SELECT COUNT(*) FROM challenges \
                WHERE user_id = $1 AND state = 'pending' AND expires_at >= $3) < $6",
    )
    .bind(a.user_id)
    .bind(a.window_start)
    .bind(a.now)
    .bind(a.max_per_window)
    .bind(i64::from(a.lift_suppression))
    .bind(a.max_pending)
    .execute(&mut *conn)
    .await?;
    Ok(counted.rows_affected() != 0)
}

/// Ends a denial streak (after an approval).
pub async fn reset_denial_streak(conn: &mut AnyConnection, user_id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET denial_streak = 0 WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The user's counters after a denial.
#[derive(Debug, FromRow)]
pub struct DenialCounters {
    /// 1 when pushes are now suppressed.
    pub suppressed: i64,
    /// Consecutive denials.
    pub denial_streak: i64,
}

/// Counts a denial (and a fraud report when `fraud`), suppressing pushes once
/// the streak reaches `limit`.
pub async fn record_denial(
    conn: &mut AnyConnection,
    user_id: &str,
    fraud: bool,
    limit: i64,
) -> StoreResult<DenialCounters> {
    sqlx::query_as(
        "UPDATE users SET denial_streak = denial_streak + 1, fraud_reports = fraud_reports + $2, \
         suppressed = CASE WHEN denial_streak + 1 >= $3 THEN 1 ELSE suppressed END \
         WHERE id = $1 RETURNING suppressed, denial_streak",
    )
    .bind(user_id)
    .bind(i64::from(fraud))
    .bind(limit)
    .fetch_one(&mut *conn)
    .await
}
