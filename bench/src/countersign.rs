//! Countersign under load: the release `countersign-server` as its own process
//! on SQLite or PostgreSQL, simulated devices in worker processes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_server::config::{Config, SqliteSynchronous};
use countersign_test_support::postgres::PgCluster;
use countersign_test_support::{RpClient, TestDevice, test_config};
use serde_json::json;

use crate::procs::{Service, Workers, free_port, split, wait_http};
use crate::stats::{dir_size, file_size, quantile_ms, tree_cpu_secs};
use crate::worker::{Command as WorkerCommand, Outcome, Setup};
use crate::{Options, progress_line};

/// A simulated device with its user.
pub struct Device {
    user: String,
    device: TestDevice,
}

impl Device {
    /// Enrolls a device for `user`: an RP offer, then activation over HTTP.
    pub async fn enroll(rp: &RpClient, base: &str, user: &str) -> Result<Self, String> {
        let offer = rp.enroll(user).await;
        let device = TestDevice::activate(base, &offer.uri).await;
        Ok(Self {
            user: user.to_owned(),
            device,
        })
    }
}

/// One login: push with number matching, signed fetch, open, answer with the
/// number and the push OTP, then the RP reads the status.
pub async fn login(rp: &RpClient, slot: &mut Device) -> Result<(), String> {
    let (status, started) = rp.push(json!({ "user": slot.user })).await;
    if status != 200 {
        return Err(format!("push: {status} {started}"));
    }
    let tx = started["tx_id"]
        .as_str()
        .ok_or("push: no tx_id")?
        .to_owned();
    let number = started["number"].as_str().map(str::to_owned);
    let opened = slot.device.fetch(&tx).await;
    let answer = slot.device.approval(&opened, number.as_deref());
    let (status, body) = slot.device.post_answer(&answer).await;
    if status != 200 {
        return Err(format!("answer: {status} {body}"));
    }
    // Keep only the KEM key the server now seals to (and the one before it).
    let keep = slot.device.kems.len().saturating_sub(2);
    slot.device.kems.drain(..keep);
    let (status, body) = rp.get(&format!("/v1/rp/challenges/{tx}")).await;
    if status != 200 || body["state"] != "approved" {
        return Err(format!("status: {status} {body}"));
    }
    Ok(())
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A throwaway PostgreSQL 15 cluster.
    Postgres,
}

