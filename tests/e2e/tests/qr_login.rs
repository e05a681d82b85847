//! QR login (issue 14): the page creates a login, the core scans its QR and
//! answers, the page's long-poll learns the outcome. Real server on loopback,
//! the real core as the phone; tried as the attacker at the login page and on
//! a network that loses responses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use countersign_core::Error;
use countersign_core::authenticator::ActivationOptions;
use countersign_core::protocol::{DenyReason, NumberMatching};
use countersign_e2e::{Fault, open_device, start_server};
use countersign_test_support::{Db, RpClient, TestServer, http_client, temp_dir};
use serde_json::{Value, json};

/// The page's poll: `GET /v1/logins/{id}?wait=N` with the browser handle.
async fn page_poll(base: &str, id: &str, handle: &str, wait: u32) -> (u16, Value) {
    let response = http_client()
        .get(format!("{base}/v1/logins/{id}?wait={wait}"))
        .bearer_auth(handle)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn page_number(base: &str, id: &str, handle: &str, number: &str) -> (u16, Value) {
    let response = http_client()
        .post(format!("{base}/v1/logins/{id}/number"))
        .bearer_auth(handle)
        .json(&json!({ "number": number }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(rp: &RpClient, body: Value) -> Value {
    let (status, created) = rp.post("/v1/rp/logins", body).await;
    assert_eq!(status, 200, "{created}");
    created
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// A created login's id, browser handle and QR payload.
fn parts(created: &Value) -> (&str, &str, &str) {
    (
        field(created, "login_id"),
        field(created, "browser_handle"),
        field(created, "uri"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_approve_deny_usernameless_and_the_attacker() {
    let server = start_server(|_| {}).await;
    approve_deny_usernameless_and_the_attacker(server).await;
}

/// The same on PostgreSQL: the claim's binding, the number counter
/// (`UPDATE … RETURNING`) and the joins run on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_on_postgresql() {
    let server = TestServer::start(Db::Postgres).await;
    approve_deny_usernameless_and_the_attacker(server).await;
}

async fn approve_deny_usernameless_and_the_attacker(server: TestServer) {
    let base = server.base();
    let rp = server.rp("Example Portal").await;
    let other_rp = server.rp("Other Portal").await;
    let dir = temp_dir("qr-login");
    let phone = open_device(dir.path(), |_| {});
    let alice = phone
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();

    // 1. Bound to alice: scan, see where the browser is, approve.
    let created = create(
        &rp,
        json!({"user": "alice", "context": {"ip": "198.51.100.7", "location": "Berlin, DE",
               "user_agent": "Firefox on Linux"}}),
    )
    .await;
    let (id, handle, uri) = parts(&created);
    assert!(uri.starts_with("countersign://login?v=1&url="), "{uri}");
    assert!(!uri.contains(handle), "the handle must never be in the QR");
    assert!(field(&created, "qr_svg").contains("<svg"));
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "waiting");
    assert_eq!(st["user"], Value::Null);
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    assert_eq!(request.account_id, alice.id);
    assert_eq!(request.challenge.context.rp, "Example Portal");
    assert_eq!(
        request.challenge.context.ip.as_deref(),
        Some("198.51.100.7")
    );
    assert_eq!(
        request.challenge.context.location.as_deref(),
        Some("Berlin, DE")
    );
    assert_eq!(request.challenge.number_matching, NumberMatching::Off);
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "scanned");
    // The page long-polls while the phone approves.
    let waiting = {
        let (base, id, handle) = (base.clone(), id.to_owned(), handle.to_owned());
        tokio::spawn(async move { page_poll(&base, &id, &handle, 20).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    phone
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();
    let (status, st) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(st["state"], "approved", "{st}");
    assert_eq!(st["user"], "alice");
    // A second scan of the same QR by the same phone: the same, answered request.
    assert_eq!(
        phone.auth.scan_login_qr(uri, None).await.err(),
        Some(Error::AlreadyAnswered)
    );

    // 2. A wrong handle learns nothing: the same answer as an unknown login.
    let (s_wrong, b_wrong) = page_poll(&base, id, "AAAAAAAAAAAAAAAAAAAAAA", 0).await;
    let (s_unknown, b_unknown) =
        page_poll(&base, "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA", 0).await;
    assert_eq!((s_wrong, &b_wrong), (s_unknown, &b_unknown));
    assert_eq!(s_wrong, 404);
    assert!(!b_wrong.to_string().contains("alice"));
    let (s, _) = page_number(&base, id, "AAAAAAAAAAAAAAAAAAAAAA", "123456").await;
    assert_eq!(s, 404);

    // 3. Usernameless, denied on the phone.
    let created = create(&rp, json!({})).await;
    let (id, handle, uri) = parts(&created);
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    phone
        .auth
        .deny(&alice.id, &request.tx_id, DenyReason::Mistake)
        .await
        .unwrap();
    let (_, st) = page_poll(&base, id, handle, 5).await;
    assert_eq!(st["state"], "denied");
    assert_eq!(st["deny_reason"], "mistake");

    // 4. A QR with a forged secret: refused like an unknown login; the real
    // one still works afterwards.
    let created = create(&rp, json!({"user": "alice"})).await;
    let uri = field(&created, "uri");
    let secret = uri.rsplit("secret=").next().unwrap();
    let forged = uri.replace(secret, "BBBBBBBBBBBBBBBBBBBBBA");
    assert_eq!(
        phone.auth.scan_login_qr(&forged, None).await.err(),
        Some(Error::RequestNotFound)
    );
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    phone
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();

    // 5. Another relying party's login: this phone's account may not claim it.
    let created = create(&other_rp, json!({})).await;
    assert_eq!(
        phone
            .auth
            .scan_login_qr(field(&created, "uri"), None)
            .await
            .err(),
        Some(Error::ServerRejected {
            code: "wrong_account".into()
        })
    );

    // 6. Not a login QR at all: a typed input error, nothing sent.
    let sent = phone.wire.exchanges.lock().unwrap().len();
    assert_eq!(
        phone
            .auth
            .scan_login_qr("countersign://activate?v=1", None)
            .await
            .err(),
        Some(Error::InvalidInput { what: "login QR" })
    );
    assert_eq!(phone.wire.exchanges.lock().unwrap().len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_expired_lost_response_second_phone_and_reverse_number() {
    let server = start_server(|_| {}).await;
    let base = server.base();
    let rp = server.rp("Example Portal").await;
    let (dir_a, dir_b) = (temp_dir("qr-a"), temp_dir("qr-b"));
    let phone = open_device(dir_a.path(), |_| {});
    let other_phone = open_device(dir_b.path(), |_| {});
    let alice = phone
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    let bob = other_phone
        .auth
        .activate_uri(&rp.enroll("bob").await.uri, ActivationOptions::default())
        .await
        .unwrap();

    // 1. The claim's response is lost: scanning again gets the same request.
    let created = create(&rp, json!({})).await;
    let (id, handle, uri) = parts(&created);
    let lose = Arc::new(AtomicBool::new(true));
    {
        let lose = lose.clone();
        phone.wire.set_faults(Some(Box::new(move |req| {
            (req.url.contains("/claim") && lose.swap(false, Ordering::SeqCst))
                .then_some(Fault::LoseResponse)
        })));
    }
    assert_eq!(
        phone.auth.scan_login_qr(uri, None).await.err(),
        Some(Error::Network)
    );
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "scanned", "the server did claim it");
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    phone.wire.set_faults(None);

    // 2. A second phone scanning the same QR (a relayed or shoulder-surfed
    // code) is refused: the login is bound to the first.
    assert_eq!(
        other_phone.auth.scan_login_qr(uri, None).await.err(),
        Some(Error::AlreadyAnswered)
    );
    phone
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "approved");
    assert_eq!(
        st["user"], "alice",
        "signed in as the scanning device's user"
    );

    // 3. Bound to bob: alice's phone may not take it.
    let created = create(&rp, json!({"user": "bob"})).await;
    assert_eq!(
        phone
            .auth
            .scan_login_qr(field(&created, "uri"), None)
            .await
            .err(),
        Some(Error::ServerRejected {
            code: "wrong_account".into()
        })
    );
    let request = other_phone
        .auth
        .scan_login_qr(field(&created, "uri"), None)
        .await
        .unwrap();
    assert_eq!(request.account_id, bob.id);

    // 4. Reverse number matching: the phone shows the number, the page types it.
    let created = create(&rp, json!({"number_matching": "show", "digits": 6})).await;
    let (id, handle, uri) = parts(&created);
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    let NumberMatching::Show { number } = request.challenge.number_matching.clone() else {
        panic!("expected show, got {:?}", request.challenge.number_matching);
    };
    assert_eq!(number.len(), 6);
    // Too early: the phone has not approved yet.
    let (s, _) = page_number(&base, id, handle, &number).await;
    assert_eq!(s, 400);
    phone
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "number_required", "{st}");
    let wrong = if number == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (s, body) = page_number(&base, id, handle, wrong).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_number");
    let (s, st) = page_number(&base, id, handle, &number).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["state"], "approved");

    // 5. Reverse number typed wrong until the limit: denied, never approved.
    let created = create(&rp, json!({"number_matching": "show"})).await;
    let (id, handle, uri) = parts(&created);
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    phone
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();
    let NumberMatching::Show { number } = request.challenge.number_matching.clone() else {
        panic!("expected show");
    };
    let wrong = if number == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..3 {
        page_number(&base, id, handle, wrong).await;
    }
    let (_, st) = page_poll(&base, id, handle, 0).await;
    assert_eq!(st["state"], "denied");
    assert_eq!(st["deny_reason"], "wrong_number");
    let (s, _) = page_number(&base, id, handle, &number).await;
    assert_eq!(s, 400, "no number is taken after the login ended");

    // 6. An expired QR: the page says expired, the phone gets RequestExpired.
    let created = create(&rp, json!({"timeout_secs": 10})).await;
    let (id, handle, uri) = parts(&created);
    let (_, st) = page_poll(&base, id, handle, 20).await;
    assert_eq!(st["state"], "expired", "the long-poll wakes at expiry");
    assert_eq!(
        phone.auth.scan_login_qr(uri, None).await.err(),
        Some(Error::RequestExpired)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_with_two_accounts_on_the_server_needs_a_choice() {
    let server = start_server(|_| {}).await;
    let rp = server.rp("Example Portal").await;
    let dir = temp_dir("qr-two");
    let phone = open_device(dir.path(), |_| {});
    let mut ids = Vec::new();
    for user in ["alice", "alice-admin"] {
        let account = phone
            .auth
            .activate_uri(&rp.enroll(user).await.uri, ActivationOptions::default())
            .await
            .unwrap();
        ids.push(account.id);
    }
    let created = create(&rp, json!({"user": "alice-admin"})).await;
    let uri = field(&created, "uri");
    assert_eq!(
        phone.auth.scan_login_qr(uri, None).await.err(),
        Some(Error::InvalidInput { what: "account" })
    );
    assert_eq!(
        phone
            .auth
            .scan_login_qr(uri, Some("no-such-account"))
            .await
            .err(),
        Some(Error::InvalidInput { what: "account" })
    );
    let request = phone.auth.scan_login_qr(uri, Some(&ids[1])).await.unwrap();
    assert_eq!(request.account_id, ids[1]);
}

/// The app process dies between the scan and the answer: the request the scan
/// recorded is answered after a restart from storage, and the page signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_answered_after_the_app_restarts() {
    let server = start_server(|_| {}).await;
    let base = server.base();
    let rp = server.rp("Example Portal").await;
    let dir = temp_dir("qr-restart");
    let phone = open_device(dir.path(), |_| {});
    let alice = phone
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    let created = create(&rp, json!({})).await;
    let (id, handle, uri) = parts(&created);
    let request = phone.auth.scan_login_qr(uri, None).await.unwrap();
    drop(phone);
    let restarted = open_device(dir.path(), |_| {});
    let held = restarted.auth.pending_requests().unwrap();
    assert_eq!(held.len(), 1, "the scanned request survives the restart");
    assert_eq!(held[0].tx_id, request.tx_id);
    restarted
        .auth
        .approve(&alice.id, &request.tx_id, None)
        .await
        .unwrap();
    let (_, st) = page_poll(&base, id, handle, 5).await;
    assert_eq!(st["state"], "approved", "{st}");
    assert_eq!(st["user"], "alice");
}
