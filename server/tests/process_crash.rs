//! A SIGKILL of the server process in the middle of concurrent logins loses
//! nothing a client was told (SQLite, one connection: group commit on). After a
//! restart on the same file every push start answered 200 exists, every answer
//! answered 200 is recorded, every accepted device request's nonce is still
//! spent, an unanswered answer is all there or not at all, the file passes
//! `PRAGMA integrity_check`, and new logins work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_protocol::sign_request;
use countersign_test_support::{RpClient, http_client, now, reqwest};
use serde_json::{Value, json};
use support::TestDevice;
use support::process::ServerProcess;

/// Devices, one login loop each: enough that requests queue for the one
/// connection and share commit groups.
const DEVICES: usize = 24;
/// Kills that must land mid-traffic.
const ROUNDS: usize = 5;
/// Kills tried at most to get [`ROUNDS`] that landed mid-traffic.
const MAX_ROUNDS: usize = 10;
/// Each device logs in many times and leaves unanswered pushes behind at each
/// kill: lift the per-account push limits (not what this test is about).
const POLICY: &str = "[policy]\npush_max_per_window = 100000\nmax_pending = 100";
/// No request of a healthy server takes this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A device request as sent, headers included: sent again, it reuses its nonce.
#[derive(Clone)]
struct DeviceRequest {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl DeviceRequest {
    /// A request signed by `dev` with Dp, now, with a fresh nonce.
    fn sign(dev: &TestDevice, method: &'static str, path: String, body: Vec<u8>) -> Self {
        let headers = sign_request(&dev.dp, &dev.device_id, method, &path, &body, now())
            .unwrap()
            .to_pairs()
            .to_vec();
        Self {
            method,
            path,
            headers,
            body,
        }
    }

    fn build(&self, http: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = http.request(method, format!("{base}{}", self.path));
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request.body(self.body.clone())
    }
}

/// What clients were told (or not) during one round of traffic.
#[derive(Default)]
struct Told {
    /// Transactions whose push start was answered 200.
    pushed: Vec<String>,
    /// Transactions whose answer (an approval) was answered 200.
    approved: Vec<String>,
    /// Device requests answered 200: their nonces are spent.
    accepted: Vec<DeviceRequest>,
    /// Answers that got no response (sent before or just after the kill), with
    /// their transaction.
    lost_answers: Vec<(String, DeviceRequest)>,
    /// Requests sent before the kill and never answered, by kind.
    in_flight: BTreeMap<&'static str, usize>,
}

/// One round of traffic against one server process.
struct Round {
    base: String,
    api_key: String,
    http: reqwest::Client,
    /// Set just before the SIGKILL: a request failing before it is a failure.
    killing: AtomicBool,
    /// Answers acknowledged (200) so far.
    answers: AtomicUsize,
    /// The acknowledged answer after which the server is killed.
    kill_after: usize,
    /// Woken by the answer numbered `kill_after`.
    kill_now: tokio::sync::Notify,
    told: Mutex<Told>,
}

impl Round {
    fn new(server: &ServerProcess, rp: &RpClient, kill_after: usize) -> Self {
        Self {
            base: server.base.clone(),
            api_key: rp.api_key().to_string(),
            // A new client: the old one's pooled connections went with the old process.
            http: http_client(),
            killing: AtomicBool::new(false),
            answers: AtomicUsize::new(0),
            kill_after,
            kill_now: tokio::sync::Notify::new(),
            told: Mutex::new(Told::default()),
        }
    }

    /// Sends `request`; the status and body, or `None` (noted as in flight if
    /// it was sent before the kill) if no whole response came.
    async fn exchange(
        &self,
        kind: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Option<(u16, Vec<u8>)> {
        let before_kill = !self.killing.load(Ordering::SeqCst);
        let result = async {
            let response = request.timeout(REQUEST_TIMEOUT).send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?.to_vec()))
        }
        .await;
        match result {
            Ok(got) => Some(got),
            Err(e) => {
                assert!(
                    self.killing.load(Ordering::SeqCst),
                    "{kind} failed while the server ran: {e}"
                );
                if before_kill {
                    *self.told.lock().unwrap().in_flight.entry(kind).or_default() += 1;
                }
                None
            }
        }
    }

