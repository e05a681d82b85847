//! `audit_log`: one row per security-relevant event.

use sqlx::FromRow;

use super::{Conn, Db, StoreResult};

/// Who and what an audit record is about.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuditSubject<'a> {
    /// The relying party.
    pub rp: Option<&'a str>,
    /// The user (internal id).
    pub user: Option<&'a str>,
    /// The device.
    pub device: Option<&'a str>,
    /// The challenge.
    pub tx: Option<&'a str>,
}

/// One audit record.
#[derive(Debug, Clone, Copy)]
pub struct AuditRecord<'a> {
    /// Its id.
    pub id: &'a str,
    /// Unix seconds.
    pub at: i64,
    /// Who and what.
    pub who: AuditSubject<'a>,
    /// The event name.
    pub event: &'a str,
    /// A short fixed phrase.
    pub reason: &'a str,
}

/// Appends `record` on `conn` (a pooled connection or a transaction).
pub async fn insert(conn: &mut Conn, record: &AuditRecord<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, rp_id, user_id, device_id, tx_id, event, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(record.id)
    .bind(record.at)
    .bind(record.who.rp)
    .bind(record.who.user)
    .bind(record.who.device)
    .bind(record.who.tx)
    .bind(record.event)
    .bind(record.reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What an audit query selects; every field narrows it.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuditFilter<'a> {
    /// The relying party.
    pub rp: Option<&'a str>,
    /// The user (internal id).
    pub user: Option<&'a str>,
    /// The challenge.
    pub tx: Option<&'a str>,
    /// The event name.
    pub event: Option<&'a str>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
    /// At most this many records.
    pub limit: i64,
}

/// One stored audit record.
#[derive(Debug, FromRow, serde::Serialize)]
pub struct AuditRow {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// The relying party.
    pub rp_id: Option<String>,
    /// The user (internal id).
    pub user_id: Option<String>,
    /// The device.
    pub device_id: Option<String>,
    /// The challenge.
    pub tx_id: Option<String>,
    /// The event name.
    pub event: String,
    /// A short fixed phrase.
    pub reason: String,
}

/// The records `filter` selects, oldest first.
pub async fn query(db: &Db, filter: &AuditFilter<'_>) -> StoreResult<Vec<AuditRow>> {
    sqlx::query_as(
        "SELECT id, at, rp_id, user_id, device_id, tx_id, event, reason FROM audit_log \
         WHERE ($1 IS NULL OR rp_id = $1) AND ($2 IS NULL OR user_id = $2) \
         AND ($3 IS NULL OR tx_id = $3) AND ($4 IS NULL OR event = $4) \
         AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
         ORDER BY at, id LIMIT $7",
    )
    .bind(filter.rp)
    .bind(filter.user)
    .bind(filter.tx)
    .bind(filter.event)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.limit)
    .fetch_all(&mut db.conn().await?)
    .await
}
