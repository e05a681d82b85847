//! `users`: a relying party's users, with their counters (push window, denial
//! streak and suppression, failed passcodes).

use sqlx::{FromRow, Row};

use super::{Conn, Db, StoreResult};

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
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// The id of user `name` of `rp_id`.
pub async fn find_id(db: &Db, rp_id: &str, name: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT id FROM users WHERE rp_id = $1 AND name = $2")
        .bind(rp_id)
        .bind(name)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()
}

/// The name (the relying party's user id) of user `user_id`.
pub async fn name(db: &Db, user_id: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT name FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("name"))
        .transpose()
}

/// Until when user `user_id` is locked after a fraud report (Unix seconds; 0
/// when never), read inside the caller's transaction.
pub async fn locked_until(conn: &mut Conn, user_id: &str) -> StoreResult<i64> {
    sqlx::query("SELECT locked_until FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .map_or(Ok(0), |row| row.try_get("locked_until"))
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
    .execute(&mut db.conn().await?)
    .await?;
    Ok(counted.rows_affected() != 0)
}

/// After a valid OTP or offline code: lifts a suppression, ends the miss streak
/// and its wait, and forgets failed passcodes (a fraud lock stays).
pub async fn reset_after_valid_otp(db: &Db, user_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE users SET suppressed = 0, denial_streak = 0, next_push_at = 0, \
         otp_fail_count = 0, otp_fail_window_start = 0 WHERE id = $1",
    )
    .bind(user_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// After "it was me" from an enrolled device: lifts a suppression and ends the
/// miss streak and its wait (a fraud lock stays). `false`: no such user.
pub async fn resume_pushes(db: &Db, user_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET suppressed = 0, denial_streak = 0, next_push_at = 0 WHERE id = $1",
    )
    .bind(user_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// An operator's unlock: lifts a fraud lock and a suppression and ends the miss
/// streak. `false`: no such user.
pub async fn unlock(db: &Db, user_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET suppressed = 0, denial_streak = 0, next_push_at = 0, locked_until = 0 \
         WHERE id = $1",
    )
    .bind(user_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// What holds a user's pushes back.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct GateRow {
    /// 1 while suppressed after misses.
    pub suppressed: i64,
    /// Locked by a fraud report until then (Unix seconds).
    pub locked_until: i64,
    /// The wait after the last miss ends then (Unix seconds).
    pub next_push_at: i64,
}

/// What holds pushes to user `user_id` back, if the user exists.
pub async fn gate(db: &Db, user_id: &str) -> StoreResult<Option<GateRow>> {
    sqlx::query_as("SELECT suppressed, locked_until, next_push_at FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut db.conn().await?)
        .await
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
    /// Pending challenges allowed at once.
    pub max_pending: i64,
}

/// Counts a push in the user's window, only while the window and the pending
/// bound have room and the user is neither suppressed, locked nor in the wait
/// after a miss (one statement, so concurrent pushes cannot slip past a check
/// made a moment before); `false` when refused.
pub async fn admit_push(conn: &mut Conn, a: &PushAdmission<'_>) -> StoreResult<bool> {
    let counted = sqlx::query(
        "UPDATE users SET \
           push_count = CASE WHEN push_window_start <= $2 THEN 1 ELSE push_count + 1 END, \
           push_window_start = CASE WHEN push_window_start <= $2 THEN $3 ELSE push_window_start END \
         WHERE id = $1 AND (push_window_start <= $2 OR push_count < $4) \
           AND suppressed = 0 AND locked_until <= $3 AND next_push_at <= $3 \
           AND (SELECT COUNT(*) FROM challenges \
                WHERE user_id = $1 AND state = 'pending' AND expires_at >= $3) < $5",
    )
    .bind(a.user_id)
    .bind(a.window_start)
    .bind(a.now)
    .bind(a.max_per_window)
    .bind(a.max_pending)
    .execute(&mut *conn)
    .await?;
    Ok(counted.rows_affected() != 0)
}

/// Ends a miss streak and its wait (after an approval).
pub async fn reset_denial_streak(conn: &mut Conn, user_id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET denial_streak = 0, next_push_at = 0 WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The user's counters after a miss.
#[derive(Debug, FromRow)]
pub struct MissCounters {
    /// 1 when pushes are now suppressed.
    pub suppressed: i64,
    /// Consecutive misses (denials and timeouts).
    pub denial_streak: i64,
}

/// A push the user denied, reported as fraud, got wrong or let expire.
#[derive(Debug, Clone, Copy)]
pub struct Miss<'a> {
    /// The user.
    pub user_id: &'a str,
    /// A "not me" fraud report.
    pub fraud: bool,
    /// Misses in a row that suppress pushes.
    pub suppress_at: i64,
    /// Unix seconds.
    pub now: i64,
    /// The wait after the first miss of a streak; doubles with each further one.
    pub backoff_secs: i64,
    /// For a fraud report: pushes are locked until then.
    pub lock_until: i64,
}

/// Counts a miss: the streak grows; from the second miss in a row pushes wait
/// `backoff · 2^(streak-2)` seconds (at most 32 times the base; a single miss,
/// such as one slow answer, costs nothing); they are suppressed once the streak
/// reaches `suppress_at`, and a fraud report locks them. One statement.
pub async fn record_miss(conn: &mut Conn, m: &Miss<'_>) -> StoreResult<MissCounters> {
    sqlx::query_as(
        "UPDATE users SET denial_streak = denial_streak + 1, fraud_reports = fraud_reports + $2, \
         suppressed = CASE WHEN denial_streak + 1 >= $3 THEN 1 ELSE suppressed END, \
         next_push_at = $4 + $5 * CASE denial_streak WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 2 \
           WHEN 3 THEN 4 WHEN 4 THEN 8 WHEN 5 THEN 16 ELSE 32 END, \
         locked_until = CASE WHEN $2 = 1 AND locked_until < $6 THEN $6 ELSE locked_until END \
         WHERE id = $1 RETURNING suppressed, denial_streak",
    )
    .bind(m.user_id)
    .bind(i64::from(m.fraud))
    .bind(m.suppress_at)
    .bind(m.now)
    .bind(m.backoff_secs)
    .bind(m.lock_until)
    .fetch_one(&mut *conn)
    .await
}

/// The user's static password hash (PHC string), if one is set. The outer
/// `None`: no such user.
pub async fn password_hash(db: &Db, user_id: &str) -> StoreResult<Option<Option<String>>> {
    sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("password_hash"))
        .transpose()
}

/// Sets (`Some`) or removes (`None`) the user's static password hash; `false`:
/// no such user.
pub async fn set_password_hash(db: &Db, user_id: &str, hash: Option<&str>) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(done.rows_affected() != 0)
}

/// Gives back one reserved passcode attempt (a right static password: the
/// attempt was not a failure).
pub async fn release_passcode_attempt(db: &Db, user_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE users SET otp_fail_count = otp_fail_count - 1 WHERE id = $1 AND otp_fail_count > 0",
    )
    .bind(user_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// A user as the operator sees it.
#[derive(Debug, FromRow, serde::Serialize)]
pub struct UserRow {
    /// Internal id (what the audit log records).
    pub id: String,
    /// The name the relying party uses.
    pub name: String,
    /// 1 while pushes are suppressed after misses.
    pub suppressed: i64,
    /// Pushes locked by a fraud report until then (Unix seconds; 0: not locked).
    pub locked_until: i64,
    /// Misses (denials, timeouts, wrong numbers) in a row.
    pub denial_streak: i64,
    /// "Not me" reports so far.
    pub fraud_reports: i64,
    /// Active devices.
    pub active_devices: i64,
    /// Unix seconds.
    pub created_at: i64,
}

const USER_ROW: &str = "SELECT u.id, u.name, u.suppressed, u.locked_until, u.denial_streak, \
     u.fraud_reports, (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id AND d.status = 'active') \
     AS active_devices, u.created_at FROM users u";

/// The users of `rp_id`, by name.
pub async fn list(db: &Db, rp_id: &str) -> StoreResult<Vec<UserRow>> {
    sqlx::query_as(&format!("{USER_ROW} WHERE u.rp_id = $1 ORDER BY u.name"))
        .bind(rp_id)
        .fetch_all(&mut db.conn().await?)
        .await
}

/// User `name` of `rp_id`.
pub async fn get(db: &Db, rp_id: &str, name: &str) -> StoreResult<Option<UserRow>> {
    sqlx::query_as(&format!("{USER_ROW} WHERE u.rp_id = $1 AND u.name = $2"))
        .bind(rp_id)
        .bind(name)
        .fetch_optional(&mut db.conn().await?)
        .await
}
