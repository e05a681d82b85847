//! `devices`: activated devices, their keys, push registration and status.

use sqlx::{FromRow, Row};

use super::{Conn, Db, StoreResult};

/// What never changes about a device once activated.
#[derive(Debug, FromRow)]
pub struct DeviceKeysRow {
    /// The account on the device.
    pub account_id: String,
    /// The user.
    pub user_id: String,
    /// The user's relying party.
    pub rp_id: String,
    /// Dp, base64url SEC1.
    pub possession_key: String,
    /// Du, base64url SEC1.
    pub verification_key: String,
    /// The OTP seed, sealed.
    pub otp_seed: String,
    /// OTP digits.
    pub otp_digits: i64,
}

/// The immutable data of device `device_id` (any status).
pub async fn keys(db: &Db, device_id: &str) -> StoreResult<Option<DeviceKeysRow>> {
    sqlx::query_as(
        "SELECT d.account_id, d.user_id, u.rp_id, d.possession_key, d.verification_key, \
         d.otp_seed, d.otp_digits FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
    )
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// The status (`pending`, `active`, `removed`) of device `device_id`.
pub async fn status(db: &Db, device_id: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT status FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("status"))
        .transpose()
}

/// A newly activated device (pending until it confirms).
#[derive(Debug)]
pub struct NewDevice<'a> {
    /// Its id.
    pub id: &'a str,
    /// The offer it activated with.
    pub offer_id: &'a str,
    /// The account on it.
    pub account_id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// User-chosen name.
    pub name: &'a str,
    /// `android`, `ios`, `desktop`.
    pub platform: &'a str,
    /// Dp, base64url SEC1.
    pub possession_key: &'a str,
    /// Dp's key id.
    pub possession_key_id: &'a str,
    /// Du, base64url SEC1.
    pub verification_key: &'a str,
    /// The first KEM key, base64url SEC1.
    pub kem_key: &'a str,
    /// Its key id.
    pub kem_key_id: &'a str,
    /// `none`, `fcm`, `apns`, `unifiedpush`.
    pub push_provider: &'a str,
    /// The provider's token.
    pub push_token: Option<&'a str>,
    /// The OTP seed, sealed.
    pub otp_seed: &'a str,
    /// OTP digits.
    pub otp_digits: i64,
    /// TOTP period.
    pub otp_period: i64,
    /// Unix seconds (also the first `last_seen_at`).
    pub created_at: i64,
}

