//! `transfers`: moving an account to a new phone, approved by the old device
//! (docs/PROTOCOL.md §14). The offer is an ordinary `enrollment_offers` row.

use sqlx::FromRow;

use super::{Conn, Db, StoreResult};

/// A transfer.
#[derive(Debug, Clone, FromRow)]
pub struct TransferRow {
    /// The offer the new phone activates with.
    pub offer_id: String,
    /// The device that started it (and approves it).
    pub old_device_id: String,
    /// 1: remove the old device once the new one is active.
    pub remove_old: i64,
    /// `started`, `awaiting`, `approved`, `denied`.
    pub state: String,
    /// The pending device waiting for the approval.
    pub new_device_id: Option<String>,
    /// The approval challenge.
    pub tx_id: Option<String>,
}

const COLUMNS: &str = "offer_id, old_device_id, remove_old, state, new_device_id, tx_id";

/// Records a started transfer for offer `offer_id` (in the offer's transaction).
pub async fn insert(
    conn: &mut Conn,
    offer_id: &str,
    old_device_id: &str,
    remove_old: bool,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO transfers (offer_id, old_device_id, remove_old, created_at, state) \
         VALUES ($1, $2, $3, $4, 'started')",
    )
    .bind(offer_id)
    .bind(old_device_id)
    .bind(i64::from(remove_old))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The transfer of offer `offer_id`, if the offer is one.
pub async fn for_offer(db: &Db, offer_id: &str) -> StoreResult<Option<TransferRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM transfers WHERE offer_id = $1"
    ))
    .bind(offer_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// The transfer whose approval challenge is `tx`, if any.
pub async fn for_tx(conn: &mut Conn, tx: &str) -> StoreResult<Option<TransferRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM transfers WHERE tx_id = $1"))
        .bind(tx)
        .fetch_optional(&mut *conn)
        .await
}

/// Points the transfer at pending device `new_device_id` and its approval
/// challenge `tx_id`, unless it already waits for that device or was decided;
/// `false` when refused (a concurrent confirmation of the same device won).
pub async fn await_approval(
    conn: &mut Conn,
    offer_id: &str,
    new_device_id: &str,
    tx_id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE transfers SET state = 'awaiting', new_device_id = $2, tx_id = $3 \
         WHERE offer_id = $1 AND state IN ('started', 'awaiting') \
         AND (new_device_id IS NULL OR new_device_id <> $2)",
    )
    .bind(offer_id)
    .bind(new_device_id)
    .bind(tx_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// Records the decision (`approved` or `denied`) of the transfer waiting on
/// challenge `tx_id`; `false` if it is not waiting on it any more.
pub async fn decide(
    conn: &mut Conn,
    offer_id: &str,
    tx_id: &str,
    state: &str,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE transfers SET state = $3, decided_at = $4 \
         WHERE offer_id = $1 AND tx_id = $2 AND state = 'awaiting'",
    )
    .bind(offer_id)
    .bind(tx_id)
    .bind(state)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// Uses offer `offer_id` up without a device (a denied transfer): it cannot
/// be activated or confirmed any more.
pub async fn consume_offer(conn: &mut Conn, offer_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE enrollment_offers SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(offer_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends a pending approval challenge that no longer decides anything (its
/// new phone was replaced); `true` if it was pending.
pub async fn withdraw_challenge(conn: &mut Conn, tx: &str) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE challenges SET state = 'expired' WHERE id = $1 AND state = 'pending'")
            .bind(tx)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() != 0)
}

/// State and expiry of challenge `tx`.
pub async fn challenge_state(db: &Db, tx: &str) -> StoreResult<Option<(String, i64)>> {
    sqlx::query_as("SELECT state, expires_at FROM challenges WHERE id = $1")
        .bind(tx)
        .fetch_optional(&mut db.conn().await?)
        .await
}

/// What a transfer needs of a device: its account, user, RP, status, name,
/// platform, keys for sealing and waking, and the label and issuer of the offer
/// it came with (absent for devices older than two-phase activation).
#[derive(Debug, FromRow)]
pub struct DeviceForTransfer {
    /// The account on the device.
    pub account_id: String,
    /// The user.
    pub user_id: String,
    /// The user's name at the RP.
    pub user_name: String,
    /// The RP.
    pub rp_id: String,
    /// The RP's display name.
    pub rp_name: String,
    /// `pending`, `active`, `removed`.
    pub status: String,
    /// The device's name.
    pub name: String,
    /// `android`, `ios`, `desktop`.
    pub platform: String,
    /// KEM key, base64url SEC1.
    pub kem_key: String,
    /// Push provider.
    pub push_provider: String,
    /// Push token (or Web Push subscription).
    pub push_token: Option<String>,
    /// Label of the device's offer.
    pub label: Option<String>,
    /// Issuer of the device's offer.
    pub issuer: Option<String>,
}

/// Device `device_id` as a transfer sees it.
pub async fn device(db: &Db, device_id: &str) -> StoreResult<Option<DeviceForTransfer>> {
    sqlx::query_as(
        "SELECT d.account_id, d.user_id, u.name AS user_name, u.rp_id, r.name AS rp_name, \
         d.status, d.name, d.platform, d.kem_key, d.push_provider, d.push_token, \
         o.label, o.issuer \
         FROM devices d JOIN users u ON u.id = d.user_id \
         JOIN relying_parties r ON r.id = u.rp_id \
         LEFT JOIN enrollment_offers o ON o.id = d.offer_id WHERE d.id = $1",
    )
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Ends transfer `offer_id` as denied before any approval was asked (the old
/// device is gone), naming the new device that asked.
pub async fn refuse(
    conn: &mut Conn,
    offer_id: &str,
    new_device_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE transfers SET state = 'denied', new_device_id = $2, decided_at = $3 \
         WHERE offer_id = $1 AND state IN ('started', 'awaiting')",
    )
    .bind(offer_id)
    .bind(new_device_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
