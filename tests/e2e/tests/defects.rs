//! Defects found by using the device as a new user would (issue 11): several
//! servers polled in one call, a failed or tampered challenge fetch, activation
//! errors in activation words, and an HOTP account with no code left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_core::Error;
use countersign_core::authenticator::{ActivationOptions, CancelHandle};
use countersign_core::platform::{
    FileStorage, HttpClient, HttpError, HttpRequest, HttpResponse, KeySource, LogLevel, Logger,
    ReqwestClient, SoftwareKeyVault, SystemClock,
};
use countersign_core::protocol::{DenyReason, Platform};
use countersign_core::{Authenticator, AuthenticatorConfig, PlatformHooks};
use countersign_e2e::{ScriptedUser, open_device, start_server};
use countersign_test_support::{temp_dir, web_page_server, web_page_server_with_status};
use serde_json::json;

/// The shipped client with faults switched on and off by the test.
struct FaultyNet {
    inner: ReqwestClient,
    /// Answers of this server's challenge list arrive this late (a slower server).
    slow_server: Mutex<Option<(String, Duration)>>,
    /// Fetching one challenge fails to connect (the list still works).
    fail_fetch: AtomicBool,
    /// One character of a fetched challenge's signed payload is changed in flight.
    tamper_fetch: AtomicBool,
}

impl FaultyNet {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestClient::new().unwrap(),
            slow_server: Mutex::new(None),
            fail_fetch: AtomicBool::new(false),
            tamper_fetch: AtomicBool::new(false),
        })
    }
}

fn is_fetch(request: &HttpRequest) -> bool {
    request.url.contains("/v1/device/challenges/") && !request.url.contains("/answer")
}

#[async_trait::async_trait]
impl HttpClient for FaultyNet {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if is_fetch(&request) && self.fail_fetch.load(Ordering::SeqCst) {
            return Err(HttpError::Connect("connection reset".into()));
        }
        let slow = self.slow_server.lock().unwrap().clone();
        let delay = slow
            .filter(|(base, _)| {
                request.url.starts_with(base.as_str())
                    && request.url.contains("/v1/device/challenges?")
            })
            .map(|(_, d)| d);
        let mut response = self.inner.send(request.clone()).await?;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if is_fetch(&request) && self.tamper_fetch.load(Ordering::SeqCst) {
            let mut v: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            let mut payload: Vec<char> = v["payload"].as_str().unwrap().chars().collect();
            let i = payload.len() / 2;
            payload[i] = if payload[i] == 'A' { 'B' } else { 'A' };
            v["payload"] = serde_json::Value::String(payload.into_iter().collect());
            response.body = serde_json::to_vec(&v).unwrap();
        }
        Ok(response)
    }
}

/// Keeps every log line.
#[derive(Default)]
struct RecordingLogger(Mutex<Vec<String>>);

impl Logger for RecordingLogger {
    fn log(&self, _level: LogLevel, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

/// An authenticator on FileStorage in `dir`, over `net`, logging into `log`.
fn device(dir: &Path, net: Arc<FaultyNet>, log: Arc<RecordingLogger>) -> Authenticator {
    let storage = Arc::new(
        FileStorage::open(
            dir.join("data"),
            &KeySource::KeyFile(dir.join("storage.key")),
        )
        .unwrap(),
    );
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
        verifier: Arc::new(ScriptedUser::default()),
        http: net,
        clock: Arc::new(SystemClock),
        logger: log,
    };
    Authenticator::new(hooks, AuthenticatorConfig::new(Platform::Desktop)).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_lists_every_server_in_one_call_and_approve_works_first_time() {
    let a = start_server(|_| {}).await;
    let b = start_server(|_| {}).await;
    let rp_a = a.rp("Example Bank").await;
    let rp_b = b.rp("Example VPN").await;
    let dir = temp_dir("two-servers");
    let net = FaultyNet::new();
    let auth = device(dir.path(), net.clone(), Arc::default());
    let alice = auth
        .activate_uri(
            &rp_a.enroll("alice").await.uri,
            ActivationOptions::default(),
        )
        .await
        .unwrap();
    let carol = auth
        .activate_uri(
            &rp_b.enroll("carol").await.uri,
            ActivationOptions::default(),
        )
        .await
        .unwrap();
    // Server B answers its list later than server A: A's requests arrive first.
    *net.slow_server.lock().unwrap() = Some((b.base(), Duration::from_millis(400)));

    let mut txs = Vec::new();
    for (rp, user) in [(&rp_a, "alice"), (&rp_b, "carol")] {
        let v = rp
            .start_push(json!({ "user": user, "number_matching": "off" }))
            .await;
        txs.push(v["tx_id"].as_str().unwrap().to_owned());
    }
    // One call, without waiting and with a wait, lists both servers' requests.
    for wait in [0, 5] {
        let listed = auth.pending(wait, &CancelHandle::new()).await.unwrap();
        assert_eq!(
            sorted(listed.iter().map(|r| r.tx_id.clone()).collect()),
            sorted(txs.clone()),
            "wait={wait}"
        );
    }

    // A fresh process (the CLI's `approve`): one listing, then the slower
    // server's request is approved at the first try, the other denied.
    drop(auth);
    let auth = device(dir.path(), net.clone(), Arc::default());
    let listed = auth.pending(0, &CancelHandle::new()).await.unwrap();
    assert_eq!(listed.len(), 2);
    auth.approve(&carol.id, &txs[1], None).await.unwrap();
    auth.deny(&alice.id, &txs[0], DenyReason::Mistake)
        .await
        .unwrap();
    assert_eq!(rp_b.status(&txs[1]).await["state"], "approved");
    assert_eq!(rp_a.status(&txs[0]).await["state"], "denied");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_tampered_challenge_fetch_is_reported_not_dropped() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("fetch-faults");
    let net = FaultyNet::new();
    let log = Arc::new(RecordingLogger::default());
    let auth = device(dir.path(), net.clone(), log.clone());
    let alice = auth
        .activate_uri(&rp.enroll("alice").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    let v = rp
        .start_push(json!({
            "user": "alice", "number_matching": "off", "text": "Pay the secret invoice"
        }))
        .await;
    let tx = v["tx_id"].as_str().unwrap().to_owned();

    // The list arrives, the challenge fetch fails: a network error, not "nothing".
    net.fail_fetch.store(true, Ordering::SeqCst);
    assert_eq!(
        auth.pending(0, &CancelHandle::new()).await.err(),
        Some(Error::Network)
    );
    net.fail_fetch.store(false, Ordering::SeqCst);

    // Tampered in flight: reported as tampering, logged with the ids only.
    net.tamper_fetch.store(true, Ordering::SeqCst);
    assert_eq!(
        auth.pending(0, &CancelHandle::new()).await.err(),
        Some(Error::Tampered)
    );
    net.tamper_fetch.store(false, Ordering::SeqCst);
    let lines = log.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&tx) && l.contains(&alice.id) && l.contains("verification")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("secret invoice")),
        "{lines:?}"
    );