    /// An RP API call (bearer key, JSON body if any).
    /// The RP's view of challenge `tx`: `GET /v1/rp/challenges/{tx}`.
    async fn status(&self, tx: &str) -> Option<(u16, Value)> {
        let path = format!("/v1/rp/challenges/{tx}");
        self.rp("status", reqwest::Method::GET, &path, None).await
    }

    async fn rp(
        &self,
        kind: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, bytes) = self.exchange(kind, request).await?;
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Sends a device request; an answer 200 is noted as accepted.
    async fn device(&self, kind: &'static str, request: &DeviceRequest) -> Option<(u16, Vec<u8>)> {
        let got = self
            .exchange(kind, request.build(&self.http, &self.base))
            .await?;
        if got.0 == 200 {
            self.told.lock().unwrap().accepted.push(request.clone());
        }
        Some(got)
    }

    /// One push login of `user` on `dev`, every answer asserted; `None` once a
    /// request goes unanswered.
    async fn login(&self, dev: &mut TestDevice, user: &str) -> Option<()> {
        let (status, started) = self
            .rp(
                "push",
                reqwest::Method::POST,
                "/v1/rp/push",
                Some(json!({ "user": user })),
            )
            .await?;
        assert_eq!(status, 200, "push: {started}");
        let tx = started["tx_id"].as_str().unwrap().to_string();
        self.told.lock().unwrap().pushed.push(tx.clone());

        let fetch = DeviceRequest::sign(dev, "GET", format!("/v1/device/challenges/{tx}"), vec![]);
        let (status, sealed) = self.device("fetch", &fetch).await?;
        assert_eq!(status, 200, "fetch: {}", String::from_utf8_lossy(&sealed));
        let opened = dev.open(&sealed);

        let answer = dev.approval(&opened, started["number"].as_str());
        let body = answer.sign(&dev.dp).unwrap().to_json().unwrap();
        let path = format!("/v1/device/challenges/{tx}/answer");
        let post = DeviceRequest::sign(dev, "POST", path, body);
        let Some((status, body)) = self.device("answer", &post).await else {
            self.told.lock().unwrap().lost_answers.push((tx, post));
            return None;
        };
        assert_eq!(status, 200, "answer: {}", String::from_utf8_lossy(&body));
        self.told.lock().unwrap().approved.push(tx.clone());
        if self.answers.fetch_add(1, Ordering::SeqCst) + 1 == self.kill_after {
            self.kill_now.notify_one();
        }

        let (status, state) = self.status(&tx).await?;
        assert_eq!(status, 200, "status: {state}");
        assert_eq!(state["state"], "approved", "{state}");
        Some(())
    }
}

