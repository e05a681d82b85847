//! Operations: health, OpenAPI, migrations, graceful shutdown, cross-instance
//! wake-ups; on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::time::Duration;

use countersign_server::notify::{Event, wait_for};
use countersign_test_support::{Db, TestServer, both_databases, http_client};

async fn healthz_and_openapi(db: Db) {
    let s = TestServer::start(db).await;
    let client = http_client();
    let r = client
        .get(format!("{}/healthz", s.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let r = client
        .get(format!("{}/openapi.json", s.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    s.stop().await;
}

async fn restart_keeps_schema(db: Db) {
    let s = TestServer::start(db).await;
    // A second instance on the same database: migrations are already applied.
    let mut c = s.database().config();
    c.listen = "127.0.0.1:0".parse().unwrap();
    let second = countersign_server::Server::start(c)
        .await
        .expect("second instance");
    second.shutdown().await;
    s.stop().await;
}

async fn graceful_shutdown_stops_listening(db: Db) {
    let s = TestServer::start(db).await;
    let base = s.base();
    let addr = s.server().addr();
    s.stop().await;
    let r = http_client()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(r.is_err(), "server at {addr} still answers after shutdown");
}

async fn notifier_reaches_other_instance(db: Db) {
    let a = TestServer::start(db).await;
    let mut c = a.database().config();
    c.listen = "127.0.0.1:0".parse().unwrap();
    let b = countersign_server::Server::start(c)
        .await
        .expect("instance B");
    let mut rx = a.server().state().notifier.subscribe();
    let wanted = Event::Challenge("tx-1".into());
    let publisher = b.state().notifier.clone();
    let ev = wanted.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        publisher.publish(ev).await;
    });
    let woke = wait_for(&mut rx, &wanted, Duration::from_secs(5)).await;
    match db {
        // Two instances on one SQLite file do not share the in-process channel:
        // only PostgreSQL promises cross-instance wake-ups.
        Db::Sqlite => assert!(!woke),
        Db::Postgres => assert!(woke, "LISTEN/NOTIFY did not reach instance A"),
    }
    b.shutdown().await;
    a.stop().await;
}

both_databases!(
    healthz_and_openapi,
    restart_keeps_schema,
    graceful_shutdown_stops_listening,
    notifier_reaches_other_instance
);
