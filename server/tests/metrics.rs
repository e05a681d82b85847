//! `/metrics` (issue 15): a failed database statement is counted once per
//! answered request, and `metrics = false` removes the route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use countersign_test_support::{Db, RpClient, TestServer, http_client};

async fn scrape(base: &str) -> (u16, String) {
    let r = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_are_counted_once_per_request() {
    let s = TestServer::start(Db::Sqlite).await;
    let rp = RpClient::create(s.server(), "Shop").await;
    let (code, text) = scrape(&s.base()).await;
    assert_eq!(code, 200);
    assert!(
        text.contains("countersign_database_errors_total 0\n"),
        "{text}"
    );
    // The database goes away: each request fails on its first statement.
    s.server().state().db.close().await;
    for _ in 0..2 {
        let (code, v) = rp.get("/v1/rp/challenges/tx_none").await;
        assert_eq!((code, v["error"]["code"].as_str()), (500, Some("internal")));
    }
    // /metrics needs no database.
    let (code, text) = scrape(&s.base()).await;
    assert_eq!(code, 200);
    assert!(
        text.contains("countersign_database_errors_total 2\n"),
        "{text}"
    );
    // Not a database error: not counted.
    let (code, _) = rp.get("/v1/no-such-route").await;
    assert_eq!(code, 404);
    let (_, text) = scrape(&s.base()).await;
    assert!(
        text.contains("countersign_database_errors_total 2\n"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let s = TestServer::start_with(Db::Sqlite, |c| c.metrics = false).await;
    let (code, _) = scrape(&s.base()).await;
    assert_eq!(code, 404);
    s.stop().await;
}
