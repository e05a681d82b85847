//! Push challenges: creation (options, number matching, one sealed copy per
//! device, wake-ups), the RP's status long-poll, the device's pending list,
//! fetch and answer, and expiry.
//!
//! One file on purpose (~800 lines): the challenge's life from creation to answer
//! shares its row types and invariants (one decision per tx, idempotent repeats).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use countersign_protocol::api::{AnswerAccepted, PendingChallenge, PendingList};
use countersign_protocol::crypto::{PublicKey, ct_eq};
use countersign_protocol::{
    Answer, AnswerExpectation, Challenge, ChallengeContext, ChallengeKind, Decision, DenyReason,
    Ephemeral, NumberMatching, SealedChallenge, SignedMessage, TransactionDetails, Verification,
    challenge_hash,
};
use serde::{Deserialize, Serialize};

use super::audit::{AuditSubject, audit, audit_on};
use super::auth::{Device, Rp, device_removed, key_active, unauthorized};
use super::policy::{self, Outcome};
use super::{check_user_name, protocol_error, webhook};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::push::{PushError, WakeUp};
use crate::store::notify::{Event, wait_for, wait_for_any};
use crate::store::{self, audit::AuditRecord};
use crate::util::{b64, now, now_u64, random_below, random_digits, time_ordered_id, tx_id, unb64};

// ---------------------------------------------------------------------------
// Starting a push

/// Context the RP passes about the login attempt.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextIn {
    /// RP name shown (defaults to the registered RP name).
    pub rp: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// Coarse location ("Berlin, DE").
    pub location: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

/// Number-matching mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// No number.
    Off,
    /// Pick the shown number out of 3 on the phone.
    Pick,
    /// Type the shown number on the phone (NIST SP 800-63B-4).
    Type,
}

/// `POST /v1/rp/push` (also the options of a passcode-triggered push).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The user.
    #[serde(default)]
    pub user: String,
    /// Login context.
    #[serde(default)]
    pub context: ContextIn,
    /// Text to display (≤1024).
    pub text: Option<String>,
    /// Transaction to sign (makes it a transaction challenge).
    pub transaction: Option<TransactionDetails>,
    /// Required verification (default none).
    pub verification: Option<Verification>,
    /// Number matching (default `type`).
    pub number_matching: Option<MatchMode>,
    /// Digits for `type` / `pick` (default 2; 2..=8).
    pub digits: Option<u8>,
    /// `nist`: type 6 digits.
    pub profile: Option<String>,
    /// Timeout in seconds (default 30; 1..=600).
    pub timeout_secs: Option<u32>,
    /// Only this one of the user's active devices (default: all of them).
    pub device_id: Option<String>,
}

/// What the RP asked for, validated, with the number to match drawn.
#[derive(Debug, Clone)]
struct PushOptions {
    context: ChallengeContext,
    kind: ChallengeKind,
    text: Option<String>,
    transaction: Option<TransactionDetails>,
    verification: Verification,
    /// Number matching as sent to the device.
    matching: NumberMatching,
    /// The number the login page shows (`type`) / the correct choice (`pick`).
    number: Option<String>,
    /// Lifetime in seconds.
    timeout: i64,
    /// The one device to target (`None`: every active device).
    device: Option<String>,
}

