//! The relying party's webhooks beyond challenges (issue 15): `device.enrolled`,
//! `user.suppressed` and `device.removed`, received on loopback by a plain
//! HTTP/1.1 receiver that checks each `Countersign-Signature`
//! (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." || body)>`) and records the
//! events in order of arrival. Devices run the real core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_core::authenticator::{AccountKind, ActivationOptions};
use countersign_core::crypto::{HmacAlgorithm, hmac};
use countersign_core::protocol::DenyReason;
use countersign_e2e::{open_device, start_server, wait_pending};
use countersign_test_support::{RpClient, temp_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Verified events, in order of arrival.
type Log = Arc<Mutex<Vec<Value>>>;

/// Serves `POST` on a free loopback port; every request's signature must verify
/// with `secret` (a bad one fails the test when the log is read).
async fn receiver(secret: String) -> (String, Log, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let (log2, bad2) = (log.clone(), bad.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, bad, secret) = (log2.clone(), bad2.clone(), secret.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                // One request per connection is enough for reqwest's pool: we
                // answer `Connection: close`.
                let mut length = 0usize;
                let mut signature = String::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = l.split_once(':') {
                        match name.trim().to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "countersign-signature" => signature = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0u8; length];
                read.read_exact(&mut body).await.unwrap();
                let body = String::from_utf8(body).unwrap();
                let parts: Vec<&str> = signature.split(',').collect();
                let t = parts
                    .iter()
                    .find_map(|p| p.strip_prefix("t="))
                    .unwrap_or_default();
                let v1 = parts
                    .iter()
                    .find_map(|p| p.strip_prefix("v1="))
                    .unwrap_or_default();
                let mac = hmac(
                    HmacAlgorithm::Sha256,
                    secret.as_bytes(),
                    format!("{t}.{body}").as_bytes(),
                );
                let fresh = t
                    .parse::<u64>()
                    .is_ok_and(|t: u64| t.abs_diff(countersign_test_support::now()) < 60);
                if v1 == hex_encode(&mac) && fresh {
                    log.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                } else {
                    bad.lock().unwrap().push(format!("{signature} {body}"));
                }
                let _ = write
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (url, log, bad)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `n` events arrived in all, then a little longer for any extra
/// one; returns the events after the first `seen`, their `event` names sorted
/// (events of one step are sent concurrently).
async fn step(log: &Log, bad: &Arc<Mutex<Vec<String>>>, seen: &mut usize, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while log.lock().unwrap().len() < *seen + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} more webhooks: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bad.lock().unwrap().is_empty(), "bad signatures: {bad:?}");
    let all = log.lock().unwrap().clone();
    assert_eq!(all.len(), *seen + n, "extra webhooks: {all:?}");
    let mut got: Vec<Value> = all[*seen..].to_vec();
    *seen = all.len();
    got.sort_by(|a, b| a["event"].as_str().cmp(&b["event"].as_str()));
    got
}

fn device_id(kind: &AccountKind) -> String {
    match kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_user_webhooks_are_signed_and_sent_once() {
    let s = start_server(|_| {}).await;
    let st = s.server().state();
    // create_rp makes the secret the receiver needs: create the RP with a
    // placeholder URL, then point it at the receiver.
    let created = countersign_server::admin::create_rp(
        &st.db,
        &st.master,
        "Shop",
        Some("http://127.0.0.1:9/placeholder"),
    )
    .await
    .unwrap();
    let secret = created.webhook_secret.clone().unwrap();
    let (url, log, bad) = receiver(secret).await;
    sqlx::query("UPDATE relying_parties SET webhook_url = $1 WHERE id = $2")
        .bind(&url)
        .bind(&created.rp_id)
        .execute(&st.db.pool)
        .await
        .unwrap();
    let rp = RpClient::new(s.base(), created.api_key.clone());
    let mut seen = 0;

    // Two devices of alice: one `device.enrolled` each, after confirmation.
    let dir_a = temp_dir("hooks-a");
    let dev_a = open_device(dir_a.path(), |_| {});
    let dir_b = temp_dir("hooks-b");
    let dev_b = open_device(dir_b.path(), |c| c.device_name = Some("tablet".into()));
    let mut ids = Vec::new();
    for dev in [&dev_a, &dev_b] {
        let acct = dev
            .auth
            .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
            .await
            .unwrap();
        ids.push((acct.id.clone(), device_id(&acct.kind)));
        let got = step(&log, &bad, &mut seen, 1).await;
        assert_eq!(got[0]["event"], "device.enrolled");
        assert_eq!(got[0]["device_id"], device_id(&acct.kind));
        assert_eq!(got[0]["user"], "alice");
        assert_eq!(got[0]["platform"], "desktop");
    }
    let hooks_b = log.lock().unwrap()[1].clone();
    assert_eq!(hooks_b["name"], "tablet");
    let (acct_a, dev_a_id) = ids[0].clone();
    let (_, dev_b_id) = ids[1].clone();

    // "Not me": the challenge's webhooks and `user.suppressed` (fraud_report),
    // once: a second "not me" to a request that was pending too changes no
    // state of the user.
    let mut txs = Vec::new();
    for _ in 0..2 {
        let v = rp
            .start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        txs.push(v["tx_id"].as_str().unwrap().to_owned());
    }
    wait_pending(&dev_a.auth, 2, 10).await;
    dev_a
        .auth
        .deny(&acct_a, &txs[0], DenyReason::NotMe)
        .await
        .unwrap();
    let got = step(&log, &bad, &mut seen, 3).await;
    let events: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "challenge.denied",
            "challenge.fraud_reported",
            "user.suppressed"
        ]
    );
    assert_eq!(got[2]["user"], "alice");
    assert_eq!(got[2]["reason"], "fraud_report");
    dev_a
        .auth
        .deny(&acct_a, &txs[1], DenyReason::NotMe)
        .await
        .unwrap();
    let got = step(&log, &bad, &mut seen, 2).await;
    let events: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["challenge.denied", "challenge.fraud_reported"]);
    // Refused pushes send nothing more.
    for _ in 0..2 {
        let (code, v) = rp
            .push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        assert_eq!((code, v["error"]["code"].as_str()), (403, Some("locked")));
    }

    // bob, on device A: three misses suppress him; one `user.suppressed` (misses).
    let bob = dev_a
        .auth
        .activate_uri(&rp.enroll("bob").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    assert_eq!(step(&log, &bad, &mut seen, 1).await[0]["user"], "bob");
    for n in 1..=3 {
        let v = rp
            .start_push(json!({ "user": "bob", "number_matching": "off" }))
            .await;
        let tx = v["tx_id"].as_str().unwrap().to_owned();
        wait_pending(&dev_a.auth, 1, 10).await;
        dev_a
            .auth
            .deny(&bob.id, &tx, DenyReason::Mistake)
            .await
            .unwrap();
        let got = step(&log, &bad, &mut seen, if n == 3 { 2 } else { 1 }).await;
        assert_eq!(got[0]["event"], "challenge.denied");
        if n == 3 {
            assert_eq!(got[1]["event"], "user.suppressed");
            assert_eq!(got[1]["user"], "bob");
            assert_eq!(got[1]["reason"], "misses");
        }
    }
    let (code, v) = rp
        .push(json!({ "user": "bob", "number_matching": "off" }))
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (429, Some("suppressed"))
    );

    // The RP removes device B; device A deregisters itself.
    let (code, _) = rp
        .delete(&format!("/v1/rp/users/alice/devices/{dev_b_id}"))
        .await;
    assert_eq!(code, 200);
    let got = step(&log, &bad, &mut seen, 1).await;
    assert_eq!(got[0]["event"], "device.removed");
    assert_eq!(got[0]["device_id"], dev_b_id);
    assert_eq!(got[0]["user"], "alice");
    assert_eq!(got[0]["name"], "tablet");
    assert_eq!(got[0]["reason"], "removed by relying party");
    dev_a.auth.remove_account(&acct_a).await.unwrap();
    let got = step(&log, &bad, &mut seen, 1).await;
    assert_eq!(got[0]["event"], "device.removed");
    assert_eq!(got[0]["device_id"], dev_a_id);
    assert_eq!(got[0]["reason"], "deregistered");
    s.stop().await;
}
