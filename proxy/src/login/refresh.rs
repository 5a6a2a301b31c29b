//! Refreshing a session's tokens once, however many requests need it at the same time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::OnceCell;

use crate::app::App;
use crate::clock::now;
use crate::metrics::Metrics;
use crate::session::Session;
use oidc::Provider;
use oidc::jwt::{self, IdTokenCheck, Principal};

use super::{Context, DEFAULT_TOKEN_TTL, REFRESH_REUSE};

type Slot = Arc<OnceCell<Option<Arc<Session>>>>;

/// Makes sure a session's tokens are refreshed once, however many requests need it at the same
/// time; requests still carrying the old cookie shortly after reuse the result.
#[derive(Default)]
pub(crate) struct Refresher {
    inflight: Mutex<HashMap<String, (Instant, Slot)>>,
}

impl Refresher {
    /// Drops a signed-out session's refresh result, so that a copy of its cookie does not reuse it.
    pub(crate) fn forget(&self, sid: &str) {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(sid);
    }

    /// The refreshed session, or `None` when the session cannot be refreshed (sign in again).
    pub(crate) async fn refresh(
        &self,
        ctx: Context<'_>,
        app: &App,
        provider: &Provider,
        session: &Session,
    ) -> Option<Arc<Session>> {
        session.rt.as_ref()?;
        let slot = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, (t, _)| t.elapsed() < REFRESH_REUSE);
            map.entry(session.sid.clone())
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        slot.get_or_init(|| async {
            let r = do_refresh(ctx, app, provider, session).await;
            Metrics::result(&ctx.metrics.session_refreshes, r.is_some());
            r.map(Arc::new)
        })
        .await
        .clone()
    }
}

async fn do_refresh(
    ctx: Context<'_>,
    app: &App,
    provider: &Provider,
    session: &Session,
) -> Option<Session> {
    let cfg = &app.cfg;
    let rt = session.rt.as_deref()?;
    let tokens = ctx
        .issuer
        .token(
            &provider.metadata,
            &cfg.client_id,
            cfg.client_secret.as_deref(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("resource", &cfg.resource),
            ],
        )
        .await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e, "session refresh failed");
            return None;
        }
    };
    let mut who = session.who.clone();
    if let Some(id_token) = tokens.id_token.as_deref() {
        let keys = provider.keys();
        let check = IdTokenCheck {
            issuer: &provider.metadata.issuer,
            client_id: &cfg.client_id,
            nonce: None,
            leeway: ctx.settings.clock_skew,
        };
        match jwt::validate_id_token(id_token, &keys, &check) {
            Ok(fresh) if fresh.sub == session.who.sub => {
                who = Principal {
                    scopes: who.scopes,
                    ..fresh
                };
            }
            Ok(_) => {
                tracing::warn!("refreshed ID token names another subject");
                return None;
            }
            Err(e) => {
                tracing::warn!(reason = %e, "refreshed ID token refused");
                return None;
            }
        }
    }
    if let Some(scope) = tokens.scope.as_deref() {
        who.scopes = scope.split_ascii_whitespace().map(str::to_string).collect();
    }
    let t = now();
    Some(Session {
        sid: session.sid.clone(),
        who,
        at: ctx
            .settings
            .pass_access_token
            .then(|| tokens.access_token.clone()),
        rt: tokens.refresh_token.or_else(|| session.rt.clone()),
        exp: (t + tokens.expires_in.unwrap_or(DEFAULT_TOKEN_TTL)).min(session.end),
        end: session.end,
    })
}
