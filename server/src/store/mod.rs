//! The store layer: every SQL statement of the server, with typed rows read by
//! column name. One pool over sqlx's `any` driver, so the same queries (with
//! `$n` placeholders, which SQLite also accepts) and the same migrations run on
//! SQLite and PostgreSQL.
//!
//! The store knows nothing of HTTP or of the services above it: functions take
//! plain values and return rows or `sqlx::Error`. Those that must commit with
//! other writes take a connection (`&mut AnyConnection`, e.g. a [`Tx`]).
//!
//! Statements run on a [`Conn`] from [`Db::conn`]. On SQLite that is our own
//! small set of connections rather than sqlx's pool: sqlx pings a connection
//! every time it goes back to its pool, and on SQLite a ping is one more round
//! trip to the connection's worker thread, as costly as the statement itself
//! (issue 16's profile). A SQLite connection cannot drop, and sqlx's worker runs
//! commands in order, so a rollback queued by an abandoned [`Tx`] still runs
//! before the connection's next statement: the ping buys nothing there.
//! PostgreSQL connections can drop, so they keep sqlx's pool and its checks.
//!
//! **Group commit (SQLite, one connection).** Inside a request (see
//! [`Durability`]) the connection's statements run in a transaction that
//! several requests share: a request's own transaction ([`Tx`]) is a savepoint
//! in it, and when a request lets the connection go with writes pending, a
//! commit is queued behind the requests already waiting for the connection.
//! One commit then covers them all: one WAL append of each page they changed
//! instead of one per request, and with `synchronous = full` one disk sync. No
//! request answers before its writes committed ([`Durability::wait`]), so what
//! a client was told survives a crash as before. Work outside a request
//! (background jobs, RADIUS) commits first whatever group is open and then runs
//! on its own, as it always did.

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
mod sqlite;
pub mod transfers;
pub mod users;

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::any::{
    AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTransactionManager, AnyTypeInfo,
};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{
    Any, AnyConnection, AnyPool, Connection, Describe, Either, Execute, Executor,
    TransactionManager,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use sqlite::SqliteConnection;

pub use crate::config::SqliteSynchronous;

/// Result of a store call.
pub type StoreResult<T> = Result<T, sqlx::Error>;

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

/// How long a statement waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// The request's [`Durability`], while its handler runs.
    static DURABILITY: Durability;
}

/// What a request must wait for before it answers: the commit of every SQLite
/// commit group it wrote to or read from (see the module doc). Requests on
/// PostgreSQL, and outside [`Durability::scope`], commit as they go and wait
/// for nothing.
#[derive(Debug, Clone, Default)]
pub struct Durability(Arc<Mutex<Vec<Arc<sqlite::Group>>>>);

impl Durability {
    /// Runs `work` (a request's handler) with this as its durability:
    /// connections it lets go with writes pending leave them to a shared commit
    /// and note the group here.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        DURABILITY.scope(self.clone(), work).await
    }

    /// Waits until everything the request's statements wrote or read is
    /// committed; an error if a group's commit failed (its writes are gone,
    /// and the request must not report success).
    pub async fn wait(&self) -> StoreResult<()> {
        let groups = match self.0.lock() {
            Ok(mut groups) => std::mem::take(&mut *groups),
            Err(_) => return Err(sqlx::Error::PoolClosed),
        };
        for group in groups {
            group.wait().await?;
        }
        Ok(())
    }

    fn join(&self, group: Arc<sqlite::Group>) {
        if let Ok(mut groups) = self.0.lock()
            && !groups.iter().any(|g| Arc::ptr_eq(g, &group))
        {
            groups.push(group);
        }
    }
}

/// The pool and what it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool.
    pub pool: AnyPool,
    /// The backend.
    pub backend: Backend,
    /// The URL (PostgreSQL LISTEN needs its own connection).
    url: String,
    /// SQLite: the connections statements run on (see the module doc).
    local: Option<Arc<LocalConnections>>,
}

