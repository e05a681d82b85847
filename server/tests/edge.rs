//! The HTTP edge under slow and hostile clients (issue 12): header, body and idle
//! timeouts close connections, the connection bound holds under a small
//! descriptor limit, long-polls are never cut, and every error is JSON in the
//! one error shape without echoing the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

mod support;

use std::time::{Duration, Instant};

use countersign_test_support::{Db, RpClient, TestServer, http_client};
use serde_json::{Value, json};
use support::TestDevice;
use support::process::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server process for these tests: `[http]` set to `http` (TOML lines);
/// with `nofile`, under `prlimit --nofile=N:N`.
fn start_server(http: &str, nofile: Option<u32>) -> ServerProcess {
    ServerProcess::start("edge", &format!("[http]\n{http}"), nofile)
}

/// Descriptor counts of the server process, from `/proc/<pid>/fd`.
impl ServerProcess {
    /// Open descriptors of the server process.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// What the server's descriptors point at, counted by kind.
    fn fd_kinds(&self) -> std::collections::BTreeMap<String, usize> {
        let mut kinds = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap() {
            let target = std::fs::read_link(entry.unwrap().path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let kind = match target.split_once(':') {
                Some((kind, _)) => kind.to_string(),
                None => target,
            };
            *kinds.entry(kind).or_default() += 1;
        }
        kinds
    }
}

/// A push login: the RP starts it, the phone fetches and approves, the RP sees
/// `approved`. Returns how long it took.
async fn login(rp: &RpClient, dev: &mut TestDevice) -> Duration {
    let start = Instant::now();
    let (st, started) = rp.post("/v1/rp/push", json!({"user": "alice"})).await;
    assert_eq!(st, 200, "{started}");
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();
    let opened = dev.fetch(&tx).await;
    let answer = dev.approval(&opened, Some(&number));
    let (st, body) = dev.post_answer(&answer).await;
    assert_eq!(st, 200, "{body}");
    let (st, status) = rp.get(&format!("/v1/rp/challenges/{tx}?wait=5")).await;
    assert_eq!(st, 200, "{status}");
    assert_eq!(status["state"], "approved");
    start.elapsed()
}

/// How a slow connection misbehaves.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Sends a header one byte a second, never finishing it.
    TrickleHeader,
    /// Sends headers announcing a body, then nothing.
    NoBody,
    /// Makes one request, then sits idle on the keep-alive connection.
    IdleKeepAlive,
}

/// Opens a slow connection; the task ends when the server closes it.
async fn slow_connection(addr: String, kind: Slow) -> Option<tokio::task::JoinHandle<()>> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    Some(tokio::spawn(async move {
        match kind {
            Slow::TrickleHeader => {
                let header = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
                for byte in header {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Slow::NoBody => {
                let _ = stream
                    .write_all(
                        b"POST /v1/device/activate HTTP/1.1\r\nHost: slow\r\n\
                          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                    )
                    .await;
            }
            Slow::IdleKeepAlive => {
                let _ = stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n")
                    .await;
            }
        }
        // Wait (reading any answer) until the server closes the connection.
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }))
}

/// Must-show of issue 12: 500 slow connections do not slow a normal login, and
/// the server's descriptors return to their baseline once the timeouts pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_hold_the_server() {
    let server = start_server(
        "header_read_timeout_secs = 4\nbody_read_timeout_secs = 4\nidle_timeout_secs = 4",
        None,
    );
    let rp = server.rp("Example Bank").await;
    let offer = rp.enroll("alice").await;
    let mut dev = TestDevice::activate(&server.base, &offer.uri).await;
    // Warm-up (database connections, caches), then the baseline.
    let quiet = login(&rp, &mut dev).await;
    let baseline_kinds = server.fd_kinds();
    let baseline: usize = baseline_kinds.values().sum();
    eprintln!("baseline fds: {baseline_kinds:?}");

    let mut tasks = Vec::new();
    for i in 0..500 {
        let kind = match i % 10 {
            0..=3 => Slow::TrickleHeader,
            4..=6 => Slow::NoBody,
            _ => Slow::IdleKeepAlive,
        };
        tasks.push(slow_connection(server.addr(), kind).await.expect("connect"));
    }
    // Accepted (the first ones time out 4 s after their accept).
    let accepting = Instant::now();
    let mut during = server.fds();
    while during < baseline + 500 && accepting.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        during = server.fds();
    }
    let loaded = login(&rp, &mut dev).await;
    eprintln!(
        "fds: baseline {baseline}, with 500 slow connections {during}; \
         login {quiet:?} quiet, {loaded:?} under load"
    );
    assert!(
        during >= baseline + 450,
        "the slow connections are open: {during} vs {baseline}"
    );
    assert!(
        loaded < Duration::from_secs(2),
        "login under load took {loaded:?}"
    );

    // Every slow connection is cut by its timeout (4 s) and its socket closed.
    // Files may grow: the 150 keep-alive requests (`/healthz` pings the
    // database) grew the SQLite pool (2 descriptors a connection, at most 8).
    let waited = Instant::now();
    let sockets = |kinds: &std::collections::BTreeMap<String, usize>| {
        kinds.get("socket").copied().unwrap_or(0)
    };
    let mut after = server.fd_kinds();
    while sockets(&after) > sockets(&baseline_kinds) && waited.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = server.fd_kinds();
    }
    let total: usize = after.values().sum();
    eprintln!(
        "fds after the timeouts: {total} (baseline {baseline}), {:?} after the login: {after:?}",
        waited.elapsed()
    );
    assert!(
        sockets(&after) <= sockets(&baseline_kinds),
        "sockets leak: {after:?} vs {baseline_kinds:?}"
    );
    assert!(
        total <= baseline + 2 * 8,
        "descriptors leak: {after:?} vs {baseline_kinds:?}"
    );
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server closed every slow connection")
            .unwrap();
    }
    // And the server still serves.
    let late = login(&rp, &mut dev).await;
    assert!(late < Duration::from_secs(2), "login after took {late:?}");
}

