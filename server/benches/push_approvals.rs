//! Full push approvals through the real HTTP API on loopback, on SQLite.
//!
//! One login = the RP starts a push (`POST /v1/rp/push`), the device fetches the
//! sealed challenge (`GET /v1/device/challenges/{tx}`, signed request), opens it,
//! answers with number matching and a push OTP (`POST …/answer`), and the RP reads
//! the status (`GET /v1/rp/challenges/{tx}`). N logins run concurrently, one per
//! user and device. The server runs on its own 2-thread tokio runtime, the
//! simulated RP and devices on another, so their CPU time can be told apart.
//!
//! Criterion reports approvals/s (`thrpt`, elements = logins) for N = 1, 8, 32.
//! Afterwards a fixed run (`COUNTERSIGN_BENCH_LOGINS`, default 2000, at N = 32)
//! prints server CPU per login and the SQL statements per login, by statement.
//!
//! `cargo bench -p countersign-server --bench push_approvals`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use countersign_test_support::{Db, RpClient, TestServer};
use criterion::{Criterion, Throughput};
use serde_json::json;
use support::TestDevice;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Counts sqlx's per-statement events (target `sqlx::query`) while switched on.
#[derive(Default)]
struct StatementCounter {
    on: AtomicBool,
    by_statement: Mutex<BTreeMap<String, u64>>,
}

struct Summary(String);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

struct CounterLayer(Arc<StatementCounter>);

impl<S: Subscriber> Layer<S> for CounterLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == "sqlx::query" {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.target() == "sqlx::query" && self.0.on.load(Ordering::Relaxed)
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut s = Summary(String::new());
        event.record(&mut s);
        let key: String = s.0.chars().take(60).collect();
        if let Ok(mut m) = self.0.by_statement.lock() {
            *m.entry(key).or_default() += 1;
        }
    }
}

/// CPU seconds (user + system) of this process's threads whose name starts
/// with one of `prefixes` (Linux `/proc`; clock ticks of 10 ms).
fn thread_cpu(prefixes: &[&str]) -> f64 {
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        panic!("/proc/self/task is needed to measure CPU time per thread");
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // Fields after the name start at field 3 (state); utime and stime are 14, 15.
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    ticks as f64 / 100.0
}

const SERVER_THREADS: &[&str] = &["cs-server", "sqlx-sqlite-wor"];
const CLIENT_THREADS: &[&str] = &["cs-client"];

struct Bench {
    server_rt: tokio::runtime::Runtime,
    client_rt: tokio::runtime::Runtime,
    server: Option<TestServer>,
    rp: Arc<RpClient>,
    devices: Arc<Vec<tokio::sync::Mutex<(String, TestDevice)>>>,
}

impl Bench {
    fn new(users: usize) -> Self {
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cs-server")
            .enable_all()
            .build()
            .unwrap();
        let client_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cs-client")
            .enable_all()
            .build()
            .unwrap();
        let server = server_rt.block_on(TestServer::start_with(Db::Sqlite, |c| {
            c.policy.push_max_per_window = u32::MAX;
            c.policy.max_pending = 1000;
            if let Some(n) = std::env::var("COUNTERSIGN_BENCH_DB_CONNECTIONS")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
            {
                c.database_max_connections = Some(n);
            }
        }));
        let rp = server_rt.block_on(server.rp("Bench Bank"));
        let base = server.base();
        let devices = client_rt.block_on(async {
            let mut out = Vec::with_capacity(users);
            for i in 0..users {
                let user = format!("user{i}");
                let offer = rp.enroll(&user).await;
                let dev = TestDevice::activate(&base, &offer.uri).await;
                out.push(tokio::sync::Mutex::new((user, dev)));
            }
            out
        });
        Self {
            server_rt,
            client_rt,
            server: Some(server),
            rp: Arc::new(rp),
            devices: Arc::new(devices),
        }
    }

