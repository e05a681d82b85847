//! Shared test support: databases (SQLite temp files, a throwaway PostgreSQL),
//! starting servers on loopback, and a macro that runs each scenario on both.

#![allow(dead_code)]

pub mod actors;
pub mod postgres;

use countersign_server::config::Config;
use countersign_server::{RunningServer, Server};

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database in the shared PostgreSQL cluster.
    Postgres,
}

/// Holds a temp dir alive for SQLite.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database URL; the returned guard removes SQLite files.
pub fn database_url(db: Db) -> (String, Option<TempDir>) {
    match db {
        Db::Sqlite => {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "countersign-sqlite-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let url = format!("sqlite://{}", dir.join("test.db").display());
            (url, Some(TempDir(dir)))
        }
        Db::Postgres => (postgres::PgCluster::shared().create_database(), None),
    }
}

/// A test configuration on 127.0.0.1:0 for `url`.
pub fn config(url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: url.to_string(),
        ..Config::default()
    }
}

/// A server and what keeps its database alive.
pub struct TestServer {
    /// The server.
    pub server: RunningServer,
    /// The database URL (a second instance can share it).
    pub url: String,
    _tmp: Option<TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh database, with `tweak` applied to the config.
    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Self {
        let (url, tmp) = database_url(db);
        let mut c = config(&url);
        tweak(&mut c);
        let server = Server::start(c).await.expect("server starts");
        Self {
            server,
            url,
            _tmp: tmp,
        }
    }

    /// Starts a server with the default test config.
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base_url()
    }

    /// Stops the server (keeps the database until drop).
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// Runs each listed `async fn scenario(db: Db)` as two tests: `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Db::Postgres).await;
                }
            )*
        }
    };
}

/// An HTTP client (rustls with the ring provider, as the server uses).
pub fn client() -> reqwest::Client {
    countersign_server::push::install_crypto_provider();
    reqwest::Client::new()
}