impl Db {
    /// Connects (creating a SQLite file if needed) and runs the migrations,
    /// with the default `synchronous` ([`SqliteSynchronous::Normal`]).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(url, max_connections, SqliteSynchronous::default()).await
    }

    /// [`Db::connect`] with SQLite's `synchronous` setting.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        synchronous: SqliteSynchronous,
    ) -> StoreResult<Self> {
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
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx pings every idle connection before handing it out: one more
            // round trip to SQLite's worker thread per statement. A SQLite
            // connection cannot drop, so skip it there; PostgreSQL keeps the ping
            // (a server restart or idle timeout would otherwise fail one request).
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlite_settings(conn, synchronous).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let local = (backend == Backend::Sqlite).then(|| {
            Arc::new(LocalConnections {
                url: url.clone(),
                synchronous,
                slots: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
                max: max_connections.max(1) as usize,
                // With several connections each would hold a write transaction
                // open and block the others' writes: group only with one.
                grouping: max_connections <= 1,
                closed: AtomicBool::new(false),
            })
        });
        let db = Self {
            pool,
            backend,
            url,
            local,
        };
        MIGRATOR.run(&db.pool).await?;
        if let Some(local) = &db.local {
            sqlite::spawn_checkpointer(
                &local.url,
                synchronous,
                sqlite::WAL_CAP_FRAMES,
                Arc::downgrade(local),
            )?;
        }
        Ok(db)
    }

    /// A connection for a few statements; it goes back when dropped.
    pub async fn conn(&self) -> StoreResult<Conn> {
        match &self.local {
            Some(local) => local.acquire().await,
            None => Ok(Conn(ConnKind::Pooled(self.pool.acquire().await?))),
        }
    }

    /// Closes every connection; later statements fail with `PoolClosed`.
    pub async fn close(&self) {
        if let Some(local) = &self.local {
            local.close();
        }
        self.pool.close().await;
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        self.conn().await?.ping().await
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        Ok(Tx { conn, open: true })
    }
}

/// The SQLite settings of every connection. WAL lets readers run beside the
/// writer; the busy timeout makes concurrent writers wait instead of failing.
async fn sqlite_settings(
    conn: &mut AnyConnection,
    synchronous: SqliteSynchronous,
) -> StoreResult<()> {
    let sql = format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
        synchronous.pragma()
    );
    conn.execute(sql.as_str()).await?;
    Ok(())
}

/// SQLite connections handed out without sqlx's pool (see the module doc):
/// at most `permits` at once, each opened on first need and kept.
#[derive(Debug)]
struct LocalConnections {
    url: String,
    synchronous: SqliteSynchronous,
    slots: Mutex<Vec<Arc<tokio::sync::Mutex<SqliteConnection>>>>,
    permits: Arc<Semaphore>,
    max: usize,
    /// Whether requests share commits (see the module doc).
    grouping: bool,
    closed: AtomicBool,
}

impl LocalConnections {
    async fn acquire(self: &Arc<Self>) -> StoreResult<Conn> {
        let Checkout { guard, permit } = self.checkout().await?;
        // A `Conn` first, so that on an error below it goes back as any does
        // (the connection before the permit).
        let mut conn = Conn(ConnKind::Local {
            guard,
            _permit: permit,
            local: self.clone(),
        });
        if let ConnKind::Local { guard, .. } = &mut conn.0 {
            let in_request = DURABILITY.try_with(|_| ()).is_ok();
            if self.grouping && in_request {
                guard.open_group()?;
            } else {
                // Run on its own, after what the requests before it wrote.
                guard.commit_group();
            }
        }
        Ok(conn)
    }

    /// A request lets the connection go: a group with nothing written ends
    /// now; one with writes is noted in the request's [`Durability`] and a
    /// commit is queued (once per group) behind the requests already waiting.
    fn release(self: &Arc<Self>, conn: &mut SqliteConnection) {
        if !conn.group_open() {
            return;
        }
        let Some(group) = conn.dirty_group() else {
            conn.commit_group();
            return;
        };
        if DURABILITY.try_with(|d| d.join(group)).is_err() {
            conn.commit_group();
            return;
        }
        if conn.schedule_flush() {
            tokio::spawn(self.clone().flush());
        }
    }

