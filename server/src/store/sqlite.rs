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
use std::sync::Arc;

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

/// What a statement returns, in sqlx's terms: its rows, then its result.
pub(super) type Steps = Vec<Either<AnyQueryResult, AnyRow>>;

/// A SQLite connection with its prepared statements and, per statement, the
/// column names its rows share.
#[derive(Debug)]
pub struct SqliteConnection {
    conn: rusqlite::Connection,
    columns: HashMap<Box<str>, Columns>,
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
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
            row.get::<_, String>(0)
        })
        .map_err(driver_error)?;
        conn.execute_batch(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
             PRAGMA synchronous = {};",
            synchronous.pragma()
        ))
        .map_err(driver_error)?;
        Ok(Self {
            conn,
            columns: HashMap::new(),
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
        steps.push(Either::Left(result(affected)));
        Ok(steps)
    }

    /// Runs a statement that returns nothing (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub(super) fn command(&mut self, sql: &str) -> StoreResult<()> {
        self.conn.execute_batch(sql).map_err(driver_error)
    }

    /// Whether a transaction is open (SQLite's autocommit is off).
    pub(super) fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
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
