//! Operator actions (`countersign admin`): relying parties, their API keys and
//! webhooks, users and devices, and audit queries. They run in the operator's
//! process on the server's database, through the same services as the HTTP API.
//!
//! API keys look like `csk_<key id>.<secret>`: the key id (16 base64url characters)
//! finds the row, the secret (256 random bits) is stored only as its SHA-256 and
//! compared in constant time. A fast hash is right here: the secret is random, not
//! a password, so there is nothing to brute-force.

use std::sync::Arc;

use countersign_protocol::activation::VerificationPolicy;
use countersign_protocol::crypto::{random_array, sha256};

use super::audit::{AuditSubject, audit};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::keys::MasterKey;
use crate::store::{self, Db};
use crate::util::{b64, now, random_id};

/// The longest grace period of a rotated key (30 days).
pub const MAX_GRACE_SECS: i64 = 30 * 86_400;

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
    let rp_id = random_id("rp_")?;
    let (webhook_secret, sealed_secret) = new_webhook_secret(master, &rp_id, webhook_url)?;
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
    let api_key = add_api_key(db, &rp_id, "first key").await?;
    audit(
        db,
        AuditSubject {
            rp: Some(&rp_id),
            ..Default::default()
        },
        "rp_created",
        "by an operator",
    )
    .await?;
    Ok(CreatedRp {
        rp_id,
        api_key,
        webhook_secret,
    })
}

/// A webhook URL checked, and a fresh secret for it: (shown once, sealed).
fn new_webhook_secret(
    master: &MasterKey,
    rp_id: &str,
    webhook_url: Option<&str>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(u) = webhook_url else {
        return Ok((None, None));
    };
    let parsed = url::Url::parse(u).map_err(|_| ApiError::bad_request("invalid webhook URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(ApiError::bad_request("webhook URL must be http(s)"));
    }
    let secret = b64(&random_array::<32>().map_err(ApiError::internal)?);
    let sealed = master.seal(
        &format!("relying_parties:{rp_id}:webhook"),
        secret.as_bytes(),
    )?;
    Ok((Some(secret), Some(sealed)))
}

/// Adds an API key named `label` to a relying party and returns it (shown once).
pub async fn add_api_key(db: &Db, rp_id: &str, label: &str) -> ApiResult<String> {
    check_label(label)?;
    let key_id = b64(&random_array::<12>().map_err(ApiError::internal)?);
    let secret = zeroize::Zeroizing::new(b64(&random_array::<32>().map_err(ApiError::internal)?));
    let key_hash = hex::encode(sha256(secret.as_bytes()));
    store::api_keys::insert(
        db,
        &store::api_keys::NewKey {
            key_id: &key_id,
            rp_id,
            key_hash: &key_hash,
            label,
            created_at: now(),
        },
    )
    .await?;
    audit(
        db,
        AuditSubject {
            rp: Some(rp_id),
            ..Default::default()
        },
        "api_key_created",
        &format!("key {key_id}"),
    )
    .await?;
    Ok(format!("csk_{key_id}.{}", secret.as_str()))
}

/// A new key named `label` for a process that holds its key only in memory
/// (the demo pages): earlier keys with that label are revoked, so restarts do
/// not pile up valid keys nobody holds.
pub async fn replace_process_key(db: &Db, rp_id: &str, label: &str) -> ApiResult<String> {
    let t = now();
    for key in store::api_keys::list(db, Some(rp_id)).await? {
        if key.label == label && key.revoked_at.is_none_or(|at| at > t) {
            store::api_keys::revoke(db, &key.key_id, t, t).await?;
        }
    }
    add_api_key(db, rp_id, label).await
}

fn check_label(label: &str) -> ApiResult<()> {
    if label.len() > 64 || label.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "label must be at most 64 printable characters",
        ));
    }
    Ok(())
}

/// The id of the relying party named `name` and, when this call created it,
/// its first API key (shown once).
pub async fn ensure_rp(
    db: &Db,
    master: &MasterKey,
    name: &str,
) -> ApiResult<(String, Option<String>)> {
    if let Some(id) = store::relying_parties::find_by_name(db, name).await? {
        return Ok((id, None));
    }
    let created = create_rp(db, master, name, None).await?;
    Ok((created.rp_id, Some(created.api_key)))
}

/// The relying party `id_or_name` (its id, or else the oldest one so named).
pub async fn find_rp(db: &Db, id_or_name: &str) -> ApiResult<store::relying_parties::RpRow> {
    store::relying_parties::resolve(db, id_or_name)
        .await?
        .ok_or_else(|| ApiError::not_found("relying party"))
}

/// Sets (or with `None`, clears) a relying party's webhook URL with a new
/// secret, returned once.
pub async fn set_webhook(
    db: &Db,
    master: &MasterKey,
    rp_id: &str,
    url: Option<&str>,
) -> ApiResult<Option<String>> {
    let (secret, sealed) = new_webhook_secret(master, rp_id, url)?;
    if !store::relying_parties::set_webhook(db, rp_id, url, sealed.as_deref()).await? {
        return Err(ApiError::not_found("relying party"));
    }
    let reason = if url.is_some() { "set" } else { "cleared" };
    audit(
        db,
        AuditSubject {
            rp: Some(rp_id),
            ..Default::default()
        },
        "webhook_changed",
        reason,
    )
    .await?;
    Ok(secret)
}

