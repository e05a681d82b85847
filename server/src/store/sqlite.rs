//! The server's SQLite connections: every statement runs inline, on the task
//! that awaits it.
//!
//! sqlx's SQLite driver gives each connection a worker thread and sends every
//! statement there and back over channels. On SQLite a statement takes a few
//! microseconds, the two thread wake-ups around it far more: issue 16's profile
//! of a loaded server spent about 40 % of its CPU in the kernel switching
//! between the worker and tokio's threads, for 18 such round trips per login.
//! Here the statement runs on the calling thread with rusqlite, from a cache of
//! prepared statements, and its rows come back as sqlx's `AnyRow`, so the store
//! keeps one set of queries (sqlx's `query`, `$n` placeholders, `FromRow`) for
//! SQLite and PostgreSQL alike.
//!
//! Running inline means a statement holds its tokio worker thread while it runs:
//! microseconds normally, longer while a checkpoint copies the WAL or another
//! process holds the write lock (up to the busy timeout). Requests that need
//! the database wait for the connection either way; the other worker threads
//! keep serving the rest.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::types::ValueRef;
use sqlx::Either;
use sqlx::sqlite::SqliteConnectOptions;
// sqlx re-exports only part of its `any` module; rows are built from sqlx-core's.
use sqlx_core::any::{
    AnyArguments, AnyColumn, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue,
    AnyValueKind,
};
use sqlx_core::ext::ustr::UStr;

use super::{SqliteSynchronous, StoreResult};

/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 512;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT_MS: u32 = 5000;

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames (pages) past which the checkpointer restarts the WAL even if it
/// has to hold writers for it: 8,192 pages of 4 KiB, 32 MiB.
pub(super) const WAL_CAP_FRAMES: i64 = 8192;

/// What a statement returns, in sqlx's terms: its rows, then its result.
pub(super) type Steps = Vec<Either<AnyQueryResult, AnyRow>>;

/// A SQLite connection with its prepared statements and, per statement, the
/// column names its rows share.
#[derive(Debug)]
pub struct SqliteConnection {
    conn: rusqlite::Connection,
    columns: HashMap<Box<str>, Columns>,
    /// The commit group whose transaction is open on this connection.
    group: Option<OpenGroup>,
}

/// One commit group: the writes of the requests that used the connection
/// between two commits, committed by one SQLite transaction (see
/// `store::Durability`). Each request answers only once its group committed.
#[derive(Debug)]
pub(super) struct Group {
    /// `None` while open; then whether the commit succeeded (and if not, why).
    outcome: tokio::sync::watch::Sender<Option<Result<(), String>>>,
}

