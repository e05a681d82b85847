//! `countersign-bench`: server throughput, measured from outside.
//!
//! * `countersign-bench run [flags]` (`cargo xtask bench`): the release
//!   countersign-server as its own process on SQLite and PostgreSQL; simulated
//!   devices in worker processes run full push logins over loopback HTTP.
//!   Reports approvals/s, latency, server CPU per login, SQL statements per
//!   login, a half-load pass, the crypto-only bound and a size run.
//! * `countersign-bench peer [flags]` (`cargo xtask bench-peer`): the same
//!   driver against Countersign and privacyIDEA 3.14 side by side.
//! * `countersign-bench smoke [flags]`: every code path above, bounded to
//!   seconds, with assertions (`cargo xtask test` runs it).
//! * `countersign-bench worker`: a worker process (started by the others).
#![forbid(unsafe_code)]
// Benchmark code: a panic in a helper is a failed login (caught per login).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod countersign;
mod crypto;
mod peer;
mod procs;
mod stats;
mod worker;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use countersign::{Backend, Database, RunningServer};
use countersign_server::config::SqliteSynchronous;
use procs::{Workers, split};
use worker::Command as WorkerCommand;

/// Everything a run can be told.
#[derive(Debug, Clone)]
pub struct Options {
    /// The countersign-server binary to run.
    pub server_bin: PathBuf,
    /// Databases, logs and configuration files go here.
    pub work_dir: PathBuf,
    /// The report file.
    pub report: PathBuf,
    /// The servers' master key (hex).
    pub master_key: String,
    /// Simulated devices logging in at once.
    pub concurrency: u64,
    /// Worker processes.
    pub workers: usize,
    /// Length of a measured pass, seconds.
    pub secs: f64,
    /// Warm-up before the measured pass, seconds.
    pub warmup_secs: f64,
    /// A measured pass of this many logins instead of `secs`.
    pub logins: Option<u64>,
    /// The databases.
    pub dbs: Vec<Backend>,
    /// Logins of the size run (0: none).
    pub big_logins: u64,
    /// SQLite's synchronous setting.
    pub sqlite_synchronous: SqliteSynchronous,
    /// Database connections of the server (default: the server's).
    pub db_connections: Option<u32>,
    /// Logins of the statement counting pass.
    pub count_logins: u64,
    /// Run the half-load pass.
    pub half_load: bool,
    /// privacyIDEA's venv (bench-peer, smoke).
    pub venv: Option<PathBuf>,
    /// `--quick` was given.
    pub quick: bool,
}

