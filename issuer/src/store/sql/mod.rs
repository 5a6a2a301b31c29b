//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both schemas have the same tables and columns, and every statement below is valid in both
//! dialects (`$N` placeholders, which sqlx's SQLite driver binds by number too; `TRUE`/`FALSE`
//! literals; `RETURNING`; `ON CONFLICT`). What differs is supplied by each backend
//! module: how a write transaction begins (SQLite `BEGIN IMMEDIATE` takes the write lock up front;
//! PostgreSQL locks rows with `FOR UPDATE`), and how driver errors are classified.
//!
//! [`impl_sql_store!`] expands to `impl Store for $store` in the backend module, so the compiler
//! checks each expansion against its own driver's types (no generic bounds over sqlx). The
//! statements live with their concern, one file each: [`codes`], [`refresh`] (families, rotation,
//! revoked access tokens), [`consents`], [`sessions`], [`clients`] (dynamic registration) and
//! [`throttle`] (counters, known devices); this file keeps the shared column lists and helpers,
//! `ping` and `cleanup_expired`. Each concern's macro adds its methods and passes them on to the
//! next one, and [`sql_store_impl!`] writes the one `impl Store` at the end of that chain.

pub(crate) mod clients;
pub(crate) mod codes;
pub(crate) mod consents;
pub(crate) mod refresh;
pub(crate) mod sessions;
pub(crate) mod throttle;

use super::{Claims, Result, StoreError};

/// Space-separated list for a text column (scopes and absolute URIs contain no spaces; the
/// issuer validates them before they reach the store).
pub(crate) fn join_list(items: &[String]) -> String {
    items.join(" ")
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn claims_to_json(claims: &Claims) -> Result<String> {
    serde_json::to_string(claims).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn claims_from_json(s: &str) -> Result<Claims> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("claims: {e}")))
}

pub(crate) fn json_from_text(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))
}

/// How long a consumed code's row outlives its expiry, so that a late replay is still detected
/// (and still revokes what the first use issued) before `cleanup_expired` deletes it.
pub const USED_CODE_RETENTION_SECS: i64 = 24 * 60 * 60;

pub(crate) const CODE_COLS: &str = "client_id, redirect_uri, subject, scopes, resources, nonce, \
     code_challenge, auth_time, session_id, claims, created_at, expires_at, issued_family_id, \
     issued_access_jti, issued_access_exp";

pub(crate) const FAMILY_COLS: &str = "id, client_id, subject, scopes, resources, claims, \
     auth_time, session_id, created_at, expires_at, idle_expires_at, revoked";

/// A refresh token's state and its link to its successor (kept for the grace window).
pub(crate) const LINK_COLS: &str = "rotated_at, grace_until, successor_hash, successor_salt";

/// How many rotations a presentation within the grace window may follow to reach the current
/// token; a longer chain in one window is not a client's retries but a loop, and counts as reuse.
pub(crate) const MAX_GRACE_CHAIN: usize = 32;

pub(crate) const SESSION_COLS: &str =
    "id, subject, claims, source, auth_time, created_at, last_seen, expires_at";

/// Implements [`Store`](super::Store) for a backend struct that has `pool`, `begin_write()`,
/// `FOR_UPDATE` and an error classifier `err`; also defines the backend's `migrate_err`.
macro_rules! impl_sql_store {
    ($store:ty, $row:ty) => {
        use sqlx::Row as _;
        use $crate::store::sql::{
            claims_from_json, claims_to_json, join_list, json_from_text, split_list, CODE_COLS,
            FAMILY_COLS, LINK_COLS, MAX_GRACE_CHAIN, SESSION_COLS, USED_CODE_RETENTION_SECS,
        };
        use $crate::store::{
            AuthCode, Cleanup, CodeIssued, Consent, RefreshFamily, RefreshLookup, RefreshToken,
            RegisteredClient, Result as StoreResult, Rotation, RotationPolicy, SecretHash,
            Session, Store, StoreError, Successor, TakenCode, CLIENT_TOUCH_SECS,
        };

        /// A failed migration; a statement that failed because the database is unreachable is
        /// still `Unavailable` (try again later).
        fn migrate_err(e: sqlx::migrate::MigrateError) -> StoreError {
            match e {
                sqlx::migrate::MigrateError::Execute(e) => match err(e) {
                    StoreError::Unavailable(e) => StoreError::Unavailable(e),
                    other => StoreError::Migration(Box::new(other)),
                },
                other => StoreError::Migration(Box::new(other)),
            }
        }

        /// A space-separated list column.
        fn list_col(row: &$row, col: &str) -> StoreResult<Vec<String>> {
            Ok(split_list(&row.try_get::<String, _>(col).map_err(err)?))
        }

        /// The JSON `claims` column.
        fn claims_col(row: &$row) -> StoreResult<$crate::store::Claims> {
            claims_from_json(&row.try_get::<String, _>("claims").map_err(err)?)
        }

        $crate::store::sql::codes::sql_codes!($store, $row; {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn cleanup_expired(&self, now: i64) -> StoreResult<Cleanup> {
                let mut tx = self.begin_write().await?;
                let codes = sqlx::query(
                    "DELETE FROM auth_codes WHERE (used_at IS NULL AND expires_at <= $1) \
                     OR expires_at <= $2",
                )
                .bind(now)
                .bind(now.saturating_sub(USED_CODE_RETENTION_SECS))
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
                // Tokens go with their family (ON DELETE CASCADE); delete them explicitly too,
                // so the result does not depend on SQLite's foreign_keys pragma.
                sqlx::query(
                    "DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM \
                     refresh_families WHERE expires_at <= $1 OR idle_expires_at <= $1)",
                )
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                let refresh_families = sqlx::query(
                    "DELETE FROM refresh_families WHERE expires_at <= $1 OR idle_expires_at <= $1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
                let revoked_jtis =
                    sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?
                        .rows_affected();
                let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                let counters = sqlx::query("DELETE FROM counters WHERE window_end <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                // A rotated token past its grace window no longer leads to its successor.
                let refresh_graces = sqlx::query(
                    "UPDATE refresh_tokens SET grace_until = NULL, successor_hash = NULL, \
                     successor_salt = NULL WHERE grace_until < $1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
                let known_devices = sqlx::query("DELETE FROM known_devices WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                tx.commit().await.map_err(err)?;
                Ok(Cleanup {
                    codes,
                    refresh_families,
                    revoked_jtis,
                    sessions,
                    counters,
                    refresh_graces,
                    known_devices,
                })
            }
        });
    };
}

pub(crate) use impl_sql_store;

/// The end of the chain: `impl Store` with every method the concerns gathered. `#[async_trait]`
/// must see all the methods of the impl at once, which is why each concern passes them on
/// instead of expanding its own.
macro_rules! sql_store_impl {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $store {
            $($methods)*
        }
    };
}

pub(crate) use sql_store_impl;