impl Group {
    fn new() -> Self {
        Self {
            outcome: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Waits until the group's transaction committed; an error if it was rolled
    /// back (or its connection closed) instead.
    pub(super) async fn wait(&self) -> StoreResult<()> {
        let mut outcome = self.outcome.subscribe();
        let outcome = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        match &*outcome {
            Some(Err(why)) => Err(protocol(format!(
                "the transaction holding this request's writes did not commit: {why}"
            ))),
            _ => Ok(()),
        }
    }

    fn finish(&self, outcome: Result<(), String>) {
        self.outcome.send_replace(Some(outcome));
    }
}

/// The group whose transaction is open, with what is needed to decide whether
/// it wrote anything and whether a commit is on its way.
#[derive(Debug)]
struct OpenGroup {
    group: Arc<Group>,
    changes_at_begin: u64,
    flush_scheduled: bool,
}

/// The column names of one statement's rows, shared by every row.
#[derive(Debug, Clone)]
struct Columns {
    names: Vec<UStr>,
    index: Arc<sqlx_core::HashMap<UStr, usize>>,
}

impl SqliteConnection {
    /// Opens the database file of `url` (sqlx's `sqlite:` URL syntax) with the
    /// server's settings: WAL, so readers run beside the writer; a busy timeout,
    /// so another process's writer is waited for; foreign keys; `synchronous`.
    ///
    /// The connection never checkpoints the WAL itself: [`spawn_checkpointer`]
    /// does, off the request path.
    pub(super) fn open(url: &str, synchronous: SqliteSynchronous) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename();
        if path.to_string_lossy().contains("sqlx-in-memory") {
            // Each connection would see its own empty database.
            return Err(sqlx::Error::Configuration(
                "in-memory SQLite is not supported: use a file".into(),
            ));
        }
        let conn = rusqlite::Connection::open(path).map_err(driver_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(driver_error)?;
        conn.execute_batch(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; \
             PRAGMA synchronous = {}; PRAGMA wal_autocheckpoint = 0;",
            synchronous.pragma()
        ))
        .map_err(driver_error)?;
        Ok(Self {
            conn,
            columns: HashMap::new(),
            group: None,
        })
    }

    /// Runs `sql` with `arguments` (bound by their `$n`/`?n` numbers, or in
    /// order for a bare `?`) and returns its rows (at most `max_rows`), then its
    /// result. A statement without arguments may be several, separated by `;`.
    pub(super) fn run(
        &mut self,
        sql: &str,
        arguments: Option<AnyArguments<'_>>,
        max_rows: Option<usize>,
    ) -> StoreResult<Steps> {
        let steps = self.run_statement(sql, arguments, max_rows);
        if let Err(e) = &steps {
            self.after_error(e);
        }
        steps
    }

    fn run_statement(
        &mut self,
        sql: &str,
        arguments: Option<AnyArguments<'_>>,
        max_rows: Option<usize>,
    ) -> StoreResult<Steps> {
        let values = arguments.map(|a| a.values.0).unwrap_or_default();
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::MultipleStatement) if values.is_empty() => {
                self.conn.execute_batch(sql).map_err(driver_error)?;
                return Ok(vec![Either::Left(result(self.conn.changes()))]);
            }
            Err(e) => return Err(driver_error(e)),
        };
        bind(&mut stmt, &values)?;
        let columns = match self.columns.get(sql) {
            Some(columns) => columns.clone(),
            None => {
                let names: Vec<UStr> = stmt.column_names().into_iter().map(UStr::new).collect();
                let index = names.iter().cloned().zip(0..).collect();
                let columns = Columns {
                    names,
                    index: Arc::new(index),
                };
                self.columns.insert(sql.into(), columns.clone());
                columns
            }
        };
        let read_only = stmt.readonly();
        let logged = tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG);
        let started = logged.then(std::time::Instant::now);
        let mut steps = Vec::new();
        let mut rows = stmt.raw_query();
        while max_rows.is_none_or(|max| steps.len() < max) {
            let Some(row) = rows.next().map_err(driver_error)? else {
                break;
            };
            steps.push(Either::Right(any_row(row, &columns)?));
        }
        drop(rows);
        // A read leaves `changes()` at the last write's count: report none.
        let affected = if read_only { 0 } else { self.conn.changes() };
        if let Some(started) = started {
            log_statement(sql, affected, steps.len(), started.elapsed());
        }
        steps.push(Either::Left(result(affected)));
        Ok(steps)
    }

    /// Runs a statement that returns nothing (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub(super) fn command(&mut self, sql: &str) -> StoreResult<()> {
        let done = self.conn.execute_batch(sql).map_err(driver_error);
        if let Err(e) = &done {
            self.after_error(e);
        }
        done
    }

    /// Opens a commit group (`BEGIN`) unless one is open.
    pub(super) fn open_group(&mut self) -> StoreResult<()> {
        if self.group.is_none() {
            self.command("BEGIN")?;
            self.group = Some(OpenGroup {
                group: Arc::new(Group::new()),
                changes_at_begin: self.conn.total_changes(),
                flush_scheduled: false,
            });
        }
        Ok(())
    }

    /// Whether a commit group's transaction is open.
    pub(super) fn group_open(&self) -> bool {
        self.group.is_some()
    }

    /// The open group, if it holds writes not yet committed.
    pub(super) fn dirty_group(&self) -> Option<Arc<Group>> {
        self.group
            .as_ref()
            .filter(|open| self.conn.total_changes() != open.changes_at_begin)
            .map(|open| open.group.clone())
    }

    /// Notes that a commit of the open group is on its way; false if one
    /// already was (or no group is open).
    pub(super) fn schedule_flush(&mut self) -> bool {
        match &mut self.group {
            Some(open) if !open.flush_scheduled => {
                open.flush_scheduled = true;
                true
            }
            _ => false,
        }
    }

    /// Commits the open group, if any, and tells its requests how it went. A
    /// failed commit is rolled back: none of the group's writes stay.
    pub(super) fn commit_group(&mut self) {
        let Some(open) = self.group.take() else {
            return;
        };
        let outcome = self.conn.execute_batch("COMMIT").map_err(|e| {
            tracing::error!(error = %e, "commit of a group of requests' writes failed");
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            e.to_string()
        });
        open.group.finish(outcome);
    }

    /// SQLite rolls the whole transaction back on some errors (a full disk,
    /// I/O errors): the open group's writes are gone, so its requests fail.
    fn after_error(&mut self, error: &sqlx::Error) {
        if self.group.is_some()
            && self.conn.is_autocommit()
            && let Some(open) = self.group.take()
        {
            open.group
                .finish(Err(format!("rolled back after an error: {error}")));
        }
    }

    /// Whether a transaction is open (SQLite's autocommit is off).
    pub(super) fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        // Closing rolls the open transaction back: its requests must not wait
        // for a commit that will never come.
        if let Some(open) = self.group.take() {
            open.group.finish(Err("the connection closed".into()));
        }
    }
}

