//! Moving to a new phone (issue 15, docs/PROTOCOL.md §14): the old phone starts
//! a transfer, the new phone activates with its QR and waits, the old phone
//! approves or denies the `transfer` request. Real server on loopback, two
//! real cores as the two phones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::sync::atomic::{AtomicBool, Ordering};

use countersign_core::Error;
use countersign_core::authenticator::{AccountInfo, ActivationOptions, CancelHandle};
use countersign_core::platform::VerificationKind;
use countersign_core::protocol::{ChallengeKind, DenyReason, NumberMatching};
use countersign_e2e::{Answer, Device, Fault, open_device, start_server, wait_pending, with_pin};
use countersign_test_support::{Db, RpClient, TempDir, TestServer, temp_dir};
use serde_json::{Value, json};
use sqlx::Row;

const PIN: &str = "246810";
const CONFIRM: &str = "/v1/device/activate/confirm";

/// The old phone (alice's account, with a PIN) and a new phone not activated yet.
struct Phones {
    old: Device,
    old_account: AccountInfo,
    new: Device,
    _dirs: (TempDir, TempDir),
}

async fn phones(rp: &RpClient) -> Phones {
    let (d1, d2) = (temp_dir("transfer-old"), temp_dir("transfer-new"));
    let old = open_device(d1.path(), |c| c.device_name = Some("Old phone".into()));
    let old_account = old
        .auth
        .activate_uri(&rp.enroll("alice").await.uri, with_pin(PIN))
        .await
        .unwrap();
    let new = open_device(d2.path(), |c| c.device_name = Some("New Pixel".into()));
    Phones {
        old,
        old_account,
        new,
        _dirs: (d1, d2),
    }
}

