//! `challenges` and `challenge_deliveries`: push challenges, one sealed copy
//! per device, their answers and push OTPs.

use sqlx::{FromRow, Row};

use super::{Conn, Db, StoreResult};

/// A user and one of its active devices (no device: the `device_*` fields are
/// `None`), as a push needs them.
#[derive(Debug, FromRow)]
pub struct PushTargetRow {
    /// The user's id.
    pub user_id: String,
    /// 1 while pushes are suppressed after misses.
    pub suppressed: i64,
    /// Pushes locked by a fraud report until then (Unix seconds).
    pub locked_until: i64,
    /// No push before then: the wait after a miss (Unix seconds).
    pub next_push_at: i64,
    /// The device.
    pub device_id: Option<String>,
    /// The device's account id.
    pub account_id: Option<String>,
    /// The device's current KEM key (base64url SEC1).
    pub kem_key: Option<String>,
    /// `none`, `fcm`, `apns`, `unifiedpush`.
    pub push_provider: Option<String>,
    /// The provider's token.
    pub push_token: Option<String>,
}

/// User `user` of `rp_id` with its active devices, only while API key `key_id`
/// is valid at `now`. No rows: no such user, or a revoked key.
pub async fn push_targets(
    db: &Db,
    rp_id: &str,
    user: &str,
    key_id: &str,
    now: i64,
) -> StoreResult<Vec<PushTargetRow>> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.suppressed, u.locked_until, u.next_push_at, d.id AS device_id, d.account_id, d.kem_key, \
         d.push_provider, d.push_token \
         FROM users u LEFT JOIN devices d ON d.user_id = u.id AND d.status = 'active' \
         WHERE u.rp_id = $1 AND u.name = $2 \
         AND EXISTS (SELECT 1 FROM api_keys WHERE key_id = $3 AND (revoked_at IS NULL OR revoked_at > $4))",
    )
    .bind(rp_id)
    .bind(user)
    .bind(key_id)
    .bind(now)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// How many of the user's challenges are pending and not yet expired.
pub async fn count_pending(db: &Db, user_id: &str, now: i64) -> StoreResult<i64> {
    sqlx::query(
        "SELECT COUNT(*) AS pending FROM challenges \
         WHERE user_id = $1 AND state = 'pending' AND expires_at >= $2",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(&mut db.conn().await?)
    .await?
    .try_get("pending")
}

/// A new pending challenge.
#[derive(Debug)]
pub struct NewChallenge<'a> {
    /// The transaction id.
    pub id: &'a str,
    /// The relying party.
    pub rp_id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// `login` or `transaction`.
    pub kind: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// `off`, `pick` or `type`.
    pub number_mode: &'a str,
    /// The number shown on the login page.
    pub number: Option<&'a str>,
    /// `none`, `pin` or `biometric`.
    pub verification: &'a str,
    /// The RP's request (context, text, transaction) as JSON.
    pub request: &'a str,
}

/// Stores a pending challenge.
pub async fn insert(conn: &mut Conn, c: &NewChallenge<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO challenges (id, rp_id, user_id, kind, state, created_at, expires_at, \
         number_mode, number, verification, request) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id)
    .bind(c.rp_id)
    .bind(c.user_id)
    .bind(c.kind)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.number_mode)
    .bind(c.number)
    .bind(c.verification)
    .bind(c.request)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A challenge as sealed for one device.
#[derive(Debug)]
pub struct NewDelivery<'a> {
    /// The transaction id.
    pub tx_id: &'a str,
    /// The device.
    pub device_id: &'a str,
    /// base64url of the challenge hash the answer must sign.
    pub display_hash: &'a str,
    /// base64url of the challenge JSON.
    pub plaintext: &'a str,
    /// The sealed challenge signed by S (JSON).
    pub sealed: &'a str,
    /// Id of the KEM key it was sealed to.
    pub kem_key_id: &'a str,
    /// The provider its wake-up goes through (`none`: it long-polls).
    pub wake_provider: &'a str,
    /// `pending` (a wake-up is queued) or `not_configured`.
    pub wake_state: &'a str,
}

