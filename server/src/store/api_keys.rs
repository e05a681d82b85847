//! `api_keys`: relying parties' API keys (SHA-256 of the secret, revocation).
//! A key is valid while `revoked_at` is NULL or still in the future (a rotated
//! key's grace period).

use sqlx::FromRow;

use super::{Db, StoreResult};

/// An unrevoked API key with its relying party.
#[derive(Debug, FromRow)]
pub struct ActiveKeyRow {
    /// Hex SHA-256 of the key's secret.
    pub key_hash: String,
    /// The relying party's id.
    pub rp_id: String,
    /// The relying party's display name.
    pub rp_name: String,
}

/// The key `key_id` with its relying party, if it exists and is valid at `now`.
pub async fn find_active(db: &Db, key_id: &str, now: i64) -> StoreResult<Option<ActiveKeyRow>> {
    sqlx::query_as(
        "SELECT k.key_hash, r.id AS rp_id, r.name AS rp_name FROM api_keys k \
         JOIN relying_parties r ON r.id = k.rp_id \
         WHERE k.key_id = $1 AND (k.revoked_at IS NULL OR k.revoked_at > $2)",
    )
    .bind(key_id)
    .bind(now)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Whether the key exists and is valid at `now`.
pub async fn is_active(db: &Db, key_id: &str, now: i64) -> StoreResult<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM api_keys WHERE key_id = $1 AND (revoked_at IS NULL OR revoked_at > $2)",
    )
    .bind(key_id)
    .bind(now)
    .fetch_optional(&mut db.conn().await?)
    .await?
    .is_some())
}

/// A new API key.
#[derive(Debug)]
pub struct NewKey<'a> {
    /// The key id (the part before the dot).
    pub key_id: &'a str,
    /// The relying party.
    pub rp_id: &'a str,
    /// Hex SHA-256 of the secret.
    pub key_hash: &'a str,
    /// The operator's name for it.
    pub label: &'a str,
    /// Unix seconds.
    pub created_at: i64,
}

/// Stores a new key.
pub async fn insert(db: &Db, key: &NewKey<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, rp_id, key_hash, label, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.key_id)
    .bind(key.rp_id)
    .bind(key.key_hash)
    .bind(key.label)
    .bind(key.created_at)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// An API key as the operator sees it (never its hash).
#[derive(Debug, FromRow, serde::Serialize)]
pub struct KeyRow {
    /// The key id (the part of the key before the dot; not secret).
    pub key_id: String,
    /// The relying party.
    pub rp_id: String,
    /// The operator's name for it.
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stopped (or stops, after a rotation) working; Unix seconds.
    pub revoked_at: Option<i64>,
}

/// The keys of `rp_id` (all relying parties when `None`), oldest first.
pub async fn list(db: &Db, rp_id: Option<&str>) -> StoreResult<Vec<KeyRow>> {
    sqlx::query_as(
        "SELECT key_id, rp_id, label, created_at, revoked_at FROM api_keys \
         WHERE $1 IS NULL OR rp_id = $1 ORDER BY created_at, key_id",
    )
    .bind(rp_id)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// The key `key_id`.
pub async fn get(db: &Db, key_id: &str) -> StoreResult<Option<KeyRow>> {
    sqlx::query_as(
        "SELECT key_id, rp_id, label, created_at, revoked_at FROM api_keys WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Ends key `key_id` at `at` unless it already ends earlier; whether it was
/// valid at `now` (so an already revoked key is reported, not extended).
pub async fn revoke(db: &Db, key_id: &str, at: i64, now: i64) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 \
         AND (revoked_at IS NULL OR (revoked_at > $3 AND revoked_at > $2))",
    )
    .bind(key_id)
    .bind(at)
    .bind(now)
    .execute(&mut db.conn().await?)
    .await?
    .rows_affected()
        == 1)
}

/// A relying party and one of its unrevoked API keys.
#[derive(Debug, FromRow)]
pub struct RpWithKeyRow {
    /// The relying party's id.
    pub rp_id: String,
    /// Its display name.
    pub rp_name: String,
    /// The oldest unrevoked key's id.
    pub key_id: String,
}

/// The relying party with id `id_or_name` (or else the oldest one named so)
/// and its oldest API key valid at `now`; `None` without such a key.
pub async fn rp_with_active_key(
    db: &Db,
    id_or_name: &str,
    now: i64,
) -> StoreResult<Option<RpWithKeyRow>> {
    sqlx::query_as(
        "SELECT r.id AS rp_id, r.name AS rp_name, k.key_id FROM relying_parties r \
         JOIN api_keys k ON k.rp_id = r.id AND (k.revoked_at IS NULL OR k.revoked_at > $2) \
         WHERE r.id = $1 OR r.name = $1 \
         ORDER BY CASE WHEN r.id = $1 THEN 0 ELSE 1 END, r.created_at, r.id, k.created_at, k.key_id \
         LIMIT 1",
    )
    .bind(id_or_name)
    .bind(now)
    .fetch_optional(&mut db.conn().await?)
    .await
}
