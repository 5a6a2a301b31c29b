//! Composition: the router (one line per URL), [`serve`], and the background work.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::RouteLabels;
use crate::state::{Issuer, Shared};
use crate::store::Store;

pub mod watch;

/// The router with every endpoint.
pub fn router(issuer: Shared) -> Router {
    // Public documents: readable from any origin.
    let public = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(crate::endpoints::discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(crate::endpoints::discovery::oauth_metadata),
        )
        .route("/jwks", get(crate::endpoints::discovery::jwks))
        .layer(middleware::from_fn(crate::http::cors::public));
    // Endpoints browser-based clients call: from their own origins only.
    let mut cross_origin = Router::new()
        .route("/token", post(crate::endpoints::token::token))
        .route(
            "/userinfo",
            get(crate::endpoints::userinfo::userinfo).post(crate::endpoints::userinfo::userinfo),
        )
        .route("/revoke", post(crate::endpoints::revoke::revoke));
    // Without DCR, `/register` is an unknown path like any other (no CORS answer either).
    if issuer.dcr.is_some() {
        cross_origin = cross_origin.route("/register", post(crate::endpoints::register::register));
    }
    let cross_origin = cross_origin.layer(middleware::from_fn_with_state(
        issuer.clone(),
        crate::http::cors::clients,
    ));
    Router::new()
        .merge(public)
        .merge(cross_origin)
        .route(
            "/authorize",
            get(crate::endpoints::authorize::authorize)
                .post(crate::endpoints::authorize::authorize),
        )
        .route("/login", post(crate::endpoints::login::login))
        .route("/consent", post(crate::endpoints::consent::consent))
        .route("/upstream/start", get(crate::endpoints::federation::start))
        .route(
            "/upstream/start/{provider}",
            get(crate::endpoints::federation::start_with),
        )
        .route(
            "/upstream/callback",
            get(crate::endpoints::federation::callback),
        )
        .route(
            "/introspect",
            post(crate::endpoints::introspect::introspect),
        )
        .route(
            "/end_session",
            get(crate::endpoints::account::end_session)
                .post(crate::endpoints::account::end_session),
        )
        .route("/logout", post(crate::endpoints::account::logout))
        .route("/account", get(crate::endpoints::account::account))
        .route(
            "/account/revoke",
            post(crate::endpoints::account::revoke_grant),
        )
        .route("/assets/keyway.css", get(crate::http::pages::stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(issuer.clone(), observe))
        .with_state(issuer)
}

async fn not_found() -> Error {
    Error::page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

async fn readyz(State(iss): State<Shared>) -> Response {
    if !iss.clients.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "clients not loaded yet").into_response();
    }
    if iss.keys.ring().signing.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no signing key yet").into_response();
    }
    if !iss.upstreams.is_empty() && iss.cookie_key.get().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no federation cookie key yet",
        )
            .into_response();
    }
    match iss.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store ping failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

async fn metrics(State(iss): State<Shared>) -> Response {
    let mut res = iss.metrics.encode().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
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
    iss.metrics.requests.get_or_create(&labels).inc();
    iss.metrics
        .latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    span.in_scope(|| tracing::debug!(status, "done"));
    res
}

/// Runs the issuer on `listener` until `shutdown` completes: serves the router and runs
/// background work (key rotation, client manifest reload, expired-row cleanup). This is what
/// `keyway-issuer` runs and what `keyway demo` embeds.
pub async fn serve(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let issuer = Issuer::new(&config, store).map_err(|p| anyhow::anyhow!(p.join("\n")))?;
    let issuer: Shared = Arc::new(issuer);
    let background = tokio::spawn(background(issuer.clone()));
    let watch = match &config.watch {
        Some(namespace) => {
            let client = kube::Client::try_default().await?;
            Some(tokio::spawn(watch::run(
                issuer.clone(),
                client,
                namespace.clone(),
            )))
        }
        None => None,
    };
    // The peer address reaches handlers as `ConnectInfo` (the sign-in throttle counts by it).
    let app = router(issuer).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    if let Some(w) = watch {
        w.abort();
    }
    res.map_err(Into::into)
}

async fn background(iss: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        match iss.clients.reload() {
            Ok(true) => tracing::info!("reloaded ConnectedApp manifests"),
            Ok(false) => {}
            Err(problems) => {
                for p in problems {
                    tracing::warn!(problem = %p, "ConnectedApp manifests not reloaded");
                }
            }
        }
        // Read-only keys are re-read every tick (a mounted Secret changes under us); local
        // keys rotate on a slower schedule.
        if iss.keys.is_read_only() || n.is_multiple_of(12) {
            let iss2 = iss.clone();
            let now = iss.clock.now_u64();
            let rotated = tokio::task::spawn_blocking(move || iss2.keys.rotate(now)).await;
            if let Ok(Err(e)) = rotated {
                iss.metrics.key_reload_failures.inc();
                tracing::error!(error = %e, "signing keys not updated; the last good set stays in force");
            }
        }
        if iss.keys.is_read_only() && iss.load_cookie_key() {
            tracing::info!("cookie.key loaded: federated sign-in is available");
        }
        if n.is_multiple_of(12) {
            match iss.store.cleanup_expired(iss.clock.now()).await {
                Ok(c) => tracing::debug!(?c, "cleaned up expired rows"),
                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
            }
            if let Some(dcr) = &iss.dcr {
                match iss
                    .store
                    .expire_clients(dcr.used_since(iss.clock.now()))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(clients = n, "deleted unused registered clients"),
                    Err(e) => tracing::warn!(error = %e, "expiring registered clients failed"),
                }
            }
        }
    }
}
