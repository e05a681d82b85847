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
