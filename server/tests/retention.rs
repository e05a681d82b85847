//! Retention (issue 16, bounded database): the pruning deletes challenges (with
//! their sealed copies), offline challenges, activation offers and audit
//! records once they are older than the configured retention, in batches,
//! and nothing that can still be used: a pending challenge, a recent answer,
//! an unexpired offer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use countersign_server::service::retention::prune;
use countersign_server::store::retention::Pruned;
use countersign_test_support::{Db, RpClient, TestServer};
use serde_json::json;
use sqlx::Row;
use support::TestDevice;

async fn count(s: &TestServer, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&s.server().state().db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

fn now() -> i64 {
    i64::try_from(countersign_test_support::now()).unwrap()
}

async fn pruning_keeps_the_database_bounded(db: Db) {
    let s = TestServer::start_with(db, |c| {
        c.retention.batch = 2;
        c.retention.audit_days = 30;
    })
    .await;
    let rp = RpClient::create(s.server(), "Retained").await;
    let offer = rp.enroll("ann").await;
    let mut device = TestDevice::activate(&s.base(), &offer.uri).await;
    // Three answered challenges and one still pending.
    for _ in 0..3 {
        let push = rp
            .start_push(json!({"user": "ann", "number_matching": "off"}))
            .await;
        let tx = push["tx_id"].as_str().unwrap();
        let opened = device.fetch(tx).await;
        let answer = device.approval(&opened, None);
        assert_eq!(device.post_answer(&answer).await.0, 200);
    }
    let pending = rp
        .start_push(json!({"user": "ann", "timeout_secs": 600}))
        .await;
    let pending_tx = pending["tx_id"].as_str().unwrap().to_string();
    let unused_offer = rp.enroll("bob").await;
    assert_eq!(count(&s, "challenges").await, 4);
    assert_eq!(count(&s, "challenge_deliveries").await, 4);
    assert_eq!(count(&s, "enrollment_offers").await, 2);
    let audit_before = count(&s, "audit_log").await;
    assert!(audit_before > 0);

    // Now: nothing is old enough.
    let state = s.server().state().clone();
    assert_eq!(prune(&state, now()).await.unwrap(), Pruned::default());

    // A day and a bit later, challenges and offers have passed their retention
    // (a pending one has long expired by then too); batches of 2.
    let later = now() + 86_400 + 700;
    let first = prune(&state, later).await.unwrap();
    assert_eq!((first.challenges, first.offers, first.audit), (2, 2, 0));
    let second = prune(&state, later).await.unwrap();
    assert_eq!(second.challenges, 2);
    assert_eq!(prune(&state, later).await.unwrap(), Pruned::default());
    assert_eq!(count(&s, "challenges").await, 0);
    assert_eq!(
        count(&s, "challenge_deliveries").await,
        0,
        "copies go with their challenge"
    );
    assert_eq!(count(&s, "enrollment_offers").await, 0);
    assert_eq!(count(&s, "devices").await, 1, "devices are not pruned");
    let (status, _) = rp.get(&format!("/v1/rp/challenges/{pending_tx}")).await;
    assert_eq!(status, 404);
    let _ = unused_offer;

    // Audit records go after `audit_days`, oldest first.
    let month = now() + 31 * 86_400;
    let mut audit_pruned = 0;
    loop {
        let p = prune(&state, month).await.unwrap();
        if p.audit == 0 {
            break;
        }
        audit_pruned += p.audit;
    }
    assert_eq!(i64::try_from(audit_pruned).unwrap(), audit_before);

    // The device still works after its old challenges are gone.
    let push = rp
        .start_push(json!({"user": "ann", "number_matching": "off"}))
        .await;
    let tx = push["tx_id"].as_str().unwrap();
    let opened = device.fetch(tx).await;
    let answer = device.approval(&opened, None);
    assert_eq!(device.post_answer(&answer).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_database_bounded_on_sqlite() {
    pruning_keeps_the_database_bounded(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_database_bounded_on_postgres() {
    pruning_keeps_the_database_bounded(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_shorter_than_an_hour_is_refused() {
    let mut config = countersign_test_support::test_config("sqlite://unused.db");
    config.retention.challenges_secs = 600;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("retention"), "{err}");
}
