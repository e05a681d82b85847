//! `qr_logins`: logins started by a QR code on the login page, claimed by the
//! device that scans it.

use sqlx::FromRow;

use super::{Conn, Db, StoreResult};

/// A new QR login.
#[derive(Debug)]
pub struct NewQrLogin<'a> {
    /// Its id (in the QR).
    pub id: &'a str,
    /// The relying party.
    pub rp_id: &'a str,
    /// The user it is for; `None`: usernameless.
    pub user_id: Option<&'a str>,
    /// SHA-256 of the QR's one-time secret, base64url.
    pub secret_hash: &'a str,
    /// SHA-256 of the browser handle, base64url.
    pub handle_hash: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// `none`, `pin` or `biometric`.
    pub verification: &'a str,
    /// `off` or `show`.
    pub number_mode: &'a str,
    /// The number the phone shows (`show`).
    pub number: Option<&'a str>,
    /// Context and text, JSON.
    pub request: &'a str,
}

/// Stores a QR login.
pub async fn insert(db: &Db, q: &NewQrLogin<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO qr_logins (id, rp_id, user_id, secret_hash, handle_hash, created_at, \
         expires_at, verification, number_mode, number, request) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(q.id)
    .bind(q.rp_id)
    .bind(q.user_id)
    .bind(q.secret_hash)
    .bind(q.handle_hash)
    .bind(q.created_at)
    .bind(q.expires_at)
    .bind(q.verification)
    .bind(q.number_mode)
    .bind(q.number)
    .bind(q.request)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// A QR login with the state of the challenge its claim created.
#[derive(Debug, FromRow)]
pub struct QrLoginRow {
    /// The relying party.
    pub rp_id: String,
    /// The user it was created for (`None`: usernameless).
    pub user_id: Option<String>,
    /// SHA-256 of the QR secret, base64url.
    pub secret_hash: String,
    /// SHA-256 of the browser handle, base64url.
    pub handle_hash: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// `none`, `pin` or `biometric`.
    pub verification: String,
    /// `off` or `show`.
    pub number_mode: String,
    /// The number the phone shows (`show`).
    pub number: Option<String>,
    /// Wrong numbers typed on the page.
    pub number_failures: i64,
    /// When the page typed the right number.
    pub number_entered_at: Option<i64>,
    /// Context and text, JSON.
    pub request: String,
    /// The device that claimed it.
    pub device_id: Option<String>,
    /// The challenge the claim created.
    pub tx_id: Option<String>,
    /// That challenge's state (`pending`, `approved`, `denied`, `expired`).
    pub tx_state: Option<String>,
    /// Its deny reason.
    pub deny_reason: Option<String>,
    /// The user's name (of the claiming device's user, else the one asked for).
    pub user_name: Option<String>,
}

/// QR login `id`.
pub async fn find(db: &Db, id: &str) -> StoreResult<Option<QrLoginRow>> {
    sqlx::query_as(
        "SELECT q.rp_id, q.user_id, q.secret_hash, q.handle_hash, q.expires_at, q.verification, \
         q.number_mode, q.number, q.number_failures, q.number_entered_at, q.request, q.device_id, \
         q.tx_id, c.state AS tx_state, c.deny_reason, u.name AS user_name \
         FROM qr_logins q LEFT JOIN challenges c ON c.id = q.tx_id \
         LEFT JOIN users u ON u.id = COALESCE(c.user_id, q.user_id) WHERE q.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// The current KEM public key (base64url SEC1) of active device `device_id`.
pub async fn claimer_kem_key(db: &Db, device_id: &str) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT kem_key FROM devices WHERE id = $1 AND status = 'active'")
        .bind(device_id)
        .fetch_optional(&mut db.conn().await?)
        .await
}

/// Binds login `id` to the device and challenge of its claim; `false` when
/// another claim came first.
pub async fn bind(conn: &mut Conn, id: &str, device_id: &str, tx_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE qr_logins SET device_id = $2, tx_id = $3 WHERE id = $1 AND tx_id IS NULL",
    )
    .bind(id)
    .bind(device_id)
    .bind(tx_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// Records the right number typed on the page (once).
pub async fn number_entered(db: &Db, id: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE qr_logins SET number_entered_at = $2 WHERE id = $1 AND number_entered_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// Counts a wrong number typed on the page, up to `limit`; returns the count
/// now, or `None` when the limit was reached before or the number was entered.
pub async fn count_wrong_number(db: &Db, id: &str, limit: i64) -> StoreResult<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE qr_logins SET number_failures = number_failures + 1 \
         WHERE id = $1 AND number_failures < $2 AND number_entered_at IS NULL \
         RETURNING number_failures",
    )
    .bind(id)
    .bind(limit)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Deletes logins that expired before `before`.
pub async fn delete_expired(db: &Db, before: i64) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM qr_logins WHERE expires_at < $1")
        .bind(before)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(done.rows_affected())
}
