//! Consents (remembered grants) per subject, client and resource. [`sql_consents!`] adds these
//! `Store` methods of the SQL store (and defines their row readers) in the backend module; see
//! `impl_sql_store!` in `store/sql/mod.rs`.

/// Defines this concern's row readers in the backend module and passes the `Store` methods
/// gathered so far, with its own added, on to the next concern.
macro_rules! sql_consents {
    ($store:ty, $row:ty; { $($methods:tt)* }) => {
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

        $crate::store::sql::sessions::sql_sessions!($store, $row; {
            $($methods)*
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
        });
    };
}

pub(crate) use sql_consents;
