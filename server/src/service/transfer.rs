//! Moving an account to a new phone, approved by the old device (issue 15,
//! docs/PROTOCOL.md §14).
//!
//! The old device asks for an ordinary activation offer for its user
//! ([`start`]), marked as its transfer. The new phone activates with it as
//! usual (§3); its confirmation ([`confirm_pending`], from
//! `devices::confirm`) does not activate it but seals one challenge of kind
//! `transfer` for the old device alone. The old device's signed answer
//! decides ([`decide`], in the answer's transaction): an approval uses the
//! offer and makes the new device active (and, when asked, the old one is
//! then removed through `devices::remove`); a denial, or no answer before
//! the challenge expires, uses the offer up, so nothing becomes active.

use std::sync::Arc;

use countersign_protocol::api::{ActivationConfirmed, TransferRequest, TransferStarted};
use countersign_protocol::{Challenge, ChallengeContext, ChallengeKind, NumberMatching};

use super::audit::{AuditSubject, audit, audit_on};
use super::auth::Device;
use super::challenge::{seal_copy, send_wakeups, store_copy};
use super::devices::account_policy;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::push::WakeUp;
use crate::store::notify::Event;
use crate::store::offers::OfferRow;
use crate::store::transfers::TransferRow;
use crate::store::{self, Tx};
use crate::util::{now, tx_id};

/// The refusal a new phone gets once its transfer was denied or expired.
fn transfer_denied() -> ApiError {
    ApiError::new(
        ErrorCode::TransferDenied,
        "the old device did not approve this transfer",
    )
}

fn verification_name(v: countersign_protocol::Verification) -> &'static str {
    match v {
        countersign_protocol::Verification::None => "none",
        countersign_protocol::Verification::Pin => "pin",
        countersign_protocol::Verification::Biometric => "biometric",
    }
}

/// `POST /v1/device/transfers`: the active device `device` starts moving its
/// account to a new phone (`body`: [`TransferRequest`], or empty). Returns the
/// offer the new phone activates with.
pub async fn start(state: &AppState, device: &Device, body: &[u8]) -> ApiResult<TransferStarted> {
    let req: TransferRequest = if body.is_empty() {
        TransferRequest { remove_old: false }
    } else {
        serde_json::from_slice(body)
            .map_err(|_| ApiError::bad_request("body must be {\"remove_old\": true|false}"))?
    };
    let dev = store::transfers::device(&state.db, &device.id)
        .await?
        .ok_or_else(super::auth::device_removed)?;
    if dev.status != "active" {
        // Authentication admits only active devices; a removal may race it.
        return Err(super::auth::device_removed());
    }
    // The new phone shows what the old one shows.
    let label = dev.label.unwrap_or(dev.user_name);
    let issuer = dev.issuer.unwrap_or(dev.rp_name);
    let policy = super::devices::account_policy_for(&state.db, &device.rp_id).await?;
    let t = now();
    let mut dbtx = state.db.begin().await?;
    let offer = super::enrollment::new_offer(
        state,
        &mut dbtx,
        &device.user_id,
        &label,
        &issuer,
        policy.pin_min_length,
        t,
    )
    .await?;
    store::transfers::insert(&mut dbtx, &offer.offer_id, &device.id, req.remove_old, t).await?;
    audit_on(
        &mut dbtx,
        AuditSubject {
            rp: Some(&device.rp_id),
            user: Some(&device.user_id),
            device: Some(&device.id),
            tx: None,
        },
        "transfer_started",
        if req.remove_old {
            "offer for a new phone; this device to be removed"
        } else {
            "offer for a new phone; this device kept"
        },
    )
    .await?;
    dbtx.commit().await?;
    tracing::info!(device = %device.id, offer = %offer.offer_id, "transfer started");
    Ok(offer)
}