impl Backend {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The `--db` value.
    pub fn flag(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database for the bench and what it takes to measure it.
pub struct Database {
    url: String,
    dir: PathBuf,
    cluster: Option<PgCluster>,
}

impl Database {
    /// A fresh database: a SQLite file under `dir`, or a new PostgreSQL cluster.
    pub fn create(backend: Backend, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match backend {
            Backend::Sqlite => {
                let file = dir.join("bench.db");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                }
                Ok(Self {
                    url: format!("sqlite://{}", file.display()),
                    dir: dir.to_owned(),
                    cluster: None,
                })
            }
            Backend::Postgres => {
                let cluster = PgCluster::start();
                let url = cluster.create_database();
                Ok(Self {
                    url,
                    dir: dir.to_owned(),
                    cluster: Some(cluster),
                })
            }
        }
    }

    /// Bytes on disk: the SQLite file with its -wal (and -shm), or the cluster's
    /// data directory (WAL included).
    pub fn size(&self) -> u64 {
        match &self.cluster {
            None => ["bench.db", "bench.db-wal", "bench.db-shm"]
                .iter()
                .map(|f| file_size(&self.dir.join(f)))
                .sum(),
            Some(c) => dir_size(&c.data_dir()),
        }
    }

    /// CPU seconds of PostgreSQL's processes (postmaster and backends).
    pub fn db_cpu(&self) -> Option<f64> {
        let pid = self.cluster.as_ref()?.postmaster_pid()?;
        Some(tree_cpu_secs(pid))
    }
}

/// A running countersign-server process with its relying party.
pub struct RunningServer {
    /// The server process.
    pub service: Service,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The relying party's API key.
    pub api_key: String,
    log: PathBuf,
}

impl RunningServer {
    /// Writes the configuration, creates the relying party (in process, as
    /// `countersign admin rp create` does), then starts `server_bin`; with
    /// `count_statements` the server logs every SQL statement.
    pub fn start(
        opts: &Options,
        db: &Database,
        tag: &str,
        api_key: Option<String>,
        count_statements: bool,
    ) -> Result<Self, String> {
        let port = free_port()?;
        let mut config: Config = test_config(&db.url);
        config.listen = format!("127.0.0.1:{port}")
            .parse()
            .map_err(|e| format!("listen: {e}"))?;
        config.master_key = Some(opts.master_key.clone());
        config.sqlite_synchronous = opts.sqlite_synchronous;
        config.database_max_connections = opts.db_connections;
        // Every simulated user logs in back to back: no per-user rate limit.
        config.policy.push_max_per_window = u32::MAX;
        config.policy.max_pending = 1000;
        let toml = toml::to_string(&config).map_err(|e| format!("config: {e}"))?;
        let config_path = db.dir.join(format!("server-{tag}.toml"));
        std::fs::write(&config_path, toml).map_err(|e| format!("write config: {e}"))?;
        let api_key = match api_key {
            Some(key) => key,
            None => create_rp(config.clone(), &format!("Bench {tag}"))?,
        };
        let log = db.dir.join(format!("server-{tag}.log"));
        let log_file = std::fs::File::create(&log).map_err(|e| format!("log: {e}"))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let filter = if count_statements {
            "warn,sqlx::query=debug"
        } else {
            "warn"
        };
        let mut service = Service::spawn(
            "countersign-server",
            Command::new(&opts.server_bin)
                .arg("--config")
                .arg(&config_path)
                .env("COUNTERSIGN_LOG", filter)
                .stdout(Stdio::from(log_file))
                .stderr(Stdio::from(log_err)),
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_http(
            &format!("{base}/healthz"),
            &mut service,
            Duration::from_secs(60),
        )?;
        Ok(Self {
            service,
            base,
            api_key,
            log,
        })
    }

    /// Worker setups: `devices` users split over `workers` processes.
    pub fn setups(&self, prefix: &str, devices: u64, workers: usize) -> Vec<Setup> {
        let mut next = 0u64;
        split(devices, workers)
            .into_iter()
            .filter(|&n| n > 0)
            .map(|n| {
                let users = (next..next + n).map(|i| format!("{prefix}{i}")).collect();
                next += n;
                Setup::Countersign {
                    base: self.base.clone(),
                    api_key: self.api_key.clone(),
                    users,
                }
            })
            .collect()
    }

    fn log_len(&self) -> u64 {
        file_size(&self.log)
    }
}

fn create_rp(config: Config, name: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let state = countersign_server::AppState::open(config)
            .await
            .map_err(|e| format!("open database: {e}"))?;
        let created = countersign_server::admin::create_rp(&state.db, &state.master, name, None)
            .await
            .map_err(|e| format!("create rp: {e:?}"))?;
        state.finish(Duration::from_secs(5)).await;
        Ok(created.api_key)
    })
}

/// One measured pass.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Approved logins.
    pub logins: u64,
    /// Failed logins.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall seconds.
    pub wall: f64,
    /// Approvals per second.
    pub rate: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Server process CPU per login, ms.
    pub server_cpu_ms: f64,
    /// PostgreSQL's CPU per login, ms (PostgreSQL only).
    pub db_cpu_ms: Option<f64>,
    /// The workers' (simulated RP and devices) CPU per login, ms.
    pub driver_cpu_ms: f64,
    /// The machine's load average at the end.
    pub load: String,
}

