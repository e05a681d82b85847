//! Issue 11: an answer whose response is lost after the server committed it.
//! The device retries and gets the same acceptance; when the retry meets
//! `already_answered` anyway (a server that does not recognise repeats), the
//! device keeps the KEM key the server may now seal to and resynchronises it.
//! Either way every later push is received, opened and answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use countersign_core::Error;
use countersign_core::authenticator::{AccountKind, ActivationOptions, Delivery};
use countersign_core::platform::{HttpMethod, HttpResponse};
use countersign_core::protocol::DenyReason;
use countersign_e2e::{Device, Fault, FaultRule, open_device, start_server};
use countersign_test_support::{RpClient, TempDir, TestServer, http_client, temp_dir};
use serde_json::{Value, json};

const ANSWER: &str = "/answer";
const KEM: &str = "/v1/device/kem";

struct Phone {
    dev: Device,
    account: String,
    device_id: String,
    _dir: TempDir,
}

async fn phone(rp: &RpClient, label: &str) -> Phone {
    let dir = temp_dir(label);
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll("alice").await.uri;
    let acct = dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    let AccountKind::Push { device_id, .. } = &acct.kind else {
        panic!("not a push account");
    };
    Phone {
        device_id: device_id.clone(),
        account: acct.id,
        dev,
        _dir: dir,
    }
}

fn push_data(p: &Phone, tx: &str) -> HashMap<String, String> {
    HashMap::from([
        ("device_id".to_owned(), p.device_id.clone()),
        ("tx_id".to_owned(), tx.to_owned()),
    ])
}

/// Loses the response of the first request whose URL contains `part`, and
/// applies `then` to every other request.
fn lose_first(part: &'static str, then: Option<(&'static str, Fault)>) -> FaultRule {
    let lost = AtomicBool::new(false);
    Box::new(move |req| {
        if req.url.contains(part) && !lost.swap(true, Ordering::SeqCst) {
            return Some(Fault::LoseResponse);
        }
        then.and_then(|(p, f)| req.url.contains(p).then_some(f))
    })
}

/// What a server that does not recognise a repeated answer says to it.
fn answers_refused_as_already_answered(
    req: &countersign_core::platform::HttpRequest,
    r: HttpResponse,
) -> HttpResponse {
    if req.url.ends_with(ANSWER) && r.status == 200 {
        return HttpResponse {
            status: 409,
            headers: vec![],
            body: br#"{"error":{"code":"already_answered","message":"answered"}}"#.to_vec(),
        };
    }
    r
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// Starts a push and has `main` receive, open and approve it (every phone in
/// `also` must receive and open it too), three times.
async fn three_more_pushes(rp: &RpClient, main: &Phone, also: &[&Phone]) {
    for i in 0..3 {
        let v = rp
            .start_push(json!({ "user": "alice", "number_matching": "off" }))
            .await;
        let tx = v["tx_id"].as_str().unwrap();
        for p in also {
            let got = p.dev.auth.handle_push(&push_data(p, tx)).await;
            assert!(got.is_ok(), "push {i}: another phone could not open it");
        }
        let req = main.dev.auth.handle_push(&push_data(main, tx)).await;
        assert_eq!(req.map(|r| r.tx_id).ok().as_deref(), Some(tx), "push {i}");
        main.dev
            .auth
            .approve(&main.account, tx, None)
            .await
            .unwrap();
        assert_eq!(rp.status(tx).await["state"], "approved", "push {i}");
    }
}

async fn setup() -> (TestServer, RpClient, Phone) {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let p = phone(&rp, "lost-answer").await;
    (s, rp, p)
}

async fn typed_push(rp: &RpClient) -> (String, String) {
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "type" }))
        .await;
    (
        v["tx_id"].as_str().unwrap().to_owned(),
        v["number"].as_str().unwrap().to_owned(),
    )
}

