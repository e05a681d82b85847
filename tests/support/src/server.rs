//! Databases and servers for tests: a countersign-server on 127.0.0.1 with a
//! free port, on a fresh SQLite file or a fresh PostgreSQL database.

use countersign_server::config::Config;
use countersign_server::{RunningServer, Server};

use crate::postgres::PgCluster;
use crate::rp::RpClient;
use crate::{TempDir, temp_dir};

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A fresh SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database in the test binary's shared PostgreSQL cluster.
    Postgres,
}

/// A test configuration: `database_url`, listening on 127.0.0.1 with a free port.
pub fn test_config(database_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        database_url: database_url.to_owned(),
        ..Config::default()
    }
}

/// A fresh, empty database; a SQLite file is deleted with it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    /// Creates a fresh database on `db`.
    pub fn new(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = temp_dir("sqlite");
                Self {
                    url: format!("sqlite://{}", dir.path().join("server.db").display()),
                    _dir: Some(dir),
                }
            }
            Db::Postgres => Self {
                url: PgCluster::shared().create_database(),
                _dir: None,
            },
        }
    }

    /// The database URL (more server instances can share it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A [`test_config`] on this database.
    pub fn config(&self) -> Config {
        test_config(&self.url)
    }
}

/// A countersign-server on a fresh database. [`TestServer::stop`] shuts it down
/// gracefully; dropping it asks it to stop (inside a tokio runtime) and deletes a
/// SQLite database.
#[derive(Debug)]
pub struct TestServer {
    /// `Some` until stopped or dropped.
    server: Option<RunningServer>,
    database: TestDatabase,
}

impl TestServer {
    /// Starts a server with the default test configuration.
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server with `tweak` applied to the test configuration.
    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::new(db);
        let mut config = database.config();
        tweak(&mut config);
        let server = Server::start(config).await.expect("server starts");
        Self {
            server: Some(server),
            database,
        }
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running until stopped")
    }

    /// The server's database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server().base_url()
    }

    /// A new relying party on this server, with a client holding its API key.
    pub async fn rp(&self, name: &str) -> RpClient {
        RpClient::create(self.server(), name).await
    }

    /// The server's signing key fingerprint (what an offer URI pins).
    pub fn key_fingerprint(&self) -> [u8; 32] {
        self.server().state().signing_key.public_key().fingerprint()
    }

    /// Shuts the server down gracefully, then deletes a SQLite database.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A server left running would serve until its runtime ends.
        if let (Some(server), Ok(runtime)) =
            (self.server.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(server.shutdown());
        }
    }
}

/// Runs each listed `async fn scenario(db: Db)` as two tokio tests,
/// `sqlite::scenario` and `postgres::scenario`. The calling crate needs tokio
/// with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Postgres).await;
                }
            )*
        }
    };
}