/// Runs `commands` on `workers`, measuring the server's (and PostgreSQL's) CPU.
pub fn measure(
    what: &str,
    workers: &mut Workers,
    commands: &[WorkerCommand],
    server_pid: u32,
    db_cpu: &dyn Fn() -> Option<f64>,
) -> Result<Pass, String> {
    let cpu0 = crate::stats::tree_cpu_secs(server_pid);
    let db0 = db_cpu();
    let mut last = Instant::now();
    let outcome: Outcome = workers.run(commands, |done| {
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            progress_line(&format!("{what}: {done} logins"));
        }
    })?;
    let cpu1 = crate::stats::tree_cpu_secs(server_pid);
    let db1 = db_cpu();
    let logins = outcome.latencies_us.len() as u64;
    let per = |secs: f64| secs * 1000.0 / logins.max(1) as f64;
    let pass = Pass {
        logins,
        errors: outcome.errors,
        first_error: outcome.first_error.clone(),
        wall: outcome.wall_secs,
        rate: logins as f64 / outcome.wall_secs.max(1e-9),
        p50: quantile_ms(&outcome.latencies_us, 0.5),
        p99: quantile_ms(&outcome.latencies_us, 0.99),
        server_cpu_ms: per(cpu1 - cpu0),
        db_cpu_ms: match (db0, db1) {
            (Some(a), Some(b)) => Some(per(b - a)),
            _ => None,
        },
        driver_cpu_ms: per(outcome.cpu_secs),
        load: crate::stats::load_average(),
    };
    progress_line(&format!(
        "{what}: {} logins in {:.1} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, server CPU {:.2} ms/login, {} errors{}",
        pass.logins,
        pass.wall,
        pass.rate,
        pass.p50,
        pass.p99,
        pass.server_cpu_ms,
        pass.errors,
        pass.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    ));
    Ok(pass)
}

/// Statements per login, by statement.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    /// Logins counted.
    pub logins: u64,
    /// Count per statement summary (sqlx's first words of the statement).
    pub by_statement: BTreeMap<String, u64>,
}

impl Statements {
    /// All statements per login.
    pub fn per_login(&self) -> f64 {
        self.by_statement.values().sum::<u64>() as f64 / self.logins.max(1) as f64
    }

    /// Per login by kind (SELECT, INSERT, UPDATE, DELETE, BEGIN, COMMIT, ...).
    pub fn by_kind(&self) -> BTreeMap<String, f64> {
        let mut kinds = BTreeMap::new();
        for (sql, n) in &self.by_statement {
            let kind = sql.split_whitespace().next().unwrap_or("?").to_uppercase();
            *kinds.entry(kind).or_insert(0.0) += *n as f64 / self.logins.max(1) as f64;
        }
        kinds
    }
}