/// The statement event sqlx's drivers log (target `sqlx::query`, debug), in
/// the same shape, so `COUNTERSIGN_LOG=sqlx::query=debug` and the benchmark's
/// statement count see SQLite's statements as they see PostgreSQL's. The SQL
/// text only: bound values (secrets among them) are never logged.
fn log_statement(
    sql: &str,
    rows_affected: u64,
    rows_returned: usize,
    elapsed: std::time::Duration,
) {
    let summary = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    tracing::debug!(
        target: "sqlx::query",
        summary,
        db.statement = sql,
        rows_affected,
        rows_returned,
        ?elapsed,
    );
}

/// Starts the thread that checkpoints the WAL, on a connection of its own,
/// for as long as `alive` can be upgraded and says yes.
///
/// Left to SQLite, the commit that crosses 1,000 WAL pages checkpoints inline:
/// it copies the WAL into the database file and syncs both, while every request
/// waits for the connection (several times a second at peak; issue 16's
/// half-load p99). Here a `PASSIVE` checkpoint runs every 100 ms beside the
/// writer and never blocks it. Under continuous writes a passive pass may never
/// catch up with the writer, and SQLite restarts the WAL only after one has, so
/// past `cap_frames` ([`WAL_CAP_FRAMES`]) a `RESTART` checkpoint briefly holds
/// the writers until the WAL starts over: the file stays bounded.
pub(super) fn spawn_checkpointer<T: CheckpointOwner>(
    url: &str,
    synchronous: SqliteSynchronous,
    cap_frames: i64,
    owner: Weak<T>,
) -> StoreResult<()> {
    let mut conn = SqliteConnection::open(url, synchronous)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(owner) = owner.upgrade().filter(|owner| owner.is_open()) else {
                    break;
                };
                if let Err(e) = conn.checkpoint(cap_frames, &*owner) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                }
            }
        })
        .map_err(sqlx::Error::Io)?;
    Ok(())
}

