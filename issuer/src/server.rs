//! The issuer's shared state, its router, and [`serve`].

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

use crate::clients::{Client, Registry};
use crate::config::{Config, Lifetimes};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Keys;
use crate::metrics::{Metrics, RouteLabels};
use crate::store::Store;
use crate::users::Users;
use crate::util::Clock;

/// Everything a request handler needs.
pub struct Issuer {
    /// Issuer identifier (no trailing slash).
    pub issuer: String,
    /// Default lifetimes.
    pub lifetimes: Lifetimes,
    /// Signing keys.
    pub keys: Keys,
    /// ConnectedApp clients.
    pub clients: Registry,
    /// Resource hosts bound to namespaces, applied to watched ConnectedApps (`crate::watch`).
    pub resource_hosts: api::resource_hosts::ResourceHosts,
    /// Static users.
    pub users: Users,
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Clock.
    pub clock: Clock,
    /// Metrics.
    pub metrics: Metrics,
    /// Cookies get `Secure` and the `__Host-` prefix.
    pub secure_cookies: bool,
    /// Dynamic client registration settings (`None`: disabled).
    pub dcr: Option<crate::dcr::DcrSettings>,
    /// Upstream OpenID providers (federation), in button order.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// The federation cookie's key (loaded when there are upstreams).
    pub cookie_key: crate::upstream::CookieKey,
    /// Cross-origin settings of the client-facing endpoints.
    pub cors: crate::cors::Cors,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    pub trusted_proxies: Vec<crate::client_addr::IpRange>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Shared handle to the issuer.
pub type Shared = Arc<Issuer>;

impl Issuer {
    /// Loads the federation cookie key from the key directory when there are upstreams and it
    /// is not loaded yet (it may arrive after start-up in a mounted Secret); `true` when this
    /// call loaded it.
    pub fn load_cookie_key(&self) -> bool {
        !self.upstreams.is_empty()
            && self.cookie_key.get().is_none()
            && self.cookie_key.load(self.keys.dir(), false).is_ok()
    }

    /// Builds the issuer from configuration and an opened store: loads keys, clients and users.
    /// Every problem is returned at once.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Result<Self, Vec<String>> {
        let clock = Clock::default();
        let mut problems = Vec::new();
        let clients = match &config.clients_dir {
            Some(dir) => Registry::load_dir(dir).unwrap_or_else(|p| {
                problems.extend(p);
                Registry::default()
            }),
            None if config.watch.is_some() => Registry::pending(),
            None => Registry::default(),
        };
        let users = match &config.users_file {
            Some(f) => Users::load(f).unwrap_or_else(|p| {
                problems.extend(p);
                Users::default()
            }),
            None => Users::default(),
        };
        let upstream_ids: Vec<&str> = config.upstreams.iter().map(|u| u.id.as_str()).collect();
        problems.extend(crate::identity::clashes(&clients, &users, &upstream_ids));
        let l = config.lifetimes;
        let max_client_access = clients
            .all()
            .iter()
            .filter_map(|c| c.lifetimes.map(|l| l.access))
            .max()
            .unwrap_or(0);
        // Client lifetimes may change on reload; allow for the longest that ConnectedApp permits.
        let max_ttl = l
            .access
            .max(l.id_token)
            .max(max_client_access)
            .max(24 * 3600);
        let keys = if config.keys_read_only {
            Keys::open_read_only(
                &config.keys_dir,
                config.key_publish_lead.as_secs(),
                clock.now_u64(),
            )
        } else {
            Keys::open(
                &config.keys_dir,
                config.signing_alg,
                config.key_rotation.as_secs(),
                config.key_publish_lead.as_secs(),
                max_ttl,
                clock.now_u64(),
            )
        };
        let keys = match keys {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(format!("--keys-dir: {e}"));
                None
            }
        };
        let cookie_key = crate::upstream::CookieKey::default();
        let mut upstreams = Vec::new();
        if !config.upstreams.is_empty() {
            match cookie_key.load(&config.keys_dir, !config.keys_read_only) {
                Ok(()) => {}
                // The operator adds cookie.key to the Secret it manages with the first signing
                // key; the background task loads it when it appears.
                Err(e) if config.keys_read_only => tracing::warn!(
                    error = %e,
                    "federated sign-in waits for cookie.key in --keys-dir (the operator adds it \
                     to the Secret it manages; a Secret of your own needs an entry cookie.key \
                     with 32 random bytes in base64)"
                ),
                Err(e) => problems.push(format!("--keys-dir: {e}")),
            }
            for u in &config.upstreams {
                match crate::upstream::Upstream::new(u.clone(), cookie_key.clone()) {
                    Ok(up) => upstreams.push(up),
                    Err(e) => problems.push(format!("upstream {:?}: {e}", u.id)),
                }
            }
        }
        let (Some(keys), true) = (keys, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            lifetimes: l,
            keys,
            clients,
            resource_hosts: config.resource_hosts.clone(),
            users,
            store,
            clock,
            metrics: Metrics::default(),
            secure_cookies: config.secure_cookies,
            upstreams,
            cookie_key,
            cors: crate::cors::Cors {
                allowed: config.cors_allowed_origins.clone(),
            },
            trusted_proxies: config.trusted_proxies.clone(),
            dcr: config.dcr.then(|| {
                crate::dcr::DcrSettings::new(
                    config.dcr_scopes.clone(),
                    config.dcr_rate,
                    config.dcr_rate_per_address,
                    config.dcr_idle_expiry,
                )
            }),
        })
    }

    /// A URL on this issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A client by ID: ConnectedApps first, then dynamically registered clients (one unused for
    /// `--dcr-idle-expiry` is gone, even before the sweep deletes its row).
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>> {
        if let Some(c) = self.clients.get(id) {
            return Ok(Some(c));
        }
        let Some(dcr) = &self.dcr else {
            return Ok(None);
        };
        if !id.starts_with(crate::dcr::ID_PREFIX) {
            return Ok(None);
        }
        let row = self.store.get_client(id).await.map_err(store_err)?;
        let used_since = dcr.used_since(self.clock.now());
        Ok(row
            .filter(|r| r.last_used >= used_since)
            .and_then(|r| crate::dcr::client_from_row(&r).map(Arc::new)))
    }

    /// Whether `client` may obtain a signed-in person's access token for `resource` with
    /// `scopes`: `Ok(holder)` with the ConnectedApp holding the resource when it admits the
    /// client (`contract::access::Access::admits_client`) and, for a client other than the
    /// holder, registers every one of the scopes; otherwise the OAuth error to answer
    /// (`invalid_target`, `invalid_scope`). The authorization endpoint decides with it before
    /// any code or consent page, and the token endpoint again for every code and refresh.
    pub fn delegation(
        &self,
        client: &Client,
        resource: &str,
        scopes: &[String],
    ) -> Result<Arc<Client>, (ErrorCode, &'static str)> {
        let Some(holder) = self.resource_owner(resource) else {
            return Err((ErrorCode::InvalidTarget, "unknown resource"));
        };
        if holder.id == client.id {
            return Ok(holder);
        }
        if !holder.access.admits_client(&holder.id, &client.id) {
            return Err((
                ErrorCode::InvalidTarget,
                "the app holding this resource does not admit this client",
            ));
        }
        if scopes.iter().any(|s| !holder.scopes.contains(s)) {
            return Err((
                ErrorCode::InvalidScope,
                "a scope is not one the app holding this resource registers",
            ));
        }
        Ok(holder)
    }

    /// The ConnectedApp client holding `resource` (byte-exact), if any: a token may be issued for
    /// a resource only if one does, and that app's `access` rules gate it. One app at most holds
    /// a resource (`api::resources`; a loser is not a client), so the answer does not depend on
    /// the order of anything.
    pub fn resource_owner(&self, resource: &str) -> Option<Arc<Client>> {
        self.clients.resource_owner(resource)
    }
}

