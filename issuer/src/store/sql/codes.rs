//! Authorization codes: storing, peeking, taking (once), and recording what a code issued.
//! [`sql_codes!`] adds these `Store` methods of the SQL store (and defines their row readers) in
//! the backend module; see `impl_sql_store!` in `store/sql/mod.rs`.

/// Defines this concern's row readers in the backend module and passes the `Store` methods
/// gathered so far, with its own added, on to the next concern.
macro_rules! sql_codes {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
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

        $crate::store::sql::refresh::sql_refresh!($store, $row; {
            $($methods)*
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
        });
    };
}

pub(crate) use sql_codes;
