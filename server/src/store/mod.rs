//! The store layer: every SQL statement of the server, with typed rows read by
//! column name. One pool over sqlx's `any` driver, so the same queries (with
//! `$n` placeholders, which SQLite also accepts) and the same migrations run on
//! SQLite and PostgreSQL.
//!
//! The store knows nothing of HTTP or of the services above it: functions take
//! plain values and return rows or `sqlx::Error`. Those that must commit with
//! other writes take a connection (`&mut AnyConnection`, e.g. a [`Tx`]).

pub mod api_keys;
pub mod audit;
pub mod challenges;
pub mod devices;
pub mod nonces;
pub mod notify;
pub mod offers;
pub mod offline;
pub mod otp;
pub mod qr_logins;
pub mod relying_parties;
pub mod retention;
pub mod secrets;
pub mod transfers;
pub mod users;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// Result of a store call.
pub type StoreResult<T> = Result<T, sqlx::Error>;

/// A database transaction; pass `&mut tx` to the store functions that take a
/// connection, so their writes commit together.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (one file, WAL).
    Sqlite,
    /// PostgreSQL (shared by several instances).
    Postgres,
}

/// The schema migrations (`server/migrations/NNNN_name.sql`), embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The pool and what it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool.
    pub pool: AnyPool,
    /// The backend.
    pub backend: Backend,
    /// The URL (PostgreSQL LISTEN needs its own connection).
    url: String,
}

impl Db {
    /// Connects (creating a SQLite file if needed) and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains('?') || url.contains(":memory:") {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(sqlx::Error::Configuration(
                "database_url must start with sqlite: or postgres:".into(),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every idle connection before handing it out: one more
            // round trip to SQLite's worker thread per statement. A SQLite
            // connection cannot drop, so skip it there; PostgreSQL keeps the ping
            // (a server restart or idle timeout would otherwise fail one request).
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout makes
                        // concurrent writers wait instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let db = Self { pool, backend, url };
        MIGRATOR.run(&db.pool).await?;
        Ok(db)
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let c: &mut AnyConnection = &mut conn;
        c.ping().await
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        self.pool.begin().await
    }
}