impl Options {
    fn parse(args: &[String], peer: bool) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| "random")?;
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Self {
            server_bin: dir.join("countersign-server"),
            work_dir: PathBuf::from("target/bench/work"),
            report: PathBuf::from("target/bench/report.md"),
            master_key: hex::encode(key),
            concurrency: if peer { 20 } else { 32 },
            workers: 2,
            secs: match (peer, quick) {
                (_, true) => 5.0,
                (true, false) => 30.0,
                (false, false) => 20.0,
            },
            warmup_secs: if quick { 1.0 } else { 3.0 },
            logins: None,
            dbs: vec![Backend::Sqlite, Backend::Postgres],
            big_logins: if quick || peer { 0 } else { 200_000 },
            sqlite_synchronous: SqliteSynchronous::default(),
            db_connections: None,
            count_logins: if quick { 50 } else { 200 },
            half_load: !peer,
            venv: None,
            quick,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            let number = |v: String| {
                v.parse::<f64>()
                    .map_err(|_| format!("{flag} {v}: a number"))
            };
            match flag.as_str() {
                "--quick" => {}
                "--server-bin" => o.server_bin = value()?.into(),
                "--work-dir" => o.work_dir = value()?.into(),
                "--report" => o.report = value()?.into(),
                "--venv" => o.venv = Some(value()?.into()),
                "--concurrency" => o.concurrency = number(value()?)? as u64,
                "--workers" => o.workers = number(value()?)? as usize,
                "--secs" => o.secs = number(value()?)?,
                "--logins" => o.logins = Some(number(value()?)? as u64),
                "--big-logins" => o.big_logins = number(value()?)? as u64,
                "--count-logins" => o.count_logins = number(value()?)? as u64,
                "--db-connections" => o.db_connections = Some(number(value()?)? as u32),
                "--no-half-load" => o.half_load = false,
                "--sqlite-synchronous" => {
                    o.sqlite_synchronous = countersign::parse_synchronous(&value()?)?
                }
                "--db" => {
                    o.dbs = match value()?.as_str() {
                        "sqlite" => vec![Backend::Sqlite],
                        "postgres" => vec![Backend::Postgres],
                        "both" => vec![Backend::Sqlite, Backend::Postgres],
                        other => return Err(format!("--db {other}: sqlite, postgres or both")),
                    }
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if o.concurrency == 0 || o.workers == 0 {
            return Err("--concurrency and --workers must be positive".into());
        }
        o.workers = o.workers.min(o.concurrency as usize);
        // privacyIDEA resolves relative paths in pi.cfg from its own directory.
        let absolute =
            |p: &PathBuf| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
        o.work_dir = absolute(&o.work_dir)?;
        o.report = absolute(&o.report)?;
        o.server_bin = absolute(&o.server_bin)?;
        if let Some(venv) = &o.venv {
            o.venv = Some(absolute(venv)?);
        }
        Ok(o)
    }

    /// The command that reproduces a figure measured on database `db`.
    pub fn command_for(&self, db: &str) -> String {
        let mut cmd = format!(
            "cargo xtask bench --db {db} --concurrency {}",
            self.concurrency
        );
        match self.logins {
            Some(l) => {
                let _ = write!(cmd, " --logins {l}");
            }
            None => {
                let _ = write!(cmd, " --secs {}", self.secs);
            }
        }
        let _ = write!(cmd, " --big-logins {}", self.big_logins);
        if db == "sqlite" && self.sqlite_synchronous != SqliteSynchronous::default() {
            cmd.push_str(" --sqlite-synchronous full");
        }
        if let Some(n) = self.db_connections {
            let _ = write!(cmd, " --db-connections {n}");
        }
        cmd
    }
}

/// A progress line on stderr, with the time since the process started.
pub fn progress_line(text: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:>6.1}s] {text}", start.elapsed().as_secs_f64());
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores ({cpu}), load average at start {}",
        stats::load_average()
    )
}

fn write_report(opts: &Options, text: &str) -> Result<(), String> {
    if let Some(dir) = opts.report.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&opts.report, text).map_err(|e| format!("{}: {e}", opts.report.display()))?;
    println!("{text}");
    eprintln!("report written to {}", opts.report.display());
    Ok(())
}