impl PushRequest {
    fn options(&self, state: &AppState, rp: &Rp) -> ApiResult<PushOptions> {
        let policy = &state.config.policy;
        let timeout = self
            .timeout_secs
            .unwrap_or(policy.default_push_timeout_secs);
        if !(1..=600).contains(&timeout) {
            return Err(ApiError::bad_request("timeout_secs must be in 1..=600"));
        }
        let nist = match self.profile.as_deref() {
            None => false,
            Some("nist") => true,
            Some(_) => return Err(ApiError::bad_request("profile must be nist")),
        };
        let mode = self.number_matching.unwrap_or(MatchMode::Type);
        let digits = self.digits.unwrap_or(if nist { 6 } else { 2 });
        if !(2..=8).contains(&digits) {
            return Err(ApiError::bad_request("digits must be in 2..=8"));
        }
        if nist && (mode != MatchMode::Type || digits < 6) {
            return Err(ApiError::bad_request(
                "the nist profile types at least 6 digits",
            ));
        }
        let (matching, number) = match mode {
            MatchMode::Off => (NumberMatching::Off, None),
            MatchMode::Type => (
                NumberMatching::Type { digits },
                Some(random_digits(digits)?),
            ),
            MatchMode::Pick => {
                let mut choices: Vec<String> = Vec::with_capacity(3);
                while choices.len() < 3 {
                    let c = random_digits(digits)?;
                    if !choices.contains(&c) {
                        choices.push(c);
                    }
                }
                let shown = choices
                    .get(random_below(3)? as usize)
                    .cloned()
                    .ok_or_else(|| ApiError::internal("choice index"))?;
                (NumberMatching::Pick { choices }, Some(shown))
            }
        };
        if let Some(d) = &self.device_id
            && (d.is_empty() || d.len() > 64)
        {
            return Err(ApiError::bad_request("device_id must be 1-64 characters"));
        }
        let kind = if self.transaction.is_some() {
            ChallengeKind::Transaction
        } else {
            ChallengeKind::Login
        };
        Ok(PushOptions {
            context: ChallengeContext {
                rp: self.context.rp.clone().unwrap_or_else(|| rp.name.clone()),
                ip: self.context.ip.clone(),
                location: self.context.location.clone(),
                user_agent: self.context.user_agent.clone(),
            },
            kind,
            text: self.text.clone(),
            transaction: self.transaction.clone(),
            verification: self.verification.unwrap_or(Verification::None),
            matching,
            number,
            timeout: i64::from(timeout),
            device: self.device_id.clone(),
        })
    }
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

/// Starts a push login for `req.user`.
pub async fn start_push(
    state: &Arc<AppState>,
    rp: &Rp,
    req: &PushRequest,
) -> ApiResult<PushStarted> {
    check_user_name(&req.user)?;
    let opts = req.options(state, rp)?;
    start(state, rp, &req.user, opts).await
}

/// Starts the push a passcode trigger asked for (`user`; `req.user` is
/// ignored). It passes the same gate as any push: typing `push` lifts nothing.
pub(crate) async fn start_triggered(
    state: &Arc<AppState>,
    rp: &Rp,
    user: &str,
    req: &PushRequest,
) -> ApiResult<PushStarted> {
    let opts = req.options(state, rp)?;
    start(state, rp, user, opts).await
}

struct Target {
    id: String,
    account_id: String,
    kem_key: String,
    push_provider: String,
    push_token: Option<String>,
}

/// One device's sealed copy, made before the transaction.
pub(crate) struct SealedCopy {
    device_id: String,
    display_hash: String,
    plaintext: String,
    /// The envelope signed by S, as the device fetches it.
    pub(crate) sealed: String,
    kem_key_id: String,
}

/// Seals `challenge` to the device's KEM key (`kem_key`, base64url SEC1) and
/// signs the envelope with S.
pub(crate) fn seal_copy(
    state: &AppState,
    challenge: &Challenge,
    device_id: &str,
    kem_key: &str,
) -> ApiResult<SealedCopy> {
    let kem = PublicKey::from_sec1(&unb64(kem_key)?).map_err(ApiError::internal)?;
    let plaintext = challenge.to_json().map_err(protocol_bad_request)?;
    let sealed = SealedChallenge::seal(challenge, device_id, &kem, Ephemeral::Random)
        .map_err(protocol_bad_request)?;
    let signed = sealed
        .sign(&state.signing_key)
        .map_err(ApiError::internal)?
        .to_json()
        .map_err(ApiError::internal)?;
    Ok(SealedCopy {
        device_id: device_id.to_owned(),
        display_hash: b64(&challenge_hash(&plaintext)),
        plaintext: b64(&plaintext),
        sealed: String::from_utf8(signed).map_err(ApiError::internal)?,
        kem_key_id: kem.key_id(),
    })
}

/// Stores a sealed copy of challenge `tx_id` for its device.
/// `wake`: the provider its wake-up goes through and its first state
/// (`pending` when one is queued, else `not_configured`).
pub(crate) async fn store_copy(
    conn: &mut crate::store::Conn,
    tx_id: &str,
    copy: &SealedCopy,
    wake: (&str, &str),
) -> ApiResult<()> {
    store::challenges::insert_delivery(
        conn,
        &store::challenges::NewDelivery {
            tx_id,
            device_id: &copy.device_id,
            display_hash: &copy.display_hash,
            plaintext: &copy.plaintext,
            sealed: &copy.sealed,
            kem_key_id: &copy.kem_key_id,
            wake_provider: wake.0,
            wake_state: wake.1,
        },
    )
    .await?;
    Ok(())
}

fn protocol_bad_request(e: countersign_protocol::ProtocolError) -> ApiError {
    ApiError::bad_request(format!("challenge: {e}"))
}

/// Checks the RP's API key is not revoked, the user's lock, suppression, wait
/// and rate limits, seals one challenge per active device, stores it, wakes the
/// devices.
async fn start(
    state: &Arc<AppState>,
    rp: &Rp,
    user: &str,
    opts: PushOptions,
) -> ApiResult<PushStarted> {
    let t = now();
    // One query: the user, its suppression state and its active devices.
    let rows = store::challenges::push_targets(&state.db, &rp.id, user, &rp.key_id, now()).await?;
    let no_device = || ApiError::new(ErrorCode::NoDevice, "the user has no active device");
    let Some(first) = rows.first() else {
        // No such user, or the API key was revoked (the RP's key is checked here,
        // see `auth::authenticate_rp_cached`).
        return Err(if key_active(state, &rp.key_id).await? {
            no_device()
        } else {
            unauthorized()
        });
    };
    let user_id = first.user_id.clone();
    let gate = policy::PushGate {
        suppressed: first.suppressed != 0,
        locked_until: first.locked_until,
        next_push_at: first.next_push_at,
    };
    let mut targets = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(id) = r.device_id {
            let missing = || ApiError::internal("device row without its columns");
            targets.push(Target {
                id,
                account_id: r.account_id.ok_or_else(missing)?,
                kem_key: r.kem_key.ok_or_else(missing)?,
                push_provider: r.push_provider.ok_or_else(missing)?,
                push_token: r.push_token,
            });
        }
    }
    if targets.is_empty() {
        return Err(no_device());
    }
    if let Some(only) = &opts.device {
        // One of the user's active devices, or no such device for this RP.
        targets.retain(|t| &t.id == only);
        if targets.is_empty() {
            return Err(ApiError::not_found("device"));
        }
    }
    let who = AuditSubject {
        rp: Some(&rp.id),
        user: Some(&user_id),
        ..Default::default()
    };
    policy::check_gate(state, who, gate, t).await?;
    // Seal before the transaction, so the write lock is not held while sealing
    // (a refused push wastes one seal per device).
    let tx_id = tx_id()?;
    let expires_at = t + opts.timeout;
    let mut copies = Vec::with_capacity(targets.len());
    for target in &targets {
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
        copies.push(seal_copy(state, &challenge, &target.id, &target.kem_key)?);
    }
    let (mode, number) = match &opts.matching {
        NumberMatching::Off => ("off", None),
        NumberMatching::Pick { .. } => ("pick", opts.number.clone()),
        NumberMatching::Type { .. } => ("type", opts.number.clone()),
        // QR logins only (service/qr_login.rs); an RP push never asks for it.
        NumberMatching::Show { .. } => return Err(ApiError::internal("show matching in a push")),
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
        // Made by service/transfer.rs only; an RP push never is one.
        ChallengeKind::Transfer => return Err(ApiError::internal("transfer kind in a push")),
    };
    let dbtx = state.db.begin().await?;
    let mut dbtx = policy::admit_push(state, dbtx, &user_id, who, t).await?;
    store::challenges::insert(
        &mut dbtx,
        &store::challenges::NewChallenge {
            id: &tx_id,
            rp_id: &rp.id,
            user_id: &user_id,
            kind,
            created_at: t,
            expires_at,
            number_mode: mode,
            number: number.as_deref(),
            verification,
            request: &request.to_string(),
        },
    )
    .await?;
    for (copy, target) in copies.iter().zip(&targets) {
        let wake = if target.push_token.is_some()
            && state
                .senders
                .iter()
                .any(|s| s.provider() == target.push_provider)
        {
            (target.push_provider.as_str(), "pending")
        } else {
            (target.push_provider.as_str(), "not_configured")
        };
        store_copy(&mut dbtx, &tx_id, copy, wake).await?;
    }
    let audit_id = time_ordered_id("au_")?;
    let reason = format!("{kind} challenge to {} device(s)", targets.len());
    store::audit::insert(
        &mut dbtx,
        &AuditRecord {
            id: &audit_id,
            at: t,
            who: AuditSubject {
                tx: Some(&tx_id),
                ..who
            },
            event: "push",
            reason: &reason,
        },
    )
    .await?;
    dbtx.commit().await?;
    state.metrics.push_started();
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

/// Sends wake-ups (provider, wake-up) one by one; a token the provider no
/// longer knows is forgotten.
pub(crate) async fn send_wakeups(state: Arc<AppState>, wakes: Vec<(String, WakeUp)>) {
    for (provider, wake) in wakes {
        let Some(sender) = state.senders.iter().find(|s| s.provider() == provider) else {
            continue;
        };
        let sent = sender.send(&wake).await;
        state.metrics.wakeup(&provider, sent.is_ok());
        let (outcome, reason) = match &sent {
            Ok(()) => ("sent", None),
            Err(e) => ("failed", Some(wakeup_failure(e))),
        };
        let recorded = store::challenges::record_wakeup(
            &state.db,
            &wake.tx_id,
            &wake.device_id,
            outcome,
            now(),
            reason.as_deref(),
        )
        .await;
        if let Err(e) = recorded {
            state.metrics.database_error();
            tracing::warn!(tx = %wake.tx_id, error = %e, "wake-up outcome not recorded");
        }
        match sent {
            Ok(()) => {}
            Err(PushError::Unregistered) => {
                tracing::info!(device = %wake.device_id, "push token unregistered; device will long-poll");
                let _ =
                    store::devices::clear_push_token(&state.db, &wake.device_id, &wake.token).await;
            }
            Err(e) => {
                tracing::warn!(device = %wake.device_id, tx = %wake.tx_id, error = %e, "push failed");
            }
        }
    }
}

/// A short reason for the RP's status: no token, endpoint or provider text
/// that could carry one.
fn wakeup_failure(e: &PushError) -> String {
    match e {
        PushError::Unregistered => "the provider says the device token is no longer valid".into(),
        PushError::Rejected { status, .. } => format!("the provider refused it (HTTP {status})"),
        PushError::Transport(_) => "the provider could not be reached".into(),
        PushError::Config(_) => "the push sender is misconfigured".into(),
    }
}

// ---------------------------------------------------------------------------
// The RP's view

/// One targeted device's wake-up and fetch.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryStatus {
    /// The device the challenge was sealed for.
    pub device_id: String,
    /// `none` (the device long-polls), `fcm`, `apns`, `unifiedpush`.
    pub provider: String,
    /// The wake-up: `pending` (queued), `sent` (the provider accepted it),
    /// `failed`, or `not_configured` (no push token, or no sender for its
    /// provider: the device finds it by long-polling).
    pub state: String,
    /// When the wake-up was sent or failed (Unix seconds).
    pub at: Option<i64>,
    /// Why it failed, in short (no token or endpoint).
    pub error: Option<String>,
    /// Whether the device fetched the challenge.
    pub fetched: bool,
    /// When it fetched it (Unix seconds).
    pub fetched_at: Option<i64>,
}

