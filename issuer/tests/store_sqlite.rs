//! The store conformance suite against SQLite (a file in a temporary directory), plus the
//! SQLite-specific behaviour: persistence across reopen, a locked database, URL dispatch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_conformance;

use std::sync::Arc;
use std::time::Duration;

use issuer::store::sqlite::SqliteStore;
use issuer::store::{Consent, SecretHash, Store, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use store_conformance::{Fixture, NOW};

async fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("issuer.db"))
        .await
        .unwrap();
    let closer = store.clone();
    Fixture {
        store: Arc::new(store),
        close: Box::new(move || {
            let s = closer.clone();
            Box::pin(async move { s.close().await })
        }),
        teardown: Some(Box::pin(async move { drop(dir) })),
    }
}

conformance_suite!(setup);

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.db");
    let consent = Consent {
        subject: "ada".into(),
        client_id: "app".into(),
        resource: Some("https://app.example".into()),
        scopes: vec!["openid".into()],
        granted_at: NOW,
    };
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.put_consent(&consent).await.unwrap();
        store.close().await;
    }
    // Reopening runs the (already applied) migrations again without harm.
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store
            .get_consent("ada", "app", Some("https://app.example"))
            .await
            .unwrap(),
        Some(consent)
    );
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn locked_database_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(100));
    let store = SqliteStore::connect_with(options, 2).await.unwrap();
    // Another process holds the write lock (e.g. a stuck backup).
    let other = SqliteStore::open(&path).await.unwrap();
    let mut conn = other.pool().acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let err = store
        .revoke_access("jti", NOW)
        .await
        .expect_err("write must fail while locked");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store
        .rotate_refresh(
            &SecretHash::of("a"),
            &issuer::store::Successor {
                hash: SecretHash::of("b"),
                salt: [0; 32],
            },
            NOW,
            issuer::store::RotationPolicy {
                grace_secs: 0,
                idle_secs: 60,
            },
        )
        .await
        .expect_err("transaction must fail while locked");
    assert!(err.is_unavailable(), "{err:?}");
    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    drop(conn);
    // Nothing was lost or half-written, and the store works again.
    store.revoke_access("jti", NOW).await.unwrap();
    assert!(store.is_access_revoked("jti").await.unwrap());
}

#[tokio::test]
async fn open_dispatches_on_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("a.db").display());
    let store = issuer::store::open(&url).await.unwrap();
    store.ping().await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    issuer::store::open(&url)
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    assert!(dir.path().join("b.db").exists());
    let mem = issuer::store::open("sqlite::memory:").await.unwrap();
    mem.revoke_access("j", NOW).await.unwrap();
    assert!(mem.is_access_revoked("j").await.unwrap(), "one database");
    assert!(matches!(
        issuer::store::open("mysql://localhost/x").await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = SqliteStore::in_memory().await.unwrap();
    store.revoke_access("j", NOW).await.unwrap();
    assert!(store.is_access_revoked("j").await.unwrap());
}

#[tokio::test]
async fn corrupt_row_is_reported_not_panicking() {
    let store = SqliteStore::in_memory().await.unwrap();
    sqlx::query(
        "INSERT INTO registered_clients (client_id, metadata, created_at) VALUES ('x', '{', 1)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(matches!(
        store.get_client("x").await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn migration_0003_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.db");
    // A database as migrations 0001 and 0002 left it, with rows in it.
    let before = tempfile::tempdir().unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for f in ["0001_initial.sql", "0002_counters.sql"] {
        std::fs::copy(migrations.join(f), before.path().join(f)).unwrap();
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
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
    let store = SqliteStore::open(&path).await.unwrap();
    store_conformance::check_rows_migrated_by_0003(&store).await;
}