/// With 256 descriptors, 300 slow connections do not stop the server: it stops
/// accepting at its bound instead of running out, and answers a normal request
/// once the timeouts shed the slow ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_descriptor_limit_still_serves() {
    let server = start_server(
        "header_read_timeout_secs = 2\nbody_read_timeout_secs = 2\nidle_timeout_secs = 2",
        Some(256),
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 256 ")),
        "{limits}"
    );
    let mut tasks = Vec::new();
    for i in 0..300 {
        let kind = match i % 3 {
            0 => Slow::TrickleHeader,
            1 => Slow::NoBody,
            _ => Slow::IdleKeepAlive,
        };
        tasks.push(slow_connection(server.addr(), kind).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.fds() <= 256);
    let start = Instant::now();
    let response = http_client()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the server answers");
    let took = start.elapsed();
    assert_eq!(response.status(), 200);
    eprintln!(
        "with 256 descriptors and 300 slow connections: /healthz answered in {took:?}, \
         server fds {}",
        server.fds()
    );
    assert!(server.logged("connection bound reached"));
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the server closed every slow connection")
            .unwrap();
    }
}

/// An in-process server with short edge timeouts.
async fn short_timeouts(header: u64, body: u64, idle: u64) -> TestServer {
    TestServer::start_with(Db::Sqlite, |c| {
        c.http.header_read_timeout_secs = header;
        c.http.body_read_timeout_secs = body;
        c.http.idle_timeout_secs = idle;
        c.demo = true;
    })
    .await
}

fn addr_of(s: &TestServer) -> String {
    s.server().addr().to_string()
}

