//! The store conformance suite against PostgreSQL at `KEYWAY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Every test gets its own fresh schema, dropped at
//! the end, so concurrent runs never collide. An unreachable database fails the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use issuer::store::postgres::PostgresStore;
use issuer::store::{Store, StoreError};
use sqlx::postgres::PgConnectOptions;
use store_conformance::{Fixture, NOW};

fn url() -> String {
    std::env::var("KEYWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn fresh_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "keyway_test_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn admin() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is unreachable: {e}", url()))
}

/// A store in a new schema, and a teardown that drops the schema.
async fn store_in_fresh_schema() -> (PostgresStore, impl std::future::Future<Output = ()>) {
    let schema = fresh_schema();
    let admin = admin().await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let options: PgConnectOptions = url().parse().unwrap();
    let options = options
        .options([("search_path", schema.as_str())])
        .application_name(&schema);
    let store = PostgresStore::connect_with(options, 8).await.unwrap();
    let teardown = async move {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    };
    (store, teardown)
}

async fn setup() -> Fixture {
    let (store, teardown) = store_in_fresh_schema().await;
    let closer = store.clone();
    let store2 = store.clone();
    Fixture {
        store: Arc::new(store),
        close: Box::new(move || {
            let s = closer.clone();
            Box::pin(async move { s.close().await })
        }),
        teardown: Some(Box::pin(async move {
            store2.close().await;
            teardown.await
        })),
    }
}

conformance_suite!(setup);

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    // A port where nothing listens: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("test");
    let store = PostgresStore::connect_lazy_with(options.clone(), 2);
    for r in [
        store.ping().await.map(|_| ()),
        store.is_access_revoked("j").await.map(|_| ()),
        store.migrate().await,
    ] {
        match r {
            Err(e) if e.is_unavailable() => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    match PostgresStore::connect_with(options, 2).await {
        Err(e) => assert!(e.is_unavailable(), "{e:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

#[tokio::test]
async fn terminated_connections_recover() {
    // The server kills our sessions (failover, restart): operations either fail with
    // Unavailable or succeed on a fresh connection, never anything else, and the store recovers.
    let (store, teardown) = store_in_fresh_schema().await;
    store.revoke_access("before", NOW).await.unwrap();
    let app: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(app.starts_with("keyway_test_"), "{app}");
    let admin = admin().await;
    // Only this test's own connections (named after its schema).
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed >= 1);
    for _ in 0..3 {
        match store.is_access_revoked("before").await {
            Ok(found) => assert!(found),
            Err(e) => assert!(e.is_unavailable(), "{e:?}"),
        }
    }
    assert!(store.is_access_revoked("before").await.unwrap());
    admin.close().await;
    store.close().await;
    teardown.await;
}

#[tokio::test]
async fn open_dispatches_on_url_and_migrations_are_idempotent() {
    let (store, teardown) = store_in_fresh_schema().await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    teardown.await;
    // open() picks PostgreSQL for postgres:// URLs; nothing listens on port 1.
    assert!(matches!(
        issuer::store::open("postgres://postgres@127.0.0.1:1/none").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn tls_is_used_when_required() {
    // `?sslmode=require` (or verify-full with `sslrootcert=`) in the store URL: the connection
    // is encrypted, or refused when the server offers no TLS.
    let admin = admin().await;
    let server_ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: PgConnectOptions = url().parse().unwrap();
    let options = options.ssl_mode(sqlx::postgres::PgSslMode::Require);
    let store = PostgresStore::connect_lazy_with(options, 1);
    if server_ssl == "on" {
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(encrypted);
        store.ping().await.unwrap();
    } else {
        let e = store.ping().await.expect_err("no TLS on the server");
        assert!(e.is_unavailable(), "{e:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn migration_0003_keeps_what_was_there() {
    let schema = fresh_schema();
    let admin = admin().await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let options: PgConnectOptions = url().parse().unwrap();
    let options = options.options([("search_path", schema.as_str())]);
    // A schema as migrations 0001 and 0002 left it, with rows in it.
    let before = tempfile::tempdir().unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    for f in ["0001_initial.sql", "0002_counters.sql"] {
        std::fs::copy(migrations.join(f), before.path().join(f)).unwrap();
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for sql in store_conformance::ROWS_BEFORE_0003 {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = PostgresStore::connect_with(options, 2).await.unwrap();
    store_conformance::check_rows_migrated_by_0003(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
