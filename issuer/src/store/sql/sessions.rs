//! Sign-in sessions, keyed by the hash of their cookie. [`sql_sessions!`] adds these `Store`
//! methods of the SQL store (and defines their row readers) in the backend module; see
//! `impl_sql_store!` in `store/sql/mod.rs`.

/// Defines this concern's row readers in the backend module and passes the `Store` methods
/// gathered so far, with its own added, on to the next concern.
macro_rules! sql_sessions {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
        fn session_from_row(row: &$row) -> StoreResult<Session> {
            Ok(Session {
                id: row.try_get("id").map_err(err)?,
                subject: row.try_get("subject").map_err(err)?,
                claims: claims_col(row)?,
                source: row.try_get("source").map_err(err)?,
                auth_time: row.try_get("auth_time").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
                last_seen: row.try_get("last_seen").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
            })
        }

        $crate::store::sql::clients::sql_clients!($store, $row; {
            $($methods)*
            async fn put_session(&self, hash: &SecretHash, session: &Session) -> StoreResult<()> {
                let sql = format!(
                    "INSERT INTO sessions (cookie_hash, {SESSION_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                );
                sqlx::query(&sql)
                    .bind(&hash.0[..])
                    .bind(&session.id)
                    .bind(&session.subject)
                    .bind(claims_to_json(&session.claims)?)
                    .bind(&session.source)
                    .bind(session.auth_time)
                    .bind(session.created_at)
                    .bind(session.last_seen)
                    .bind(session.expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn get_session(
                &self,
                hash: &SecretHash,
                now: i64,
            ) -> StoreResult<Option<Session>> {
                let sql = format!(
                    "SELECT {SESSION_COLS} FROM sessions WHERE cookie_hash = $1 AND expires_at > $2"
                );
                sqlx::query(&sql)
                    .bind(&hash.0[..])
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?
                    .map(|row| session_from_row(&row))
                    .transpose()
            }

            async fn touch_session(
                &self,
                hash: &SecretHash,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sessions SET last_seen = $1, expires_at = $2 \
                     WHERE cookie_hash = $3 AND expires_at > $1",
                )
                .bind(now)
                .bind(expires_at)
                .bind(&hash.0[..])
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_session(&self, hash: &SecretHash) -> StoreResult<Option<Session>> {
                let sql =
                    format!("DELETE FROM sessions WHERE cookie_hash = $1 RETURNING {SESSION_COLS}");
                sqlx::query(&sql)
                    .bind(&hash.0[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?
                    .map(|row| session_from_row(&row))
                    .transpose()
            }
        });
    };
}

pub(crate) use sql_sessions;
