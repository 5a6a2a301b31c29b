//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both schemas have the same tables and columns, and every statement below is valid in both
//! dialects (`$N` placeholders, which sqlx's SQLite driver binds by number too; `TRUE`/`FALSE`
//! literals; `RETURNING`; `ON CONFLICT`). What differs is supplied by each backend
//! module: how a write transaction begins (SQLite `BEGIN IMMEDIATE` takes the write lock up front;
//! PostgreSQL locks rows with `FOR UPDATE`), and how driver errors are classified.
//!
//! [`impl_sql_store!`] expands to `impl Store for $store` in the backend module, so the compiler
//! checks each expansion against its own driver's types (no generic bounds over sqlx).

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

        fn code_from_row(row: &$row) -> StoreResult<AuthCode> {
            Ok(AuthCode {
                client_id: row.try_get("client_id").map_err(err)?,
                redirect_uri: row.try_get("redirect_uri").map_err(err)?,
                subject: row.try_get("subject").map_err(err)?,
                scopes: list_col(row, "scopes")?,
                resources: list_col(row, "resources")?,
                nonce: row.try_get("nonce").map_err(err)?,
                code_challenge: row.try_get("code_challenge").map_err(err)?,
                auth_time: row.try_get("auth_time").map_err(err)?,
                session_id: row.try_get("session_id").map_err(err)?,
                claims: claims_col(row)?,
                created_at: row.try_get("created_at").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
            })
        }

        fn issued_from_row(row: &$row) -> StoreResult<CodeIssued> {
            Ok(CodeIssued {
                refresh_family_id: row.try_get("issued_family_id").map_err(err)?,
                access_jti: row.try_get("issued_access_jti").map_err(err)?,
                access_exp: row.try_get("issued_access_exp").map_err(err)?,
            })
        }

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

        fn consent_from_row(row: &$row) -> StoreResult<Consent> {
            let resource: String = row.try_get("resource").map_err(err)?;
            Ok(Consent {
                subject: row.try_get("subject").map_err(err)?,
                client_id: row.try_get("client_id").map_err(err)?,
                resource: (!resource.is_empty()).then_some(resource),
                scopes: list_col(row, "scopes")?,
                granted_at: row.try_get("granted_at").map_err(err)?,
            })
        }

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

        fn client_from_row(row: &$row) -> StoreResult<RegisteredClient> {
            Ok(RegisteredClient {
                client_id: row.try_get("client_id").map_err(err)?,
                metadata: json_from_text(&row.try_get::<String, _>("metadata").map_err(err)?)?,
                created_at: row.try_get("created_at").map_err(err)?,
                last_used: row.try_get("last_used").map_err(err)?,
            })
        }

        #[async_trait::async_trait]
        impl Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn put_code(&self, hash: &SecretHash, code: &AuthCode) -> StoreResult<()> {
                let sql = format!(
                    "INSERT INTO auth_codes (code_hash, {CODE_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, NULL)"
                );
                sqlx::query(&sql)
                    .bind(&hash.0[..])
                    .bind(&code.client_id)
                    .bind(&code.redirect_uri)
                    .bind(&code.subject)
                    .bind(join_list(&code.scopes))
                    .bind(join_list(&code.resources))
                    .bind(&code.nonce)
                    .bind(&code.code_challenge)
                    .bind(code.auth_time)
                    .bind(&code.session_id)
                    .bind(claims_to_json(&code.claims)?)
                    .bind(code.created_at)
                    .bind(code.expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }

            async fn peek_code(
                &self,
                hash: &SecretHash,
                now: i64,
            ) -> StoreResult<Option<AuthCode>> {
                let sql = format!(
                    "SELECT {CODE_COLS} FROM auth_codes \
                     WHERE code_hash = $1 AND (used_at IS NOT NULL OR expires_at > $2)"
                );
                sqlx::query(&sql)
                    .bind(&hash.0[..])
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?
                    .map(|row| code_from_row(&row))
                    .transpose()
            }

            async fn take_code(&self, hash: &SecretHash, now: i64) -> StoreResult<TakenCode> {
                // The conditional update decides: of concurrent callers, only one sees the row
                // with `used_at IS NULL`.
                let sql = format!(
                    "UPDATE auth_codes SET used_at = $1 \
                     WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
                     RETURNING {CODE_COLS}"
                );
                let fresh = sqlx::query(&sql)
                    .bind(now)
                    .bind(&hash.0[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                if let Some(row) = fresh {
                    return Ok(TakenCode::Fresh(code_from_row(&row)?));
                }
                // Not fresh: used before (a replay, whatever its age while the row exists), or
                // unknown, or unused and expired.
                let sql = format!(
                    "UPDATE auth_codes SET replayed_at = COALESCE(replayed_at, $1) \
                     WHERE code_hash = $2 AND used_at IS NOT NULL \
                     RETURNING {CODE_COLS}"
                );
                let replayed = sqlx::query(&sql)
                    .bind(now)
                    .bind(&hash.0[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                match replayed {
                    Some(row) => Ok(TakenCode::Replayed {
                        code: code_from_row(&row)?,
                        issued: issued_from_row(&row)?,
                    }),
                    None => Err(StoreError::NotFound),
                }
            }

            async fn mark_code_issued(
                &self,
                hash: &SecretHash,
                issued: &CodeIssued,
            ) -> StoreResult<bool> {
                // One statement, so it is ordered against the replay's update of the same row:
                // either the replay sees what was issued, or this sees the replay.
                let row = sqlx::query(
                    "UPDATE auth_codes SET issued_family_id = $1, issued_access_jti = $2, \
                     issued_access_exp = $3 WHERE code_hash = $4 AND used_at IS NOT NULL \
                     RETURNING replayed_at",
                )
                .bind(&issued.refresh_family_id)
                .bind(&issued.access_jti)
                .bind(issued.access_exp)
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                match row {
                    None => Err(StoreError::NotFound),
                    Some(row) => {
                        let replayed: Option<i64> = row.try_get("replayed_at").map_err(err)?;
                        Ok(replayed.is_none())
                    }
                }
            }

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
                    // Rotated before. Within its grace window, follow the chain of successors
                    // (each link within its own window) to the current token; otherwise, or if
                    // the chain cannot be followed, this is reuse.
                    let mut salts = Vec::new();
                    let mut link = grace_link(&token, now)?;
                    let mut current = None;
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
                            .bind(&family.id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?
                        else {
                            break;
                        };
                        if row.try_get::<Option<i64>, _>("rotated_at").map_err(err)?.is_none() {
                            current = Some(next);
                            break;
                        }
                        link = grace_link(&row, now)?;
                    }
                    let Some(current) = current else {
                        sqlx::query("UPDATE refresh_families SET revoked = TRUE WHERE id = $1")
                            .bind(&family.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                        tx.commit().await.map_err(err)?;
                        family.revoked = true;
                        return Ok(Rotation::Reused(family));
                    };
                    Some((salts, current))
                } else {
                    // Current: rotate it, keeping the link to its successor for the grace window.
                    let grace_until =
                        (policy.grace_secs > 0).then(|| now.saturating_add(policy.grace_secs));
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
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, rotated_at) \
                         VALUES ($1, $2, $3, NULL)",
                    )
                    .bind(&new.hash.0[..])
                    .bind(&family.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
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

            async fn put_consent(&self, consent: &Consent) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO consents (subject, client_id, resource, scopes, granted_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject, client_id, resource) \
                     DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
                )
                .bind(&consent.subject)
                .bind(&consent.client_id)
                .bind(consent.resource.as_deref().unwrap_or(""))
                .bind(join_list(&consent.scopes))
                .bind(consent.granted_at)
                .execute(&self.pool)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn get_consent(
                &self,
                subject: &str,
                client_id: &str,
                resource: Option<&str>,
            ) -> StoreResult<Option<Consent>> {
                sqlx::query(
                    "SELECT subject, client_id, resource, scopes, granted_at FROM consents \
                     WHERE subject = $1 AND client_id = $2 AND resource = $3",
                )
                .bind(subject)
                .bind(client_id)
                .bind(resource.unwrap_or(""))
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?
                .map(|row| consent_from_row(&row))
                .transpose()
            }

            async fn list_consents(&self, subject: &str) -> StoreResult<Vec<Consent>> {
                sqlx::query(
                    "SELECT subject, client_id, resource, scopes, granted_at FROM consents \
                     WHERE subject = $1 ORDER BY client_id, resource",
                )
                .bind(subject)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(consent_from_row)
                .collect()
            }

            async fn delete_consent(&self, subject: &str, client_id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM consents WHERE subject = $1 AND client_id = $2")
                    .bind(subject)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                sqlx::query(
                    "UPDATE refresh_families SET revoked = TRUE \
                     WHERE subject = $1 AND client_id = $2 AND revoked = FALSE",
                )
                .bind(subject)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(done.rows_affected() > 0)
            }

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
        }
    };
}

pub(crate) use impl_sql_store;
