//! The PostgreSQL store, for several issuer replicas sharing one database.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and runs the migrations. Connection
    /// parameters go in the query as sqlx reads them: `sslmode=verify-full` (TLS with the system
    /// roots, or `sslrootcert=/path/ca.pem`), `options[search_path]=keyway`, `application_name=…`.
    pub async fn connect(url: &str) -> super::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| super::StoreError::Backend(Box::new(e)))?;
        Self::connect_with(options, 10).await
    }

    /// Connects with explicit options (e.g. a `search_path`) and pool size, then migrates.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> super::Result<Self> {
        let pool = Self::pool_options(max_connections)
            .connect_with(options)
            .await
            .map_err(err)?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(PostgresStore { pool })
    }

    /// A store whose connections are opened on first use, without running migrations: the
    /// issuer can start (and report itself not ready) while the database is down. Call
    /// [`PostgresStore::migrate`] once it is reachable.
    pub fn connect_lazy_with(options: PgConnectOptions, max_connections: u32) -> Self {
        PostgresStore {
            pool: Self::pool_options(max_connections).connect_lazy_with(options),
        }
    }

    /// Brings the schema up to date (idempotent; concurrent replicas serialise on an advisory
    /// lock).
    pub async fn migrate(&self) -> super::Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(migrate_err)
    }

    fn pool_options(max_connections: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            // Fail fast when the database is down: callers answer 503 rather than hang.
            .acquire_timeout(Duration::from_secs(3))
    }

    /// Closes the pool; every later operation fails with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A plain transaction: PostgreSQL runs it at READ COMMITTED, and the statements that must
    /// be serialised lock their rows with `FOR UPDATE`.
    async fn begin_write(&self) -> super::Result<Tx> {
        self.pool.begin().await.map_err(err)
    }

    const FOR_UPDATE: &'static str = " FOR UPDATE";
}

/// Classifies a driver error by SQLSTATE class: connection exceptions (08), insufficient
/// resources (53), operator intervention such as a shutting-down server (57), serialization
/// failures and deadlocks (40001, 40P01) are "try again later"; 23505 is a duplicate key.
fn err(e: sqlx::Error) -> super::StoreError {
    use super::StoreError;
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let retriable = code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01";
            if retriable {
                StoreError::Unavailable(Box::new(sqlx::Error::Database(db)))
            } else {
                StoreError::Backend(Box::new(sqlx::Error::Database(db)))
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

/// A write transaction ([`PostgresStore::begin_write`]).
type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

super::sql::impl_sql_store!(PostgresStore, PgRow);