/// What the checkpointer needs from the owner of the request connections.
pub(super) trait CheckpointOwner: Send + Sync + 'static {
    /// Whether the connections are still in use; the thread ends once not.
    fn is_open(&self) -> bool;

    /// Runs `work` while no request uses the database and no commit group's
    /// transaction is open. A `RESTART` checkpoint waits for every reader,
    /// while holding off every writer: an open group would make both wait.
    fn with_writers_held(&self, work: &mut dyn FnMut());
}

impl SqliteConnection {
    /// One checkpoint pass (see [`spawn_checkpointer`]).
    fn checkpoint(&mut self, cap_frames: i64, owner: &dyn CheckpointOwner) -> rusqlite::Result<()> {
        let wal_frames = self.wal_checkpoint("PASSIVE")?;
        if wal_frames > cap_frames {
            let mut restarted = Ok(0);
            let mut held = Duration::ZERO;
            owner.with_writers_held(&mut || {
                let started = std::time::Instant::now();
                restarted = self.wal_checkpoint("RESTART");
                held = started.elapsed();
            });
            tracing::debug!(
                wal_frames,
                after = restarted?,
                writers_held_ms = held.as_secs_f64() * 1e3,
                "WAL over its cap: restarted"
            );
        }
        Ok(())
    }

    /// Runs `PRAGMA wal_checkpoint(mode)`; returns the WAL's size in frames.
    fn wal_checkpoint(&mut self, mode: &str) -> rusqlite::Result<i64> {
        self.conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                row.get(1)
            })
    }
}

fn result(rows_affected: u64) -> AnyQueryResult {
    AnyQueryResult {
        rows_affected,
        last_insert_id: None,
    }
}

/// Binds each parameter of `stmt` to the argument its name numbers (`$3`,
/// `?3`), or to the next argument for a bare `?`.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, values: &[AnyValueKind<'_>]) -> StoreResult<()> {
    let mut next = 0usize;
    for i in 1..=stmt.parameter_count() {
        let number = match stmt.parameter_name(i) {
            None => {
                next += 1;
                next
            }
            Some(name) => name
                .strip_prefix('$')
                .or_else(|| name.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| protocol(format!("unsupported SQL parameter {name}")))?,
        };
        let value = number
            .checked_sub(1)
            .and_then(|n| values.get(n))
            .ok_or_else(|| protocol(format!("no argument for SQL parameter {number}")))?;
        let bound = match value {
            AnyValueKind::Null(_) => stmt.raw_bind_parameter(i, rusqlite::types::Null),
            AnyValueKind::Bool(b) => stmt.raw_bind_parameter(i, i64::from(*b)),
            AnyValueKind::SmallInt(n) => stmt.raw_bind_parameter(i, i64::from(*n)),
            AnyValueKind::Integer(n) => stmt.raw_bind_parameter(i, i64::from(*n)),
            AnyValueKind::BigInt(n) => stmt.raw_bind_parameter(i, *n),
            AnyValueKind::Real(x) => stmt.raw_bind_parameter(i, f64::from(*x)),
            AnyValueKind::Double(x) => stmt.raw_bind_parameter(i, *x),
            AnyValueKind::Text(text) => stmt.raw_bind_parameter(i, text.as_ref()),
            AnyValueKind::Blob(blob) => stmt.raw_bind_parameter(i, blob.as_ref()),
            other => return Err(protocol(format!("unsupported argument {other:?}"))),
        };
        bound.map_err(driver_error)?;
    }
    Ok(())
}