/// The confirmation of pending device `device`, whose offer `offer` is
/// transfer `tr`'s: the old device's approval challenge (created once per new
/// device; a repeat finds the same), or `transfer_denied`. `None`: the offer
/// is used or expired; the caller answers as for any offer.
pub(crate) async fn confirm_pending(
    state: &Arc<AppState>,
    device: &Device,
    offer_id: &str,
    offer: &OfferRow,
    tr: TransferRow,
) -> ApiResult<Option<ActivationConfirmed>> {
    let awaiting = |tx: String| ActivationConfirmed {
        device_id: device.id.clone(),
        status: "awaiting_approval".into(),
        tx_id: Some(tx),
    };
    let t = now();
    if tr.new_device_id.as_deref() == Some(device.id.as_str()) {
        match (tr.state.as_str(), tr.tx_id.clone()) {
            ("denied", _) => return Err(transfer_denied()),
            ("awaiting", Some(tx)) => {
                match store::transfers::challenge_state(&state.db, &tx).await? {
                    Some((st, exp)) if st == "pending" && t <= exp => {
                        return Ok(Some(awaiting(tx)));
                    }
                    // Expired unanswered (the janitor may not have run yet).
                    _ => {
                        expired(state, &tx).await?;
                        return Err(transfer_denied());
                    }
                }
            }
            // Approved: the offer names this device; the caller confirms.
            _ => return Ok(None),
        }
    }
    if offer.used_at.is_some() || t >= offer.expires_at || tr.state == "approved" {
        return Ok(None);
    }
    if tr.state == "denied" {
        return Err(transfer_denied());
    }
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        tx: None,
    };
    let old = store::transfers::device(&state.db, &tr.old_device_id).await?;
    let new = store::transfers::device(&state.db, &device.id).await?;
    let (Some(old), Some(new)) = (old, new) else {
        return Err(ApiError::internal("transfer device rows"));
    };
    if old.status != "active" {
        // The device that started the transfer was removed: nobody may approve.
        let mut dbtx = state.db.begin().await?;
        store::transfers::refuse(&mut dbtx, offer_id, &device.id, t).await?;
        store::transfers::consume_offer(&mut dbtx, offer_id, t).await?;
        audit_on(
            &mut dbtx,
            who,
            "transfer_denied",
            "the old device was removed",
        )
        .await?;
        dbtx.commit().await?;
        return Err(transfer_denied());
    }
    let label = old.label.clone().unwrap_or_else(|| old.user_name.clone());
    let phone = if new.name.is_empty() {
        new.platform.clone()
    } else {
        format!("{} ({})", new.name, new.platform)
    };
    let text = format!("Move {label} to a new phone: {phone}");
    // Within the offer's lifetime: the janitor deletes pending devices of
    // expired offers, and the approval uses the offer.
    let expires_at = offer.expires_at.min(t + 600);
    let tx_id = tx_id()?;
    let verification = account_policy().default;
    let context = ChallengeContext {
        rp: old.rp_name.clone(),
        ip: None,
        location: None,
        user_agent: None,
    };
    let challenge = Challenge {
        tx_id: tx_id.clone(),
        account_id: old.account_id.clone(),
        issued_at: u64::try_from(t).unwrap_or(0),
        expires_at: u64::try_from(expires_at).unwrap_or(0),
        kind: ChallengeKind::Transfer,
        context: context.clone(),
        text: Some(text.clone()),
        transaction: None,
        verification,
        // The approver holds the old phone; see PROTOCOL.md §14 on why no number.
        number_matching: NumberMatching::Off,
        nonce: countersign_protocol::challenge::random_id().map_err(ApiError::internal)?,
    };
    let copy = seal_copy(state, &challenge, &tr.old_device_id, &old.kem_key)?;
    let request = serde_json::json!({
        "context": { "rp": context.rp, "ip": null, "location": null, "user_agent": null },
        "text": text,
    });
    let mut dbtx = state.db.begin().await?;
    if !store::transfers::await_approval(&mut dbtx, offer_id, &device.id, &tx_id).await? {
        // A concurrent confirmation of this device created it first (or the
        // transfer was decided meanwhile): answer from what is stored.
        dbtx.rollback().await?;
        let now_tr = store::transfers::for_offer(&state.db, offer_id).await?;
        return match now_tr {
            Some(tr)
                if tr.new_device_id.as_deref() == Some(device.id.as_str())
                    && tr.state == "awaiting" =>
            {
                Ok(Some(awaiting(tr.tx_id.unwrap_or_default())))
            }
            Some(tr) if tr.state == "denied" => Err(transfer_denied()),
            _ => Ok(None),
        };
    }
    store::challenges::insert(
        &mut dbtx,
        &store::challenges::NewChallenge {
            id: &tx_id,
            rp_id: &device.rp_id,
            user_id: &device.user_id,
            kind: "transfer",
            created_at: t,
            expires_at,
            number_mode: "off",
            number: None,
            verification: verification_name(verification),
            request: &request.to_string(),
        },
    )
    .await?;
    // The delivery record says whether the old phone's wake-up went out (§15).
    let wake_state = if old.push_token.is_some()
        && state
            .senders
            .iter()
            .any(|s| s.provider() == old.push_provider)
    {
        "pending"
    } else {
        "not_configured"
    };
    store_copy(
        &mut dbtx,
        &tx_id,
        &copy,
        (old.push_provider.as_str(), wake_state),
    )
    .await?;
    // An earlier new phone's request (replaced by this activation) decides nothing.
    let withdrawn = match &tr.tx_id {
        Some(prev) if store::transfers::withdraw_challenge(&mut dbtx, prev).await? => {
            Some(prev.clone())
        }
        _ => None,
    };
    audit_on(
        &mut dbtx,
        AuditSubject {
            tx: Some(&tx_id),
            ..who
        },
        "transfer_awaiting",
        "approval asked of the old device",
    )
    .await?;
    dbtx.commit().await?;
    tracing::info!(tx = %tx_id, old = %tr.old_device_id, new = %device.id, "transfer awaits approval");
    if let Some(prev) = withdrawn {
        state.notifier.publish(Event::Challenge(prev)).await;
    }
    state
        .notifier
        .publish(Event::Device(tr.old_device_id.clone()))
        .await;
    if let Some(token) = old.push_token {
        let wake = WakeUp {
            token,
            device_id: tr.old_device_id.clone(),
            tx_id: tx_id.clone(),
            expires_at,
        };
        let state = state.clone();
        let provider = old.push_provider;
        tokio::spawn(async move { send_wakeups(state, vec![(provider, wake)]).await });
    }
    Ok(Some(awaiting(tx_id)))
}

