//! Pruning of finished records (`service::retention`). Each statement deletes
//! at most `batch` rows, oldest first, through an indexed sub-select that
//! SQLite and PostgreSQL both accept.

use super::{Db, StoreResult};

/// What one pruning pass deleted, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Challenges (their sealed copies go with them).
    pub challenges: u64,
    /// Offline (OCRA) challenges.
    pub offline_challenges: u64,
    /// Activation offers (their transfers go with them).
    pub offers: u64,
    /// Audit records.
    pub audit: u64,
}

async fn delete_batch(
    db: &Db,
    table: &str,
    column: &str,
    before: i64,
    batch: i64,
) -> StoreResult<u64> {
    // `table` and `column` are fixed names from this module, never input.
    let sql = format!(
        "DELETE FROM {table} WHERE id IN \
         (SELECT id FROM {table} WHERE {column} < $1 ORDER BY {column} LIMIT $2)"
    );
    Ok(sqlx::query(&sql)
        .bind(before)
        .bind(batch)
        .execute(&mut db.conn().await?)
        .await?
        .rows_affected())
}

/// Challenges that expired before `before` (answered or not: an unanswered one
/// was turned `expired` long before).
pub async fn challenges(db: &Db, before: i64, batch: i64) -> StoreResult<u64> {
    delete_batch(db, "challenges", "expires_at", before, batch).await
}

/// Offline challenges that expired before `before`.
pub async fn offline_challenges(db: &Db, before: i64, batch: i64) -> StoreResult<u64> {
    delete_batch(db, "offline_challenges", "expires_at", before, batch).await
}

/// Activation offers that expired before `before` (used or not).
pub async fn offers(db: &Db, before: i64, batch: i64) -> StoreResult<u64> {
    delete_batch(db, "enrollment_offers", "expires_at", before, batch).await
}

/// Audit records written before `before`.
pub async fn audit(db: &Db, before: i64, batch: i64) -> StoreResult<u64> {
    delete_batch(db, "audit_log", "at", before, batch).await
}
