//! Creating push challenges (policy, sealing per device, wake-ups) and telling
//! the RP about outcomes (webhooks).

use std::sync::Arc;

use countersign_protocol::crypto::{HmacAlgorithm, PublicKey, hmac};
use countersign_protocol::{
    Challenge, ChallengeContext, ChallengeKind, Ephemeral, NumberMatching, SealedChallenge,
    TransactionDetails, Verification, challenge_hash,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notify::Event;
use crate::push::WakeUp;
use crate::rp::Rp;
use crate::util::{AuditSubject, audit, audit_on, b64, now, random_id, unb64};

/// What the RP asked for, validated.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Login context.
    pub context: ChallengeContext,
    /// Login or transaction.
    pub kind: ChallengeKind,
    /// Display text.
    pub text: Option<String>,
    /// Transaction fields.
    pub transaction: Option<TransactionDetails>,
    /// Required verification.
    pub verification: Verification,
    /// Number matching as sent to the device.
    pub matching: NumberMatching,
    /// The number the login page shows (`type`) / the correct choice (`pick`).
    pub number: Option<String>,
    /// Lifetime in seconds.
    pub timeout: i64,
}

/// The answer to "start a push".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushStarted {
    /// The transaction id.
    pub tx_id: String,
    /// The number to show on the login page (`null` when number matching is off).
    pub number: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// How many devices the challenge was sealed for.
    pub devices: usize,
}

struct Target {
    id: String,
    account_id: String,
    kem_key: String,
    push_provider: String,
    push_token: Option<String>,
}

fn protocol_bad_request(e: countersign_protocol::ProtocolError) -> ApiError {
    ApiError::bad_request(format!("challenge: {e}"))
}

