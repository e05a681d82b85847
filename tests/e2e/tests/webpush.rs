//! UnifiedPush / Web Push (issue 14): the server's real messages checked by an
//! independent implementation. `tests/webpush/endpoint.py` (Python `http_ece`
//! and `py_vapid`, installed by `cargo xtask test`, whose venv python is named
//! by `COUNTERSIGN_WEBPUSH_PYTHON`) serves HTTPS on a free loopback port with a
//! test CA, decrypts each wake-up with the subscription's private key and auth
//! secret and checks the VAPID JWT, its signature and the headers. A device
//! running the real core registers the endpoint, the RP starts a push, and the
//! device answers from the decrypted wake-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use countersign_core::authenticator::AccountKind;
use countersign_core::protocol::PushRegistration;
use countersign_e2e::{Device, open_device, start_server, wait_pending};
use countersign_server::config::{PushConfig, WebPushConfig};
use countersign_server::push::webpush::{Subscription, WebPushSender};
use countersign_server::push::{PushSender, WakeUp};
use countersign_test_support::{RpClient, TempDir, TestServer, http_client, now, temp_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SUBJECT: &str = "mailto:ops@example.com";

/// The Python endpoint: its process, its output lines and its first line.
struct Endpoint {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    hello: Value,
    _dir: TempDir,
}

impl Endpoint {
    async fn start() -> Self {
        let python = std::env::var_os("COUNTERSIGN_WEBPUSH_PYTHON").unwrap_or_else(|| {
            panic!(
                "COUNTERSIGN_WEBPUSH_PYTHON is not set: it names the python of the venv with \
                 http-ece and py-vapid that `cargo xtask test` installs (this test does not skip)"
            )
        });
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../webpush/endpoint.py");
        let dir = temp_dir("webpush");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.to_string_lossy()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let hello = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the endpoint starts within 30 s")
            .unwrap()
            .expect("the endpoint prints its address");
        Self {
            child,
            lines,
            hello: serde_json::from_str(&hello).unwrap(),
            _dir: dir,
        }
    }

    fn str(&self, field: &str) -> String {
        self.hello[field].as_str().unwrap().to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.hello["port"])
    }

    fn registration(&self, path: &str) -> PushRegistration {
        PushRegistration::UnifiedPush {
            endpoint: self.url(path),
            p256dh: self.str("p256dh"),
            auth: self.str("auth"),
        }
    }

    fn config(&self) -> WebPushConfig {
        WebPushConfig {
            key_file: self.str("vapid_key_file").into(),
            previous_key_files: vec![self.str("vapid_old_key_file").into()],
            subject: SUBJECT.into(),
            ca_file: Some(self.str("ca_file").into()),
            // The test endpoint is on loopback.
            allow_private_endpoints: true,
        }
    }

    /// The next request the endpoint saw (within `secs`), or `None`.
    async fn next(&mut self, secs: u64) -> Option<Value> {
        match tokio::time::timeout(Duration::from_secs(secs), self.lines.next_line()).await {
            Ok(line) => {
                Some(serde_json::from_str(&line.unwrap().expect("endpoint output")).unwrap())
            }
            Err(_) => None,
        }
    }

    /// The next request, which must have passed every check.
    async fn next_checked(&mut self) -> Value {
        let seen = self.next(20).await.expect("a Web Push request within 20 s");
        assert_eq!(seen["errors"], json!([]), "endpoint checks failed: {seen}");
        seen
    }

    /// Proves nothing else arrives first: sends a marker wake-up from a sender
    /// of its own and expects it as the very next request.
    async fn expect_nothing_then_marker(&mut self) {
        let sender = WebPushSender::from_config(&self.config()).unwrap();
        let sub = Subscription {
            endpoint: self.url("/push/ok/marker"),
            p256dh: self.str("p256dh"),
            auth: self.str("auth"),
        };
        let wake = WakeUp {
            token: sub.to_token().unwrap().to_string(),
            device_id: "marker".into(),
            tx_id: "marker".into(),
            expires_at: now() as i64 + 30,
        };
        sender.send(&wake).await.unwrap();
        let seen = self.next_checked().await;
        assert_eq!(
            seen["path"], "/push/ok/marker",
            "an unexpected request: {seen}"
        );
    }

    async fn stop(mut self) {
        // Closing stdin ends it; kill_on_drop covers a hung one.
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn device_id(dev: &Device) -> String {
    match &dev.auth.accounts().unwrap()[0].kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

/// A server sending Web Push with the endpoint's keys and CA, and its VAPID key
/// as published to devices.
async fn server(endpoint: &Endpoint) -> TestServer {
    let config = endpoint.config();
    let s = start_server(|c| c.push = vec![PushConfig::UnifiedPush(config)]).await;
    let published: Value = http_client()
        .get(format!("{}/v1/device/webpush", s.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        published["vapid_public_key"],
        endpoint.hello["vapid_public"]
    );
    s
}

/// A relying party and a device with one account for `user` there, registered
/// at `path` of the endpoint after activation.
async fn enrolled(
    s: &TestServer,
    endpoint: &Endpoint,
    user: &str,
    path: &str,
) -> (RpClient, Device, TempDir) {
    let rp = s.rp("Example Bank").await;
    let (dev, dir) = device_of(&rp, endpoint, user, path).await;
    (rp, dev, dir)
}

/// A device with one account for `user` of `rp`, registered at `path` of the
/// endpoint after activation.
async fn device_of(
    rp: &RpClient,
    endpoint: &Endpoint,
    user: &str,
    path: &str,
) -> (Device, TempDir) {
    let dir = temp_dir("webpush-device");
    let dev = open_device(dir.path(), |_| {});
    let uri = rp.enroll(user).await.uri;
    dev.auth
        .activate_uri(&uri, Default::default())
        .await
        .unwrap();
    // As an app does once its distributor handed it the endpoint.
    dev.auth
        .update_push_token(endpoint.registration(path))
        .await
        .unwrap();
    (dev, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_up_decrypts_to_device_and_tx_and_the_device_answers() {
    let mut endpoint = Endpoint::start().await;
    let s = server(&endpoint).await;
    let rp = s.rp("Example Bank").await;
    let dir = temp_dir("webpush-device");
    // Registered at activation (the core sends its configured registration).
    let registration = endpoint.registration("/push/ok/alice");
    let dev = open_device(dir.path(), |c| c.push = registration);
    dev.auth
        .activate_uri(&rp.enroll("alice").await.uri, Default::default())
        .await
        .unwrap();
    let dev_id = device_id(&dev);
    let devices = rp.get("/v1/rp/users/alice/devices").await.1;
    assert_eq!(devices[0]["push_provider"], "unifiedpush");

    let started = rp
        .start_push(
            json!({"user": "alice", "number_matching": "off", "text": "Sign in to the bank"}),
        )
        .await;
    let tx = started["tx_id"].as_str().unwrap().to_owned();
    let seen = endpoint.next_checked().await;
    assert_eq!(seen["path"], "/push/ok/alice");
    assert_eq!(seen["status"], 201);
    // Exactly the wake-up: the login context never goes through the push service.
    assert_eq!(seen["wake"], json!({"device_id": dev_id, "tx_id": tx}));
    assert_eq!(seen["k"], endpoint.hello["vapid_public"]);
    assert_eq!(seen["claims"]["sub"], SUBJECT);
    let ttl: i64 = seen["ttl"].as_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&ttl), "TTL {ttl}");

    // The app hands the decrypted data to the core, as the FCM service does.
    let data: HashMap<String, String> = serde_json::from_value(seen["wake"].clone()).unwrap();
    let req = dev.auth.handle_push(&data).await.unwrap();
    assert_eq!(req.challenge.text.as_deref(), Some("Sign in to the bank"));
    dev.auth.approve(&req.account_id, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");

    // A second push: a fresh salt and ephemeral key (the endpoint checks), the
    // same cached JWT for the same audience.
    let tx2 = rp
        .start_push(json!({"user": "alice", "number_matching": "off"}))
        .await["tx_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = endpoint.next_checked().await;
    assert_eq!(second["wake"]["tx_id"], tx2);
    assert_eq!(second["claims"], seen["claims"]);

    // An expired challenge is never sent.
    let sub = Subscription {
        endpoint: endpoint.url("/push/ok/alice"),
        p256dh: endpoint.str("p256dh"),
        auth: endpoint.str("auth"),
    };
    let sender = WebPushSender::from_config(&endpoint.config()).unwrap();
    let expired = WakeUp {
        token: sub.to_token().unwrap().to_string(),
        device_id: dev_id.clone(),
        tx_id: "tx_expired".into(),
        expires_at: now() as i64 - 1,
    };
    sender.send(&expired).await.unwrap();
    endpoint.expect_nothing_then_marker().await;

    s.stop().await;
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_endpoint_is_forgotten_and_the_device_long_polls() {
    let mut endpoint = Endpoint::start().await;
    let s = server(&endpoint).await;
    let (devices_rp, dev, _dir) = enrolled(&s, &endpoint, "bob", "/push/gone/bob").await;
    let tx = devices_rp
        .start_push(json!({"user": "bob", "number_matching": "off"}))
        .await["tx_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = endpoint.next_checked().await;
    assert_eq!(seen["status"], 410);
    assert_eq!(seen["wake"]["tx_id"], tx);
    // The device still gets the request by long-polling.
    let pending = wait_pending(&dev.auth, 1, 20).await;
    assert_eq!(pending[0].tx_id, tx);

    // The registration was forgotten (the server clears it right after the 410,
    // in the background: give it a moment): the next push sends nothing, the
    // device long-polls it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tx2 = devices_rp
        .start_push(json!({"user": "bob", "number_matching": "off"}))
        .await["tx_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = wait_pending(&dev.auth, 2, 20).await;
    assert!(pending.iter().any(|p| p.tx_id == tx2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    endpoint.expect_nothing_then_marker().await;

    s.stop().await;
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_vapid_key_still_reaches_subscriptions_made_with_the_old_one() {
    let mut endpoint = Endpoint::start().await;
    let s = server(&endpoint).await;
    let (rp, _dev, _dir) = enrolled(&s, &endpoint, "carol", "/push/old-key/carol").await;
    let tx = rp
        .start_push(json!({"user": "carol", "number_matching": "off"}))
        .await["tx_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The current key is refused (403), the previous one delivers.
    let first = endpoint.next_checked().await;
    assert_eq!(first["status"], 403);
    assert_eq!(first["k"], endpoint.hello["vapid_public"]);
    let second = endpoint.next_checked().await;
    assert_eq!(second["status"], 201);
    assert_eq!(second["k"], endpoint.hello["vapid_old_public"]);
    assert_eq!(second["wake"]["tx_id"], tx);
    // Remembered: the next push goes straight to the old key.
    rp.start_push(json!({"user": "carol", "number_matching": "off"}))
        .await;
    let third = endpoint.next_checked().await;
    assert_eq!(third["status"], 201);
    assert_eq!(third["k"], endpoint.hello["vapid_old_public"]);

    s.stop().await;
    endpoint.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_whose_challenge_expired_meanwhile_is_not_sent() {
    let mut endpoint = Endpoint::start().await;
    let s = server(&endpoint).await;
    let rp = s.rp("Example Bank").await;
    // Two devices of one user behind a push service that takes 3 s: wake-ups go
    // out one after the other, so the second is due after the 2 s challenge ended.
    let (_a, _dir_a) = device_of(&rp, &endpoint, "dave", "/push/slow/3/dave-a").await;
    let (_b, _dir_b) = device_of(&rp, &endpoint, "dave", "/push/slow/3/dave-b").await;
    let started = rp
        .start_push(json!({"user": "dave", "number_matching": "off", "timeout_secs": 2}))
        .await;
    assert_eq!(started["devices"], 2);
    let first = endpoint.next_checked().await;
    assert!(
        first["path"]
            .as_str()
            .unwrap()
            .starts_with("/push/slow/3/dave-")
    );
    let ttl: i64 = first["ttl"].as_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&ttl), "TTL {ttl}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    endpoint.expect_nothing_then_marker().await;
    s.stop().await;
    endpoint.stop().await;
}