/// Sets the verification policy new enrollments of relying party `rp_id` get
/// (existing accounts keep theirs: it is signed into their activation), or
/// with `None` resets it to the server's default. Returns the policy in force.
pub async fn set_account_policy(
    db: &Db,
    rp_id: &str,
    policy: Option<VerificationPolicy>,
) -> ApiResult<VerificationPolicy> {
    let text = match &policy {
        Some(p) => {
            p.validate().map_err(|e| {
                ApiError::bad_request(format!(
                    "policy: {e} (PIN length 4-16, attempts 3-20, biometric default needs biometrics allowed)"
                ))
            })?;
            Some(serde_json::to_string(p).map_err(ApiError::internal)?)
        }
        None => None,
    };
    if !store::relying_parties::set_account_policy(db, rp_id, text.as_deref()).await? {
        return Err(ApiError::not_found("relying party"));
    }
    audit(
        db,
        AuditSubject {
            rp: Some(rp_id),
            ..Default::default()
        },
        "policy_changed",
        if policy.is_some() {
            "set"
        } else {
            "reset to the default"
        },
    )
    .await?;
    super::devices::account_policy_for(db, rp_id).await
}

/// The key with id `key_id` (`csk_<key id>.…` or the bare id).
pub async fn find_key(db: &Db, key_id: &str) -> ApiResult<store::api_keys::KeyRow> {
    let bare = key_id.strip_prefix("csk_").unwrap_or(key_id);
    let bare = bare.split('.').next().unwrap_or(bare);
    store::api_keys::get(db, bare)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))
}

/// A new key for the same relying party as `key_id`, which keeps working for
/// `grace_secs` more (0: stops now). Returns the new key (shown once) and when
/// the old one stops.
pub async fn rotate_key(db: &Db, key_id: &str, grace_secs: i64) -> ApiResult<(String, i64)> {
    if !(0..=MAX_GRACE_SECS).contains(&grace_secs) {
        return Err(ApiError::bad_request("grace period must be 0 to 30 days"));
    }
    let old = find_key(db, key_id).await?;
    let t = now();
    if old.revoked_at.is_some_and(|at| at <= t) {
        return Err(ApiError::bad_request("that key is revoked already"));
    }
    let label = format!("rotated from {}", old.key_id);
    let new_key = add_api_key(db, &old.rp_id, &label).await?;
    let ends = t + grace_secs;
    store::api_keys::revoke(db, &old.key_id, ends, t).await?;
    let ends = find_key(db, &old.key_id).await?.revoked_at.unwrap_or(ends);
    audit(
        db,
        AuditSubject {
            rp: Some(&old.rp_id),
            ..Default::default()
        },
        "api_key_rotated",
        &format!("key {} by an operator", old.key_id),
    )
    .await?;
    Ok((new_key, ends))
}

/// Revokes key `key_id` now; every instance refuses it from its next request
/// (the statements that serve a request check it). `not_found` when it is
/// unknown, `bad_request` when it is revoked already.
pub async fn revoke_key(db: &Db, key_id: &str) -> ApiResult<store::api_keys::KeyRow> {
    let key = find_key(db, key_id).await?;
    let t = now();
    if key.revoked_at.is_some_and(|at| at <= t)
        || !store::api_keys::revoke(db, &key.key_id, t, t).await?
    {
        return Err(ApiError::bad_request("that key is revoked already"));
    }
    audit(
        db,
        AuditSubject {
            rp: Some(&key.rp_id),
            ..Default::default()
        },
        "api_key_revoked",
        &format!("key {} by an operator", key.key_id),
    )
    .await?;
    find_key(db, &key.key_id).await
}

/// User `name` of relying party `rp_id`.
pub async fn find_user(db: &Db, rp_id: &str, name: &str) -> ApiResult<store::users::UserRow> {
    store::users::get(db, rp_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// The devices of user `user` of relying party `rp_id`, oldest first.
pub async fn list_devices(
    db: &Db,
    rp_id: &str,
    user: &str,
) -> ApiResult<Vec<super::devices::DeviceSummary>> {
    super::devices::list_for_rp(db, rp_id, user).await
}

/// Renames device `device_id` (what the relying party and the audit show).
pub async fn rename_device(db: &Db, device_id: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1-64 printable characters",
        ));
    }
    let owner = store::devices::owner(db, device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    if !store::devices::rename(db, device_id, name).await? {
        return Err(ApiError::not_found("device"));
    }
    audit(
        db,
        AuditSubject {
            rp: Some(&owner.rp_id),
            user: Some(&owner.user_id),
            device: Some(device_id),
            tx: None,
        },
        "device_renamed",
        "by an operator",
    )
    .await
}

/// Removes device `device_id`: the same as the relying party's removal
/// (long-polls woken, pending challenges ended, webhook), audited as an
/// operator's.
pub async fn remove_device(
    state: &Arc<AppState>,
    device_id: &str,
) -> ApiResult<store::devices::OwnerRow> {
    super::devices::remove_by_operator(state, device_id).await
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