/// Starts a push for `user`: checks the RP's API key is not revoked, suppression
/// and rate limits, seals one
/// challenge per active device, stores it, wakes the devices. `lift_suppression`
/// is set when the user typed `push`.
pub async fn start(
    state: &Arc<AppState>,
    rp: &Rp,
    user: &str,
    opts: PushOptions,
    lift_suppression: bool,
) -> ApiResult<PushStarted> {
    let policy = &state.config.policy;
    let t = now();
    // One query: the user, its suppression state and its active devices.
    let rows = sqlx::query(
        "SELECT u.id, u.suppressed, d.id, d.account_id, d.kem_key, d.push_provider, d.push_token \
         FROM users u LEFT JOIN devices d ON d.user_id = u.id AND d.status = 'active' \
         WHERE u.rp_id = $1 AND u.name = $2 \
         AND EXISTS (SELECT 1 FROM api_keys WHERE key_id = $3 AND revoked_at IS NULL)",
    )
    .bind(&rp.id)
    .bind(user)
    .bind(&rp.key_id)
    .fetch_all(&state.db.pool)
    .await?;
    let no_device = || ApiError::new(ErrorCode::NoDevice, "the user has no active device");
    let Some(first) = rows.first() else {
        // No such user, or the API key was revoked (the RP's key is checked here,
        // see `rp::authenticate_hot`).
        return Err(if crate::rp::key_active(state, &rp.key_id).await? {
            no_device()
        } else {
            ApiError::new(ErrorCode::Unauthorized, "missing or invalid API key")
        });
    };
    let user_id: String = first.try_get(0)?;
    let suppressed: i64 = first.try_get(1)?;
    let mut targets = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(id) = r.try_get::<Option<String>, _>(2)? {
            targets.push(Target {
                id,
                account_id: r.try_get(3)?,
                kem_key: r.try_get(4)?,
                push_provider: r.try_get(5)?,
                push_token: r.try_get(6)?,
            });
        }
    }
    if targets.is_empty() {
        return Err(no_device());
    }
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    if suppressed != 0 && !lift_suppression {
        audit(&state.db, who, "push_refused", "suppressed after denials").await?;
        return Err(ApiError::new(
            ErrorCode::Suppressed,
            "pushes are suppressed after repeated denials; type `push` or an OTP",
        ));
    }
    // Seal before the transaction, so the write lock is not held while sealing
    // (a refused push wastes one seal per device).
    let tx_id = countersign_protocol::challenge::random_id().map_err(ApiError::internal)?;
    let expires_at = t + opts.timeout;
    let mut sealed_rows = Vec::with_capacity(targets.len());
    for target in &targets {
        let kem = PublicKey::from_sec1(&unb64(&target.kem_key)?).map_err(ApiError::internal)?;
        let challenge = Challenge {
            tx_id: tx_id.clone(),
            account_id: target.account_id.clone(),
            issued_at: u64::try_from(t).unwrap_or(0),
            expires_at: u64::try_from(expires_at).unwrap_or(0),
            kind: opts.kind,
            context: opts.context.clone(),
            text: opts.text.clone(),
            transaction: opts.transaction.clone(),
            verification: opts.verification,
            number_matching: opts.matching.clone(),
            nonce: countersign_protocol::challenge::random_id().map_err(ApiError::internal)?,
        };
        let plaintext = challenge.to_json().map_err(protocol_bad_request)?;
        let sealed = SealedChallenge::seal(&challenge, &target.id, &kem, Ephemeral::Random)
            .map_err(protocol_bad_request)?;
        let signed = sealed
            .sign(&state.signing_key)
            .map_err(ApiError::internal)?
            .to_json()
            .map_err(ApiError::internal)?;
        sealed_rows.push((
            target.id.clone(),
            b64(&challenge_hash(&plaintext)),
            b64(&plaintext),
            String::from_utf8(signed).map_err(ApiError::internal)?,
            kem.key_id(),
        ));
    }
    let (mode, number) = match &opts.matching {
        NumberMatching::Off => ("off", None),
        NumberMatching::Pick { .. } => ("pick", opts.number.clone()),
        NumberMatching::Type { .. } => ("type", opts.number.clone()),
    };
    let request = serde_json::json!({
        "context": {
            "rp": opts.context.rp, "ip": opts.context.ip,
            "location": opts.context.location, "user_agent": opts.context.user_agent
        },
        "text": opts.text,
        "transaction": opts.transaction.as_ref().map(|t| serde_json::json!({
            "amount": t.amount, "currency": t.currency, "payee": t.payee
        })),
    });
    let verification = match opts.verification {
        Verification::None => "none",
        Verification::Pin => "pin",
        Verification::Biometric => "biometric",
    };
    let kind = match opts.kind {
        ChallengeKind::Login => "login",
        ChallengeKind::Transaction => "transaction",
    };
    let mut dbtx = state.db.pool.begin().await?;
    // Count the push in the window atomically, and only while the user has room
    // for another pending challenge (one statement), in the transaction that
    // stores the challenge: one commit per push. Its first statement writes, so
    // SQLite takes the write lock up front. Refused: a second look says which
    // limit it was.
    let counted = sqlx::query(
        "UPDATE users SET \
           push_count = CASE WHEN push_window_start <= $2 THEN 1 ELSE push_count + 1 END, \
           push_window_start = CASE WHEN push_window_start <= $2 THEN $3 ELSE push_window_start END, \
           suppressed = CASE WHEN $5 = 1 THEN 0 ELSE suppressed END, \
           denial_streak = CASE WHEN $5 = 1 THEN 0 ELSE denial_streak END \
         WHERE id = $1 AND (push_window_start <= $2 OR push_count < $4) \
           AND (SELECT COUNT(*) FROM challenges \
                WHERE user_id = $1 AND state = 'pending' AND expires_at >= $3) < $6",
    )
    .bind(&user_id)
    .bind(t - i64::from(policy.push_window_secs))
    .bind(t)
    .bind(i64::from(policy.push_max_per_window))
    .bind(i64::from(lift_suppression))
    .bind(i64::from(policy.max_pending))
    .execute(&mut *dbtx)
    .await?;
    if counted.rows_affected() == 0 {
        dbtx.rollback().await?;
        let pending: i64 = sqlx::query(
            "SELECT COUNT(*) FROM challenges WHERE user_id = $1 AND state = 'pending' AND expires_at >= $2",
        )
        .bind(&user_id)
        .bind(t)
        .fetch_one(&state.db.pool)
        .await?
        .try_get(0)?;
        if pending >= i64::from(policy.max_pending) {
            audit(
                &state.db,
                who,
                "push_refused",
                "too many pending challenges",
            )
            .await?;
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many pending challenges for this user",
            ));
        }
        audit(&state.db, who, "push_refused", "push rate limit").await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many pushes for this user; try again later",
        ));
    }
    if suppressed != 0 && lift_suppression {
        audit_on(&mut dbtx, who, "suppression_lifted", "user typed push").await?;
    }

    sqlx::query(
        "INSERT INTO challenges (id, rp_id, user_id, kind, state, created_at, expires_at, \
         number_mode, number, verification, request) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10)",
    )
    .bind(&tx_id)
    .bind(&rp.id)
    .bind(&user_id)
    .bind(kind)
    .bind(t)
    .bind(expires_at)
    .bind(mode)
    .bind(number.clone())
    .bind(verification)
    .bind(request.to_string())
    .execute(&mut *dbtx)
    .await?;
    for (device_id, hash, plaintext, signed, kem_kid) in &sealed_rows {
        sqlx::query(
            "INSERT INTO challenge_deliveries (tx_id, device_id, display_hash, plaintext, sealed, kem_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&tx_id)
        .bind(device_id)
        .bind(hash)
        .bind(plaintext)
        .bind(signed)
        .bind(kem_kid)
        .execute(&mut *dbtx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO audit_log (id, at, rp_id, user_id, device_id, tx_id, event, reason) \
         VALUES ($1, $2, $3, $4, NULL, $5, 'push', $6)",
    )
    .bind(random_id("au_")?)
    .bind(t)
    .bind(&rp.id)
    .bind(&user_id)
    .bind(&tx_id)
    .bind(format!("{kind} challenge to {} device(s)", targets.len()))
    .execute(&mut *dbtx)
    .await?;
    dbtx.commit().await?;
    tracing::info!(tx = %tx_id, rp = %rp.id, user = %user_id, devices = targets.len(), "push started");

    for target in targets.iter() {
        state
            .notifier
            .publish(Event::Device(target.id.clone()))
            .await;
    }
    // Wake-ups go out in the background: the RP's answer does not wait on Google or Apple.
    let wakes: Vec<(String, WakeUp)> = targets
        .iter()
        .filter_map(|d| {
            d.push_token.as_ref().map(|token| {
                (
                    d.push_provider.clone(),
                    WakeUp {
                        token: token.clone(),
                        device_id: d.id.clone(),
                        tx_id: tx_id.clone(),
                        expires_at,
                    },
                )
            })
        })
        .collect();
    if !wakes.is_empty() {
        let state = state.clone();
        tokio::spawn(async move { send_wakeups(state, wakes).await });
    }
    Ok(PushStarted {
        tx_id,
        number,
        expires_at,
        devices: targets.len(),
    })
}

async fn send_wakeups(state: Arc<AppState>, wakes: Vec<(String, WakeUp)>) {
    for (provider, wake) in wakes {
        let Some(sender) = state.senders.iter().find(|s| s.provider() == provider) else {
            continue;
        };
        match sender.send(&wake).await {
            Ok(()) => {}
            Err(crate::push::PushError::Unregistered) => {
                tracing::info!(device = %wake.device_id, "push token unregistered; device will long-poll");
                let _ = sqlx::query(
                    "UPDATE devices SET push_token = NULL WHERE id = $1 AND push_token = $2",
                )
                .bind(&wake.device_id)
                .bind(&wake.token)
                .execute(&state.db.pool)
                .await;
            }
            Err(e) => {
                tracing::warn!(device = %wake.device_id, tx = %wake.tx_id, error = %e, "push failed");
            }
        }
    }
}

/// Sends the RP's webhook for a finished challenge (if the RP has one):
/// `POST` JSON with `Countersign-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
/// "<t>." || body)>`. Three tries with backoff, in the background.
pub fn webhook(
    state: &Arc<AppState>,
    rp_id: &str,
    tx_id: &str,
    outcome: &str,
    reason: Option<&str>,
) {
    let state = state.clone();
    let rp_id = rp_id.to_string();
    let body = serde_json::json!({
        "event": format!("challenge.{outcome}"),
        "tx_id": tx_id,
        "state": outcome,
        "deny_reason": reason,
        "at": now(),
    })
    .to_string();
    tokio::spawn(async move {
        let row =
            sqlx::query("SELECT webhook_url, webhook_secret FROM relying_parties WHERE id = $1")
                .bind(&rp_id)
                .fetch_optional(&state.db.pool)
                .await;
        let Ok(Some(row)) = row else { return };
        let (Ok(Some(url)), Ok(Some(sealed))) = (
            row.try_get::<Option<String>, _>(0),
            row.try_get::<Option<String>, _>(1),
        ) else {
            return;
        };
        let Ok(secret) = state
            .master
            .open(&format!("relying_parties:{rp_id}:webhook"), &sealed)
        else {
            return;
        };
        for attempt in 0..3u32 {
            let t = now();
            let mac = hmac(
                HmacAlgorithm::Sha256,
                &secret,
                format!("{t}.{body}").as_bytes(),
            );
            let r = state
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    "Countersign-Signature",
                    format!("t={t},v1={}", hex::encode(mac)),
                )
                .body(body.clone())
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => tracing::warn!(status = resp.status().as_u16(), "webhook rejected"),
                Err(e) => tracing::warn!(error = %e.without_url(), "webhook failed"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        }
    });
}

/// Marks overdue pending challenges expired (once, across instances), tells
/// waiters and RPs, and drops stale nonces. Run periodically.
pub async fn expire_overdue(state: &Arc<AppState>) -> ApiResult<()> {
    let t = now();
    let rows = sqlx::query(
        "UPDATE challenges SET state = 'expired' WHERE state = 'pending' AND expires_at < $1 \
         RETURNING id, rp_id, user_id",
    )
    .bind(t)
    .fetch_all(&state.db.pool)
    .await?;
    for r in rows {
        let tx: String = r.try_get(0)?;
        let rp: String = r.try_get(1)?;
        let user: String = r.try_get(2)?;
        audit(
            &state.db,
            AuditSubject {
                rp: Some(&rp),
                user: Some(&user),
                tx: Some(&tx),
                ..Default::default()
            },
            "expired",
            "no answer before expiry",
        )
        .await?;
        state.notifier.publish(Event::Challenge(tx.clone())).await;
        webhook(state, &rp, &tx, "expired", None);
    }
    sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1")
        .bind(t)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}
