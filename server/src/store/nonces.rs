//! `used_nonces`: device request nonces, kept for twice the accepted clock skew.

use super::{Db, StoreResult};

/// Records `nonce` for `device_id` only if the device is active (or, with
/// `allow_pending`, pending: for the one request a pending device may make, the
/// confirmation of its activation) and the nonce is new; `false` when refused
/// (removed, pending or unknown device, or a replay).
pub async fn insert_if_allowed(
    db: &Db,
    device_id: &str,
    nonce: &str,
    keep_until: i64,
    allow_pending: bool,
) -> StoreResult<bool> {
    let fresh = sqlx::query(
        "INSERT INTO used_nonces (device_id, nonce, expires_at) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM devices WHERE id = $1 \
           AND (status = 'active' OR ($4 = 1 AND status = 'pending'))) \
         ON CONFLICT (device_id, nonce) DO NOTHING",
    )
    .bind(device_id)
    .bind(nonce)
    .bind(keep_until)
    .bind(i64::from(allow_pending))
    .execute(&mut db.conn().await?)
    .await?;
    Ok(fresh.rows_affected() != 0)
}

/// Drops nonces that can no longer be replayed.
pub async fn delete_expired(db: &Db, now: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1")
        .bind(now)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(())
}