/// One row as sqlx's `AnyRow`, each value typed by what SQLite stored (as
/// sqlx's own SQLite driver does for columns without a declared type).
fn any_row(row: &rusqlite::Row<'_>, columns: &Columns) -> StoreResult<AnyRow> {
    let mut values = Vec::with_capacity(columns.names.len());
    let mut any_columns = Vec::with_capacity(columns.names.len());
    for (ordinal, name) in columns.names.iter().enumerate() {
        let kind = match row.get_ref(ordinal).map_err(driver_error)? {
            ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
            ValueRef::Integer(n) => AnyValueKind::BigInt(n),
            ValueRef::Real(x) => AnyValueKind::Double(x),
            ValueRef::Text(bytes) => AnyValueKind::Text(Cow::Owned(
                String::from_utf8(bytes.to_vec()).map_err(|e| protocol(e.to_string()))?,
            )),
            ValueRef::Blob(bytes) => AnyValueKind::Blob(Cow::Owned(bytes.to_vec())),
        };
        any_columns.push(AnyColumn {
            ordinal,
            name: name.clone(),
            type_info: AnyTypeInfo {
                kind: kind_of(&kind),
            },
        });
        values.push(AnyValue { kind });
    }
    Ok(AnyRow {
        column_names: columns.index.clone(),
        columns: any_columns,
        values,
    })
}

