//! `enrollment_offers`: single-use activation offers.

use sqlx::FromRow;

use super::{Conn, Db, StoreResult};

/// A new offer.
#[derive(Debug)]
pub struct NewOffer<'a> {
    /// The offer id.
    pub id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// The offer secret, sealed.
    pub secret: &'a str,
    /// Issuer shown in the app.
    pub issuer: &'a str,
    /// Label shown in the app.
    pub label: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Stores an offer (a transfer's in the same transaction as its row).
pub async fn insert(conn: &mut Conn, o: &NewOffer<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO enrollment_offers (id, user_id, secret, issuer, label, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(o.id)
    .bind(o.user_id)
    .bind(o.secret)
    .bind(o.issuer)
    .bind(o.label)
    .bind(o.created_at)
    .bind(o.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An offer with its user's relying party.
#[derive(Debug, FromRow)]
pub struct OfferRow {
    /// The user.
    pub user_id: String,
    /// The offer secret, sealed.
    pub secret: String,
    /// Issuer shown in the app.
    pub issuer: Option<String>,
    /// Label shown in the app.
    pub label: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Failed activation proofs so far.
    pub attempts: i64,
    /// When it was used (confirmed).
    pub used_at: Option<i64>,
    /// The device that confirmed it.
    pub device_id: Option<String>,
    /// The user's relying party.
    pub rp_id: String,
}

/// Offer `id`.
pub async fn find(db: &Db, id: &str) -> StoreResult<Option<OfferRow>> {
    sqlx::query_as(
        "SELECT o.user_id, o.secret, o.issuer, o.label, o.expires_at, o.attempts, o.used_at, o.device_id, u.rp_id \
         FROM enrollment_offers o JOIN users u ON u.id = o.user_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Counts one activation attempt on the offer, only while it is unused,
/// unexpired at `now` and below `max` attempts; `false` when refused. Run first
/// in the activation's transaction: it also serialises activations and the
/// confirmation of one offer (they all write its row first).
pub async fn count_attempt(conn: &mut Conn, id: &str, max: i64, now: i64) -> StoreResult<bool> {
    let counted = sqlx::query(
        "UPDATE enrollment_offers SET attempts = attempts + 1 \
         WHERE id = $1 AND used_at IS NULL AND expires_at >= $2 AND attempts < $3",
    )
    .bind(id)
    .bind(now)
    .bind(max)
    .execute(&mut *conn)
    .await?;
    Ok(counted.rows_affected() != 0)
}

/// Uses the offer for `device_id` (the confirmation), only while it is unused
/// and unexpired at `now`; `false` otherwise.
pub async fn confirm(conn: &mut Conn, id: &str, device_id: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE enrollment_offers SET used_at = $1, device_id = $2 \
         WHERE id = $3 AND used_at IS NULL AND expires_at >= $1",
    )
    .bind(now)
    .bind(device_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}