/// What an approval leaves to do after its transaction: the old device to
/// remove, when the transfer asked for it.
#[derive(Debug)]
pub(crate) struct Removal {
    old_device_id: String,
}

/// Applies the old device's recorded answer (`approved` or `denied`) to the
/// transfer `tr` waiting on challenge `tx`, in the answer's transaction. An
/// approval uses the offer for the new device and makes it active; a denial
/// uses the offer up. Audited either way.
pub(crate) async fn decide(
    dbtx: &mut Tx,
    tr: &TransferRow,
    tx: &str,
    old: &Device,
    outcome: &str,
) -> ApiResult<Option<Removal>> {
    let t = now();
    let who = AuditSubject {
        rp: Some(&old.rp_id),
        user: Some(&old.user_id),
        device: Some(&old.id),
        tx: Some(tx),
    };
    let approved = outcome == "approved";
    let decided = if approved { "approved" } else { "denied" };
    if !store::transfers::decide(dbtx, &tr.offer_id, tx, decided, t).await? {
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "this transfer was already decided",
        ));
    }
    if !approved {
        store::transfers::consume_offer(dbtx, &tr.offer_id, t).await?;
        audit_on(dbtx, who, "transfer_denied", "denied by the old device").await?;
        return Ok(None);
    }
    let new_id = tr
        .new_device_id
        .as_deref()
        .ok_or_else(|| ApiError::internal("awaiting transfer without its device"))?;
    if !store::offers::confirm(dbtx, &tr.offer_id, new_id, t).await? {
        return Err(ApiError::new(
            ErrorCode::Expired,
            "the transfer's offer has expired",
        ));
    }
    if !store::devices::activate_pending(dbtx, new_id, t).await? {
        return Err(ApiError::new(
            ErrorCode::AlreadyAnswered,
            "the new phone's activation was replaced",
        ));
    }
    store::devices::delete_pending_for_offer(dbtx, &tr.offer_id).await?;
    audit_on(
        dbtx,
        AuditSubject {
            device: Some(new_id),
            ..who
        },
        "enrollment",
        "device activated by a transfer",
    )
    .await?;
    audit_on(
        dbtx,
        who,
        "transfer_approved",
        if tr.remove_old != 0 {
            "new phone active; this device to be removed"
        } else {
            "new phone active; this device kept"
        },
    )
    .await?;
    Ok((tr.remove_old != 0).then(|| Removal {
        old_device_id: old.id.clone(),
    }))
}

