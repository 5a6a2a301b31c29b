//! Refresh token families, their rotation within the grace window, and revoked access tokens.
//! [`sql_refresh!`] adds these `Store` methods of the SQL store (and defines their row readers) in
//! the backend module; see `impl_sql_store!` in `store/sql/mod.rs`.

/// Defines this concern's row readers in the backend module and passes the `Store` methods
/// gathered so far, with its own added, on to the next concern.
macro_rules! sql_refresh {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
        fn family_from_row(row: &$row) -> StoreResult<RefreshFamily> {
            Ok(RefreshFamily {
                id: row.try_get("id").map_err(err)?,
                client_id: row.try_get("client_id").map_err(err)?,
                subject: row.try_get("subject").map_err(err)?,
                scopes: list_col(row, "scopes")?,
                resources: list_col(row, "resources")?,
                claims: claims_col(row)?,
                auth_time: row.try_get("auth_time").map_err(err)?,
                session_id: row.try_get("session_id").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
                idle_expires_at: row.try_get("idle_expires_at").map_err(err)?,
                revoked: row.try_get("revoked").map_err(err)?,
            })
        }

        fn token_from_row(row: &$row) -> StoreResult<RefreshToken> {
            Ok(RefreshToken {
                family_id: row.try_get("family_id").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
                rotated_at: row.try_get("rotated_at").map_err(err)?,
            })
        }

        /// The next link of a rotated token's chain, `(salt, successor hash)`, while its grace
        /// window lasts at `now`.
        fn grace_link(row: &$row, now: i64) -> StoreResult<Option<([u8; 32], SecretHash)>> {
            let until: Option<i64> = row.try_get("grace_until").map_err(err)?;
            let hash: Option<Vec<u8>> = row.try_get("successor_hash").map_err(err)?;
            let salt: Option<Vec<u8>> = row.try_get("successor_salt").map_err(err)?;
            match (until, hash, salt) {
                (Some(until), Some(hash), Some(salt)) if now <= until => {
                    let salt = <[u8; 32]>::try_from(salt.as_slice()).map_err(|_| {
                        StoreError::Corrupt(format!("successor salt of {} bytes", salt.len()))
                    })?;
                    Ok(Some((salt, SecretHash::from_slice(&hash)?)))
                }
                _ => Ok(None),
            }
        }

        /// A token rotated before, within its grace window: follows the chain of successors
        /// (each link within its own window) to the current token; `(salts, current)`, or
        /// `None` if the chain cannot be followed (then the presentation is reuse).
        async fn follow_grace_chain(
            tx: &mut Tx,
            token: &$row,
            family_id: &str,
            now: i64,
        ) -> StoreResult<Option<(Vec<[u8; 32]>, SecretHash)>> {
            let mut salts = Vec::new();
            let mut link = grace_link(token, now)?;
            while let Some((salt, next)) = link.take() {
                if salts.len() == MAX_GRACE_CHAIN {
                    break;
                }
                salts.push(salt);
                let sql = format!(
                    "SELECT {LINK_COLS} FROM refresh_tokens \
                     WHERE token_hash = $1 AND family_id = $2"
                );
                let Some(row) = sqlx::query(&sql)
                    .bind(&next.0[..])
                    .bind(family_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(err)?
                else {
                    break;
                };
                if row.try_get::<Option<i64>, _>("rotated_at").map_err(err)?.is_none() {
                    return Ok(Some((salts, next)));
                }
                link = grace_link(&row, now)?;
            }
            Ok(None)
        }

        /// Rotates the current token `old`: marks it rotated, keeping the link to its successor
        /// for the grace window (`grace_secs`, 0 for none), and inserts the successor.
        async fn rotate_current(
            tx: &mut Tx,
            old: &SecretHash,
            new: &Successor,
            family_id: &str,
            now: i64,
            grace_secs: i64,
        ) -> StoreResult<()> {
            let grace_until = (grace_secs > 0).then(|| now.saturating_add(grace_secs));
            sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = $1, grace_until = $2, \
                 successor_hash = $3, successor_salt = $4 \
                 WHERE token_hash = $5 AND rotated_at IS NULL",
            )
            .bind(now)
            .bind(grace_until)
            .bind(grace_until.map(|_| &new.hash.0[..]))
            .bind(grace_until.map(|_| &new.salt[..]))
            .bind(&old.0[..])
            .execute(&mut **tx)
            .await
            .map_err(err)?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, created_at, rotated_at) \
                 VALUES ($1, $2, $3, NULL)",
            )
            .bind(&new.hash.0[..])
            .bind(family_id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
            Ok(())
        }

        $crate::store::sql::consents::sql_consents!($store, $row; {
            $($methods)*
            async fn create_refresh_family(
                &self,
                family: &RefreshFamily,
                first_token: &SecretHash,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let sql = format!(
                    "INSERT INTO refresh_families ({FAMILY_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                );
                sqlx::query(&sql)
                    .bind(&family.id)
                    .bind(&family.client_id)
                    .bind(&family.subject)
                    .bind(join_list(&family.scopes))
                    .bind(join_list(&family.resources))
                    .bind(claims_to_json(&family.claims)?)
                    .bind(family.auth_time)
                    .bind(&family.session_id)
                    .bind(family.created_at)
                    .bind(family.expires_at)
                    .bind(family.idle_expires_at)
                    .bind(family.revoked)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, rotated_at) \
                     VALUES ($1, $2, $3, NULL)",
                )
                .bind(&first_token.0[..])
                .bind(&family.id)
                .bind(family.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(())
            }

            async fn get_refresh(&self, hash: &SecretHash) -> StoreResult<Option<RefreshLookup>> {
                let Some(row) = sqlx::query(
                    "SELECT family_id, created_at, rotated_at FROM refresh_tokens \
                     WHERE token_hash = $1",
                )
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?
                else {
                    return Ok(None);
                };
                let token = token_from_row(&row)?;
                // Families are deleted with their tokens (ON DELETE CASCADE); a token whose
                // family vanished between the two reads is as good as unknown.
                Ok(self
                    .get_refresh_family(&token.family_id)
                    .await?
                    .map(|family| RefreshLookup { token, family }))
            }

            async fn get_refresh_family(&self, id: &str) -> StoreResult<Option<RefreshFamily>> {
                let sql = format!("SELECT {FAMILY_COLS} FROM refresh_families WHERE id = $1");
                sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?
                    .map(|row| family_from_row(&row))
                    .transpose()
            }

            async fn rotate_refresh(
                &self,
                old: &SecretHash,
                new: &Successor,
                now: i64,
                policy: RotationPolicy,
            ) -> StoreResult<Rotation> {
                let mut tx = self.begin_write().await?;
                // The family id of a token never changes, so it can be read before locking.
                let family_id: Option<String> =
                    sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                        .bind(&old.0[..])
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                let Some(family_id) = family_id else {
                    return Err(StoreError::NotFound);
                };
                // Lock the family: rotations of one family are serialised from here on.
                let sql = format!(
                    "SELECT {FAMILY_COLS} FROM refresh_families WHERE id = $1{}",
                    Self::FOR_UPDATE
                );
                let Some(row) = sqlx::query(&sql)
                    .bind(&family_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?
                else {
                    return Err(StoreError::NotFound);
                };
                let mut family = family_from_row(&row)?;
                if !family.is_active(now) {
                    return Ok(Rotation::Inactive(family));
                }
                // Read the token only now, under the lock (a fresh statement snapshot).
                let sql = format!("SELECT {LINK_COLS} FROM refresh_tokens WHERE token_hash = $1");
                let Some(token) = sqlx::query(&sql)
                    .bind(&old.0[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?
                else {
                    return Err(StoreError::NotFound);
                };
                let rotated_at: Option<i64> = token.try_get("rotated_at").map_err(err)?;
                let again = if rotated_at.is_some() {
                    // Rotated before: follow the chain within its grace window, or this is reuse.
                    let Some(again) = follow_grace_chain(&mut tx, &token, &family.id, now).await?
                    else {
                        sqlx::query("UPDATE refresh_families SET revoked = TRUE WHERE id = $1")
                            .bind(&family.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                        tx.commit().await.map_err(err)?;
                        family.revoked = true;
                        return Ok(Rotation::Reused(family));
                    };
                    Some(again)
                } else {
                    rotate_current(&mut tx, old, new, &family.id, now, policy.grace_secs).await?;
                    None
                };
                family.idle_expires_at = now.saturating_add(policy.idle_secs).min(family.expires_at);
                sqlx::query("UPDATE refresh_families SET idle_expires_at = $1 WHERE id = $2")
                    .bind(family.idle_expires_at)
                    .bind(&family.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(match again {
                    None => Rotation::Rotated { family },
                    Some((salts, current)) => Rotation::Again {
                        family,
                        salts,
                        current,
                    },
                })
            }

            async fn revoke_refresh_family(&self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE refresh_families SET revoked = TRUE WHERE id = $1 AND revoked = FALSE",
                )
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_refresh_for(&self, subject: &str, client_id: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE refresh_families SET revoked = TRUE \
                     WHERE subject = $1 AND client_id = $2 AND revoked = FALSE",
                )
                .bind(subject)
                .bind(client_id)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(done.rows_affected())
            }

            async fn revoke_access(&self, jti: &str, exp: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(exp)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn is_access_revoked(&self, jti: &str) -> StoreResult<bool> {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT expires_at FROM revoked_access_tokens WHERE jti = $1")
                        .bind(jti)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                Ok(found.is_some())
            }
        });
    };
}

pub(crate) use sql_refresh;