    /// Commits the open group once the requests already waiting for the
    /// connection (and the tasks ready to run, which may be about to ask for
    /// it) had their turn: they join the group and share its commit.
    async fn flush(self: Arc<Self>) {
        tokio::task::yield_now().await;
        loop {
            match self.checkout().await {
                Ok(mut held) => return held.guard.commit_group(),
                // A connection held this long: keep queueing, the group's
                // requests are waiting for this commit.
                Err(sqlx::Error::PoolTimedOut) => continue,
                // Closed: dropping the connection failed the group.
                Err(_) => return,
            }
        }
    }

    /// Takes a connection (opening it if need be) without touching its
    /// transaction state.
    async fn checkout(&self) -> StoreResult<Checkout> {
        // As sqlx's pool does: a request waits at most this long for a connection.
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        // A permit means a slot is free, or one may still be opened: a guard
        // is dropped before its permit (field order of `ConnKind::Local`).
        let (free, may_open) = {
            let slots = self.slots.lock().map_err(|_| sqlx::Error::PoolClosed)?;
            let free = slots.iter().find_map(|s| s.clone().try_lock_owned().ok());
            (free, slots.len() < self.max)
        };
        let guard = match free {
            Some(guard) => guard,
            None if may_open => {
                let conn = SqliteConnection::open(&self.url, self.synchronous)?;
                let slot = Arc::new(tokio::sync::Mutex::new(conn));
                let guard = slot
                    .clone()
                    .try_lock_owned()
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                self.slots
                    .lock()
                    .map_err(|_| sqlx::Error::PoolClosed)?
                    .push(slot);
                guard
            }
            // Not expected (guards go before their permits); wait rather than fail.
            None => match self.slots.lock().ok().and_then(|s| s.first().cloned()) {
                Some(slot) => slot.lock_owned().await,
                None => return Err(sqlx::Error::PoolClosed),
            },
        };
        Ok(Checkout { guard, permit })
    }

    /// Refuses new acquisitions and drops the connections (each closes when
    /// its last user lets go).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
        }
    }
}

/// A connection taken from [`LocalConnections`] and the permit it was taken
/// with. Field order matters: the connection goes back before the permit, so
/// whoever is given the permit finds it free.
struct Checkout {
    guard: tokio::sync::OwnedMutexGuard<SqliteConnection>,
    permit: OwnedSemaphorePermit,
}

impl sqlite::CheckpointOwner for LocalConnections {
    /// Whether [`LocalConnections::close`] has not been called.
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Waits its turn for the connection (on the checkpointer's thread, so no
    /// request thread blocks), commits the open group, then runs `work`.
    fn with_writers_held(&self, work: &mut dyn FnMut()) {
        if !self.grouping {
            return work();
        }
        let held = futures_executor::block_on(async {
            let permit = self.permits.clone().acquire_owned().await.ok()?;
            let slot = self.slots.lock().ok()?.first().cloned();
            // Ok: the connection, its group committed; Err: the permit alone
            // (no connection was opened yet).
            Some(match slot {
                Some(slot) => {
                    let mut held = Checkout {
                        guard: slot.lock_owned().await,
                        permit,
                    };
                    held.guard.commit_group();
                    Ok(held)
                }
                None => Err(permit),
            })
        });
        // `None`: closed, nothing to checkpoint for.
        if let Some(held) = held {
            work();
            drop(held);
        }
    }
}

/// A database connection from [`Db::conn`]; it goes back when dropped.
/// `&mut Conn` is a sqlx executor (`query(…).fetch_one(&mut conn)`), on either
/// backend.
#[derive(Debug)]
pub struct Conn(ConnKind);

#[derive(Debug)]
enum ConnKind {
    Pooled(PoolConnection<Any>),
    // Field order matters: the guard is released before the permit.
    Local {
        guard: tokio::sync::OwnedMutexGuard<SqliteConnection>,
        _permit: OwnedSemaphorePermit,
        local: Arc<LocalConnections>,
    },
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let ConnKind::Local { guard, local, .. } = &mut self.0 {
            local.release(guard);
        }
    }
}

