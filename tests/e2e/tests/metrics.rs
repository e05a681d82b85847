//! `GET /metrics` (issue 15) after a scripted flow with the real core, parsed
//! by an independent parser: `tests/metrics/check_metrics.py` with Python
//! `prometheus_client` from the venv that `cargo xtask test` installs, named by
//! `COUNTERSIGN_METRICS_PYTHON`. Without it the test fails (it does not skip).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use countersign_core::authenticator::ActivationOptions;
use countersign_core::protocol::DenyReason;
use countersign_e2e::{open_device, start_server, wait_pending};
use countersign_test_support::{RpClient, http_client, temp_dir};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

async fn scrape(base: &str) -> String {
    let r = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    r.text().await.unwrap()
}

/// Runs the Python checker on `text` with the `expected` samples; panics with
/// its report unless every check passed.
async fn check(text: &str, expected: &Value) {
    let python = std::env::var_os("COUNTERSIGN_METRICS_PYTHON").unwrap_or_else(|| {
        panic!(
            "COUNTERSIGN_METRICS_PYTHON is not set: it names the python of the venv with \
             prometheus-client that `cargo xtask test` installs (this test does not skip)"
        )
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../metrics/check_metrics.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(expected.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.to_string_lossy()));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the checker ends within 60 s")
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "metrics check failed:\n{report}\n{}\n--- scraped ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = report.lines().last().unwrap_or_default();
    assert!(last.ends_with(" 0 failed"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_push_outcome_once() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("metrics");
    let dev = open_device(dir.path(), |_| {});
    let alice = dev
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    let bob = dev
        .auth
        .activate_uri(&rp.enroll("bob").await.uri, ActivationOptions::default())
        .await
        .unwrap();

    // A fresh server: every push counter at zero, the RADIUS front's too.
    check(
        &scrape(&s.base()).await,
        &json!({
            "countersign_pushes_started_total": 0,
            "countersign_database_errors_total": 0,
            "countersign_radius_requests_total{outcome=\"accept\"}": 0,
        }),
    )
    .await;

    // alice: approved, denied as a mistake, denied "not me" (fraud lock).
    let mut answered = Vec::new();
    for reason in [None, Some(DenyReason::Mistake), Some(DenyReason::NotMe)] {
        let v = rp
            .start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        let tx = v["tx_id"].as_str().unwrap().to_owned();
        let pending = wait_pending(&dev.auth, 1, 10).await;
        assert_eq!(pending[0].tx_id, tx);
        match reason {
            None => {
                dev.auth.approve(&alice.id, &tx, None).await.unwrap();
            }
            Some(r) => {
                dev.auth.deny(&alice.id, &tx, r).await.unwrap();
            }
        }
        answered.push(tx);
    }
    // Status reads (also long-polls) of answered challenges count nothing.
    for tx in &answered {
        for _ in 0..2 {
            let (code, _) = rp.get(&format!("/v1/rp/challenges/{tx}?wait=1")).await;
            assert_eq!(code, 200);
        }
    }
    // The lock refuses the next push: one suppressed, reason `locked`.
    let (code, v) = rp
        .push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("locked")));

    // bob: a push nobody answers expires (the janitor's sweep counts it).
    let v = rp
        .start_push(json!({ "user": "bob", "number_matching": "off", "timeout_secs": 1 }))
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    // The RP long-polls its status meanwhile: one waiting long-poll.
    let waiter = {
        let rp = RpClient::new(rp.base(), rp.api_key());
        let tx = tx.clone();
        tokio::spawn(async move { rp.get(&format!("/v1/rp/challenges/{tx}?wait=20")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    check(
        &scrape(&s.base()).await,
        &json!({ "countersign_long_polls_waiting{kind=\"rp\"}": 1 }),
    )
    .await;
    let (_, st) = waiter.await.unwrap();
    assert_eq!(st["state"], "expired");
    // The status may say `expired` before the sweep turns the row: wait for
    // the sweep (every 5 s), then read the status more than once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(&s.base()).await;
        if text.contains("countersign_pushes_expired_total 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no expiry counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for _ in 0..3 {
        assert_eq!(rp.status(&tx).await["state"], "expired");
    }
    let _ = bob;

    let text = scrape(&s.base()).await;
    check(
        &text,
        &json!({
            "countersign_pushes_started_total": 4,
            "countersign_pushes_approved_total": 1,
            "countersign_pushes_denied_total{reason=\"mistake\"}": 1,
            "countersign_pushes_denied_total{reason=\"not_me\"}": 1,
            "countersign_pushes_expired_total": 1,
            "countersign_pushes_suppressed_total{reason=\"locked\"}": 1,
            "countersign_push_answer_seconds_count": 3,
            "countersign_long_polls_waiting{kind=\"rp\"}": 0,
            "countersign_database_errors_total": 0,
            "countersign_radius_requests_total{outcome=\"accept\"}": 0,
            "countersign_radius_requests_total{outcome=\"reject\"}": 0,
        }),
    )
    .await;
    // Nothing else was denied or suppressed.
    assert!(!text.contains("reason=\"wrong_number\""), "{text}");
    assert!(!text.contains("reason=\"suppressed\""), "{text}");
    s.stop().await;
}