/// After an approval committed: removes the old device when asked, through
/// the one device-removal function (status, its challenges, wake-ups). A
/// failure here is repaired by the new device's next confirmation
/// ([`finish_removal`]).
pub(crate) async fn after_decision(state: &Arc<AppState>, old: &Device, removal: Option<Removal>) {
    let Some(r) = removal else { return };
    if let Err(e) = super::devices::remove(
        state,
        &old.rp_id,
        &old.user_id,
        &r.old_device_id,
        "moved to a new phone",
    )
    .await
    {
        tracing::warn!(device = %r.old_device_id, error = %e.message, "old device not removed after its transfer; retried at the next confirmation");
    }
}

/// For an active device confirming again: if it came by an approved transfer
/// that asked to remove the old device, and that device is still active (the
/// server stopped between the approval and the removal), removes it now.
pub(crate) async fn finish_removal(state: &Arc<AppState>, offer_id: &str) -> ApiResult<()> {
    let Some(tr) = store::transfers::for_offer(&state.db, offer_id).await? else {
        return Ok(());
    };
    if tr.state != "approved" || tr.remove_old == 0 {
        return Ok(());
    }
    let Some(old) = store::transfers::device(&state.db, &tr.old_device_id).await? else {
        return Ok(());
    };
    if old.status != "active" {
        return Ok(());
    }
    super::devices::remove(
        state,
        &old.rp_id,
        &old.user_id,
        &tr.old_device_id,
        "moved to a new phone",
    )
    .await
}

/// The approval challenge `tx` expired unanswered: for a transfer that is a
/// denial (nothing becomes active). Called by the janitor's expiry and by a
/// confirmation that finds it expired; idempotent.
pub(crate) async fn expired(state: &AppState, tx: &str) -> ApiResult<()> {
    let t = now();
    let mut dbtx = state.db.begin().await?;
    let Some(tr) = store::transfers::for_tx(&mut dbtx, tx).await? else {
        dbtx.rollback().await?;
        return Ok(());
    };
    if !store::transfers::decide(&mut dbtx, &tr.offer_id, tx, "denied", t).await? {
        dbtx.rollback().await?;
        return Ok(());
    }
    store::transfers::withdraw_challenge(&mut dbtx, tx).await?;
    store::transfers::consume_offer(&mut dbtx, &tr.offer_id, t).await?;
    dbtx.commit().await?;
    let old = store::transfers::device(&state.db, &tr.old_device_id).await?;
    audit(
        &state.db,
        AuditSubject {
            rp: old.as_ref().map(|d| d.rp_id.as_str()),
            user: old.as_ref().map(|d| d.user_id.as_str()),
            device: Some(&tr.old_device_id),
            tx: Some(tx),
        },
        "transfer_denied",
        "the old device did not answer in time",
    )
    .await?;
    state
        .notifier
        .publish(Event::Challenge(tx.to_owned()))
        .await;
    Ok(())
}