/// The counting pass: a server logging each SQL statement (`sqlx::query` at
/// debug level), `logins` logins by one worker; statement lines written
/// during the logins are counted. Enrollment happens before the window.
pub fn count_statements(opts: &Options, db: &Database, logins: u64) -> Result<Statements, String> {
    let mut server = RunningServer::start(opts, db, "count", None, true)?;
    let mut workers = Workers::start(server.setups("count", 4, 1))?;
    // Warm: the first logins fill caches (prepared statements, the server key).
    workers.run(
        &[WorkerCommand::Closed {
            logins: Some(8),
            secs: None,
        }],
        |_| {},
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let from = server.log_len();
    let outcome = workers.run(
        &[WorkerCommand::Closed {
            logins: Some(logins),
            secs: None,
        }],
        |_| {},
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let to = server.log_len();
    drop(workers);
    server.service.stop();
    if outcome.errors > 0 {
        return Err(format!(
            "counting pass: {} failed logins (first: {:?})",
            outcome.errors, outcome.first_error
        ));
    }
    let text = std::fs::read(&server.log).map_err(|e| e.to_string())?;
    let window = String::from_utf8_lossy(&text[from as usize..to as usize]).into_owned();
    let mut by_statement = BTreeMap::new();
    for line in window.lines().filter(|l| l.contains("sqlx::query")) {
        *by_statement.entry(summary(line)).or_insert(0) += 1;
    }
    Ok(Statements {
        logins: outcome.latencies_us.len() as u64,
        by_statement,
    })
}

/// sqlx's `summary="…"` field of a log line (the statement's first words).
fn summary(line: &str) -> String {
    let line = strip_ansi(line);
    let Some(start) = line.find("summary=\"") else {
        return "?".into();
    };
    let rest = &line[start + "summary=\"".len()..];
    let end = rest.find('"').unwrap_or(rest.len());
    rest[..end]
        .replace('…', "")
        .trim()
        .chars()
        .take(60)
        .collect()
}

/// Everything measured on one database.
#[derive(Debug, Clone, Default)]
pub struct DbReport {
    /// SQLite or PostgreSQL.
    pub name: String,
    /// The `--db` value.
    pub flag: String,
    /// Seconds to enroll the devices.
    pub enroll_secs: f64,
    /// Closed loop at the configured concurrency.
    pub peak: Pass,
    /// Open loop at half the peak rate.
    pub half: Option<(f64, Pass)>,
    /// The counting pass.
    pub statements: Statements,
    /// The size run: logins, seconds, bytes before and after, the pass at that size.
    pub size: Option<SizeRun>,
}

/// The size run's result.
#[derive(Debug, Clone, Default)]
pub struct SizeRun {
    /// Logins run.
    pub logins: u64,
    /// Seconds they took.
    pub secs: f64,
    /// Failed logins.
    pub errors: u64,
    /// Database bytes before.
    pub bytes_before: u64,
    /// Database bytes after.
    pub bytes_after: u64,
    /// Closed loop at that size.
    pub pass: Pass,
}

/// Runs every pass of `cargo xtask bench` on `backend`.
pub fn bench_database(opts: &Options, backend: Backend) -> Result<DbReport, String> {
    let dir = opts.work_dir.join(backend.flag());
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::create(backend, &dir)?;
    let name = backend.name();
    let mut report = DbReport {
        name: name.into(),
        flag: backend.flag().into(),
        ..Default::default()
    };

    // The counting pass first, on its own server process (logging costs CPU).
    progress_line(&format!(
        "{name}: counting statements over {} logins",
        opts.count_logins
    ));
    report.statements = count_statements(opts, &db, opts.count_logins)?;

    let mut server = RunningServer::start(opts, &db, "main", None, false)?;
    let pid = server.service.pid();
    let db_cpu = || db.db_cpu();
    progress_line(&format!(
        "{name}: enrolling {} devices in {} worker processes",
        opts.concurrency, opts.workers
    ));
    let started = Instant::now();
    let mut workers = Workers::start(server.setups("user", opts.concurrency, opts.workers))?;
    report.enroll_secs = started.elapsed().as_secs_f64();
    let n = workers.len();
    let closed = |logins: Option<u64>, secs: Option<f64>| -> Vec<WorkerCommand> {
        match logins {
            Some(total) => split(total, n)
                .into_iter()
                .map(|l| WorkerCommand::Closed {
                    logins: Some(l),
                    secs: None,
                })
                .collect(),
            None => vec![WorkerCommand::Closed { logins: None, secs }; n],
        }
    };
    // Warm-up: connections, caches, the SQLite page cache.
    measure(
        &format!("{name} warm-up"),
        &mut workers,
        &closed(None, Some(opts.warmup_secs)),
        pid,
        &db_cpu,
    )?;
    report.peak = measure(
        &format!("{name} C={}", opts.concurrency),
        &mut workers,
        &closed(opts.logins, Some(opts.secs)),
        pid,
        &db_cpu,
    )?;
    if opts.half_load && report.peak.rate > 0.0 {
        let rate = report.peak.rate / 2.0;
        let commands = vec![
            WorkerCommand::Open {
                rate: rate / n as f64,
                secs: opts.secs,
            };
            n
        ];
        let pass = measure(
            &format!("{name} half load {rate:.0}/s"),
            &mut workers,
            &commands,
            pid,
            &db_cpu,
        )?;
        report.half = Some((rate, pass));
    }
    if opts.big_logins > 0 {
        let bytes_before = db.size();
        let t0 = Instant::now();
        let big = measure(
            &format!("{name} size run"),
            &mut workers,
            &closed(Some(opts.big_logins), None),
            pid,
            &db_cpu,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        let pass = measure(
            &format!("{name} C={} at size", opts.concurrency),
            &mut workers,
            &closed(None, Some(opts.secs)),
            pid,
            &db_cpu,
        )?;
        report.size = Some(SizeRun {
            logins: big.logins,
            secs,
            errors: big.errors,
            bytes_before,
            bytes_after: db.size(),
            pass,
        });
    }
    drop(workers);
    server.service.stop();
    Ok(report)
}

/// The report section of one database.
pub fn render(opts: &Options, r: &DbReport, out: &mut String) {
    let cmd = opts.command_for(&r.flag);
    let p = &r.peak;
    let _ = writeln!(out, "\n## {} (`{cmd}`)\n", r.name);
    let _ = writeln!(
        out,
        "Devices: {} (enrolled over HTTP in {:.1} s, {} worker processes). Measured: {}.\n",
        opts.concurrency,
        r.enroll_secs,
        opts.workers,
        match opts.logins {
            Some(l) => format!("{l} logins"),
            None => format!("{} s closed loop", opts.secs),
        }
    );
    let _ = writeln!(out, "| figure | value |\n| --- | --- |");
    let _ = writeln!(
        out,
        "| approvals/s at C={} | {:.0} ({} logins in {:.1} s, {} errors) |",
        opts.concurrency, p.rate, p.logins, p.wall, p.errors
    );
    let _ = writeln!(
        out,
        "| login latency p50 / p99 | {:.1} ms / {:.1} ms |",
        p.p50, p.p99
    );
    let _ = writeln!(
        out,
        "| server CPU per login (countersign-server process) | {:.2} ms |",
        p.server_cpu_ms
    );
    if let Some(db) = p.db_cpu_ms {
        let _ = writeln!(
            out,
            "| PostgreSQL CPU per login (postmaster and backends) | {db:.2} ms |"
        );
    }
    let _ = writeln!(
        out,
        "| driver CPU per login (simulated RP and devices, worker processes) | {:.2} ms |",
        p.driver_cpu_ms
    );
    let _ = writeln!(
        out,
        "| SQL statements per login | {:.1} (counting pass over {} logins) |",
        r.statements.per_login(),
        r.statements.logins
    );
    if let Some((target, h)) = &r.half {
        let _ = writeln!(
            out,
            "| half load: open loop at {target:.0}/s, p50 / p99 | {:.1} ms / {:.1} ms ({:.0}/s achieved, {} errors; target p99 < 20 ms: {}) |",
            h.p50,
            h.p99,
            h.rate,
            h.errors,
            if h.p99 < 20.0 { "met" } else { "NOT met" }
        );
    }
    if let Some(s) = &r.size {
        let _ = writeln!(
            out,
            "| size run: {} logins | {:.0} s ({:.0}/s), {} errors; database {:.1} MB before, {:.1} MB after ({:.0} bytes per login) |",
            s.logins,
            s.secs,
            s.logins as f64 / s.secs.max(1e-9),
            s.errors,
            s.bytes_before as f64 / 1e6,
            s.bytes_after as f64 / 1e6,
            (s.bytes_after.saturating_sub(s.bytes_before)) as f64 / s.logins.max(1) as f64
        );
        let _ = writeln!(
            out,
            "| approvals/s at that size, p50 / p99 | {:.0} ({:.0} % of fresh), {:.1} ms / {:.1} ms |",
            s.pass.rate,
            s.pass.rate / p.rate.max(1e-9) * 100.0,
            s.pass.p50,
            s.pass.p99
        );
    }
    let _ = writeln!(out, "| load average after | {} |", p.load);
    let _ = writeln!(out, "\nStatements per login by kind:");
    for (kind, n) in r.statements.by_kind() {
        let _ = writeln!(out, "- {kind}: {n:.2}");
    }
    let _ = writeln!(
        out,
        "\nStatements per login by statement (sqlx's summary):\n"
    );
    let mut rows: Vec<(&String, &u64)> = r.statements.by_statement.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (sql, n) in rows {
        let _ = writeln!(
            out,
            "    {:>5.2}  {sql}",
            *n as f64 / r.statements.logins.max(1) as f64
        );
    }
}

/// `line` without terminal colour codes (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `normal` or `full`.
pub fn parse_synchronous(value: &str) -> Result<SqliteSynchronous, String> {
    serde_json::from_value(json!(value))
        .map_err(|_| format!("--sqlite-synchronous {value}: normal or full"))
}
