//! Keeps the database bounded: the janitor deletes challenges, offline
//! challenges and activation offers some time after they expired, and audit
//! records after `retention.audit_days` (docs/SERVER.md "Retention"). Used
//! nonces, QR logins and stale pending devices have their own sweeps.
//!
//! Nothing that still matters is deleted: a pending challenge has not expired,
//! an approval's push OTP validates only within 600 s of it, and the retention
//! is at least an hour. A device's answer to a pruned challenge is refused as
//! for an unknown one, which its core treats as final.

use crate::AppState;
use crate::error::ApiResult;
use crate::store;
use crate::store::retention::Pruned;

/// One pruning pass at time `now`: at most one batch per table, so a pass is
/// short; a backlog shrinks by a batch per run.
pub async fn prune(state: &AppState, now: i64) -> ApiResult<Pruned> {
    let r = &state.config.retention;
    let batch = i64::from(r.batch);
    let db = &state.db;
    let challenges_before = now - i64::from(r.challenges_secs);
    let mut pruned = Pruned {
        challenges: store::retention::challenges(db, challenges_before, batch).await?,
        offline_challenges: store::retention::offline_challenges(db, challenges_before, batch)
            .await?,
        offers: store::retention::offers(db, now - i64::from(r.offers_secs), batch).await?,
        audit: 0,
    };
    if r.audit_days > 0 {
        pruned.audit =
            store::retention::audit(db, now - i64::from(r.audit_days) * 86_400, batch).await?;
    }
    if pruned != Pruned::default() {
        tracing::debug!(?pruned, "pruned finished records");
    }
    Ok(pruned)
}
