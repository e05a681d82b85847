//! Used device request nonces, kept for twice the accepted clock skew.
//!
//! `request_nonces` is keyed by the request's signed timestamp, then device and
//! nonce: a replay is the same signed request, so it has the same key, and keys
//! made at the same time sit together in the index (migration 0012 says why).
//! `used_nonces`, keyed by device and nonce, holds only what was recorded before
//! that migration; it is still checked until its rows expire.

use super::{Db, StoreResult};

/// Records the `nonce` of a request `device_id` signed at `signed_at`, only if
/// the device is active (or, with `allow_pending`, pending: for the one request
/// a pending device may make, the confirmation of its activation) and the nonce
/// is new; `false` when refused (removed, pending or unknown device, or a
/// replay).
pub async fn insert_if_allowed(
    db: &Db,
    device_id: &str,
    nonce: &str,
    signed_at: i64,
    allow_pending: bool,
) -> StoreResult<bool> {
    let fresh = sqlx::query(
        "INSERT INTO request_nonces (signed_at, device_id, nonce) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 \
           AND (status = 'active' OR ($4 = 1 AND status = 'pending'))) \
         AND NOT EXISTS (SELECT 1 FROM used_nonces WHERE device_id = $2 AND nonce = $3) \
         ON CONFLICT (signed_at, device_id, nonce) DO NOTHING",
    )
    .bind(signed_at)
    .bind(device_id)
    .bind(nonce)
    .bind(i64::from(allow_pending))
    .execute(&mut db.conn().await?)
    .await?;
    Ok(fresh.rows_affected() != 0)
}

/// Drops nonces that can no longer be replayed: those signed before
/// `signed_before`, and the pre-0012 ones kept until before `now`.
pub async fn delete_expired(db: &Db, signed_before: i64, now: i64) -> StoreResult<()> {
    let mut conn = db.conn().await?;
    sqlx::query("DELETE FROM request_nonces WHERE signed_at < $1")
        .bind(signed_before)
        .execute(&mut conn)
        .await?;
    sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1")
        .bind(now)
        .execute(&mut conn)
        .await?;
    Ok(())
}