/// Stores one device's sealed copy.
pub async fn insert_delivery(conn: &mut Conn, d: &NewDelivery<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO challenge_deliveries (tx_id, device_id, display_hash, plaintext, sealed, \
         kem_key_id, wake_provider, wake_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(d.tx_id)
    .bind(d.device_id)
    .bind(d.display_hash)
    .bind(d.plaintext)
    .bind(d.sealed)
    .bind(d.kem_key_id)
    .bind(d.wake_provider)
    .bind(d.wake_state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records how the wake-up of challenge `tx` to `device_id` went (`sent` or
/// `failed`, with a short reason).
pub async fn record_wakeup(
    db: &Db,
    tx: &str,
    device_id: &str,
    state: &str,
    at: i64,
    error: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE challenge_deliveries SET wake_state = $1, wake_at = $2, wake_error = $3 \
         WHERE tx_id = $4 AND device_id = $5",
    )
    .bind(state)
    .bind(at)
    .bind(error)
    .bind(tx)
    .bind(device_id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// One targeted device's wake-up and fetch, as the RP sees them.
#[derive(Debug, FromRow)]
pub struct DeliveryRow {
    /// The device.
    pub device_id: String,
    /// `none`, `fcm`, `apns`, `unifiedpush`.
    pub wake_provider: String,
    /// `pending`, `sent`, `failed`, `not_configured`.
    pub wake_state: String,
    /// When the wake-up was sent or failed (Unix seconds).
    pub wake_at: Option<i64>,
    /// Why it failed (short, no secrets).
    pub wake_error: Option<String>,
    /// When the device fetched the challenge (Unix seconds).
    pub fetched_at: Option<i64>,
}

/// The devices challenge `tx` was sealed for, by device id.
pub async fn deliveries(db: &Db, tx: &str) -> StoreResult<Vec<DeliveryRow>> {
    sqlx::query_as(
        "SELECT device_id, wake_provider, wake_state, wake_at, wake_error, fetched_at \
         FROM challenge_deliveries WHERE tx_id = $1 ORDER BY device_id",
    )
    .bind(tx)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// A challenge's state as the RP sees it.
#[derive(Debug, FromRow)]
pub struct StatusRow {
    /// `pending`, `approved`, `denied` or `expired`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub answered_at: Option<i64>,
    /// The answering device.
    pub answered_by: Option<String>,
    /// `not_me` or `mistake`.
    pub deny_reason: Option<String>,
    /// The approval's push OTP, sealed.
    pub push_otp: Option<String>,
}

/// Challenge `tx` of `rp_id`, only while API key `key_id` is valid at `now`.
pub async fn status(
    db: &Db,
    tx: &str,
    rp_id: &str,
    key_id: &str,
    now: i64,
) -> StoreResult<Option<StatusRow>> {
    sqlx::query_as(
        "SELECT state, expires_at, answered_at, answered_by, deny_reason, push_otp \
         FROM challenges WHERE id = $1 AND rp_id = $2 \
         AND EXISTS (SELECT 1 FROM api_keys WHERE key_id = $3 AND (revoked_at IS NULL OR revoked_at > $4))",
    )
    .bind(tx)
    .bind(rp_id)
    .bind(key_id)
    .bind(now)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// A push OTP of a recent approval.
#[derive(Debug, FromRow)]
pub struct PushOtpRow {
    /// The challenge.
    pub id: String,
    /// The push OTP, sealed.
    pub push_otp: String,
    /// 1 once accepted by `/v1/rp/validate`.
    pub push_otp_used: i64,
}

/// The push OTP of challenge `tx` of user `user_id`, if it was approved with
/// one since `since`.
pub async fn push_otp_of(
    db: &Db,
    tx: &str,
    user_id: &str,
    since: i64,
) -> StoreResult<Option<PushOtpRow>> {
    sqlx::query_as(
        "SELECT id, push_otp, push_otp_used FROM challenges WHERE id = $1 AND user_id = $2 \
         AND state = 'approved' AND push_otp IS NOT NULL AND answered_at >= $3",
    )
    .bind(tx)
    .bind(user_id)
    .bind(since)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Marks the push OTP of `tx` used; `false` if it already was.
pub async fn consume_push_otp(db: &Db, tx: &str) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE challenges SET push_otp_used = 1 WHERE id = $1 AND push_otp_used = 0")
            .bind(tx)
            .execute(&mut db.conn().await?)
            .await?;
    Ok(done.rows_affected() != 0)
}

/// A challenge that just expired.
#[derive(Debug, FromRow)]
pub struct ExpiredRow {
    /// The transaction id.
    pub id: String,
    /// The relying party.
    pub rp_id: String,
    /// The user.
    pub user_id: String,
    /// `login`, `transaction`, `transfer`.
    pub kind: String,
}

/// Marks overdue pending challenges expired and returns them.
pub async fn expire_overdue(db: &Db, now: i64) -> StoreResult<Vec<ExpiredRow>> {
    sqlx::query_as(
        "UPDATE challenges SET state = 'expired' WHERE state = 'pending' AND expires_at < $1 \
         RETURNING id, rp_id, user_id, kind",
    )
    .bind(now)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// Marks expired the pending challenges sent to `device_id` that no other
/// active device can still answer (run after the device was removed, in the
/// same transaction); returns them.
pub async fn expire_for_removed_device(
    conn: &mut Conn,
    device_id: &str,
) -> StoreResult<Vec<ExpiredRow>> {
    sqlx::query_as(
        "UPDATE challenges SET state = 'expired' WHERE state = 'pending' \
         AND id IN (SELECT tx_id FROM challenge_deliveries WHERE device_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM challenge_deliveries cd JOIN devices d ON d.id = cd.device_id \
         WHERE cd.tx_id = challenges.id AND d.status = 'active') \
         RETURNING id, rp_id, user_id, kind",
    )
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await
}

/// A device's status with one of its pending challenges (or none).
#[derive(Debug, FromRow)]
pub struct PendingRow {
    /// A pending challenge sent to the device.
    pub tx_id: Option<String>,
    /// Its expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// The device's status.
    pub status: String,
}

/// The device's pending, unexpired challenges, oldest first (one row with no
/// challenge when there are none; no rows for an unknown device).
pub async fn pending_for_device(
    db: &Db,
    device_id: &str,
    now: i64,
) -> StoreResult<Vec<PendingRow>> {
    sqlx::query_as(
        "SELECT c.id AS tx_id, c.expires_at, d.status FROM devices d \
         LEFT JOIN challenge_deliveries cd ON cd.device_id = d.id \
         LEFT JOIN challenges c ON c.id = cd.tx_id AND c.state = 'pending' AND c.expires_at >= $2 \
         WHERE d.id = $1 ORDER BY c.created_at",
    )
    .bind(device_id)
    .bind(now)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// Marks the device's copy of `tx` fetched and returns it, only while the
/// challenge is pending and unexpired.
pub async fn fetch_sealed(
    db: &Db,
    tx: &str,
    device_id: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    sqlx::query(
        "UPDATE challenge_deliveries SET fetched_at = $1 WHERE tx_id = $2 AND device_id = $3 \
         AND EXISTS (SELECT 1 FROM challenges c WHERE c.id = $2 AND c.state = 'pending' \
         AND c.expires_at >= $1) RETURNING sealed",
    )
    .bind(now)
    .bind(tx)
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await?
    .map(|row| row.try_get("sealed"))
    .transpose()
}

/// A challenge's state and expiry.
#[derive(Debug, FromRow)]
pub struct StateRow {
    /// `pending`, `approved`, `denied` or `expired`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The state of `tx` if it was sent to `device_id`.
pub async fn delivered_state(db: &Db, tx: &str, device_id: &str) -> StoreResult<Option<StateRow>> {
    sqlx::query_as(
        "SELECT c.state, c.expires_at FROM challenge_deliveries cd \
         JOIN challenges c ON c.id = cd.tx_id WHERE cd.tx_id = $1 AND cd.device_id = $2",
    )
    .bind(tx)
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// What checking an answer needs.
#[derive(Debug, FromRow)]
pub struct AnswerRow {
    /// The device's copy: base64url challenge hash (`None`: not sent to it).
    pub display_hash: Option<String>,
    /// The device's copy: base64url challenge JSON.
    pub plaintext: Option<String>,
    /// The challenge's state.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The number shown on the login page.
    pub number: Option<String>,
    /// The relying party.
    pub rp_id: String,
    /// The user.
    pub user_id: String,
    /// 1 when the relying party has a webhook.
    pub has_webhook: i64,
    /// The user's consecutive denials.
    pub denial_streak: i64,
    /// The device that answered.
    pub answered_by: Option<String>,
    /// `not_me` or `mistake` for denials.
    pub deny_reason: Option<String>,
    /// Key id of the `next_kem` the accepted answer carried.
    pub answer_kem_key_id: Option<String>,
    /// Key id of the KEM key the answering device's challenges are sealed to now.
    pub device_kem_key_id: Option<String>,
    /// The `next_kem` key ids of answers counted as wrong numbers, space-separated.
    pub number_failure_kids: String,
    /// `login`, `transaction` or `transfer`.
    pub kind: String,
}

/// Challenge `tx` with the device's copy, its RP's webhook flag, its user's
/// denial streak, the answer recorded (if any) and the device's current KEM key id.
pub async fn for_answer(db: &Db, tx: &str, device_id: &str) -> StoreResult<Option<AnswerRow>> {
    sqlx::query_as(
        "SELECT cd.display_hash, cd.plaintext, c.state, c.expires_at, c.number, c.rp_id, c.user_id, \
         CASE WHEN r.webhook_url IS NULL THEN 0 ELSE 1 END AS has_webhook, u.denial_streak, \
         c.answered_by, c.deny_reason, c.answer_kem_key_id, dv.kem_key_id AS device_kem_key_id, \
         c.number_failure_kids, c.kind \
         FROM challenges c LEFT JOIN challenge_deliveries cd ON cd.tx_id = c.id AND cd.device_id = $2 \
         JOIN relying_parties r ON r.id = c.rp_id JOIN users u ON u.id = c.user_id \
         LEFT JOIN devices dv ON dv.id = $2 \
         WHERE c.id = $1",
    )
    .bind(tx)
    .bind(device_id)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// A device's answer.
#[derive(Debug)]
pub struct AnswerOutcome<'a> {
    /// The transaction id.
    pub tx: &'a str,
    /// `approved` or `denied`.
    pub state: &'a str,
    /// Unix seconds.
    pub answered_at: i64,
    /// The answering device.
    pub device_id: &'a str,
    /// `not_me` or `mistake` for denials.
    pub deny_reason: Option<&'a str>,
    /// The approval's push OTP, sealed.
    pub push_otp: Option<&'a str>,
    /// Key id of the answer's `next_kem` (recognises a retry of this answer).
    pub next_kem_key_id: &'a str,
}

/// Records the answer while the challenge is pending and unexpired; `false`
/// when another answer (or expiry) came first.
pub async fn record_answer(conn: &mut Conn, a: &AnswerOutcome<'_>) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE challenges SET state = $1, answered_at = $2, answered_by = $3, deny_reason = $4, \
         push_otp = $5, answer_kem_key_id = $6 \
         WHERE id = $7 AND state = 'pending' AND expires_at >= $2",
    )
    .bind(a.state)
    .bind(a.answered_at)
    .bind(a.device_id)
    .bind(a.deny_reason)
    .bind(a.push_otp)
    .bind(a.next_kem_key_id)
    .bind(a.tx)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// A wrong number to count on a challenge.
#[derive(Debug)]
pub struct WrongNumber<'a> {
    /// The transaction id.
    pub tx: &'a str,
    /// The answering device.
    pub device_id: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Wrong numbers that end the challenge.
    pub limit: i64,
    /// `number_failure_kids` as read (the update applies only if unchanged).
    pub counted_before: &'a str,
    /// `number_failure_kids` with this answer's key id added.
    pub counted_now: &'a str,
}

/// The challenge after a counted wrong number.
#[derive(Debug, FromRow)]
pub struct WrongNumberCount {
    /// Wrong numbers so far.
    pub number_failures: i64,
    /// `denied` when this one ended it, else `pending`.
    pub state: String,
}

/// Counts a wrong number while the challenge is pending, unexpired and
/// unchanged since it was read; at the limit it becomes denied with reason
/// `wrong_number`. `None` when it was not counted (answered, expired, or
/// counted by a concurrent copy).
pub async fn count_wrong_number(
    conn: &mut Conn,
    w: &WrongNumber<'_>,
) -> StoreResult<Option<WrongNumberCount>> {
    sqlx::query_as(
        "UPDATE challenges SET number_failures = number_failures + 1, number_failure_kids = $1, \
         state = CASE WHEN number_failures + 1 >= $2 THEN 'denied' ELSE state END, \
         deny_reason = CASE WHEN number_failures + 1 >= $2 THEN 'wrong_number' ELSE deny_reason END, \
         answered_at = CASE WHEN number_failures + 1 >= $2 THEN $3 ELSE answered_at END, \
         answered_by = CASE WHEN number_failures + 1 >= $2 THEN $4 ELSE answered_by END \
         WHERE id = $5 AND state = 'pending' AND expires_at >= $3 AND number_failure_kids = $6 \
         RETURNING number_failures, state",
    )
    .bind(w.counted_now)
    .bind(w.limit)
    .bind(w.now)
    .bind(w.device_id)
    .bind(w.tx)
    .bind(w.counted_before)
    .fetch_optional(&mut *conn)
    .await
}