impl Conn {
    /// Checks the connection answers.
    pub async fn ping(&mut self) -> StoreResult<()> {
        match &mut self.0 {
            ConnKind::Pooled(c) => c.ping().await,
            ConnKind::Local { guard, .. } => guard.run("SELECT 1", None, None).map(drop),
        }
    }

    async fn begin(&mut self) -> StoreResult<()> {
        match &mut self.0 {
            ConnKind::Pooled(c) => AnyTransactionManager::begin(c, None).await,
            // Inside a commit group a request's transaction is a savepoint.
            ConnKind::Local { guard, .. } if guard.group_open() => {
                guard.command("SAVEPOINT request")
            }
            ConnKind::Local { guard, .. } => guard.command("BEGIN"),
        }
    }

    async fn commit(&mut self) -> StoreResult<()> {
        match &mut self.0 {
            ConnKind::Pooled(c) => AnyTransactionManager::commit(c).await,
            ConnKind::Local { guard, .. } if guard.group_open() => guard.command("RELEASE request"),
            ConnKind::Local { guard, .. } => guard.command("COMMIT"),
        }
    }

    async fn rollback(&mut self) -> StoreResult<()> {
        match &mut self.0 {
            ConnKind::Pooled(c) => AnyTransactionManager::rollback(c).await,
            ConnKind::Local { guard, .. } if guard.group_open() => {
                guard.command(ROLLBACK_SAVEPOINT)
            }
            ConnKind::Local { guard, .. } => guard.command("ROLLBACK"),
        }
    }

    /// The rollback of an abandoned transaction: queued on a pooled
    /// connection (it runs before the connection's next use), done at once on
    /// SQLite (inline, nothing to wait for).
    fn start_rollback(&mut self) {
        match &mut self.0 {
            ConnKind::Pooled(c) => AnyTransactionManager::start_rollback(c),
            ConnKind::Local { guard, .. } => {
                let rollback = if guard.group_open() {
                    ROLLBACK_SAVEPOINT
                } else {
                    "ROLLBACK"
                };
                if guard.in_transaction()
                    && let Err(e) = guard.command(rollback)
                {
                    tracing::error!(error = %e, "rollback of an abandoned transaction failed");
                }
            }
        }
    }
}

/// Undoes a request's transaction inside a commit group and ends it.
const ROLLBACK_SAVEPOINT: &str = "ROLLBACK TO request; RELEASE request";

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, StoreResult<Either<AnyQueryResult, AnyRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn(ConnKind::Pooled(c)) => (&mut **c).fetch_many(query),
            Conn(ConnKind::Local { guard, .. }) => {
                let steps = query
                    .take_arguments()
                    .map_err(sqlx::Error::Encode)
                    .and_then(|args| guard.run(query.sql(), args, None));
                let steps: Vec<StoreResult<_>> = match steps {
                    Ok(steps) => steps.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                Box::pin(futures_util::stream::iter(steps))
            }
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxFuture<'e, StoreResult<Option<AnyRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn(ConnKind::Pooled(c)) => (&mut **c).fetch_optional(query),
            Conn(ConnKind::Local { guard, .. }) => {
                let row = query
                    .take_arguments()
                    .map_err(sqlx::Error::Encode)
                    .and_then(|args| guard.run(query.sql(), args, Some(1)))
                    .map(|steps| {
                        steps.into_iter().find_map(|step| match step {
                            Either::Right(row) => Some(row),
                            Either::Left(_) => None,
                        })
                    });
                Box::pin(std::future::ready(row))
            }
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, StoreResult<AnyStatement<'q>>>
    where
        'c: 'e,
    {
        match self {
            Conn(ConnKind::Pooled(c)) => (&mut **c).prepare_with(sql, parameters),
            // The store never prepares explicitly; statements are cached as they run.
            Conn(ConnKind::Local { .. }) => {
                Box::pin(std::future::ready(Err(unsupported("prepare"))))
            }
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, StoreResult<Describe<Any>>>
    where
        'c: 'e,
    {
        match self {
            Conn(ConnKind::Pooled(c)) => (&mut **c).describe(sql),
            Conn(ConnKind::Local { .. }) => {
                Box::pin(std::future::ready(Err(unsupported("describe"))))
            }
        }
    }
}

fn unsupported(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "{what} is not supported on the server's SQLite connections"
    ))
}

