//! keyway-proxy: the sidecar that gives any tool sign-in and token validation.
//!
//! The request path, in order (see [`handler::handle`]):
//! 1. path normalisation ([`path`]) — before anything matches a path, so that no spelling slips
//!    past a rule, and the tool receives exactly the path that was authorised;
//! 2. the proxy's own endpoints (sign-in callback, start, sign-out, RFC 9728 metadata);
//! 3. public rules — forwarded without authentication (spoofed identity headers still removed);
//! 4. authentication — bearer JWT ([`jwt`], cached by [`cache`]) or the session cookie
//!    ([`session`], refreshed once per session by [`flow`]); none: sign-in redirect or 401;
//! 5. authorisation — [`contract::access`];
//! 6. header rewrite and forwarding ([`forward`]): hop-by-hop headers, identity headers,
//!    X-Forwarded-*, upgrades, streaming bodies.
//!
//! Everything around the request path lives in [`server`]: listeners, TLS, the admin port,
//! configuration reloads, graceful shutdown.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod flow;
pub mod forward;
pub mod handler;
pub mod jwt;
pub mod metrics;
pub mod oidc;
pub mod path;
pub mod server;
pub mod session;
pub mod upstream;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::config::{AppConfig, Settings};
use crate::oidc::{IssuerClient, Provider};
use crate::session::{Names, Sealer};

/// Errors of the proxy's setup (request-path errors become responses in [`handler`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration: every problem.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// Binding or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Response body: the tool's streamed body or one of the proxy's own small bodies.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Everything derived from the mounted configuration, swapped as a whole on change.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub cfg: AppConfig,
    /// Cookie sealing for this app.
    pub sealer: Sealer,
    /// Cookie names.
    pub names: Names,
    /// Opened session cookies (per app: a new cookie key starts empty).
    pub sessions: cache::SessionCache,
}

impl App {
    /// Builds the app state from a configuration.
    pub fn new(cfg: AppConfig, settings: &Settings) -> Result<Self> {
        let sealer = Sealer::new(&cfg.cookie_key, &cfg.client_id)
            .ok_or_else(|| Error::Config(vec!["cookie-secret: unusable key".into()]))?;
        let names = Names::new(&settings.cookie_name, cfg.secure_cookies);
        Ok(App {
            cfg,
            sealer,
            names,
            sessions: cache::SessionCache::new(settings.token_cache_size),
        })
    }
}

/// State shared by every request.
pub struct Shared {
    /// Flags.
    pub settings: Settings,
    app: RwLock<Arc<App>>,
    provider: RwLock<Option<Arc<Provider>>>,
    /// Client for the issuer.
    pub issuer: IssuerClient,
    /// Validated tokens.
    pub tokens: cache::TokenCache,
    /// Once-per-session refreshes.
    pub refresher: flow::Refresher,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Client for the tool.
    pub upstream: upstream::Upstream,
    /// Signalled when the issuer URL changes.
    pub issuer_changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Builds the shared state (no I/O besides reading CA files).
    pub fn new(settings: Settings, app: App) -> Result<Self> {
        let https = app.cfg.issuer.starts_with("https:");
        let issuer = IssuerClient::new(https, settings.issuer_ca_file.as_deref())
            .map_err(|e| Error::Config(vec![format!("--issuer-ca-file: {e}")]))?;
        let upstream = upstream::Upstream::new(
            settings.upstream.clone(),
            256,
            std::time::Duration::from_secs(60),
        );
        Ok(Shared {
            tokens: cache::TokenCache::new(settings.token_cache_size),
            settings,
            app: RwLock::new(Arc::new(app)),
            provider: RwLock::new(None),
            issuer,
            refresher: flow::Refresher::default(),
            metrics: metrics::Metrics::new(),
            upstream,
            issuer_changed: tokio::sync::Notify::new(),
        })
    }

    /// The current app configuration.
    pub fn app(&self) -> Arc<App> {
        self.app
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swaps in a new app configuration; forgets cached tokens.
    pub fn set_app(&self, app: App) {
        let issuer_changed = self.app().cfg.issuer != app.cfg.issuer;
        match self.app.write() {
            Ok(mut a) => *a = Arc::new(app),
            Err(p) => *p.into_inner() = Arc::new(app),
        }
        self.tokens.clear();
        if issuer_changed {
            self.set_provider(None);
            self.issuer_changed.notify_one();
        }
    }

    /// The loaded issuer, once ready.
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sets (or clears) the loaded issuer.
    pub fn set_provider(&self, provider: Option<Arc<Provider>>) {
        self.metrics.ready.set(i64::from(provider.is_some()));
        match self.provider.write() {
            Ok(mut p) => *p = provider,
            Err(p) => *p.into_inner() = provider,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant-time equality of secrets.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