/// The user's devices as the RP lists them: (device id, status).
async fn devices(rp: &RpClient, user: &str) -> Vec<(String, String)> {
    let (status, body) = rp.get(&format!("/v1/rp/users/{user}/devices")).await;
    assert_eq!(status, 200, "{body}");
    let list = body
        .as_array()
        .or_else(|| body["devices"].as_array())
        .unwrap_or_else(|| panic!("no device list in {body}"));
    list.iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn active(list: &[(String, String)]) -> usize {
    list.iter().filter(|(_, s)| s == "active").count()
}

/// `user`'s audit events of `event`, reasons in order.
async fn audited(s: &TestServer, user: &str, event: &str) -> Vec<String> {
    sqlx::query(
        "SELECT a.reason FROM audit_log a JOIN users u ON u.id = a.user_id \
         WHERE u.name = $1 AND a.event = $2 ORDER BY a.at, a.id",
    )
    .bind(user)
    .bind(event)
    .fetch_all(&s.server().state().db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get("reason").unwrap())
    .collect()
}

async fn transfer_challenges(s: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM challenges WHERE kind = 'transfer'")
        .fetch_one(&s.server().state().db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// The old phone starts a transfer (after its PIN); the new phone activates
/// with the QR and is told to wait for the old phone.
async fn start_and_scan(p: &Phones, remove_old: bool) -> String {
    p.old.user.will([Answer::Pin(PIN.into())]);
    let offer = p
        .old
        .auth
        .start_transfer(&p.old_account.id, remove_old)
        .await
        .unwrap();
    assert_eq!(
        p.old.user.prompt_kinds(),
        [VerificationKind::Pin],
        "moving the account asks for the PIN it has"
    );
    assert!(offer.offer_uri.starts_with("countersign://activate?"));
    assert_eq!(offer.code.len(), 29, "five groups of five");
    let waiting = p
        .new
        .auth
        .activate_uri(&offer.offer_uri, ActivationOptions::default())
        .await;
    assert_eq!(waiting.err(), Some(Error::AwaitingApproval));
    assert!(
        p.new.auth.accounts().unwrap().is_empty(),
        "unlisted until approved"
    );
    assert!(p.new.auth.has_pending_activations().unwrap());
    // Asking again changes nothing while the old phone has not answered.
    assert_eq!(p.new.auth.confirm_pending_activations().await, Ok(vec![]));
    offer.offer_uri.to_string()
}

/// The transfer request as the old phone shows it.
async fn transfer_request(p: &Phones) -> countersign_core::authenticator::PendingRequest {
    let pending = wait_pending(&p.old.auth, 1, 10).await;
    assert_eq!(pending.len(), 1, "one transfer request, nothing else");
    let r = pending.into_iter().next().unwrap();
    assert_eq!(r.account_id, p.old_account.id);
    assert_eq!(r.challenge.kind, ChallengeKind::Transfer);
    assert_eq!(r.challenge.number_matching, NumberMatching::Off);
    assert!(r.challenge.transaction.is_none());
    let text = r.challenge.text.clone().unwrap();
    assert!(
        text.contains("New Pixel") && text.contains("alice"),
        "the request names the account and the new phone: {text}"
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_phone_approves_and_stays() {
    let s = start_server(|_| {}).await;
    approve_and_keep(&s).await;
    s.stop().await;
}

/// The same on PostgreSQL: the conditional updates of the transfer, the
/// offer and the devices run on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_phone_approves_on_postgresql() {
    let s = TestServer::start_with(Db::Postgres, |c| {
        c.policy.push_max_per_window = 1000;
        c.policy.push_backoff_secs = 0;
    })
    .await;
    approve_and_keep(&s).await;
    s.stop().await;
}

async fn approve_and_keep(s: &TestServer) {
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    start_and_scan(&p, false).await;
    assert_eq!(
        active(&devices(&rp, "alice").await),
        1,
        "the new phone is not active yet"
    );
    let r = transfer_request(&p).await;
    // The new phone cannot see it: it is not its request.
    assert_eq!(
        p.new
            .auth
            .approve(&p.old_account.id, &r.tx_id, None)
            .await
            .err(),
        Some(Error::AccountNotFound)
    );
    p.old.user.will([Answer::Pin(PIN.into())]);
    p.old
        .auth
        .approve(&r.account_id, &r.tx_id, None)
        .await
        .unwrap();

    let activated = p.new.auth.confirm_pending_activations().await.unwrap();
    assert_eq!(activated.len(), 1);
    let new_account = &activated[0];
    assert_eq!(new_account.label, "alice");
    assert_eq!(p.new.auth.accounts().unwrap(), activated);
    assert!(!p.new.auth.has_pending_activations().unwrap());
    let list = devices(&rp, "alice").await;
    assert_eq!(active(&list), 2, "old phone kept: {list:?}");

    // The new phone answers pushes; the old one still gets them too.
    let started = rp
        .start_push(json!({"user": "alice", "number_matching": "off"}))
        .await;
    let tx = started["tx_id"].as_str().unwrap();
    assert_eq!(started["devices"], 2);
    let got = wait_pending(&p.new.auth, 1, 10).await;
    assert_eq!(got[0].tx_id, tx);
    p.new.auth.approve(&new_account.id, tx, None).await.unwrap();
    assert_eq!(rp.status(tx).await["state"], "approved");
    assert_eq!(p.old.auth.accounts().unwrap().len(), 1);

    assert_eq!(
        audited(s, "alice", "transfer_started").await,
        ["offer for a new phone; this device kept"]
    );
    assert_eq!(
        audited(s, "alice", "transfer_approved").await,
        ["new phone active; this device kept"]
    );
    // The operator's offers are audited with their user.
    assert_eq!(audited(s, "alice", "enrollment_offer").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_phone_approves_and_is_removed_when_asked() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    start_and_scan(&p, true).await;
    let r = transfer_request(&p).await;
    p.old.user.will([Answer::Pin(PIN.into())]);
    p.old
        .auth
        .approve(&r.account_id, &r.tx_id, None)
        .await
        .unwrap();

    let activated = p.new.auth.confirm_pending_activations().await.unwrap();
    assert_eq!(activated.len(), 1);
    let list = devices(&rp, "alice").await;
    assert_eq!(active(&list), 1, "{list:?}");
    assert!(list.iter().any(|(_, st)| st == "removed"), "{list:?}");
    // The old phone's next request is refused (`device_removed`): it wipes
    // (possibly already in the approval's own follow-up calls).
    if !p.old.auth.accounts().unwrap().is_empty() {
        let next = p.old.auth.pending(0, &CancelHandle::new()).await;
        assert_eq!(next.err(), Some(Error::DeviceDeregistered));
    }
    assert!(p.old.auth.accounts().unwrap().is_empty());
    let refused = p.old.wire.exchanges_to("/v1/device");
    assert!(
        refused
            .iter()
            .any(|e| e.status == 410 && String::from_utf8_lossy(&e.body).contains("device_removed")),
        "the server refused the old phone as removed"
    );
    // Pushes go to the new phone only.
    let started = rp
        .start_push(json!({"user": "alice", "number_matching": "off"}))
        .await;
    assert_eq!(started["devices"], 1);
    assert_eq!(
        audited(&s, "alice", "deregistration").await,
        ["moved to a new phone"]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_phone_denies_and_nothing_new_is_active() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    let uri = start_and_scan(&p, true).await;
    let r = transfer_request(&p).await;
    p.old
        .auth
        .deny(&r.account_id, &r.tx_id, DenyReason::NotMe)
        .await
        .unwrap();

    assert_eq!(
        p.new.auth.confirm_pending_activations().await,
        Err(Error::TransferDenied)
    );
    assert!(p.new.auth.accounts().unwrap().is_empty());
    assert!(!p.new.auth.has_pending_activations().unwrap(), "dropped");
    let list = devices(&rp, "alice").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0], (p.old_account_device(), "active".to_owned()));
    // The offer is used up: scanning it again activates nothing.
    let again = p
        .new
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await;
    assert!(
        matches!(&again, Err(Error::ServerRejected { code }) if code == "replayed"),
        "{again:?}"
    );
    // Not a login: the "not me" locks no pushes, and the old phone still works.
    let started = rp
        .start_push(json!({"user": "alice", "number_matching": "off"}))
        .await;
    let tx = started["tx_id"].as_str().unwrap();
    wait_pending(&p.old.auth, 1, 10).await;
    p.old
        .auth
        .approve(&p.old_account.id, tx, None)
        .await
        .unwrap();
    assert_eq!(rp.status(tx).await["state"], "approved");
    assert_eq!(
        audited(&s, "alice", "transfer_denied").await,
        ["denied by the old device"]
    );
    s.stop().await;
}

impl Phones {
    /// The old phone's device id on the server.
    fn old_account_device(&self) -> String {
        match &self.old_account.kind {
            countersign_core::authenticator::AccountKind::Push { device_id, .. } => {
                device_id.clone()
            }
            other => panic!("not a push account: {other:?}"),
        }
    }
}

/// A lost confirmation response and repeated confirmations find the same
/// transfer request; a second new phone activating the same offer replaces
/// the first, whose request is withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_confirmations_make_one_request() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    p.old.user.will([Answer::Pin(PIN.into())]);
    let offer = p
        .old
        .auth
        .start_transfer(&p.old_account.id, false)
        .await
        .unwrap();
    let lost = AtomicBool::new(false);
    p.new.wire.set_faults(Some(Box::new(move |req| {
        (req.url.ends_with(CONFIRM) && !lost.swap(true, Ordering::SeqCst))
            .then_some(Fault::LoseResponse)
    })));
    let waiting = p
        .new
        .auth
        .activate_uri(&offer.offer_uri, ActivationOptions::default())
        .await;
    assert_eq!(waiting.err(), Some(Error::AwaitingApproval));
    p.new.wire.set_faults(None);
    for _ in 0..2 {
        assert_eq!(p.new.auth.confirm_pending_activations().await, Ok(vec![]));
    }
    let confirms = p.new.wire.exchanges_to(CONFIRM);
    assert_eq!(confirms.len(), 4, "lost, retried, then two more");
    let txs: Vec<String> = confirms
        .iter()
        .map(|e| {
            assert_eq!(e.status, 202);
            let body: Value = serde_json::from_slice(&e.body).unwrap();
            assert_eq!(body["status"], "awaiting_approval");
            body["tx_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(txs.iter().all(|t| t == &txs[0]), "one request: {txs:?}");
    assert_eq!(transfer_challenges(&s).await, 1);
    let first = transfer_request(&p).await;
    assert_eq!(first.tx_id, txs[0]);

    // A second new phone scans the same QR: it replaces the first.
    let d3 = temp_dir("transfer-third");
    let third = open_device(d3.path(), |c| c.device_name = Some("Other iPhone".into()));
    let waiting = third
        .auth
        .activate_uri(&offer.offer_uri, ActivationOptions::default())
        .await;
    assert_eq!(waiting.err(), Some(Error::AwaitingApproval));
    assert_eq!(transfer_challenges(&s).await, 2);
    // The first phone's activation was replaced: a final refusal drops it.
    assert!(p.new.auth.confirm_pending_activations().await.is_err());
    assert!(!p.new.auth.has_pending_activations().unwrap());
    // The old phone now holds only the request naming the second phone; the
    // first one's can no longer be approved.
    let pending = wait_pending(&p.old.auth, 1, 10).await;
    let pending: Vec<_> = pending
        .into_iter()
        .filter(|r| r.tx_id != first.tx_id)
        .collect();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0]
            .challenge
            .text
            .as_deref()
            .unwrap()
            .contains("Other iPhone")
    );
    p.old
        .user
        .will([Answer::Pin(PIN.into()), Answer::Pin(PIN.into())]);
    let stale = p
        .old
        .auth
        .approve(&first.account_id, &first.tx_id, None)
        .await;
    assert!(stale.is_err(), "{stale:?}");
    p.old
        .auth
        .approve(&pending[0].account_id, &pending[0].tx_id, None)
        .await
        .unwrap();
    assert_eq!(
        third
            .auth
            .confirm_pending_activations()
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(active(&devices(&rp, "alice").await), 2);
    s.stop().await;
}

/// No answer in time is a denial, and a transfer whose old phone was removed
/// meanwhile cannot be approved by anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_a_removed_old_phone_leave_nothing_active() {
    let s = start_server(|c| c.policy.enrollment_ttl_secs = 3).await;
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    start_and_scan(&p, false).await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let late = p.new.auth.confirm_pending_activations().await;
    assert!(
        matches!(
            &late,
            Err(Error::TransferDenied) | Err(Error::ServerRejected { .. })
        ),
        "{late:?}"
    );
    assert!(p.new.auth.accounts().unwrap().is_empty());
    assert!(!p.new.auth.has_pending_activations().unwrap());
    assert_eq!(active(&devices(&rp, "alice").await), 1);
    s.stop().await;

    // The old phone is removed between the start and the new phone's scan.
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Portal").await;
    let p = phones(&rp).await;
    p.old.user.will([Answer::Pin(PIN.into())]);
    let offer = p
        .old
        .auth
        .start_transfer(&p.old_account.id, false)
        .await
        .unwrap();
    let (status, body) = rp
        .delete(&format!(
            "/v1/rp/users/alice/devices/{}",
            p.old_account_device()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = p
        .new
        .auth
        .activate_uri(&offer.offer_uri, ActivationOptions::default())
        .await;
    assert_eq!(refused.err(), Some(Error::TransferDenied));
    assert!(p.new.auth.accounts().unwrap().is_empty());
    assert_eq!(active(&devices(&rp, "alice").await), 0);
    // And a removed device cannot start one.
    p.old.user.will([Answer::Pin(PIN.into())]);
    let again = p.old.auth.start_transfer(&p.old_account.id, false).await;
    assert!(
        matches!(
            again,
            Err(Error::DeviceDeregistered) | Err(Error::AccountNotFound)
        ),
        "{again:?}"
    );
    s.stop().await;
}
