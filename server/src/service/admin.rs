//! Operator actions: creating relying parties and their API keys, unlocking users.
//!
//! API keys look like `csk_<key id>.<secret>`: the key id (16 base64url characters)
//! finds the row, the secret (256 random bits) is stored only as its SHA-256 and
//! compared in constant time. A fast hash is right here: the secret is random, not
//! a password, so there is nothing to brute-force.

use countersign_protocol::crypto::{random_array, sha256};

use super::audit::{AuditSubject, audit};
use crate::error::{ApiError, ApiResult};
use crate::keys::MasterKey;
use crate::store::{self, Db};
use crate::util::{b64, now, random_id};

/// What [`create_rp`] returns; the secrets are shown once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedRp {
    /// The relying party id.
    pub rp_id: String,
    /// The API key (`Authorization: Bearer <api_key>`).
    pub api_key: String,
    /// The webhook HMAC key (when a webhook URL was given).
    pub webhook_secret: Option<String>,
}

/// Creates a relying party with one API key.
pub async fn create_rp(
    db: &Db,
    master: &MasterKey,
    name: &str,
    webhook_url: Option<&str>,
) -> ApiResult<CreatedRp> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1-64 printable characters",
        ));
    }
    if let Some(u) = webhook_url {
        let parsed =
            url::Url::parse(u).map_err(|_| ApiError::bad_request("invalid webhook URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ApiError::bad_request("webhook URL must be http(s)"));
        }
    }
    let rp_id = random_id("rp_")?;
    let webhook_secret = match webhook_url {
        Some(_) => Some(b64(&random_array::<32>().map_err(ApiError::internal)?)),
        None => None,
    };
    let sealed_secret = match &webhook_secret {
        Some(s) => Some(master.seal(&format!("relying_parties:{rp_id}:webhook"), s.as_bytes())?),
        None => None,
    };
    store::relying_parties::insert(
        db,
        &store::relying_parties::NewRp {
            id: &rp_id,
            name,
            webhook_url,
            webhook_secret: sealed_secret.as_deref(),
            created_at: now(),
        },
    )
    .await?;
    let api_key = add_api_key(db, &rp_id).await?;
    Ok(CreatedRp {
        rp_id,
        api_key,
        webhook_secret,
    })
}

/// Adds an API key to a relying party and returns it (shown once).
pub async fn add_api_key(db: &Db, rp_id: &str) -> ApiResult<String> {
    let key_id = b64(&random_array::<12>().map_err(ApiError::internal)?);
    let secret = zeroize::Zeroizing::new(b64(&random_array::<32>().map_err(ApiError::internal)?));
    let key_hash = hex::encode(sha256(secret.as_bytes()));
    store::api_keys::insert(db, &key_id, rp_id, &key_hash, now()).await?;
    Ok(format!("csk_{key_id}.{}", secret.as_str()))
}

/// The id of the relying party named `name`, creating it (without webhook) if
/// there is none.
pub async fn ensure_rp(db: &Db, master: &MasterKey, name: &str) -> ApiResult<String> {
    if let Some(id) = store::relying_parties::find_by_name(db, name).await? {
        return Ok(id);
    }
    Ok(create_rp(db, master, name, None).await?.rp_id)
}

/// Unlocks user `user` of relying party `rp_id`: lifts a fraud lock ("not me")
/// and a suppression after misses, and ends the miss streak. `not_found` for an
/// unknown user. Audited.
pub async fn unlock_user(db: &Db, rp_id: &str, user: &str) -> ApiResult<()> {
    let user_id = store::users::find_id(db, rp_id, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if !store::users::unlock(db, &user_id).await? {
        return Err(ApiError::not_found("user"));
    }
    let who = AuditSubject {
        rp: Some(rp_id),
        user: Some(&user_id),
        ..Default::default()
    };
    audit(db, who, "unlocked", "by an operator").await
}
