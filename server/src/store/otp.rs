//! OTP credentials: devices' seeds (TOTP) and imported OATH tokens
//! (`oath_tokens`, TOTP or HOTP), with their replay counters.

use sqlx::FromRow;

use super::{Db, StoreResult};

/// Where an OTP credential is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpSource {
    /// A device's seed (`devices`).
    Device,
    /// An imported token (`oath_tokens`).
    Token,
}

impl OtpSource {
    fn table(self) -> &'static str {
        match self {
            Self::Device => "devices",
            Self::Token => "oath_tokens",
        }
    }
}

/// One active OTP credential of a user.
#[derive(Debug, FromRow)]
pub struct OtpCredentialRow {
    /// `device` or `token`.
    pub source: String,
    /// The device or token id.
    pub id: String,
    /// `totp` or `hotp`.
    pub kind: String,
    /// The secret, sealed.
    pub secret: String,
    /// `SHA1`, `SHA256`, `SHA512`.
    pub algorithm: String,
    /// Code digits.
    pub digits: i64,
    /// TOTP period.
    pub period: i64,
    /// HOTP: the next counter.
    pub hotp_counter: i64,
    /// TOTP: the last accepted time step.
    pub totp_last_step: i64,
}

impl OtpCredentialRow {
    /// Where it is stored.
    pub fn source(&self) -> OtpSource {
        if self.source == "device" {
            OtpSource::Device
        } else {
            OtpSource::Token
        }
    }
}

/// The user's active devices' seeds, then its active OATH tokens.
pub async fn credentials(db: &Db, user_id: &str) -> StoreResult<Vec<OtpCredentialRow>> {
    sqlx::query_as(
        "SELECT 'device' AS source, id, 'totp' AS kind, otp_seed AS secret, otp_algorithm AS algorithm, \
         otp_digits AS digits, otp_period AS period, hotp_counter, totp_last_step \
         FROM devices WHERE user_id = $1 AND status = 'active' \
         UNION ALL \
         SELECT 'token', id, kind, secret, algorithm, digits, period, hotp_counter, totp_last_step \
         FROM oath_tokens WHERE user_id = $1 AND status = 'active'",
    )
    .bind(user_id)
    .fetch_all(&mut db.conn().await?)
    .await
}

/// Accepts TOTP step `step` (recording the drift) only if it is later than the
/// last accepted one; `false` otherwise.
pub async fn advance_totp(
    db: &Db,
    source: OtpSource,
    id: &str,
    step: i64,
    drift: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {} SET totp_last_step = $1, totp_drift = $2 \
         WHERE id = $3 AND totp_last_step < $1",
        source.table()
    ))
    .bind(step)
    .bind(drift)
    .bind(id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// Moves the HOTP counter forward to `next`; `false` if it is there already.
pub async fn advance_hotp(db: &Db, source: OtpSource, id: &str, next: i64) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {} SET hotp_counter = $1 WHERE id = $2 AND hotp_counter < $1",
        source.table()
    ))
    .bind(next)
    .bind(id)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(done.rows_affected() != 0)
}

/// An imported OATH token.
#[derive(Debug)]
pub struct NewOathToken<'a> {
    /// Its id.
    pub id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// `hotp` or `totp`.
    pub kind: &'a str,
    /// The secret, sealed.
    pub secret: &'a str,
    /// `SHA1`, `SHA256`, `SHA512`.
    pub algorithm: &'a str,
    /// Code digits.
    pub digits: i64,
    /// TOTP period.
    pub period: i64,
    /// HOTP: the next counter.
    pub hotp_counter: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// Stores an imported token.
pub async fn insert_oath_token(db: &Db, t: &NewOathToken<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oath_tokens (id, user_id, kind, secret, algorithm, digits, period, hotp_counter, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(t.id)
    .bind(t.user_id)
    .bind(t.kind)
    .bind(t.secret)
    .bind(t.algorithm)
    .bind(t.digits)
    .bind(t.period)
    .bind(t.hotp_counter)
    .bind(t.created_at)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}