/// Stores a device with status `pending` (OTP algorithm SHA1): it receives
/// nothing and may only confirm until [`activate_pending`] makes it active.
pub async fn insert_pending(conn: &mut Conn, d: &NewDevice<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO devices (id, account_id, user_id, name, platform, possession_key, possession_key_id, \
         verification_key, kem_key, kem_key_id, push_provider, push_token, status, otp_seed, otp_algorithm, \
         otp_digits, otp_period, created_at, last_seen_at, offer_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, 'SHA1', $14, $15, $16, $16, $17)",
    )
    .bind(d.id)
    .bind(d.account_id)
    .bind(d.user_id)
    .bind(d.name)
    .bind(d.platform)
    .bind(d.possession_key)
    .bind(d.possession_key_id)
    .bind(d.verification_key)
    .bind(d.kem_key)
    .bind(d.kem_key_id)
    .bind(d.push_provider)
    .bind(d.push_token)
    .bind(d.otp_seed)
    .bind(d.otp_digits)
    .bind(d.otp_period)
    .bind(d.created_at)
    .bind(d.offer_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the pending device(s) of offer `offer_id` (a new activation with the
/// same offer replaces them); returns how many.
pub async fn delete_pending_for_offer(conn: &mut Conn, offer_id: &str) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM devices WHERE offer_id = $1 AND status = 'pending'")
        .bind(offer_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Makes the pending device `device_id` active; `false` if it is not pending.
pub async fn activate_pending(conn: &mut Conn, device_id: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE devices SET status = 'active', last_seen_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(now)
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// The offer a device activated with (`None` for devices activated before
/// two-phase activation) and its status; `None` for an unknown device.
pub async fn offer_and_status(
    db: &Db,
    device_id: &str,
) -> StoreResult<Option<(Option<String>, String)>> {
    let row = sqlx::query("SELECT offer_id, status FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut db.conn().await?)
        .await?;
    row.map(|r| Ok((r.try_get("offer_id")?, r.try_get("status")?)))
        .transpose()
}

/// Deletes pending devices whose offer expired before `now` or was used (by
/// another device); returns their ids.
pub async fn delete_stale_pending(db: &Db, now: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "DELETE FROM devices WHERE status = 'pending' AND (offer_id IS NULL OR offer_id IN \
         (SELECT id FROM enrollment_offers WHERE expires_at < $1 OR used_at IS NOT NULL)) \
         RETURNING id",
    )
    .bind(now)
    .fetch_all(&mut db.conn().await?)
    .await?;
    rows.iter().map(|r| r.try_get("id")).collect()
}

/// Records that the device was seen.
pub async fn touch(db: &Db, device_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(device_id)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(())
}

/// Replaces the device's KEM key (after each answer) and records it was seen.
pub async fn rotate_kem_key(
    conn: &mut Conn,
    device_id: &str,
    kem_key: &str,
    kem_key_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE devices SET kem_key = $1, kem_key_id = $2, last_seen_at = $3 WHERE id = $4",
    )
    .bind(kem_key)
    .bind(kem_key_id)
    .bind(now)
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the device's push registration.
pub async fn set_push(
    db: &Db,
    device_id: &str,
    provider: &str,
    token: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE devices SET push_provider = $1, push_token = $2, last_seen_at = $3 WHERE id = $4",
    )
    .bind(provider)
    .bind(token)
    .bind(now)
    .bind(device_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// Forgets the push token the provider no longer accepts (unless replaced meanwhile).
pub async fn clear_push_token(db: &Db, device_id: &str, token: &str) -> StoreResult<()> {
    sqlx::query("UPDATE devices SET push_token = NULL WHERE id = $1 AND push_token = $2")
        .bind(device_id)
        .bind(token)
        .execute(&mut db.conn().await?)
        .await?;
    Ok(())
}

/// Marks the user's active device removed; `false` if there was none.
pub async fn remove(
    conn: &mut Conn,
    device_id: &str,
    user_id: &str,
    reason: &str,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE devices SET status = 'removed', removed_at = $1, removed_reason = $2, push_token = NULL \
         WHERE id = $3 AND user_id = $4 AND status = 'active'",
    )
    .bind(now)
    .bind(reason)
    .bind(device_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// What a device webhook names.
#[derive(Debug, FromRow)]
pub struct DeviceEventRow {
    /// The user's name (the relying party's user id).
    pub user_name: String,
    /// User-chosen device name.
    pub name: String,
    /// `android`, `ios`, `desktop`.
    pub platform: String,
}

/// The user and the name of device `device_id` (also once removed).
pub async fn event_info(db: &Db, device_id: &str) -> StoreResult<Option<DeviceEventRow>> {
    sqlx::query_as(
        "SELECT u.name AS user_name, d.name, d.platform FROM devices d \
         JOIN users u ON u.id = d.user_id WHERE d.id = $1",
    )
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// A device as its relying party lists it.
#[derive(Debug, FromRow)]
pub struct DeviceListRow {
    /// Device id.
    pub id: String,
    /// User-chosen name.
    pub name: String,
    /// `android`, `ios`, `desktop`.
    pub platform: String,
    /// `none`, `fcm`, `apns`, `unifiedpush`.
    pub push_provider: String,
    /// `active` or `removed`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen_at: i64,
}

/// The devices of user `user` of `rp_id`, oldest first. Pending devices (an
/// activation not confirmed yet) are not listed: they are not the user's yet.
pub async fn list_for_user(db: &Db, rp_id: &str, user: &str) -> StoreResult<Vec<DeviceListRow>> {
    sqlx::query_as(
        "SELECT d.id, d.name, d.platform, d.push_provider, d.status, d.created_at, d.last_seen_at \
         FROM devices d JOIN users u ON u.id = d.user_id WHERE u.rp_id = $1 AND u.name = $2 \
         AND d.status <> 'pending' ORDER BY d.created_at",
    )
    .bind(rp_id)
    .bind(user)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// The device an offline challenge is for.
#[derive(Debug, FromRow)]
pub struct OfflineTargetRow {
    /// The device.
    pub device_id: String,
    /// Its account id.
    pub account_id: String,
    /// The user.
    pub user_id: String,
}

/// User `user`'s active device `device_id` (empty: the most recently activated one).
pub async fn offline_target(
    db: &Db,
    rp_id: &str,
    user: &str,
    device_id: &str,
) -> StoreResult<Option<OfflineTargetRow>> {
    sqlx::query_as(
        "SELECT d.id AS device_id, d.account_id, u.id AS user_id FROM devices d \
         JOIN users u ON u.id = d.user_id \
         WHERE u.rp_id = $1 AND u.name = $2 AND d.status = 'active' AND ($3 = '' OR d.id = $3) \
         ORDER BY d.created_at DESC LIMIT 1",
    )
    .bind(rp_id)
    .bind(user)
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Whose a device is.
#[derive(Debug, FromRow)]
pub struct OwnerRow {
    /// The relying party.
    pub rp_id: String,
    /// The user (internal id).
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
}

/// The owner of device `device_id`, if it is listed (not pending).
pub async fn owner(db: &Db, device_id: &str) -> StoreResult<Option<OwnerRow>> {
    sqlx::query_as(
        "SELECT u.rp_id, u.id AS user_id, u.name AS user_name FROM devices d \
         JOIN users u ON u.id = d.user_id WHERE d.id = $1 AND d.status <> 'pending'",
    )
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Renames device `device_id`; `false`: no such listed device.
pub async fn rename(db: &Db, device_id: &str, name: &str) -> StoreResult<bool> {
    Ok(
        sqlx::query("UPDATE devices SET name = $2 WHERE id = $1 AND status <> 'pending'")
            .bind(device_id)
            .bind(name)
            .execute(&mut db.conn().await?)
            .await?
            .rows_affected()
            == 1,
    )
}