/// Maps a store error to the HTTP error (503 when unavailable).
pub fn store_err(e: crate::store::StoreError) -> Error {
    if e.is_unavailable() {
        Error::unavailable(e)
    } else {
        Error::Internal(format!("store: {e}").into())
    }
}

/// The router with every endpoint.
pub fn router(issuer: Shared) -> Router {
    // Public documents: readable from any origin.
    let public = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(crate::discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(crate::discovery::oauth_metadata),
        )
        .route("/jwks", get(crate::discovery::jwks))
        .layer(middleware::from_fn(crate::cors::public));
    // Endpoints browser-based clients call: from their own origins only.
    let mut cross_origin = Router::new()
        .route("/token", post(crate::token::token))
        .route(
            "/userinfo",
            get(crate::token::userinfo).post(crate::token::userinfo),
        )
        .route("/revoke", post(crate::token::revoke));
    // Without DCR, `/register` is an unknown path like any other (no CORS answer either).
    if issuer.dcr.is_some() {
        cross_origin = cross_origin.route("/register", post(crate::dcr::register));
    }
    let cross_origin = cross_origin.layer(middleware::from_fn_with_state(
        issuer.clone(),
        crate::cors::clients,
    ));
    Router::new()
        .merge(public)
        .merge(cross_origin)
        .route(
            "/authorize",
            get(crate::authorize::authorize).post(crate::authorize::authorize),
        )
        .route("/login", post(crate::authorize::login))
        .route("/consent", post(crate::authorize::consent))
        .route("/upstream/start", get(crate::upstream::start))
        .route(
            "/upstream/start/{provider}",
            get(crate::upstream::start_with),
        )
        .route("/upstream/callback", get(crate::upstream::callback))
        .route("/introspect", post(crate::introspect::introspect))
        .route(
            "/end_session",
            get(crate::account::end_session).post(crate::account::end_session),
        )
        .route("/logout", post(crate::account::logout))
        .route("/account", get(crate::account::account))
        .route("/account/revoke", post(crate::account::revoke_grant))
        .route("/assets/keyway.css", get(crate::pages::stylesheet))
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
            Some(tokio::spawn(crate::watch::run(
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