/// A database transaction; pass `&mut tx` to the store functions that take a
/// connection, so their writes commit together. Dropped without
/// [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx {
    conn: Conn,
    open: bool,
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(mut self) -> StoreResult<()> {
        self.conn.commit().await?;
        self.open = false;
        Ok(())
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> StoreResult<()> {
        self.conn.rollback().await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            self.conn.start_rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 1).await.unwrap();
        let mut conn = db.conn().await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        db
    }

    /// The rows of `t` another process would see: committed ones only.
    fn committed(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        let mut stmt = conn.prepare("SELECT a FROM t ORDER BY a").unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    async fn insert(conn: &mut Conn, a: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO t (a) VALUES ($1)")
            .bind(a)
            .execute(conn)
            .await
            .map(drop)
    }

    /// A request that inserts `a` and has not answered yet.
    async fn request_inserting(db: &Db, a: i64) -> Durability {
        let request = Durability::default();
        request
            .scope(async { insert(&mut db.conn().await?, a).await })
            .await
            .unwrap();
        request
    }

    // The runtime has one thread, so the queued commit runs only once the test
    // awaits something that is not ready: what each step leaves is exact.
    #[tokio::test]
    async fn requests_share_one_commit_and_answer_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir).await;
        let first = request_inserting(&db, 1).await;
        let second = request_inserting(&db, 2).await;
        // Written, not committed: neither request may answer yet.
        assert_eq!(committed(&dir), Vec::<i64>::new());
        first.wait().await.unwrap();
        // One commit made both durable.
        assert_eq!(committed(&dir), [1, 2]);
        second.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_request_rolling_back_keeps_the_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir).await;
        let kept = request_inserting(&db, 1).await;
        let (undone, abandoned) = (Durability::default(), Durability::default());
        undone
            .scope(async {
                let mut tx = db.begin().await?;
                insert(&mut tx, 2).await?;
                tx.rollback().await
            })
            .await
            .unwrap();
        abandoned
            .scope(async {
                let mut tx = db.begin().await?;
                insert(&mut tx, 3).await
                // Dropped without a commit.
            })
            .await
            .unwrap();
        for d in [&kept, &undone, &abandoned] {
            d.wait().await.unwrap();
        }
        assert_eq!(committed(&dir), [1]);
    }

    #[tokio::test]
    async fn work_outside_a_request_commits_the_open_group_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir).await;
        let request = request_inserting(&db, 1).await;
        // A background job (or RADIUS) writes: it commits as it goes.
        insert(&mut db.conn().await.unwrap(), 2).await.unwrap();
        assert_eq!(committed(&dir), [1, 2]);
        request.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_group_that_cannot_commit_fails_its_requests() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir).await;
        let request = request_inserting(&db, 1).await;
        // Closed before the queued commit ran: the write is rolled back, and
        // the request must not report success.
        db.close().await;
        assert!(request.wait().await.is_err());
        assert_eq!(committed(&dir), Vec::<i64>::new());
    }

    #[tokio::test]
    async fn requests_that_only_read_commit_nothing_and_wait_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir).await;
        let reader = Durability::default();
        let rows = reader
            .scope(async {
                sqlx::query("SELECT a FROM t")
                    .fetch_all(&mut db.conn().await?)
                    .await
            })
            .await
            .unwrap();
        assert!(rows.is_empty());
        assert!(reader.0.lock().unwrap().is_empty());
        reader.wait().await.unwrap();
    }
}