/// `PRAGMA integrity_check` of the database file (`ok` when sound).
fn integrity(path: &Path) -> String {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

/// A number in `0..n` that differs from run to run (no RNG crate here).
fn varying(n: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos as usize % n
}

/// Runs logins on every device until the server is killed, `kill_after`
/// acknowledged answers in; returns the devices and what clients were told.
async fn traffic_then_kill(
    server: &mut ServerProcess,
    rp: &RpClient,
    devices: Vec<TestDevice>,
    kill_after: usize,
) -> (Vec<TestDevice>, Told) {
    let round = Arc::new(Round::new(server, rp, kill_after));
    let tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, mut dev)| {
            let round = round.clone();
            tokio::spawn(async move {
                let user = format!("user{i}");
                while !round.killing.load(Ordering::SeqCst) {
                    if round.login(&mut dev, &user).await.is_none() {
                        break;
                    }
                }
                dev
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), round.kill_now.notified())
        .await
        .expect("the answers to kill after were acknowledged");
    round.killing.store(true, Ordering::SeqCst);
    server.kill();
    let mut devices = Vec::new();
    for task in tasks {
        devices.push(task.await.unwrap());
    }
    let round = Arc::into_inner(round).unwrap();
    (devices, round.told.into_inner().unwrap())
}

/// Checks, on the restarted server, everything clients were told in a round.
/// Returns how many unanswered answers turned out committed.
async fn check_told(round: &Round, told: &Told) -> usize {
    for tx in &told.pushed {
        let (status, body) = round.status(tx).await.unwrap();
        assert_eq!(
            status, 200,
            "push {tx} was answered 200 but is gone: {body}"
        );
    }
    for tx in &told.approved {
        let (_, body) = round.status(tx).await.unwrap();
        assert_eq!(
            body["state"], "approved",
            "answer to {tx} was acknowledged: {body}"
        );
    }
    for request in &told.accepted {
        let (status, body) = round.device("replay", request).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, &body["error"]["code"]),
            (409, &json!("replayed")),
            "{} {} was accepted, its nonce must stay spent: {body}",
            request.method,
            request.path
        );
    }
    // Unanswered: all of it or nothing. Its nonce was stored before the answer,
    // so a recorded answer implies a spent nonce.
    let mut committed = 0;
    for (tx, request) in &told.lost_answers {
        let (_, before) = round.status(tx).await.unwrap();
        let (status, body) = round.device("replay", request).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match before["state"].as_str() {
            Some("approved") => {
                committed += 1;
                assert_eq!(status, 409, "answer recorded, nonce not: {body}");
                assert_eq!(body["error"]["code"], "replayed", "{body}");
            }
            Some("pending") => assert!(
                status == 200 || body["error"]["code"] == "replayed",
                "a retry of an unrecorded answer: {status} {body}"
            ),
            other => panic!("unanswered answer to {tx} left {other:?}: {before}"),
        }
    }
    committed
}

/// The promise of group commit (docs/SERVER.md "Durability"): a 2xx survives a
/// crash of the process; an unanswered request may or may not have its writes,
/// never part of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_a_client_was_told() {
    let started = Instant::now();
    let mut server = ServerProcess::start("crash", POLICY, None);
    let rp = server.rp("Example Bank").await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let offer = rp.enroll(&format!("user{i}")).await;
        devices.push(TestDevice::activate(&server.base, &offer.uri).await);
    }

    let mut landed = 0;
    for attempt in 1..=MAX_ROUNDS {
        let rp_now = rp.on(&server.base);
        let kill_after = 10 + varying(50);
        let (back, told) = traffic_then_kill(&mut server, &rp_now, devices, kill_after).await;
        devices = back;

        server.restart();
        let round = Round::new(&server, &rp, usize::MAX);
        let committed = check_told(&round, &told).await;
        assert_eq!(integrity(&server.database_path), "ok");
        // New logins work, strictly (a dropped request is a failure here).
        for (i, dev) in devices.iter_mut().enumerate().take(3) {
            round.login(dev, &format!("user{i}")).await.unwrap();
        }
        let writes = ["push", "fetch", "answer"]
            .iter()
            .map(|k| told.in_flight.get(k).copied().unwrap_or(0))
            .sum::<usize>();
        eprintln!(
            "kill {attempt} after {kill_after} answers: told {} pushes, {} approvals, \
             {} device requests; in flight {:?}; unanswered answers {} ({committed} committed)",
            told.pushed.len(),
            told.approved.len(),
            told.accepted.len(),
            told.in_flight,
            told.lost_answers.len(),
        );
        // A kill between requests would prove nothing: only kills that cut
        // writes in flight count.
        if writes > 0 {
            landed += 1;
        }
        if landed == ROUNDS {
            break;
        }
    }
    assert_eq!(landed, ROUNDS, "kills that landed mid-traffic");

    // A new device activates and logs in after the crashes.
    let rp = rp.on(&server.base);
    let offer = rp.enroll("late").await;
    let mut late = TestDevice::activate(&server.base, &offer.uri).await;
    let round = Round::new(&server, &rp, usize::MAX);
    round.login(&mut late, "late").await.unwrap();
    // And the file a last crash leaves is sound.
    server.kill();
    assert_eq!(integrity(&server.database_path), "ok");
    eprintln!("took {:?}", started.elapsed());
}
