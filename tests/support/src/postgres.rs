//! A throwaway PostgreSQL 15 cluster for tests (as /work/shared/TOOLCHAIN.md shows):
//! installed from Debian's packages if missing, `initdb` in a temp dir owned by
//! `postgres`, a free loopback port, `pg_ctl start`. One cluster per test binary,
//! one fresh database per test. It is stopped and deleted when the test process
//! exits (a watchdog process waits for our pid), and by `Drop` when owned locally.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("PostgreSQL test harness: cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "PostgreSQL test harness: {what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ensure_installed() {
    if Path::new(PG_BIN).join("initdb").exists() {
        return;
    }
    assert!(
        is_root(),
        "PostgreSQL 15 is not installed ({PG_BIN} missing) and we are not root: \
         run `apt-get install -y postgresql`"
    );
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "postgresql"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        run(Command::new("apt-get").arg("update"), "apt-get update");
        run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "postgresql"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get install postgresql",
        );
    }
    assert!(
        Path::new(PG_BIN).join("initdb").exists(),
        "PostgreSQL installed but {PG_BIN}/initdb is missing"
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl PgCluster {
    fn pg(&self, tool: &str) -> Command {
        let path = format!("{PG_BIN}/{tool}");
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts a new cluster.
    pub fn start() -> Self {
        ensure_installed();
        let as_postgres = is_root();
        // Kept past this scope: the watchdog (or `Drop`) deletes it after `pg_ctl stop`.
        let base = crate::temp_dir("pg").keep();
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(&base),
                "chown temp dir to postgres",
            );
        }
        let port = free_port();
        let cluster = Self {
            dir: base,
            port,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        run(
            cluster.pg("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ]),
            "initdb",
        );
        let opts = format!(
            "-p {port} -k {} -h 127.0.0.1 -c fsync=off -c max_connections=300",
            cluster.dir.display()
        );
        run(
            cluster
                .pg("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("log"))
                .args(["-w", "-o", &opts, "start"]),
            "pg_ctl start",
        );
        cluster.spawn_watchdog();
        cluster
    }

    /// Stops the cluster and removes its directory when this process exits, even
    /// if statics are never dropped or a test aborts.
    fn spawn_watchdog(&self) {
        let pid = std::process::id();
        let data = self.dir.join("data");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {PG_BIN}/pg_ctl -D {} -m fast -w stop",
                data.display()
            )
        } else {
            format!("{PG_BIN}/pg_ctl -D {} -m fast -w stop", data.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.dir.display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// Creates a fresh database and returns its URL.
    pub fn create_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run(
            self.pg("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
                .arg(format!("CREATE DATABASE {name}")),
            "CREATE DATABASE",
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The cluster's data directory (its size is the databases' size on disk).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's process id (the backends are its children), from
    /// `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The cluster shared by every test of this test binary.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
