//! The `countersign-server` binary as a child process on a fresh SQLite file:
//! for tests that count its descriptors, limit it, or kill it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use countersign_test_support::{RpClient, TempDir, temp_dir};
use serde_json::Value;

/// The master key of every [`ServerProcess`] (the same after a restart).
pub const MASTER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A `countersign-server` child process on a SQLite database in a temporary
/// folder, which lives as long as this (across restarts).
pub struct ServerProcess {
    /// The running (or, after [`ServerProcess::kill`], exited) process.
    pub child: Child,
    /// `http://127.0.0.1:<port>` of the running process (a new port on restart).
    pub base: String,
    /// The `sqlite://` URL of its database.
    pub database_url: String,
    /// The database file.
    pub database_path: PathBuf,
    config: PathBuf,
    nofile: Option<u32>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts the server in a folder `countersign-<label>-*` with `sections`
    /// (TOML, e.g. `[http]` lines) after the common settings; with `nofile`,
    /// under `prlimit --nofile=N:N`.
    pub fn start(label: &str, sections: &str, nofile: Option<u32>) -> Self {
        let dir = temp_dir(label);
        let database_path = dir.path().join("server.db");
        let database_url = format!("sqlite://{}", database_path.display());
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndatabase_url = \"{database_url}\"\n\
                 master_key = \"{MASTER_KEY}\"\nlog_format = \"json\"\n{sections}\n"
            ),
        )
        .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (child, addr) = spawn(&config, nofile, log.clone());
        Self {
            child,
            base: format!("http://{addr}"),
            database_url,
            database_path,
            config,
            nofile,
            log,
            _dir: dir,
        }
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process if it runs, then starts it again on the same config
    /// and database (same master key); [`ServerProcess::base`] is the new
    /// address.
    pub fn restart(&mut self) {
        self.kill();
        let (child, addr) = spawn(&self.config, self.nofile, self.log.clone());
        self.child = child;
        self.base = format!("http://{addr}");
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// A relying party created in the server's database, as the operator does.
    pub async fn rp(&self, name: &str) -> RpClient {
        let db = countersign_server::store::Db::connect(&self.database_url, 1)
            .await
            .unwrap();
        let (master, _) = countersign_server::service::secrets::load(&db, Some(MASTER_KEY))
            .await
            .unwrap();
        let created = countersign_server::admin::create_rp(&db, &master, name, None)
            .await
            .unwrap();
        db.close().await;
        RpClient::new(self.base.clone(), created.api_key)
    }

    /// Whether any log line so far (of any run) contains `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(message))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the binary on `config`; returns it and the address it logged once
/// listening. Its log lines are appended to `log`.
fn spawn(config: &Path, nofile: Option<u32>, log: Arc<Mutex<Vec<String>>>) -> (Child, String) {
    let server = env!("CARGO_BIN_EXE_countersign-server");
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(server);
            c
        }
        None => Command::new(server),
    };
    let mut child = command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("COUNTERSIGN_LOG", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Log lines go to stderr (stdout has the operator's banner).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server logs before it exits")
            .unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "countersign server listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep reading: a full pipe would block the server's logging.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
    (child, addr)
}
