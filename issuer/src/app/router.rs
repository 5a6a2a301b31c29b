//! The router: one line per URL, each naming its file in `crate::endpoints`; the CORS layers
//! of the two groups of cross-origin endpoints, and the per-request span and metrics.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::endpoints::{
    account, authorize, consent, discovery, federation, introspect, login, ops, register, revoke,
    token, userinfo,
};
use crate::http::{cors, pages};
use crate::metrics::RouteLabels;
use crate::state::Shared;

/// The router with every endpoint.
// One line per URL, kept so by hand: rustfmt would fold the longer lines.
#[rustfmt::skip]
pub fn router(issuer: Shared) -> Router {
    // Public documents: readable from any origin.
    let public = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/.well-known/oauth-authorization-server", get(discovery::oauth_metadata))
        .route("/jwks", get(discovery::jwks))
        .layer(middleware::from_fn(cors::public));
    // Endpoints browser-based clients call: from their own origins only.
    let mut cross_origin = Router::new()
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/revoke", post(revoke::revoke));
    // Without DCR, `/register` is an unknown path like any other (no CORS answer either).
    if issuer.dcr().is_some() {
        cross_origin = cross_origin.route("/register", post(register::register));
    }
    let cross_origin =
        cross_origin.layer(middleware::from_fn_with_state(issuer.clone(), cors::clients));
    Router::new()
        .merge(public)
        .merge(cross_origin)
        .route("/authorize", get(authorize::authorize).post(authorize::authorize))
        .route("/login", post(login::login))
        .route("/consent", post(consent::consent))
        .route("/upstream/start", get(federation::start))
        .route("/upstream/start/{provider}", get(federation::start_with))
        .route("/upstream/callback", get(federation::callback))
        .route("/introspect", post(introspect::introspect))
        .route("/end_session", get(account::end_session).post(account::end_session))
        .route("/logout", post(account::logout))
        .route("/account", get(account::account))
        .route("/account/revoke", post(account::revoke_grant))
        .route("/assets/keyway.css", get(pages::stylesheet))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(middleware::from_fn_with_state(issuer.clone(), observe))
        .with_state(issuer)
}

/// Per-request span (named by route, never carrying query strings), metrics, and a catch-all
/// that turns a panic-free but unexpected 500 into a logged event. Each answer waits one turn
/// of the scheduler before it is written, so that answers ready together go out together.
async fn observe(State(iss): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = req.method().clone();
    let start = Instant::now();
    // Debug level: free when not logged, so the token hot path pays nothing for it.
    let span = tracing::debug_span!("request", %method, route = %route);
    let res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    // Let the other requests that are ready now be worked on before this answer is written,
    // so that under load the answers go out back to back: a client (or ingress) sleeping on
    // another core is then woken once per batch instead of once per answer (each such
    // wake-up costs this server CPU time; bench/issuer/README.md measures it); with nothing
    // else ready this only adds one turn of the scheduler.
    tokio::task::yield_now().await;
    let status = res.status().as_u16();
    let labels = RouteLabels { route, status };
    iss.metrics().requests.get_or_create(&labels).inc();
    iss.metrics()
        .latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    span.in_scope(|| tracing::debug!(status, "done"));
    res
}