fn kind_of(value: &AnyValueKind<'_>) -> AnyTypeInfoKind {
    match value {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

/// SQLite's errors, as the driver errors sqlx reports them as.
fn driver_error(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::AnyDriverError(Box::new(e))
}

fn protocol(message: String) -> sqlx::Error {
    sqlx::Error::Protocol(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Arguments as _, Row as _};

    fn open(dir: &tempfile::TempDir) -> SqliteConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        SqliteConnection::open(&url, SqliteSynchronous::Normal).unwrap()
    }

    fn args(values: Vec<AnyValueKind<'static>>) -> Option<AnyArguments<'static>> {
        let mut a = AnyArguments::default();
        for v in values {
            match v {
                AnyValueKind::BigInt(n) => a.add(n).unwrap(),
                AnyValueKind::Text(t) => a.add(t.into_owned()).unwrap(),
                AnyValueKind::Blob(b) => a.add(b.into_owned()).unwrap(),
                AnyValueKind::Null(_) => a.add(Option::<String>::None).unwrap(),
                other => panic!("{other:?}"),
            }
        }
        Some(a)
    }

    fn rows(steps: Steps) -> (Vec<AnyRow>, u64) {
        let mut rows = Vec::new();
        let mut affected = None;
        for step in steps {
            match step {
                Either::Right(row) => rows.push(row),
                Either::Left(r) => affected = Some(r.rows_affected),
            }
        }
        (rows, affected.expect("a result after the rows"))
    }

    #[test]
    fn binds_numbered_parameters_in_any_order_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.run(
            "CREATE TABLE t (a TEXT, b INTEGER, c BLOB, d TEXT); CREATE TABLE u (x INTEGER)",
            None,
            None,
        )
        .unwrap();
        let (_, n) = rows(
            c.run(
                "INSERT INTO t (b, a, c, d) VALUES ($2, $1, $3, $4)",
                args(vec![
                    AnyValueKind::Text("one".into()),
                    AnyValueKind::BigInt(7),
                    AnyValueKind::Blob(vec![0, 255].into()),
                    AnyValueKind::Null(AnyTypeInfoKind::Null),
                ]),
                None,
            )
            .unwrap(),
        );
        assert_eq!(n, 1);
        // $1 twice; a read reports no rows affected even after a write.
        let (found, n) = rows(
            c.run(
                "SELECT a, b, c, d FROM t WHERE a = $1 AND a = $1 AND b = $2",
                args(vec![
                    AnyValueKind::Text("one".into()),
                    AnyValueKind::BigInt(7),
                ]),
                None,
            )
            .unwrap(),
        );
        assert_eq!(n, 0);
        assert_eq!(found.len(), 1);
        let row = &found[0];
        assert_eq!(row.try_get::<String, _>("a").unwrap(), "one");
        assert_eq!(row.try_get::<i64, _>("b").unwrap(), 7);
        assert_eq!(row.try_get::<i32, _>(1).unwrap(), 7);
        assert_eq!(row.try_get::<Vec<u8>, _>("c").unwrap(), vec![0, 255]);
        assert_eq!(row.try_get::<Option<String>, _>("d").unwrap(), None);
        assert!(
            row.try_get::<String, _>("d").is_err(),
            "NULL is not a String"
        );
        assert!(
            row.try_get::<String, _>("b").is_err(),
            "an integer is not a String"
        );
    }

    #[test]
    fn returning_rows_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.run("CREATE TABLE t (a INTEGER)", None, None).unwrap();
        for i in 0..3 {
            c.run(
                "INSERT INTO t (a) VALUES ($1)",
                args(vec![AnyValueKind::BigInt(i)]),
                None,
            )
            .unwrap();
        }
        let (updated, n) = rows(
            c.run("UPDATE t SET a = a + 10 RETURNING a", None, None)
                .unwrap(),
        );
        assert_eq!((updated.len(), n), (3, 3));
        let (first, _) = rows(c.run("SELECT a FROM t ORDER BY a", None, Some(1)).unwrap());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].try_get::<i64, _>("a").unwrap(), 10);
    }

    #[test]
    fn refuses_missing_arguments_and_bad_sql_with_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.run("CREATE TABLE t (a INTEGER)", None, None).unwrap();
        let missing = c.run(
            "SELECT a FROM t WHERE a = $2",
            args(vec![AnyValueKind::BigInt(1)]),
            None,
        );
        assert!(
            matches!(missing, Err(sqlx::Error::Protocol(_))),
            "{:?}",
            missing.err()
        );
        assert!(c.run("SELEKT 1", None, None).is_err());
        // The connection still works after both.
        assert!(c.run("SELECT 1", None, None).is_ok());
    }

    #[test]
    fn transactions_commit_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.run("CREATE TABLE t (a INTEGER)", None, None).unwrap();
        c.command("BEGIN").unwrap();
        assert!(c.in_transaction());
        c.run("INSERT INTO t (a) VALUES (1)", None, None).unwrap();
        c.command("ROLLBACK").unwrap();
        assert!(!c.in_transaction());
        c.command("BEGIN").unwrap();
        c.run("INSERT INTO t (a) VALUES (2)", None, None).unwrap();
        c.command("COMMIT").unwrap();
        let (all, _) = rows(c.run("SELECT a FROM t", None, None).unwrap());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].try_get::<i64, _>("a").unwrap(), 2);
    }

    #[test]
    fn in_memory_databases_are_refused() {
        let refused = SqliteConnection::open("sqlite::memory:", SqliteSynchronous::Normal);
        assert!(
            matches!(refused, Err(sqlx::Error::Configuration(_))),
            "{:?}",
            refused.err()
        );
    }

    #[test]
    fn the_checkpointer_copies_the_wal_and_keeps_it_bounded() {
        struct Open;
        impl CheckpointOwner for Open {
            fn is_open(&self) -> bool {
                true
            }
            fn with_writers_held(&self, work: &mut dyn FnMut()) {
                work()
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut c = SqliteConnection::open(&url, SqliteSynchronous::Normal).unwrap();
        c.run("CREATE TABLE t (a BLOB)", None, None).unwrap();
        let owner = Arc::new(Open);
        let cap = 256;
        spawn_checkpointer(&url, SqliteSynchronous::Normal, cap, Arc::downgrade(&owner)).unwrap();
        // Bursts of writes, a page a row, 16 times the cap in all, faster than
        // the checkpointer runs (without it the WAL would hold all 4,000 pages).
        for _ in 0..40 {
            for _ in 0..100 {
                c.run("INSERT INTO t (a) VALUES (randomblob(3900))", None, None)
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        std::thread::sleep(CHECKPOINT_EVERY * 4);
        // Request connections never checkpoint: only the thread copied pages.
        let db_len = std::fs::metadata(dir.path().join("t.db")).unwrap().len();
        assert!(
            db_len > 4000 * 3900,
            "database file {db_len} bytes: not checkpointed"
        );
        let wal_len = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        assert!(wal_len < 2500 * 4096, "WAL {wal_len} bytes: not bounded");
        // The thread ends with its owner.
        drop(owner);
    }
}
