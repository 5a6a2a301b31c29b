//! The SQLite store: one database file in WAL mode, the default for a single issuer replica.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

/// The SQLite implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` in WAL mode and runs the
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> super::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::connect_with(options, 8).await
    }

    /// A private in-memory database (one connection), for tests of code that needs a store.
    pub async fn in_memory() -> super::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| super::StoreError::Backend(Box::new(e)))?
            .foreign_keys(true);
        Self::connect_with(options, 1).await
    }

    /// Opens with explicit options (journal mode, busy timeout…) and pool size, then migrates.
    pub async fn connect_with(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> super::Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // An in-memory database lives as long as its connection: keep it.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(err)?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(SqliteStore { pool })
    }

    /// Closes the pool; every later operation fails with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// SQLite serialises writers: `BEGIN IMMEDIATE` takes the write lock at the start (waiting up
    /// to the busy timeout), so a transaction that reads and then writes is never refused half way
    /// with `SQLITE_BUSY`, and rows read in it cannot change before it commits.
    async fn begin_write(&self) -> super::Result<Tx> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)
    }

    /// Row locks are implied by `BEGIN IMMEDIATE`.
    const FOR_UPDATE: &'static str = "";
}

/// Classifies a driver error. Busy/locked databases, I/O errors, a full disk and pool problems
/// are "try again later"; a duplicate key is a conflict; the rest is a bug.
fn err(e: sqlx::Error) -> super::StoreError {
    use super::StoreError;
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
            // Primary result code = low byte of the extended code.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                // BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL
                Some(5 | 6 | 7 | 10 | 13 | 14 | 15) => {
                    StoreError::Unavailable(Box::new(sqlx::Error::Database(db)))
                }
                _ => StoreError::Backend(Box::new(sqlx::Error::Database(db))),
            }
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Migrate(m) => migrate_err(*m),
        e => StoreError::Backend(Box::new(e)),
    }
}

/// A write transaction ([`SqliteStore::begin_write`]).
type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

super::sql::impl_sql_store!(SqliteStore, SqliteRow);