/// Challenge status.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeStatus {
    /// The tx id.
    pub tx_id: String,
    /// `pending`, `approved`, `denied`, `expired`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// When answered.
    pub answered_at: Option<i64>,
    /// Which device answered.
    pub device_id: Option<String>,
    /// `not_me`, `mistake` or `wrong_number` for denials.
    pub deny_reason: Option<String>,
    /// The user answered "it was not me": pushes to the user are locked.
    pub fraud_reported: bool,
    /// The push OTP the device returned with its approval (to fill an OTP form;
    /// validate it with `/v1/rp/validate` and this tx id).
    pub push_otp: Option<String>,
    /// Per targeted device: the wake-up's outcome and whether it fetched.
    pub delivery: Vec<DeliveryStatus>,
}

async fn load_status(state: &AppState, rp: &Rp, tx: &str) -> ApiResult<ChallengeStatus> {
    let row = store::challenges::status(&state.db, tx, &rp.id, &rp.key_id, now()).await?;
    let Some(row) = row else {
        return Err(if key_active(state, &rp.key_id).await? {
            ApiError::not_found("challenge")
        } else {
            unauthorized()
        });
    };
    let mut st = row.state;
    if st == "pending" && now() > row.expires_at {
        st = "expired".into();
    }
    let push_otp = match row.push_otp {
        Some(sealed) if st == "approved" => {
            let otp = state
                .master
                .open(&format!("challenges:{tx}:push_otp"), &sealed)?;
            Some(String::from_utf8_lossy(&otp).into_owned())
        }
        _ => None,
    };
    let delivery = store::challenges::deliveries(&state.db, tx)
        .await?
        .into_iter()
        .map(|d| DeliveryStatus {
            device_id: d.device_id,
            provider: d.wake_provider,
            state: d.wake_state,
            at: d.wake_at,
            error: d.wake_error,
            fetched: d.fetched_at.is_some(),
            fetched_at: d.fetched_at,
        })
        .collect();
    Ok(ChallengeStatus {
        tx_id: tx.to_string(),
        state: st,
        expires_at: row.expires_at,
        answered_at: row.answered_at,
        device_id: row.answered_by,
        fraud_reported: row.deny_reason.as_deref() == Some("not_me"),
        deny_reason: row.deny_reason,
        push_otp,
        delivery,
    })
}