/// Approves while the wire loses the answer's response: the approval waits in
/// the outbox (the server has it).
async fn approve_with_the_response_lost(p: &Phone, tx: &str, number: &str) {
    let out = p.dev.auth.approve(&p.account, tx, Some(number)).await;
    assert_eq!(out.unwrap().delivery, Delivery::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answer_response_retry_gets_the_same_acceptance() {
    let (s, rp, p) = setup().await;
    let (tx, number) = typed_push(&rp).await;
    p.dev.auth.handle_push(&push_data(&p, &tx)).await.unwrap();

    p.dev.wire.set_faults(Some(lose_first(ANSWER, None)));
    approve_with_the_response_lost(&p, &tx, &number).await;
    // The server committed the approval.
    let first = rp.status(&tx).await;
    assert_eq!(first["state"], "approved");

    // The retry: the same acceptance, the same push OTP, nothing recorded twice.
    let out = p.dev.auth.approve(&p.account, &tx, Some(&number)).await;
    let out = out.expect("the retry is accepted");
    assert_eq!(first["push_otp"].as_str(), Some(out.push_otp.as_str()));
    let answers = p.dev.wire.exchanges_to(ANSWER);
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(|e| e.status == 200));
    assert_eq!(answers[0].body, answers[1].body, "the same acceptance");
    assert_eq!(
        answers[0].request.body, answers[1].request.body,
        "same answer"
    );
    assert_ne!(
        answers[0].request.headers, answers[1].request.headers,
        "a new signed request (fresh nonce)"
    );
    let kem_kid = json_of(&answers[0].body)["kem_kid"]
        .as_str()
        .expect("the server names the key it seals to")
        .to_owned();
    assert!(
        p.dev
            .auth
            .kem_key_ids(&p.account)
            .unwrap()
            .contains(&kem_kid)
    );
    assert_eq!(rp.status(&tx).await, first, "one decision");
    assert!(
        p.dev.wire.exchanges_to(KEM).is_empty(),
        "no doubt, no resync"
    );
    p.dev.wire.set_faults(None);

    three_more_pushes(&rp, &p, &[]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_answered_after_a_lost_response_keeps_the_key_and_resyncs() {
    let (s, rp, p) = setup().await;
    let (tx, number) = typed_push(&rp).await;
    p.dev.auth.handle_push(&push_data(&p, &tx)).await.unwrap();

    p.dev.wire.set_faults(Some(lose_first(ANSWER, None)));
    approve_with_the_response_lost(&p, &tx, &number).await;
    let taken = p.dev.wire.exchanges_to(ANSWER);
    let kem_kid = json_of(&taken[0].body)["kem_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    p.dev
        .wire
        .set_rewrite(Some(Box::new(answers_refused_as_already_answered)));
    assert_eq!(
        p.dev
            .auth
            .approve(&p.account, &tx, Some(&number))
            .await
            .err(),
        Some(Error::AlreadyAnswered)
    );
    p.dev.wire.set_rewrite(None);
    // The key the server switched to is kept, and named to the server again.
    assert!(
        p.dev
            .auth
            .kem_key_ids(&p.account)
            .unwrap()
            .contains(&kem_kid)
    );
    let resync = p.dev.wire.exchanges_to(KEM);
    assert_eq!(resync.len(), 1);
    assert_eq!(resync[0].request.method, HttpMethod::Put);
    assert_eq!(resync[0].status, 200);
    let named = json_of(&resync[0].body)["kem_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(p.dev.auth.kem_key_ids(&p.account).unwrap().contains(&named));
    assert_eq!(rp.status(&tx).await["state"], "approved");

    three_more_pushes(&rp, &p, &[]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_answered_without_resync_still_opens_the_next_pushes() {
    let (s, rp, p) = setup().await;
    let (tx, number) = typed_push(&rp).await;
    p.dev.auth.handle_push(&push_data(&p, &tx)).await.unwrap();

    // The resync cannot reach the server: the kept keys alone must do.
    p.dev
        .wire
        .set_faults(Some(lose_first(ANSWER, Some((KEM, Fault::Unreachable)))));
    approve_with_the_response_lost(&p, &tx, &number).await;
    p.dev
        .wire
        .set_rewrite(Some(Box::new(answers_refused_as_already_answered)));
    assert_eq!(
        p.dev
            .auth
            .approve(&p.account, &tx, Some(&number))
            .await
            .err(),
        Some(Error::AlreadyAnswered)
    );
    p.dev.wire.set_rewrite(None);
    assert!(p.dev.wire.exchanges_to(KEM).is_empty());

    // The later pushes are still opened (the resync stays blocked).
    three_more_pushes(&rp, &p, &[]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_answer_cannot_flip_the_decision() {
    let (s, rp, a) = setup().await;
    let b = phone(&rp, "lost-answer-second-phone").await;
    let (tx, number) = typed_push(&rp).await;
    a.dev.auth.handle_push(&push_data(&a, &tx)).await.unwrap();
    b.dev.auth.handle_push(&push_data(&b, &tx)).await.unwrap();

    a.dev.wire.set_faults(Some(lose_first(ANSWER, None)));
    approve_with_the_response_lost(&a, &tx, &number).await;
    // A second tap elsewhere ("not me" on the other phone) is refused.
    assert_eq!(
        b.dev
            .auth
            .deny(&b.account, &tx, DenyReason::NotMe)
            .await
            .err(),
        Some(Error::AlreadyAnswered)
    );
    let status = rp.status(&tx).await;
    assert_eq!(status["state"], "approved");
    assert_eq!(status["device_id"], a.device_id.as_str());
    assert_eq!(status["deny_reason"], Value::Null);

    // Someone re-posting the captured request is stopped by its nonce, and a
    // changed body under the captured signature does not verify.
    let captured = a.dev.wire.exchanges_to(ANSWER).remove(0).request;
    let repost = |body: Vec<u8>| {
        let mut rb = http_client().post(&captured.url);
        for (k, v) in &captured.headers {
            rb = rb.header(k, v);
        }
        rb.body(body).send()
    };
    let r = repost(captured.body.clone()).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        json_of(&r.bytes().await.unwrap())["error"]["code"],
        "replayed"
    );
    let mut changed = captured.body.clone();
    changed.push(b' ');
    let r = repost(changed).await.unwrap();
    assert_eq!(r.status(), 401);

    // The answering phone's retry still gets its acceptance.
    a.dev.wire.set_faults(None);
    a.dev
        .auth
        .approve(&a.account, &tx, Some(&number))
        .await
        .unwrap();
    assert_eq!(rp.status(&tx).await, status, "one decision");

    three_more_pushes(&rp, &a, &[&b]).await;
    s.stop().await;
}

/// A device that lost the KEM key the server seals to (restored from an older
/// backup) cannot open the next challenge, but names a key it holds, so the
/// one after opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_for_a_lost_kem_key_triggers_a_resync() {
    let (s, rp, p) = setup().await;
    let backup = temp_dir("lost-answer-backup");
    countersign_e2e::copy_dir(p._dir.path(), backup.path());
    // An answer rotates the key the server seals to.
    let (tx, number) = typed_push(&rp).await;
    p.dev.auth.handle_push(&push_data(&p, &tx)).await.unwrap();
    p.dev
        .auth
        .approve(&p.account, &tx, Some(&number))
        .await
        .unwrap();
    // The phone comes back from the backup taken before that answer.
    drop(p.dev);
    let restored = open_device(backup.path(), |_| {});
    let p = Phone { dev: restored, ..p };
    let (tx, _) = typed_push(&rp).await;
    assert_eq!(
        p.dev.auth.handle_push(&push_data(&p, &tx)).await.err(),
        Some(Error::Tampered)
    );
    let resync = p.dev.wire.exchanges_to(KEM);
    assert_eq!(resync.len(), 1, "the device named a key it holds");
    assert_eq!(resync[0].status, 200);
    three_more_pushes(&rp, &p, &[]).await;
    s.stop().await;
}
