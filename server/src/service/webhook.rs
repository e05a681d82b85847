//! Tells a relying party about finished challenges, suppressed users and
//! enrolled or removed devices: `POST` JSON with
//! `Countersign-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." || body)>`.

use std::sync::Arc;

use countersign_protocol::crypto::{HmacAlgorithm, hmac};

use crate::AppState;
use crate::store;
use crate::util::now;

/// Sends the RP's webhook for a finished challenge (if the RP has one): event
/// `challenge.<outcome>`. Three tries with backoff, in the background.
pub fn send(state: &Arc<AppState>, rp_id: &str, tx_id: &str, outcome: &str, reason: Option<&str>) {
    let body = serde_json::json!({
        "event": format!("challenge.{outcome}"),
        "tx_id": tx_id,
        "state": outcome,
        "deny_reason": reason,
        "at": now(),
    });
    post(state, rp_id, body.to_string());
}

/// Sends `challenge.fraud_reported`: the user answered "it was not me", so the
/// password is likely known to someone else and pushes to the user are locked.
pub fn send_fraud_report(state: &Arc<AppState>, rp_id: &str, tx_id: &str, device_id: &str) {
    let body = serde_json::json!({
        "event": "challenge.fraud_reported",
        "tx_id": tx_id,
        "state": "denied",
        "deny_reason": "not_me",
        "device_id": device_id,
        "at": now(),
    });
    post(state, rp_id, body.to_string());
}

/// Sends `user.suppressed`: pushes to the user stopped, once per change of
/// state (not per refused push). `reason`: `misses` (consecutive denials or
/// timeouts) or `fraud_report` (a "not me" locked the user).
pub fn send_user_suppressed(state: &Arc<AppState>, rp_id: &str, user_id: &str, reason: &str) {
    let (state2, user_id, reason) = (state.clone(), user_id.to_owned(), reason.to_owned());
    let rp_id = rp_id.to_owned();
    state.background.spawn(async move {
        let Ok(Some(user)) = store::users::name(&state2.db, &user_id).await else {
            return;
        };
        let body = serde_json::json!({
            "event": "user.suppressed",
            "user": user,
            "reason": reason,
            "at": now(),
        });
        deliver(&state2, &rp_id, body.to_string()).await;
    });
}

/// A device webhook's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// `device.enrolled`: the device confirmed its activation.
    Enrolled,
    /// `device.removed`: deregistered by itself or removed by the RP or an
    /// operator (`reason` says which).
    Removed,
}

/// Sends `device.enrolled` or `device.removed` for `device_id`, with the
/// user, the device's name and platform (and the removal's `reason`).
pub fn send_device(
    state: &Arc<AppState>,
    rp_id: &str,
    event: DeviceEvent,
    device_id: &str,
    reason: Option<&str>,
) {
    let state2 = state.clone();
    let (rp_id, device_id) = (rp_id.to_owned(), device_id.to_owned());
    let reason = reason.map(str::to_owned);
    state.background.spawn(async move {
        let Ok(Some(info)) = store::devices::event_info(&state2.db, &device_id).await else {
            return;
        };
        let mut body = serde_json::json!({
            "event": match event {
                DeviceEvent::Enrolled => "device.enrolled",
                DeviceEvent::Removed => "device.removed",
            },
            "device_id": device_id,
            "user": info.user_name,
            "name": info.name,
            "platform": info.platform,
            "at": now(),
        });
        if let Some(reason) = reason {
            body["reason"] = reason.into();
        }
        deliver(&state2, &rp_id, body.to_string()).await;
    });
}

/// Posts `body` to the RP's webhook, signed, in the background.
fn post(state: &Arc<AppState>, rp_id: &str, body: String) {
    let state = state.clone();
    let rp_id = rp_id.to_string();
    state
        .clone()
        .background
        .spawn(async move { deliver(&state, &rp_id, body).await });
}

/// Posts `body` to the RP's webhook (if it has one), signed: three tries with
/// backoff.
async fn deliver(state: &AppState, rp_id: &str, body: String) {
    let Ok(Some(row)) = store::relying_parties::webhook(&state.db, rp_id).await else {
        return;
    };
    let (Some(url), Some(sealed)) = (row.webhook_url, row.webhook_secret) else {
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
}
