//! `audit_log`: one row per security-relevant event.

use sqlx::AnyConnection;

use super::StoreResult;

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
pub async fn insert(conn: &mut AnyConnection, record: &AuditRecord<'_>) -> StoreResult<()> {
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
