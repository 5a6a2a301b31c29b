//! The sign-in throttle's event counters and known devices. [`sql_throttle!`] adds these `Store`
//! methods of the SQL store in the backend module; see `impl_sql_store!` in `store/sql/mod.rs`.

/// Passes the `Store` methods gathered so far, with this concern's added, on to the end of the
/// chain.
macro_rules! sql_throttle {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
        $crate::store::sql::sql_store_impl!($store, $row; {
            $($methods)*
            async fn count_event(
                &self,
                key: &SecretHash,
                now: i64,
                window_end: i64,
            ) -> StoreResult<u64> {
                // One statement: the database serialises concurrent increments of one row
                // (SET expressions read the row as it was before this update).
                let events: i64 = sqlx::query_scalar(
                    "INSERT INTO counters (key_hash, events, window_end) VALUES ($1, 1, $2) \
                     ON CONFLICT (key_hash) DO UPDATE SET \
                     events = CASE WHEN counters.window_end <= $3 THEN 1 \
                     ELSE counters.events + 1 END, \
                     window_end = CASE WHEN counters.window_end <= $3 THEN excluded.window_end \
                     ELSE counters.window_end END \
                     RETURNING events",
                )
                .bind(&key.0[..])
                .bind(window_end)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
                Ok(u64::try_from(events).unwrap_or(0))
            }

            async fn reset_counter(&self, key: &SecretHash) -> StoreResult<()> {
                sqlx::query("DELETE FROM counters WHERE key_hash = $1")
                    .bind(&key.0[..])
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn uncount_event(&self, key: &SecretHash) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE counters SET events = events - 1 WHERE key_hash = $1 AND events > 0",
                )
                .bind(&key.0[..])
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn remember_device(&self, key: &SecretHash, expires_at: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO known_devices (key_hash, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at",
                )
                .bind(&key.0[..])
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn is_known_device(&self, key: &SecretHash, now: i64) -> StoreResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT expires_at FROM known_devices WHERE key_hash = $1 AND expires_at > $2",
                )
                .bind(&key.0[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(found.is_some())
            }
        });
    };
}

pub(crate) use sql_throttle;
