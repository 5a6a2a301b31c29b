//! Dynamically registered clients: registration, lookup, use and expiry. [`sql_clients!`] adds
//! these `Store` methods of the SQL store (and defines their row readers) in the backend module;
//! see `impl_sql_store!` in `store/sql/mod.rs`.

/// Defines this concern's row readers in the backend module and passes the `Store` methods
/// gathered so far, with its own added, on to the next concern.
macro_rules! sql_clients {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
        fn client_from_row(row: &$row) -> StoreResult<RegisteredClient> {
            Ok(RegisteredClient {
                client_id: row.try_get("client_id").map_err(err)?,
                metadata: json_from_text(&row.try_get::<String, _>("metadata").map_err(err)?)?,
                created_at: row.try_get("created_at").map_err(err)?,
                last_used: row.try_get("last_used").map_err(err)?,
            })
        }

        $crate::store::sql::throttle::sql_throttle!($store, $row; {
            $($methods)*
            async fn put_client(&self, client: &RegisteredClient) -> StoreResult<()> {
                let metadata = serde_json::to_string(&client.metadata)
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO registered_clients (client_id, metadata, created_at, last_used) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&client.client_id)
                .bind(metadata)
                .bind(client.created_at)
                .bind(client.last_used)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                for origin in $crate::store::client_origins(&client.metadata) {
                    sqlx::query(
                        "INSERT INTO registered_client_origins (origin, client_id) VALUES ($1, $2)",
                    )
                    .bind(origin)
                    .bind(&client.client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn get_client(&self, client_id: &str) -> StoreResult<Option<RegisteredClient>> {
                sqlx::query(
                    "SELECT client_id, metadata, created_at, last_used FROM registered_clients \
                     WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?
                .map(|row| client_from_row(&row))
                .transpose()
            }

            async fn list_clients(&self) -> StoreResult<Vec<RegisteredClient>> {
                sqlx::query(
                    "SELECT client_id, metadata, created_at, last_used FROM registered_clients \
                     ORDER BY created_at, client_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(client_from_row)
                .collect()
            }

            async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                // Explicitly too, so the result does not depend on SQLite's foreign_keys pragma.
                sqlx::query("DELETE FROM registered_client_origins WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                let done = sqlx::query("DELETE FROM registered_clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_client(&self, client_id: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE registered_clients SET last_used = $1 \
                     WHERE client_id = $2 AND last_used < $3",
                )
                .bind(now)
                .bind(client_id)
                .bind(now.saturating_sub(CLIENT_TOUCH_SECS))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn has_client_origin(&self, origin: &str, used_since: i64) -> StoreResult<bool> {
                let found = sqlx::query(
                    "SELECT 1 FROM registered_client_origins o \
                     JOIN registered_clients c ON c.client_id = o.client_id \
                     WHERE o.origin = $1 AND c.last_used >= $2 LIMIT 1",
                )
                .bind(origin)
                .bind(used_since)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                Ok(found.is_some())
            }

            async fn expire_clients(&self, used_since: i64) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                const STALE: &str =
                    "SELECT client_id FROM registered_clients WHERE last_used < $1";
                for sql in [
                    format!("DELETE FROM registered_client_origins WHERE client_id IN ({STALE})"),
                    format!("DELETE FROM consents WHERE client_id IN ({STALE})"),
                    format!(
                        "UPDATE refresh_families SET revoked = TRUE \
                         WHERE revoked = FALSE AND client_id IN ({STALE})"
                    ),
                ] {
                    sqlx::query(&sql)
                        .bind(used_since)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                let done = sqlx::query("DELETE FROM registered_clients WHERE last_used < $1")
                    .bind(used_since)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(done.rows_affected())
            }
        });
    };
}

pub(crate) use sql_clients;
