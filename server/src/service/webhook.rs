//! Tells a relying party about finished challenges: `POST` JSON with
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

/// Posts `body` to the RP's webhook, signed, in the background.
fn post(state: &Arc<AppState>, rp_id: &str, body: String) {
    let state = state.clone();
    let rp_id = rp_id.to_string();
    state.clone().background.spawn(async move {
        let Ok(Some(row)) = store::relying_parties::webhook(&state.db, &rp_id).await else {
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
    });
}
