//! The device's long-poll names the requests it holds (`known`, docs/PROTOCOL.md
//! §12.4): while a request waits for the user, `pending(wait)` waits too instead
//! of returning at once (an app's loop around it no longer spins), and it wakes
//! with an empty list when the request is answered elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::time::{Duration, Instant};

use countersign_core::Error;
use countersign_core::authenticator::{ActivationOptions, CancelHandle, PendingRequest};
use countersign_e2e::{Device, open_device, start_server, wait_pending};
use countersign_test_support::temp_dir;
use serde_json::json;

fn ids(list: &[PendingRequest]) -> Vec<String> {
    list.iter().map(|p| p.tx_id.clone()).collect()
}

/// The poll requests the device sent so far.
fn polls(dev: &Device) -> usize {
    dev.wire.exchanges_to("/v1/device/challenges?").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_makes_the_poll_wait_and_an_answer_elsewhere_ends_it() {
    let cancel = CancelHandle::new();
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("long-poll");
    let dev = open_device(dir.path(), |_| {});
    let acct = dev
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    // Alice's second phone.
    let dir2 = temp_dir("long-poll-2");
    let phone2 = open_device(dir2.path(), |_| {});
    let acct2 = phone2
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();

    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    assert_eq!(ids(&wait_pending(&dev.auth, 1, 10).await), [tx.as_str()]);

    // Held and unchanged: the whole wait, in one poll request.
    let before = polls(&dev);
    let t0 = Instant::now();
    let got = dev.auth.pending(2, &CancelHandle::new()).await.unwrap();
    let took = t0.elapsed();
    let sent = polls(&dev) - before;
    println!("pending(2) with a request held: {took:?}, {sent} poll request(s)");
    assert_eq!(ids(&got), [tx.as_str()]);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!((1..=2).contains(&sent), "{sent} poll requests");

    // Approved by another process on the same storage: the poll wakes early,
    // and the list is empty.
    let other_process = open_device(dir.path(), |_| {});
    let before = polls(&dev);
    let t0 = Instant::now();
    let (got, ()) = tokio::join!(dev.auth.pending(20, &cancel), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        other_process
            .auth
            .approve(&acct.id, &tx, None)
            .await
            .unwrap();
    });
    let took = t0.elapsed();
    let sent = polls(&dev) - before;
    println!("approval by another process woke pending(20) after {took:?}, {sent} poll request(s)");
    assert!(got.unwrap().is_empty());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!((1..=2).contains(&sent), "{sent} poll requests");
    assert_eq!(rp.status(&tx).await["state"], "approved");

    // Approved on alice's other phone: the same, and this device forgets it.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    let tx2 = v["tx_id"].as_str().unwrap().to_owned();
    assert_eq!(ids(&wait_pending(&dev.auth, 1, 10).await), [tx2.as_str()]);
    assert_eq!(
        ids(&wait_pending(&phone2.auth, 1, 10).await),
        [tx2.as_str()]
    );
    let before = polls(&dev);
    let t0 = Instant::now();
    let (got, ()) = tokio::join!(dev.auth.pending(20, &cancel), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        phone2.auth.approve(&acct2.id, &tx2, None).await.unwrap();
    });
    let took = t0.elapsed();
    let sent = polls(&dev) - before;
    println!("approval on another device woke pending(20) after {took:?}, {sent} poll request(s)");
    assert!(got.unwrap().is_empty());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!((1..=2).contains(&sent), "{sent} poll requests");
    assert!(dev.auth.pending_requests().unwrap().is_empty());
    // Answering it here anyway gets the server's verdict.
    assert_eq!(
        dev.auth.approve(&acct.id, &tx2, None).await.err(),
        Some(Error::AlreadyAnswered)
    );

    // Nothing held, nothing pending: waits for a new one as before.
    let t0 = Instant::now();
    let (got, started) = tokio::join!(dev.auth.pending(20, &cancel), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rp.start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await
    });
    let tx3 = started["tx_id"].as_str().unwrap().to_owned();
    assert_eq!(ids(&got.unwrap()), [tx3]);
    assert!(t0.elapsed() < Duration::from_secs(5));
    s.stop().await;
}