    // The genuine challenge still opens and can be approved.
    let listed = auth.pending(0, &CancelHandle::new()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tx_id, tx);
    auth.approve(&alice.id, &tx, None).await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_errors_speak_of_the_offer_and_the_server() {
    let a = start_server(|_| {}).await;
    let b = start_server(|_| {}).await;
    let rp_a = a.rp("Example Bank").await;
    let dir = temp_dir("activation-errors");
    let dev = open_device(dir.path(), |_| {});

    // An offer the server never issued (it is server A's): an offer error, not a
    // push request's "not found".
    let code = rp_a.enroll("alice").await.code;
    assert_eq!(
        dev.auth
            .activate_code(&b.base(), &code, None, ActivationOptions::default())
            .await
            .err(),
        Some(Error::ServerRejected {
            code: "not_found".into()
        })
    );
    // A web server that is not Countersign: not blamed on the key.
    let web = web_page_server();
    assert_eq!(
        dev.auth
            .activate_code(&web, &code, None, ActivationOptions::default())
            .await
            .err(),
        Some(Error::NotCountersignServer)
    );
    let pinned = dev
        .auth
        .activate_code(
            &web,
            &code,
            Some(a.key_fingerprint()),
            ActivationOptions::default(),
        )
        .await;
    assert_eq!(pinned.err(), Some(Error::NotCountersignServer));
    // Nor is a web server that answers 404 with its own page.
    let missing = web_page_server_with_status(404);
    assert_eq!(
        dev.auth
            .activate_code(&missing, &code, None, ActivationOptions::default())
            .await
            .err(),
        Some(Error::NotCountersignServer)
    );
    // The real server still takes the offer, and a wrong pin is still a key mismatch.
    let other = rp_a.enroll("bob").await.code;
    assert_eq!(
        dev.auth
            .activate_code(
                &a.base(),
                &other,
                Some([7; 32]),
                ActivationOptions::default()
            )
            .await
            .err(),
        Some(Error::Tampered)
    );
    dev.auth
        .activate_code(&a.base(), &code, None, ActivationOptions::default())
        .await
        .unwrap();
    assert!(dev.auth.accounts().unwrap().len() == 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_hotp_account_needs_a_code_left_at_import() {
    let dir = temp_dir("hotp-end");
    let dev = open_device(dir.path(), |_| {});
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let last = format!(
        "otpauth://hotp/Example:bob?secret={secret}&counter={}",
        u64::MAX
    );
    assert_eq!(
        dev.auth.import_otpauth(&last).err(),
        Some(Error::InvalidInput {
            what: "HOTP counter"
        })
    );
    assert!(dev.auth.accounts().unwrap().is_empty());
    // One below: exactly one code, then the counter is at its end.
    let one_left = format!(
        "otpauth://hotp/Example:bob?secret={secret}&counter={}",
        u64::MAX - 1
    );
    let account = dev.auth.import_otpauth(&one_left).unwrap();
    let code = dev.auth.otp(&account.id).unwrap();
    assert_eq!(code.code.len(), 6);
    assert_eq!(dev.auth.otp(&account.id).err(), Some(Error::Unsupported));
}
