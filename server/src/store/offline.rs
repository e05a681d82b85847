//! `offline_challenges`: signed offline QR (OCRA) questions.

use sqlx::FromRow;

use super::{Db, StoreResult};

/// A new offline challenge.
#[derive(Debug)]
pub struct NewOfflineChallenge<'a> {
    /// Its id.
    pub id: &'a str,
    /// The relying party.
    pub rp_id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// The device whose seed answers it.
    pub device_id: &'a str,
    /// The OCRA suite.
    pub suite: &'a str,
    /// The numeric question.
    pub question: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Stores an offline challenge.
pub async fn insert(db: &Db, o: &NewOfflineChallenge<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO offline_challenges (id, rp_id, user_id, device_id, suite, question, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(o.id)
    .bind(o.rp_id)
    .bind(o.user_id)
    .bind(o.device_id)
    .bind(o.suite)
    .bind(o.question)
    .bind(o.created_at)
    .bind(o.expires_at)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// An offline challenge with its device's seed and status.
#[derive(Debug, FromRow)]
pub struct OfflineRow {
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The OCRA suite.
    pub suite: String,
    /// The numeric question.
    pub question: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Wrong responses so far.
    pub attempts: i64,
    /// When a response was accepted.
    pub used_at: Option<i64>,
    /// The device's OTP seed, sealed.
    pub otp_seed: String,
    /// The device's status.
    pub status: String,
}

/// Offline challenge `id` of `rp_id`.
pub async fn find(db: &Db, id: &str, rp_id: &str) -> StoreResult<Option<OfflineRow>> {
    sqlx::query_as(
        "SELECT o.user_id, o.device_id, o.suite, o.question, o.expires_at, o.attempts, o.used_at, \
         d.otp_seed, d.status FROM offline_challenges o JOIN devices d ON d.id = o.device_id \
         WHERE o.id = $1 AND o.rp_id = $2",
    )
    .bind(id)
    .bind(rp_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Counts a wrong response.
pub async fn add_failed_attempt(db: &Db, id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE offline_challenges SET attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(())
}

/// Marks it used; `false` if it already was.
pub async fn consume(db: &Db, id: &str, now: i64) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE offline_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut db.conn().await?)
            .await?;
    Ok(done.rows_affected() != 0)
}
