//! Audit records (event names: `enrollment`, `push`, `approval`, `denial`,
//! `fraud_report`, `suppression`, `deregistration`, …), also logged.

use crate::store::Conn;

use crate::error::ApiResult;
pub use crate::store::audit::AuditSubject;
use crate::store::{self, Db};
use crate::util::{now, time_ordered_id};

/// Appends one audit record. `reason` is a short fixed phrase, never a secret
/// or raw user input.
pub async fn audit(db: &Db, who: AuditSubject<'_>, event: &str, reason: &str) -> ApiResult<()> {
    let mut conn = db.conn().await?;
    audit_on(&mut conn, who, event, reason).await
}

/// [`audit`] on a given connection or inside a transaction, so the record commits
/// (or not) with the change it describes.
pub async fn audit_on(
    conn: &mut Conn,
    who: AuditSubject<'_>,
    event: &str,
    reason: &str,
) -> ApiResult<()> {
    let id = time_ordered_id("au_")?;
    store::audit::insert(
        conn,
        &store::audit::AuditRecord {
            id: &id,
            at: now(),
            who,
            event,
            reason,
        },
    )
    .await?;
    tracing::info!(
        event,
        reason,
        rp = who.rp,
        user = who.user,
        device = who.device,
        tx = who.tx,
        "audit"
    );
    Ok(())
}