/// `cargo xtask bench`.
fn run(opts: &Options) -> Result<(), String> {
    let mut out = String::new();
    let _ = writeln!(out, "# Countersign server throughput\n");
    let _ = writeln!(out, "Machine: {}.", machine());
    let _ = writeln!(
        out,
        "Server: `{}` (release) as its own process on 127.0.0.1; SQLite synchronous={}; \
         database connections: {}. Driver: {} worker processes (`countersign-bench worker`) \
         simulating the relying party and one device per user, each login a full push \
         approval over HTTP (push with number matching, signed fetch, open, answer with \
         number and push OTP, status read). The driver shares the machine's cores with the \
         server (and PostgreSQL). PostgreSQL runs with fsync=off (the test cluster).",
        opts.server_bin.display(),
        opts.sqlite_synchronous.pragma(),
        opts.db_connections
            .map(|n| n.to_string())
            .unwrap_or_else(|| "server default (SQLite 1, PostgreSQL 8)".into()),
        opts.workers
    );
    progress_line("crypto-only bound (2 s)");
    let bound = crypto::bound_us(2.0)?;
    let _ = writeln!(
        out,
        "\n## Crypto-only bound\n\n{bound:.0} µs per login on one core (ring, in process: 3 ECDSA P-256 \
         verifies, 1 ephemeral ECDH P-256 + HKDF-SHA256 + AES-256-GCM seal, 1 ECDSA P-256 sign). \
         Reproduce: `cargo xtask bench --quick --db sqlite` (printed at the top)."
    );
    let mut reports = Vec::new();
    for &backend in &opts.dbs {
        let report = countersign::bench_database(opts, backend)?;
        let mut section = String::new();
        countersign::render(opts, &report, &mut section);
        let _ = writeln!(
            section,
            "\nServer CPU per login / crypto bound: {:.1}× ({:.2} ms / {:.0} µs).",
            report.peak.server_cpu_ms * 1000.0 / bound,
            report.peak.server_cpu_ms,
            bound
        );
        eprint!("{section}");
        out.push_str(&section);
        reports.push(report);
    }
    let _ = writeln!(
        out,
        "\nStatements are counted in a separate pass: the server runs with \
         `COUNTERSIGN_LOG=warn,sqlx::query=debug`, and the sqlx statement lines it logs \
         while one worker runs the counted logins (after a warm-up) are grouped by sqlx's \
         summary. Only what sqlx logs is counted: transaction control is partly \
         invisible (no BEGIN on either backend, no COMMIT on SQLite; PostgreSQL's COMMIT \
         lines show the transactions per login). Latency is one login's wall time seen by the driver (four HTTP round \
         trips); in the half-load pass it counts from the login's scheduled start."
    );
    write_report(opts, &out)?;
    for r in &reports {
        if r.peak.errors > 0 {
            return Err(format!("{}: {} logins failed", r.name, r.peak.errors));
        }
    }
    Ok(())
}

/// `cargo xtask bench-peer`.
fn peer_run(opts: &Options) -> Result<(), String> {
    let venv = opts
        .venv
        .clone()
        .ok_or("--venv (privacyIDEA's venv) is needed")?;
    let mut cs_opts = opts.clone();
    cs_opts.dbs = vec![Backend::Sqlite];
    cs_opts.half_load = false;
    cs_opts.big_logins = 0;
    let cs = countersign::bench_database(&cs_opts, Backend::Sqlite)?;

    progress_line(&format!(
        "privacyIDEA: setting up, enrolling {} push tokens",
        opts.concurrency
    ));
    let started = Instant::now();
    let pi = peer::Privacyidea::start(&venv, &opts.work_dir.join("privacyidea"), opts.concurrency)?;
    let enroll = started.elapsed().as_secs_f64();
    let setups: Vec<worker::Setup> = split_phones(&pi.phones, opts.workers)
        .into_iter()
        .map(|phones| worker::Setup::Privacyidea {
            base: pi.base.clone(),
            phones,
        })
        .collect();
    let mut workers = Workers::start(setups)?;
    let n = workers.len();
    let pid = pi.gunicorn.pid();
    let none = || None;
    countersign::measure(
        "privacyIDEA warm-up",
        &mut workers,
        &vec![
            WorkerCommand::Closed {
                logins: None,
                secs: Some(opts.warmup_secs)
            };
            n
        ],
        pid,
        &none,
    )?;
    let p = countersign::measure(
        &format!("privacyIDEA C={}", opts.concurrency),
        &mut workers,
        &vec![
            WorkerCommand::Closed {
                logins: None,
                secs: Some(opts.secs)
            };
            n
        ],
        pid,
        &none,
    )?;
    drop(workers);
    drop(pi);

    let c = &cs.peak;
    let mut out = String::new();
    let _ = writeln!(out, "# Countersign and privacyIDEA 3.14 side by side\n");
    let _ = writeln!(out, "Machine: {}.", machine());
    let _ = writeln!(
        out,
        "Same driver (worker processes, one simulated phone per user), same concurrency \
         C={}, closed loop for {} s each, both on SQLite on loopback. Countersign: the \
         release server, one full push login = push with number matching, signed fetch, \
         answer, status. privacyIDEA 3.14 under gunicorn (4 workers), push tokens in \
         poll-only mode: /validate/check triggers, the phone polls /ttype/push and answers \
         (RSA-2048 signatures), the RP polls /validate/polltransaction and finalises with \
         /validate/check. privacyIDEA's CPU is all gunicorn processes'. Enrolment took {:.0} s.\n",
        opts.concurrency, opts.secs, enroll
    );
    let _ = writeln!(
        out,
        "| | Countersign | privacyIDEA 3.14 | ratio |\n| --- | --- | --- | --- |"
    );
    let _ = writeln!(
        out,
        "| approvals/s | {:.1} | {:.2} | {:.0}× |",
        c.rate,
        p.rate,
        c.rate / p.rate.max(1e-9)
    );
    let _ = writeln!(
        out,
        "| p50 | {:.1} ms | {:.0} ms | {:.0}× |",
        c.p50,
        p.p50,
        p.p50 / c.p50.max(1e-9)
    );
    let _ = writeln!(
        out,
        "| p99 | {:.1} ms | {:.0} ms | {:.0}× |",
        c.p99,
        p.p99,
        p.p99 / c.p99.max(1e-9)
    );
    let _ = writeln!(
        out,
        "| server CPU per login | {:.2} ms | {:.0} ms | {:.0}× |",
        c.server_cpu_ms,
        p.server_cpu_ms,
        p.server_cpu_ms / c.server_cpu_ms.max(1e-9)
    );
    let _ = writeln!(
        out,
        "| logins (errors) | {} ({}) | {} ({}) | |",
        c.logins, c.errors, p.logins, p.errors
    );
    let _ = writeln!(out, "| load average after | {} | {} | |", c.load, p.load);
    if let Some(e) = &p.first_error {
        let _ = writeln!(out, "\nprivacyIDEA's first failure: {e}");
    }
    let _ = writeln!(
        out,
        "\nReproduce: `cargo xtask bench-peer --concurrency {} --secs {}`.",
        opts.concurrency, opts.secs
    );
    write_report(opts, &out)
}