    /// `n` concurrent logins (users 0..n), each a full approval, each in its own
    /// task on the client runtime.
    fn logins(&self, n: usize) {
        let tasks: Vec<_> = (0..n.min(self.devices.len()))
            .map(|i| {
                let rp = self.rp.clone();
                let devices = self.devices.clone();
                self.client_rt
                    .spawn(async move { login(&rp, &devices[i]).await })
            })
            .collect();
        self.client_rt.block_on(async {
            for t in tasks {
                t.await.expect("login task");
            }
        });
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.server_rt.block_on(s.stop());
        }
    }
}

async fn login(rp: &RpClient, slot: &tokio::sync::Mutex<(String, TestDevice)>) {
    let mut guard = slot.lock().await;
    let (user, dev) = &mut *guard;
    let (st, started) = rp.push(json!({"user": user.as_str()})).await;
    assert_eq!(st, 200, "start push: {started}");
    let tx = started["tx_id"].as_str().unwrap().to_string();
    let number = started["number"].as_str().unwrap().to_string();
    let opened = dev.fetch(&tx).await;
    let answer = dev.approval(&opened, Some(&number));
    let (st, body) = dev.post_answer(&answer).await;
    assert_eq!(st, 200, "answer: {body}");
    // Keep only the KEM key the server now seals to (and the previous one).
    let keep = dev.kems.len().saturating_sub(2);
    dev.kems.drain(..keep);
    let (st, status) = rp.get(&format!("/v1/rp/challenges/{tx}")).await;
    assert_eq!(st, 200);
    assert_eq!(status["state"], "approved", "{status}");
}

fn main() {
    let counter = Arc::new(StatementCounter::default());
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CounterLayer(counter.clone())),
    )
    .expect("install the statement counter");

    let concurrency = [1usize, 8, 32];
    let bench = Bench::new(*concurrency.iter().max().unwrap_or(&32));

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    {
        let mut group = c.benchmark_group("push_approval_sqlite");
        for &n in &concurrency {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(format!("concurrent_{n}"), |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        bench.logins(n);
                    }
                    t0.elapsed()
                })
            });
        }
        group.finish();
    }
    c.final_summary();

    // The fixed report run: CPU per login and statements per login.
    let total: usize = std::env::var("COUNTERSIGN_BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let n = 32usize.min(bench.devices.len());
    let rounds = total.div_ceil(n).max(1);
    let logins = rounds * n;
    bench.logins(n); // warm the pool up first
    counter.by_statement.lock().unwrap().clear();
    counter.on.store(true, Ordering::Relaxed);
    bench.logins(n);
    counter.on.store(false, Ordering::Relaxed);
    let per_login: BTreeMap<String, u64> = counter.by_statement.lock().unwrap().clone();
    let statements: u64 = per_login.values().sum();

    let (s0, c0) = (thread_cpu(SERVER_THREADS), thread_cpu(CLIENT_THREADS));
    let t0 = Instant::now();
    for _ in 0..rounds {
        bench.logins(n);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (s1, c1) = (thread_cpu(SERVER_THREADS), thread_cpu(CLIENT_THREADS));
    let server_cpu = s1 - s0;
    let client_cpu = c1 - c0;
    println!();
    println!("push approvals, SQLite, {logins} logins at concurrency {n}:");
    println!(
        "  throughput        {:.0} approvals/s ({wall:.2} s wall)",
        logins as f64 / wall
    );
    println!(
        "  server CPU/login  {:.0} µs (server runtime + SQLite worker threads: {server_cpu:.2} s)",
        server_cpu / logins as f64 * 1e6
    );
    println!(
        "  client CPU/login  {:.0} µs (simulated RP and devices)",
        client_cpu / logins as f64 * 1e6
    );
    println!(
        "  server capacity   {:.0} approvals per CPU-second",
        logins as f64 / server_cpu.max(1e-9)
    );
    println!(
        "  SQL statements    {:.1} per login (measured over {n} logins):",
        statements as f64 / n as f64
    );
    let mut rows: Vec<(&String, &u64)> = per_login.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (sql, count) in rows {
        println!("    {:>5.1}  {sql}", *count as f64 / n as f64);
    }
}
