//! `relying_parties`: names and webhooks.

use sqlx::{FromRow, Row};

use super::{Db, StoreResult};

/// A new relying party.
#[derive(Debug)]
pub struct NewRp<'a> {
    /// Its id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Webhook URL, if any.
    pub webhook_url: Option<&'a str>,
    /// The webhook secret, sealed.
    pub webhook_secret: Option<&'a str>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Stores a new relying party.
pub async fn insert(db: &Db, rp: &NewRp<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO relying_parties (id, name, webhook_url, webhook_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(rp.id)
    .bind(rp.name)
    .bind(rp.webhook_url)
    .bind(rp.webhook_secret)
    .bind(rp.created_at)
    .execute(&mut db.conn().await?)
    .await?;
    Ok(())
}

/// The id of the oldest relying party named `name`.
pub async fn find_by_name(db: &Db, name: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT id FROM relying_parties WHERE name = $1 ORDER BY created_at, id LIMIT 1")
        .bind(name)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()
}

/// A relying party's webhook.
#[derive(Debug, FromRow)]
pub struct WebhookRow {
    /// Where to `POST`.
    pub webhook_url: Option<String>,
    /// The HMAC key, sealed.
    pub webhook_secret: Option<String>,
}

/// The webhook of relying party `rp_id`.
pub async fn webhook(db: &Db, rp_id: &str) -> StoreResult<Option<WebhookRow>> {
    sqlx::query_as("SELECT webhook_url, webhook_secret FROM relying_parties WHERE id = $1")
        .bind(rp_id)
        .fetch_optional(&mut db.conn().await?)
        .await
}

/// A relying party as the operator sees it (never its webhook secret).
#[derive(Debug, FromRow, serde::Serialize)]
pub struct RpRow {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Webhook URL, if any.
    pub webhook_url: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Every relying party, oldest first.
pub async fn list(db: &Db) -> StoreResult<Vec<RpRow>> {
    sqlx::query_as(
        "SELECT id, name, webhook_url, created_at FROM relying_parties ORDER BY created_at, id",
    )
    .fetch_all(&mut db.conn().await?)
    .await
}

/// The relying party with id `id_or_name`, or else the oldest one named so.
pub async fn resolve(db: &Db, id_or_name: &str) -> StoreResult<Option<RpRow>> {
    sqlx::query_as(
        "SELECT id, name, webhook_url, created_at FROM relying_parties WHERE id = $1 OR name = $1 \
         ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END, created_at, id LIMIT 1",
    )
    .bind(id_or_name)
    .fetch_optional(&mut db.conn().await?)
    .await
}

/// Whether there is any relying party at all.
pub async fn any(db: &Db) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM relying_parties LIMIT 1")
        .fetch_optional(&mut db.conn().await?)
        .await?
        .is_some())
}

/// Sets (or with `None`, clears) the webhook of relying party `id`; the
/// secret is sealed. `false`: no such relying party.
pub async fn set_webhook(
    db: &Db,
    id: &str,
    url: Option<&str>,
    sealed_secret: Option<&str>,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE relying_parties SET webhook_url = $2, webhook_secret = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(url)
    .bind(sealed_secret)
    .execute(&mut db.conn().await?)
    .await?
    .rows_affected()
        == 1)
}

/// The stored account policy of relying party `id` (JSON), if it has one.
pub async fn account_policy(db: &Db, id: &str) -> StoreResult<Option<String>> {
    sqlx::query("SELECT account_policy FROM relying_parties WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut db.conn().await?)
        .await?
        .map(|row| row.try_get::<Option<String>, _>("account_policy"))
        .transpose()
        .map(Option::flatten)
}

/// Sets (or with `None`, resets to the server's default) the account policy
/// of relying party `id`. `false`: no such relying party.
pub async fn set_account_policy(db: &Db, id: &str, policy: Option<&str>) -> StoreResult<bool> {
    Ok(
        sqlx::query("UPDATE relying_parties SET account_policy = $2 WHERE id = $1")
            .bind(id)
            .bind(policy)
            .execute(&mut db.conn().await?)
            .await?
            .rows_affected()
            == 1,
    )
}
