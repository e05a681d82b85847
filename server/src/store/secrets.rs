//! `server_secrets`: the generated master key (when none is configured) and S, sealed.

use sqlx::Row;

use super::{Db, StoreResult};

/// The secret named `name`.
pub async fn read(db: &Db, name: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("value"))
        .transpose()
}

/// Stores the secret unless one of that name exists (the first writer wins).
pub async fn insert_if_absent(db: &Db, name: &str, value: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}
