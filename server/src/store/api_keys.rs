//! `api_keys`: relying parties' API keys (SHA-256 of the secret, revocation).

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

/// The key `key_id` with its relying party, if it exists and is not revoked.
pub async fn find_active(db: &Db, key_id: &str) -> StoreResult<Option<ActiveKeyRow>> {
    sqlx::query_as(
        "SELECT k.key_hash, r.id AS rp_id, r.name AS rp_name FROM api_keys k \
         JOIN relying_parties r ON r.id = k.rp_id \
         WHERE k.key_id = $1 AND k.revoked_at IS NULL",
    )
    .bind(key_id)
    .fetch_optional(&db.pool)
    .await
}

/// Whether the key exists and is not revoked.
pub async fn is_active(db: &Db, key_id: &str) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL")
            .bind(key_id)
            .fetch_optional(&db.pool)
            .await?
            .is_some(),
    )
}

/// Stores a new key.
pub async fn insert(
    db: &Db,
    key_id: &str,
    rp_id: &str,
    key_hash: &str,
    created_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, rp_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(key_id)
    .bind(rp_id)
    .bind(key_hash)
    .bind(created_at)
    .execute(&db.pool)
    .await?;
    Ok(())
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
/// and its oldest unrevoked API key; `None` without such a key.
pub async fn rp_with_active_key(db: &Db, id_or_name: &str) -> StoreResult<Option<RpWithKeyRow>> {
    sqlx::query_as(
        "SELECT r.id AS rp_id, r.name AS rp_name, k.key_id FROM relying_parties r \
         JOIN api_keys k ON k.rp_id = r.id AND k.revoked_at IS NULL \
         WHERE r.id = $1 OR r.name = $1 \
         ORDER BY CASE WHEN r.id = $1 THEN 0 ELSE 1 END, r.created_at, r.id, k.created_at, k.key_id \
         LIMIT 1",
    )
    .bind(id_or_name)
    .fetch_optional(&db.pool)
    .await
}