/// Reads until the server closes the connection; returns what it sent and when.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            within.saturating_sub(start.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!("not closed within {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (headers and a `Content-Length` body) off a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_closes_silent_and_trickling_connections() {
    let s = short_timeouts(1, 5, 5).await;
    // Connected, sends nothing: closed after the header timeout (not the idle one).
    let mut silent = TcpStream::connect(addr_of(&s)).await.unwrap();
    let (_, took) = read_to_close(&mut silent, Duration::from_secs(4)).await;
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // A byte every 300 ms is activity, but the header is never done: closed too.
    let mut trickle = TcpStream::connect(addr_of(&s)).await.unwrap();
    let start = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaa" {
        if trickle.write_all(&[*byte]).await.is_err() || start.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, rest) = read_to_close(&mut trickle, Duration::from_secs(4)).await;
    let took = start.elapsed();
    assert!(
        // The idle timeout (5 s) would be later.
        took < Duration::from_secs(4),
        "{took:?} ({rest:?} after the last byte)"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_keep_alive_connections() {
    // Idle 3 s, header 1 s: an idle keep-alive connection lives for the idle timeout.
    let s = short_timeouts(1, 1, 3).await;
    let mut stream = TcpStream::connect(addr_of(&s)).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        // Within the idle timeout the connection is reused.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (_, took) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    // 1.5 s of the 3 s idle timeout have passed already.
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_millis(4000),
        "{took:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_timeout_answers_408_and_closes() {
    let s = short_timeouts(5, 1, 5).await;
    let mut stream = TcpStream::connect(addr_of(&s)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/device/activate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"partial\":",
        )
        .await
        .unwrap();
    let (got, took) = read_to_close(&mut stream, Duration::from_secs(4)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains(r#"{"error":{"code":"request_timeout""#),
        "{text}"
    );
    assert!(!text.contains("partial"), "{text}");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    s.stop().await;
}

/// Long-polls outlast every edge timeout: only `wait` ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_are_not_cut() {
    let s = short_timeouts(1, 1, 1).await;
    let rp = s.rp("Example Bank").await;
    let offer = rp.enroll("alice").await;
    let dev = TestDevice::activate(&s.base(), &offer.uri).await;
    let start = Instant::now();
    let (st, pending) = dev.poll(3).await;
    assert_eq!(st, 200, "{pending}");
    assert!(start.elapsed() >= Duration::from_millis(2900));
    let (st, started) = rp.post("/v1/rp/push", json!({"user": "alice"})).await;
    assert_eq!(st, 200, "{started}");
    let tx = started["tx_id"].as_str().unwrap();
    let start = Instant::now();
    let (st, status) = rp.get(&format!("/v1/rp/challenges/{tx}?wait=3")).await;
    assert_eq!(st, 200, "{status}");
    assert_eq!(status["state"], "pending");
    assert!(start.elapsed() >= Duration::from_millis(2900));
    s.stop().await;
}

const MARKER: &str = "zq7MARKERx91";

/// Sends a request; asserts the answer is the JSON error shape with `status`
/// and `code`, and never contains [`MARKER`].
async fn assert_json_error(
    request: countersign_test_support::reqwest::RequestBuilder,
    status: u16,
    code: &str,
) -> Value {
    let response = request.send().await.unwrap();
    let got_status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    assert!(!text.contains(MARKER), "echoes the input: {text}");
    assert_eq!(got_status, status, "{text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{text}");
    assert!(body["error"]["message"].is_string(), "{text}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{text}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{text}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_and_echoes_nothing() {
    let s = short_timeouts(5, 5, 5).await;
    let base = s.base();
    let rp = s.rp("Example Bank").await;
    let key = rp.api_key().to_string();
    let http = http_client();
    let push = || http.post(format!("{base}/v1/rp/push")).bearer_auth(&key);

    // 404: no route (also under the merged demo router's prefix).
    assert_json_error(http.get(format!("{base}/{MARKER}")), 404, "not_found").await;
    assert_json_error(http.get(format!("{base}/demo/{MARKER}")), 404, "not_found").await;
    // 405: wrong method, on the main and the demo router.
    assert_json_error(
        http.delete(format!("{base}/v1/rp/push")),
        405,
        "method_not_allowed",
    )
    .await;
    let response = http.get(format!("{base}/v1/rp/push")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST", "405 names the methods");
    assert_json_error(
        http.put(format!("{base}/demo/api/login")),
        405,
        "method_not_allowed",
    )
    .await;
    // 413: announced or streamed bodies over 64 KiB, JSON or raw bytes, demo too.
    let big = format!("{{\"user\":\"{}\"}}", MARKER.repeat(7000));
    assert_json_error(
        push()
            .header("content-type", "application/json")
            .body(big.clone()),
        413,
        "payload_too_large",
    )
    .await;
    assert_json_error(
        http.post(format!("{base}/v1/device/activate"))
            .body(big.clone()),
        413,
        "payload_too_large",
    )
    .await;
    assert_json_error(
        http.post(format!("{base}/demo/api/login"))
            .header("content-type", "application/json")
            .body(big.clone()),
        413,
        "payload_too_large",
    )
    .await;
    // 415: not JSON.
    assert_json_error(
        push().header("content-type", "text/plain").body(MARKER),
        415,
        "unsupported_media_type",
    )
    .await;
    // 400: not JSON at all.
    assert_json_error(
        push()
            .header("content-type", "application/json")
            .body(format!("{{\"user\": {MARKER}")),
        400,
        "bad_request",
    )
    .await;
    // 422: JSON of the wrong shape (wrong type, unknown field, wrong variant).
    for body in [
        json!({"user": 12345, "text": MARKER}),
        json!({"user": "alice", MARKER: 1}),
        json!({"user": MARKER, "timeout_secs": MARKER}),
        json!({"user": "alice", "verification": MARKER}),
        json!([MARKER]),
    ] {
        assert_json_error(push().json(&body), 422, "invalid_body").await;
    }
    // A missing field is named (the schema's name, not the client's).
    let enroll = http
        .post(format!("{base}/v1/rp/enrollments"))
        .bearer_auth(&key)
        .json(&json!({"label": MARKER}));
    let body = assert_json_error(enroll, 422, "invalid_body").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `user`"),
        "{body}"
    );
    // 400: a bad query string and a bad path parameter.
    assert_json_error(
        http.get(format!("{base}/v1/rp/challenges/tx_1?wait={MARKER}"))
            .bearer_auth(&key),
        400,
        "bad_request",
    )
    .await;
    assert_json_error(
        http.get(format!("{base}/v1/rp/challenges/{MARKER}%FF"))
            .bearer_auth(&key),
        400,
        "bad_request",
    )
    .await;
    assert_json_error(
        http.get(format!("{base}/demo/api/sessions/{MARKER}%FF")),
        400,
        "bad_request",
    )
    .await;
    s.stop().await;
}

/// A chunked body (no `Content-Length`) over the limit is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413() {
    let s = short_timeouts(5, 5, 5).await;
    let mut stream = TcpStream::connect(addr_of(&s)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/device/activate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "m".repeat(8192));
    for _ in 0..9 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let (got, _) = read_to_close(&mut stream, Duration::from_secs(4)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""code":"payload_too_large""#), "{text}");
    s.stop().await;
}