fn split_phones(phones: &[peer::Phone], workers: usize) -> Vec<Vec<peer::Phone>> {
    let mut out = Vec::new();
    let mut rest = phones;
    for n in split(phones.len() as u64, workers) {
        let (a, b) = rest.split_at(n as usize);
        if !a.is_empty() {
            out.push(a.to_vec());
        }
        rest = b;
    }
    out
}

/// The smoke: every code path for seconds, with assertions.
fn smoke(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let mut passed = 0u32;
    let mut failed = 0u32;
    let mut check = |name: &str, result: Result<String, String>| match result {
        Ok(detail) => {
            passed += 1;
            println!("ok     bench smoke: {name}: {detail}");
        }
        Err(why) => {
            failed += 1;
            println!("FAILED bench smoke: {name}: {why}");
        }
    };
    check(
        "crypto bound",
        crypto::bound_us(0.3).and_then(|us| {
            if us > 1.0 && us < 100_000.0 {
                Ok(format!("{us:.0} µs per login"))
            } else {
                Err(format!("{us} µs is implausible"))
            }
        }),
    );
    for (backend, logins, devices) in [(Backend::Sqlite, 300u64, 16u64), (Backend::Postgres, 40, 4)]
    {
        let dir = opts.work_dir.join(format!("smoke-{}", backend.flag()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = match Database::create(backend, &dir) {
            Ok(db) => db,
            Err(e) => {
                check(&format!("{} database", backend.name()), Err(e));
                continue;
            }
        };
        let name = backend.name();
        check(
            &format!("{name} statements per login"),
            countersign::count_statements(opts, &db, 20).and_then(|s| {
                let per = s.per_login();
                let kinds: Vec<String> = s
                    .by_kind()
                    .iter()
                    .map(|(k, n)| format!("{k} {n:.1}"))
                    .collect();
                let detail = format!("{per:.1} over {} logins ({})", s.logins, kinds.join(", "));
                if s.logins == 20 && (3.0..=MAX_STATEMENTS_PER_LOGIN).contains(&per) {
                    Ok(detail)
                } else {
                    Err(format!("{detail}; expected 20 logins and 3..={MAX_STATEMENTS_PER_LOGIN} statements per login"))
                }
            }),
        );
        let measured = (|| -> Result<String, String> {
            let mut server = RunningServer::start(opts, &db, "smoke", None, false)?;
            let pid = server.service.pid();
            let db_cpu = || db.db_cpu();
            let mut workers = Workers::start(server.setups("smoke", devices, 2))?;
            let n = workers.len();
            let commands: Vec<WorkerCommand> = split(logins, n)
                .into_iter()
                .map(|l| WorkerCommand::Closed {
                    logins: Some(l),
                    secs: None,
                })
                .collect();
            let pass = countersign::measure(name, &mut workers, &commands, pid, &db_cpu)?;
            if pass.logins != logins || pass.errors != 0 {
                return Err(format!(
                    "{} of {logins} approved, {} errors (first: {:?})",
                    pass.logins, pass.errors, pass.first_error
                ));
            }
            let open = vec![
                WorkerCommand::Open {
                    rate: 10.0,
                    secs: 1.0
                };
                n
            ];
            let half = countersign::measure(
                &format!("{name} open loop"),
                &mut workers,
                &open,
                pid,
                &db_cpu,
            )?;
            if half.errors != 0 || half.logins == 0 {
                return Err(format!(
                    "open loop: {} approved, {} errors",
                    half.logins, half.errors
                ));
            }
            server.service.stop();
            Ok(format!(
                "{} logins approved, {:.0}/s, server CPU {:.2} ms/login{}",
                pass.logins,
                pass.rate,
                pass.server_cpu_ms,
                pass.db_cpu_ms
                    .map(|d| format!(", PostgreSQL {d:.2} ms/login"))
                    .unwrap_or_default()
            ))
        })();
        check(&format!("{name} logins"), measured);
    }
    match &opts.venv {
        Some(venv) => {
            let result = (|| -> Result<String, String> {
                let pi =
                    peer::Privacyidea::start(venv, &opts.work_dir.join("smoke-privacyidea"), 4)?;
                let setups = split_phones(&pi.phones, 2)
                    .into_iter()
                    .map(|phones| worker::Setup::Privacyidea {
                        base: pi.base.clone(),
                        phones,
                    })
                    .collect();
                let mut workers = Workers::start(setups)?;
                let n = workers.len();
                let commands: Vec<WorkerCommand> = split(12, n)
                    .into_iter()
                    .map(|l| WorkerCommand::Closed {
                        logins: Some(l),
                        secs: None,
                    })
                    .collect();
                let none = || None;
                let pass = countersign::measure(
                    "privacyIDEA",
                    &mut workers,
                    &commands,
                    pi.gunicorn.pid(),
                    &none,
                )?;
                if pass.logins != 12 || pass.errors != 0 {
                    return Err(format!(
                        "{} of 12 approved with the final check true, {} errors (first: {:?})",
                        pass.logins, pass.errors, pass.first_error
                    ));
                }
                Ok(format!(
                    "12 logins approved (final /validate/check true), CPU {:.0} ms/login",
                    pass.server_cpu_ms
                ))
            })();
            check("privacyIDEA logins", result);
        }
        None => check("privacyIDEA logins", Err("no --venv given".into())),
    }
    println!("bench smoke took {:.1}s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        Err(format!("{failed} bench smoke checks failed"))
    } else {
        Ok(())
    }
}

/// The smoke's bound on SQL statements per login (a regression guard).
const MAX_STATEMENTS_PER_LOGIN: f64 = 40.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("run", &args[..]),
    };
    let outcome = match command {
        "worker" => worker::run(),
        "run" => Options::parse(rest, false).and_then(|o| run(&o)),
        "peer" => Options::parse(rest, true).and_then(|o| peer_run(&o)),
        "smoke" => Options::parse(rest, false).and_then(|o| smoke(&o)),
        _ => Err("usage: countersign-bench <run|peer|smoke|worker> [flags]".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("countersign-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