/// The state of challenge `tx`, waiting up to `wait` seconds (capped by the
/// policy) while it is pending. Holds no database connection while waiting.
pub async fn wait_status(
    state: &AppState,
    rp: &Rp,
    tx: &str,
    wait: Option<u32>,
) -> ApiResult<ChallengeStatus> {
    if tx.len() > 64 {
        return Err(ApiError::not_found("challenge"));
    }
    let wait = wait
        .unwrap_or(0)
        .min(state.config.policy.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let wanted = Event::Challenge(tx.to_string());
    let mut stop = state.shutting_down.clone();
    let _waiting = (wait > 0).then(|| state.metrics.long_poll("rp"));
    loop {
        let mut rx = state.notifier.subscribe();
        let status = load_status(state, rp, tx).await?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if status.state != "pending" || remaining.is_zero() || *stop.borrow() {
            return Ok(status);
        }
        // Wake at expiry too, to report `expired` promptly; re-check at least every
        // 5 s in case a cross-instance notification was lost.
        let until_expiry =
            Duration::from_secs(u64::try_from(status.expires_at - now() + 1).unwrap_or(0));
        let slice = remaining.min(until_expiry).min(Duration::from_secs(5));
        tokio::select! {
            _ = wait_for(&mut rx, &wanted, slice) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Marks overdue pending challenges expired (once, across instances), tells
/// waiters and RPs, and drops stale nonces. Run periodically.
pub async fn expire_overdue(state: &Arc<AppState>) -> ApiResult<()> {
    let t = now();
    let rows = store::challenges::expire_overdue(&state.db, t).await?;
    // Counted here, where the rows turned `expired` (once across instances).
    state.metrics.pushes_expired(rows.len());
    for r in rows {
        if r.kind == "transfer" {
            // Not a push: no miss, no webhook; the transfer is denied (§14).
            super::transfer::expired(state, &r.id).await?;
            continue;
        }
        // An unanswered push is a miss like a denial: a fatigue attacker's
        // pushes that the user ignores must not be free.
        let mut conn = state.db.begin().await?;
        let stopped = policy::record_answer(
            state,
            &mut conn,
            &r.user_id,
            AuditSubject {
                rp: Some(&r.rp_id),
                user: Some(&r.user_id),
                tx: Some(&r.id),
                ..Default::default()
            },
            Outcome::TimedOut,
            0,
        )
        .await?;
        conn.commit().await?;
        state.notifier.publish(Event::Challenge(r.id.clone())).await;
        webhook::send(state, &r.rp_id, &r.id, "expired", None);
        if let Some(reason) = stopped {
            webhook::send_user_suppressed(state, &r.rp_id, &r.user_id, reason);
        }
    }
    // Kept as long as the nonces of old (`used_nonces`) were: twice the skew.
    let kept_secs = 2 * i64::from(state.config.policy.request_max_skew_secs);
    store::nonces::delete_expired(&state.db, t - kept_secs, t).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The device's view

/// The device's pending challenges; `None` when the device was removed.
async fn pending_for(state: &AppState, device_id: &str) -> ApiResult<Option<PendingList>> {
    let rows = store::challenges::pending_for_device(&state.db, device_id, now()).await?;
    let mut active = true;
    let mut challenges = Vec::new();
    for r in rows {
        active = r.status == "active";
        if let Some(tx) = r.tx_id {
            challenges.push(PendingChallenge {
                tx,
                exp: r.expires_at.unwrap_or(0),
            });
        }
    }
    Ok(active.then_some(PendingList { challenges }))
}

/// At most this many ids in a poll's `known` list.
pub const MAX_KNOWN: usize = 64;

/// The `known` query parameter of a device poll: comma-separated challenge ids
/// (absent or empty: none). Refused with 400 `bad_request` beyond [`MAX_KNOWN`]
/// ids or with an id that is empty, over 64 characters or not base64url.
pub fn parse_known(known: Option<&str>) -> ApiResult<BTreeSet<String>> {
    let Some(known) = known.filter(|k| !k.is_empty()) else {
        return Ok(BTreeSet::new());
    };
    let mut out = BTreeSet::new();
    for (n, id) in known.split(',').enumerate() {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if n >= MAX_KNOWN || !valid {
            return Err(ApiError::bad_request(format!(
                "known must be at most {MAX_KNOWN} comma-separated challenge ids"
            )));
        }
        out.insert(id.to_owned());
    }
    Ok(out)
}

/// Long-polls until the device's pending challenges differ from `known` (a new
/// one, or a known one answered, expired or withdrawn), or `wait` seconds
/// (capped by the policy) pass. With `known` empty that is "until one is
/// pending". Holds no database connection while waiting.
pub async fn poll(
    state: &AppState,
    device: &Device,
    wait: Option<u32>,
    known: &BTreeSet<String>,
) -> ApiResult<PendingList> {
    store::devices::touch(&state.db, &device.id, now()).await?;
    let wait = wait
        .unwrap_or(0)
        .min(state.config.policy.long_poll_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let mine = Event::Device(device.id.clone());
    // A new challenge for this device, or a change to one it knows (an answer
    // from any device, a wrong-number end, expiry, removal).
    let wanted = |ev: &Event| match ev {
        Event::Device(_) => ev == &mine,
        Event::Challenge(tx) => known.contains(tx),
    };
    let mut stop = state.shutting_down.clone();
    let _waiting = (wait > 0).then(|| state.metrics.long_poll("device"));
    loop {
        let mut rx = state.notifier.subscribe();
        let list = pending_for(state, &device.id)
            .await?
            .ok_or_else(device_removed)?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let changed = list.challenges.len() != known.len()
            || list.challenges.iter().any(|c| !known.contains(&c.tx));
        if changed || remaining.is_zero() || *stop.borrow() {
            return Ok(list);
        }
        // Wake when the first one expires (the janitor may run later), and
        // re-check at least every 5 s in case a cross-instance notification
        // was lost.
        let first_exp = list.challenges.iter().map(|c| c.exp).min();
        let until_expiry = first_exp.map_or(Duration::MAX, |exp| {
            Duration::from_secs(u64::try_from(exp - now() + 1).unwrap_or(0))
        });
        let slice = remaining.min(until_expiry).min(Duration::from_secs(5));
        tokio::select! {
            _ = wait_for_any(&mut rx, wanted, slice) => {}
            _ = stop.changed() => {}
        }
    }
}

fn check_pending(st: &str, expires_at: i64) -> ApiResult<()> {
    match st {
        "pending" if now() <= expires_at => Ok(()),
        "pending" | "expired" => Err(ApiError::new(
            ErrorCode::Expired,
            "the challenge has expired",
        )),
        _ => Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "the challenge was already answered",
        )),
    }
}

/// The challenge sealed for this device, signed by S (JSON), marked fetched.
pub async fn fetch(state: &AppState, device: &Device, tx: &str) -> ApiResult<Vec<u8>> {
    // One statement on the common path: mark it fetched and read it back, only
    // while the challenge is pending.
    let sealed = store::challenges::fetch_sealed(&state.db, tx, &device.id, now()).await?;
    if let Some(sealed) = sealed {
        return Ok(sealed.into_bytes());
    }
    // Not sent to this device, or no longer pending: say which.
    let row = store::challenges::delivered_state(&state.db, tx, &device.id)
        .await?
        .ok_or_else(|| ApiError::not_found("challenge"))?;
    check_pending(&row.state, row.expires_at)?;
    // Not reached in practice (pending and fresh now means it was at `t`).
    Err(ApiError::new(
        ErrorCode::Expired,
        "the challenge has expired",
    ))
}

/// The challenge state, deny reason and policy outcome an answer records.
fn outcome_of(ans: &Answer) -> (&'static str, Option<&'static str>, Outcome) {
    match (ans.decision, ans.reason) {
        (Decision::Approve, _) => ("approved", None, Outcome::Approved),
        (Decision::Deny, Some(DenyReason::NotMe)) => ("denied", Some("not_me"), Outcome::Fraud),
        (Decision::Deny, _) => ("denied", Some("mistake"), Outcome::Denied),
    }
}

/// The acceptance already given, when `ans` repeats the recorded answer: same
/// device, decision, reason, challenge hash and `next_kem` (a retry whose
/// response was lost). Anything else is a different answer.
fn repeated_answer(
    row: &store::challenges::AnswerRow,
    device_id: &str,
    ans: &Answer,
    expected_hash: &[u8],
) -> Option<AnswerAccepted> {
    let (state, reason, _) = outcome_of(ans);
    let same = row.state == state
        && row.answered_by.as_deref() == Some(device_id)
        && row.deny_reason.as_deref() == reason
        && row.answer_kem_key_id.as_deref() == Some(ans.next_kem.key_id().as_str())
        && ct_eq(&ans.challenge_hash, expected_hash);
    same.then(|| AnswerAccepted {
        state: row.state.clone(),
        kem_kid: row.device_kem_key_id.clone(),
    })
}

/// Whether `ans` (known by its `next_kem` key id, unique per answer) was already
/// counted as a wrong number.
fn counted_wrong_number(row: &store::challenges::AnswerRow, ans: &Answer) -> bool {
    let kid = ans.next_kem.key_id();
    row.number_failure_kids
        .split(' ')
        .any(|counted| counted == kid)
}

/// The refusal of a wrong number; `tries_left: Some(0)` when it ended the
/// challenge, `None` when unknown (a repeated answer).
fn wrong_number_error(tries_left: Option<i64>) -> ApiError {
    let message = match tries_left {
        Some(0) => "the number entered is not the one shown; the request has ended".to_owned(),
        Some(n) => format!("the number entered is not the one shown; {n} tries left"),
        None => "the number entered is not the one shown".to_owned(),
    };
    ApiError::new(ErrorCode::WrongNumber, message)
}

/// Counts a wrong number on the challenge and returns the refusal to send. The
/// challenge ends as denied with reason `wrong_number` at the limit: at once for
/// a wrong pick (one in three would otherwise win), after
/// `policy.number_match_max_failures` typed numbers. The end is audited, counts
/// as a miss for the user, and is reported to the RP (status and webhook).
async fn count_wrong_number(
    state: &Arc<AppState>,
    row: &store::challenges::AnswerRow,
    matching: &NumberMatching,
    ans: &Answer,
    who: AuditSubject<'_>,
) -> ApiResult<ApiError> {
    let limit = match matching {
        NumberMatching::Pick { .. } => 1,
        _ => i64::from(state.config.policy.number_match_max_failures),
    };
    let kid = ans.next_kem.key_id();
    let kids = if row.number_failure_kids.is_empty() {
        kid
    } else {
        format!("{} {kid}", row.number_failure_kids)
    };
    let (Some(tx), Some(device_id)) = (who.tx, who.device) else {
        return Err(ApiError::internal("answer without tx or device"));
    };
    let t = now();
    let mut dbtx = state.db.begin().await?;
    let counted = store::challenges::count_wrong_number(
        &mut dbtx,
        &store::challenges::WrongNumber {
            tx,
            device_id,
            now: t,
            limit,
            counted_before: &row.number_failure_kids,
            counted_now: &kids,
        },
    )
    .await?;
    let Some(counted) = counted else {
        // Answered, expired or counted by a concurrent copy meanwhile.
        dbtx.rollback().await?;
        return Ok(wrong_number_error(None));
    };
    if counted.state != "denied" {
        audit_on(&mut dbtx, who, "answer_refused", "wrong number").await?;
        dbtx.commit().await?;
        return Ok(wrong_number_error(Some(limit - counted.number_failures)));
    }
    let stopped = policy::record_answer(
        state,
        &mut dbtx,
        &row.user_id,
        who,
        Outcome::WrongNumber,
        row.denial_streak,
    )
    .await?;
    dbtx.commit().await?;
    state.metrics.push_ended_wrong_number();
    tracing::info!(tx = %tx, "challenge ended after wrong numbers");
    state
        .notifier
        .publish(Event::Challenge(tx.to_string()))
        .await;
    if row.has_webhook != 0 {
        webhook::send(state, &row.rp_id, tx, "denied", Some("wrong_number"));
        if let Some(reason) = stopped {
            webhook::send_user_suppressed(state, &row.rp_id, &row.user_id, reason);
        }
    }
    Ok(wrong_number_error(Some(0)))
}

/// Records the device's signed answer (`body`) to challenge `tx`: checks the
/// binding, verification, number and push OTP, then commits the outcome, the
/// KEM key rotation, the user's counters and the audit record together. The
/// same answer posted again gets the same acceptance and changes nothing.
pub async fn answer(
    state: &Arc<AppState>,
    device: &Device,
    tx: &str,
    body: &[u8],
) -> ApiResult<AnswerAccepted> {
    let msg = SignedMessage::from_json(body).map_err(protocol_error)?;
    let ans =
        Answer::verify(&msg, &device.possession_key, &device.user_key).map_err(protocol_error)?;
    if ans.tx_id != tx {
        return Err(ApiError::bad_request("answer is for another transaction"));
    }
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        tx: Some(tx),
    };
    if ans.account_id != device.account_id {
        audit(&state.db, who, "answer_refused", "wrong account").await?;
        return Err(ApiError::new(
            ErrorCode::WrongAccount,
            "the answer is for another account",
        ));
    }
    let row = store::challenges::for_answer(&state.db, tx, &device.id)
        .await?
        .ok_or_else(|| ApiError::not_found("challenge"))?;
    let (Some(hash_text), Some(plaintext)) = (&row.display_hash, &row.plaintext) else {
        // The challenge exists but was not sent to this device.
        audit(&state.db, who, "answer_refused", "wrong account").await?;
        return Err(ApiError::new(
            ErrorCode::WrongAccount,
            "this challenge was not sent to this device",
        ));
    };
    let expected_hash = unb64(hash_text)?;
    if let Some(accepted) = repeated_answer(&row, &device.id, &ans, &expected_hash) {
        tracing::info!(tx = %tx, device = %device.id, "answer repeated; same acceptance returned");
        return Ok(accepted);
    }
    if counted_wrong_number(&row, &ans) {
        // A retry of a wrong-number answer whose response was lost: the same
        // refusal, not another try used up.
        return Err(wrong_number_error(None));
    }
    check_pending(&row.state, row.expires_at)?;
    if !ct_eq(&ans.challenge_hash, &expected_hash) {
        audit(&state.db, who, "answer_refused", "wrong display hash").await?;
        return Err(ApiError::new(
            ErrorCode::WrongDisplayHash,
            "the answer signs a different challenge than the one sent",
        ));
    }
    let challenge = Challenge::from_json(&unb64(plaintext)?).map_err(ApiError::internal)?;
    let number = row.number.as_deref();
    let expected_hash: [u8; 32] = expected_hash
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("stored hash length"))?;
    if ans.decision == Decision::Approve {
        if challenge.verification != Verification::None && ans.verification == Verification::None {
            audit(&state.db, who, "answer_refused", "verification required").await?;
            return Err(ApiError::new(
                ErrorCode::VerificationRequired,
                "this challenge needs a PIN or biometric (Du-signed) approval",
            ));
        }
        let number_ok = match (&challenge.number_matching, ans.number.as_deref(), number) {
            // `show` (QR login): the number is typed on the page, not the phone.
            (NumberMatching::Off | NumberMatching::Show { .. }, None, _) => true,
            (NumberMatching::Off | NumberMatching::Show { .. }, Some(_), _) => false,
            (_, Some(got), Some(want)) => ct_eq(got.as_bytes(), want.as_bytes()),
            _ => false,
        };
        if !number_ok {
            let matching = &challenge.number_matching;
            return Err(count_wrong_number(state, &row, matching, &ans, who).await?);
        }
    }
    // The core's own check, as a second line (binding, expiry, purpose).
    ans.check(&AnswerExpectation {
        challenge: &challenge,
        challenge_hash: &expected_hash,
        expected_number: number,
        now: now_u64(),
        max_skew: u64::from(state.config.policy.request_max_skew_secs),
    })
    .map_err(protocol_error)?;
    let push_otp = match (&ans.decision, &ans.otp) {
        (Decision::Approve, Some(code)) => {
            let seed = state
                .master
                .open(&format!("devices:{}:otp_seed", device.id), &device.otp_seed)?;
            if ans.check_push_otp(&seed, device.otp_digits).is_err() {
                return Err(ApiError::new(
                    ErrorCode::InvalidOtp,
                    "push OTP does not verify",
                ));
            }
            Some(
                state
                    .master
                    .seal(&format!("challenges:{tx}:push_otp"), code.as_bytes())?,
            )
        }
        _ => None,
    };
    let (new_state, reason, outcome) = outcome_of(&ans);
    let next_kem_kid = ans.next_kem.key_id();
    let t = now();
    // The outcome, the key rotation, the user's counters and the audit record
    // commit together (one commit instead of four). The first statement writes,
    // so SQLite takes the write lock up front.
    let mut dbtx = state.db.begin().await?;
    let recorded = store::challenges::record_answer(
        &mut dbtx,
        &store::challenges::AnswerOutcome {
            tx,
            state: new_state,
            answered_at: t,
            device_id: &device.id,
            deny_reason: reason,
            push_otp: push_otp.as_deref(),
            next_kem_key_id: &next_kem_kid,
        },
    )
    .await?;
    if !recorded {
        dbtx.rollback().await?;
        // The same answer may have raced itself (a retry sent while the first
        // copy was being recorded).
        let now_row = store::challenges::for_answer(&state.db, tx, &device.id).await?;
        if let Some(accepted) = now_row
            .as_ref()
            .and_then(|r| repeated_answer(r, &device.id, &ans, &expected_hash))
        {
            return Ok(accepted);
        }
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "the challenge was already answered or has expired",
        ));
    }
    // Rotate the KEM key: the next challenge is sealed to the new one.
    store::devices::rotate_kem_key(
        &mut dbtx,
        &device.id,
        &b64(&ans.next_kem.to_sec1()),
        &next_kem_kid,
        t,
    )
    .await?;
    // A transfer's approval (§14) decides in this transaction; it is no login,
    // so no miss counters, no RP webhook.
    let transfer = if row.kind == "transfer" {
        store::transfers::for_tx(&mut dbtx, tx).await?
    } else {
        None
    };
    if let Some(tr) = transfer {
        let removal = super::transfer::decide(&mut dbtx, &tr, tx, device, new_state).await?;
        dbtx.commit().await?;
        state
            .notifier
            .publish(Event::Challenge(tx.to_string()))
            .await;
        if new_state == "approved"
            && let Some(new_device) = &tr.new_device_id
        {
            webhook::send_device(
                state,
                &device.rp_id,
                webhook::DeviceEvent::Enrolled,
                new_device,
                None,
            );
        }
        super::transfer::after_decision(state, device, removal).await;
        return Ok(AnswerAccepted {
            state: new_state.into(),
            kem_kid: Some(next_kem_kid),
        });
    }
    let stopped = policy::record_answer(
        state,
        &mut dbtx,
        &device.user_id,
        who,
        outcome,
        row.denial_streak,
    )
    .await?;
    dbtx.commit().await?;
    let issued_at = i64::try_from(challenge.issued_at).unwrap_or(t);
    state.metrics.push_answered(reason, t - issued_at);
    state
        .notifier
        .publish(Event::Challenge(tx.to_string()))
        .await;
    if row.has_webhook != 0 {
        webhook::send(state, &row.rp_id, tx, new_state, reason);
        if outcome == Outcome::Fraud {
            webhook::send_fraud_report(state, &row.rp_id, tx, &device.id);
        }
        if let Some(reason) = stopped {
            webhook::send_user_suppressed(state, &row.rp_id, &device.user_id, reason);
        }
    }
    if outcome == Outcome::Fraud {
        tracing::warn!(tx = %tx, user = %device.user_id, "fraud reported; pushes to the user locked");
    }
    Ok(AnswerAccepted {
        state: new_state.into(),
        kem_kid: Some(next_kem_kid),
    })
}
