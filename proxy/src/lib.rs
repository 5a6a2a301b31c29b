//! keyway-proxy: the sidecar that gives any tool sign-in and token validation.
//!
//! The request path, in order (see [`handler::handle`]), after the RFC 9112 `Host` check
//! ([`host`]; 400 when it fails) and the method check (a lower-case letter: 400, as tools
//! upper-case methods before routing):
//! 1. path normalisation ([`path`]) — before anything matches a path, so that no spelling slips
//!    past a rule, and the tool receives exactly the path that was authorised;
//! 2. the proxy's own endpoints (sign-in callback, start, sign-out, RFC 9728 metadata);
//! 3. public rules, and CORS preflights with `--skip-auth-preflight` — forwarded without
//!    authentication (spoofed identity headers still removed);
//! 4. authentication — bearer JWT ([`oidc::jwt`], cached by [`cache`] and per connection by [`memo`])
//!    or the session cookie ([`session`], cached the same way, refreshed once per session by
//!    [`flow`]); none: sign-in redirect or 401;
//! 5. authorisation — [`contract::access`];
//! 6. header rewrite and forwarding ([`forward`]): hop-by-hop headers, identity headers and
//!    field names that servers read as other names, X-Forwarded-*, websocket upgrades (no
//!    other), streaming bodies.
//!
//! Everything around the request path lives in [`server`]: listeners, TLS, the admin port,
//! configuration reloads, graceful shutdown. Client connections start in the proxy's own
//! HTTP/1.1 loop ([`h1`]), which serves requests without a body; the first other request (or
//! HTTP/2) hands the connection to hyper's server.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod direct;
pub mod flow;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod h1;
pub mod handler;
pub mod host;
pub mod logbuf;
pub mod memo;
pub mod metrics;
pub mod path;
pub mod server;
pub mod session;
pub mod timeouts;
pub mod upstream;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::config::{AppConfig, Settings};
use crate::session::{Names, Purpose, Retired, Sealer};
use oidc::{Client as IssuerClient, Provider};

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
pub type Body = Either<ToolBody, Full<Bytes>>;

/// The tool's response body, as hyper's client or the direct exchange ([`direct`]) reads it.
pub type ToolBody = Either<Incoming, direct::Relay>;

/// A client's request body: hyper's, or none (the fast HTTP/1.1 path of [`h1`] takes only
/// requests without a body).
#[derive(Debug)]
pub enum ReqBody {
    /// The body as hyper's server reads it.
    Incoming(Incoming),
    /// No body.
    Empty,
}

impl http_body::Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Incoming(b) => std::pin::Pin::new(b).poll_frame(cx),
            ReqBody::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming(b) => b.is_end_stream(),
            ReqBody::Empty => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ReqBody::Incoming(b) => b.size_hint(),
            ReqBody::Empty => http_body::SizeHint::with_exact(0),
        }
    }
}

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
    /// The cookie secret replaced last, still opening cookies for `--cookie-secret-grace`.
    pub retired: Option<Retired>,
}

impl App {
    /// Builds the app state from a configuration. A replaced cookie secret named by the files
    /// (`cookie-secret-previous`, replaced at `cookie-secret-replaced-at`) is retired until that
    /// time plus the grace, so that it survives a restart of the proxy.
    pub fn new(cfg: AppConfig, settings: &Settings) -> Result<Self> {
        let sealer = Sealer::new(&cfg.cookie_key, &cfg.client_id)
            .ok_or_else(|| Error::Config(vec!["cookie-secret: unusable key".into()]))?;
        let names = Names::new(&settings.cookie_name, cfg.secure_cookies);
        let grace = settings.cookie_secret_grace;
        let retired = cfg
            .previous_cookie_key
            .filter(|(key, at)| {
                grace > 0 && at.saturating_add(grace) > now() && !ct_eq(key, &cfg.cookie_key)
            })
            .and_then(|(key, at)| Retired::new(key, &cfg.client_id, at.saturating_add(grace)));
        Ok(App {
            cfg,
            sealer,
            names,
            sessions: cache::SessionCache::new(settings.token_cache_size),
            retired,
        })
    }

    /// Takes over the cookie secret of the configuration this one replaces: when the cookie
    /// secret changed, the old one is retired for `grace` seconds; otherwise a retired secret
    /// still in its grace period stays retired. Only one is kept (the last replaced): what this
    /// proxy saw replaced wins over an older one the files name, and when the files name the
    /// same one, their time holds (every replica then agrees on it).
    pub fn retire_from(&mut self, old: &App, grace: u64, now: u64) {
        let (key, until) = if !ct_eq(&old.cfg.cookie_key, &self.cfg.cookie_key) {
            (old.cfg.cookie_key, now.saturating_add(grace))
        } else {
            match &old.retired {
                Some(r) => (*r.key(), r.until()),
                None => return,
            }
        };
        if self.retired.as_ref().is_some_and(|r| ct_eq(r.key(), &key)) {
            return;
        }
        if grace == 0 || until <= now || ct_eq(&key, &self.cfg.cookie_key) {
            return;
        }
        self.retired = Retired::new(key, &self.cfg.client_id, until);
    }

    /// Opens a sealed cookie value with the current cookie secret, else with the retired one
    /// while its grace lasts; the flag is `true` when the retired one opened it.
    pub fn open<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
        now: u64,
    ) -> Option<(T, bool)> {
        if let Some(v) = self.sealer.open(purpose, sealed) {
            return Some((v, false));
        }
        let v = self.retired.as_ref()?.open(purpose, sealed, now)?;
        Some((v, true))
    }

    /// Caches an opened session cookie. One opened with the retired secret is cached only until
    /// the grace ends (it is then refused), and is not sealed again here: it keeps working on
    /// replicas that have not seen the new secret yet, and its next refresh seals it with the
    /// current secret.
    pub fn cache_session(
        &self,
        hash: [u8; 32],
        s: &Arc<session::Session>,
        retired: bool,
        now: u64,
    ) {
        use cache::Expiring as _;
        let until = match &self.retired {
            Some(r) if retired => r.until(),
            _ => u64::MAX,
        };
        if until >= s.expires() {
            self.sessions.insert(hash, s.clone(), now);
        } else {
            // Only the cached copy ends early: `exp` makes it leave the cache at `until`.
            let mut capped = session::Session::clone(s);
            capped.exp = until;
            self.sessions.insert(hash, Arc::new(capped), now);
        }
    }

    /// `Set-Cookie` values writing a session sealed with the current secret (none if sealing
    /// fails, which leaves the client's cookie as it is).
    pub fn session_cookies(
        &self,
        session: &session::Session,
        now: u64,
        present: &session::Presence,
    ) -> Vec<String> {
        match self.sealer.seal(Purpose::Session, session) {
            Some(sealed) => {
                self.names
                    .session_cookies(&sealed, session.end.saturating_sub(now), present)
            }
            None => Vec::new(),
        }
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

    /// Swaps in a new app configuration (retiring a replaced cookie secret, see
    /// [`App::retire_from`]); forgets cached tokens.
    pub fn set_app(&self, mut app: App) {
        let old = self.app();
        app.retire_from(&old, self.settings.cookie_secret_grace, now());
        let issuer_changed = old.cfg.issuer != app.cfg.issuer;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use clap::Parser as _;

    use super::*;
    use crate::session::{Presence, Session};

    const GRACE: u64 = 120;

    fn settings(dir: &std::path::Path, grace: u64) -> Settings {
        config::Cli::try_parse_from([
            "keyway-proxy",
            "--upstream-port",
            "9",
            "--config-dir",
            dir.to_str().unwrap(),
            "--external-url",
            "https://tool.example.com",
            "--cookie-secret-grace",
            &grace.to_string(),
        ])
        .unwrap()
        .settings()
        .unwrap()
    }

    /// The app as loaded from files with this cookie key and client ID.
    fn app(dir: &std::path::Path, grace: u64, key: u8, client_id: &str) -> App {
        use base64::Engine as _;
        let files = [
            ("client-id", client_id.to_string()),
            ("issuer-url", "https://id.example.com".to_string()),
            (
                "cookie-secret",
                base64::engine::general_purpose::STANDARD.encode([key; 32]),
            ),
        ];
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let s = settings(dir, grace);
        App::new(config::load_app(&s).unwrap(), &s).unwrap()
    }

    fn sealed(app: &App) -> String {
        let s = Session {
            sid: "sid".into(),
            who: oidc::jwt::Principal {
                sub: "alice".into(),
                ..Default::default()
            },
            at: None,
            rt: None,
            exp: now() + 300,
            end: now() + 3600,
        };
        app.sealer.seal(Purpose::Session, &s).unwrap()
    }

    fn opens(shared: &Shared, sealed: &str, at: u64) -> Option<bool> {
        shared
            .app()
            .open::<Session>(Purpose::Session, sealed, at)
            .map(|(s, retired)| {
                assert_eq!(s.who.sub, "alice");
                retired
            })
    }

    #[test]
    fn a_replaced_cookie_secret_opens_cookies_for_the_grace_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = app(d, GRACE, 1, "tool");
        let one = sealed(&first);
        let shared = Shared::new(settings(d, GRACE), first).unwrap();
        assert_eq!(opens(&shared, &one, now()), Some(false));

        let t = now();
        shared.set_app(app(d, GRACE, 2, "tool"));
        let two = sealed(&shared.app());
        assert_eq!(opens(&shared, &two, t), Some(false), "the current secret");
        assert_eq!(opens(&shared, &one, t), Some(true), "the retired one");
        assert_eq!(opens(&shared, &one, t + GRACE + 1), None, "after the grace");
        let login = shared.app().open::<Session>(Purpose::Login, &one, t);
        assert!(login.is_none(), "the purpose still binds");

        // Another file changes: the retired secret stays, with the same deadline.
        shared.set_app(app(d, GRACE, 2, "tool"));
        assert_eq!(opens(&shared, &one, t), Some(true));
        assert_eq!(opens(&shared, &one, t + GRACE + 1), None);

        // An old session is cached only until the grace ends; a current one until it expires.
        let cur_app = shared.app();
        let (old, retired) = cur_app.open::<Session>(Purpose::Session, &one, t).unwrap();
        assert!(retired);
        let until = cur_app.retired.as_ref().unwrap().until();
        let old = Arc::new(old);
        cur_app.cache_session([1; 32], &old, true, t);
        assert!(cur_app.sessions.get(&[1; 32], until - 1, 0).is_some());
        assert!(cur_app.sessions.get(&[1; 32], until, 0).is_none());
        let (cur, _) = cur_app.open::<Session>(Purpose::Session, &two, t).unwrap();
        let cur = Arc::new(cur);
        cur_app.cache_session([2; 32], &cur, false, t);
        assert!(cur_app.sessions.get(&[2; 32], cur.exp - 1, 0).is_some());
        assert!(until < old.exp, "the test session outlives the grace");

        // A second rotation retires the second secret; the first is refused.
        shared.set_app(app(d, GRACE, 3, "tool"));
        assert_eq!(opens(&shared, &two, now()), Some(true));
        assert_eq!(opens(&shared, &one, now()), None);

        // Rolling back to the retired secret makes it current again (and retires the other).
        shared.set_app(app(d, GRACE, 2, "tool"));
        assert_eq!(opens(&shared, &two, now()), Some(false));

        // A cookie sealed again by the app opens with the current secret.
        let app = shared.app();
        let (s, _) = app.open::<Session>(Purpose::Session, &two, now()).unwrap();
        let cookies = app.session_cookies(&s, now(), &Presence::default());
        let value = cookies[0]
            .split(';')
            .next()
            .and_then(|c| c.split_once('='))
            .unwrap()
            .1;
        assert!(
            app.sealer
                .open::<Session>(Purpose::Session, value)
                .is_some()
        );
    }

    #[test]
    fn a_cookie_secret_the_files_name_as_replaced_survives_a_restart_within_its_grace() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let one = sealed(&app(d, GRACE, 1, "tool"));
        let two = sealed(&app(d, GRACE, 2, "tool"));
        let name = |key: &str| d.join(key);
        let write_previous = |key: u8, at: u64| {
            let encoded = base64::engine::general_purpose::STANDARD.encode([key; 32]);
            std::fs::write(name(contract::secret::COOKIE_SECRET_PREVIOUS), encoded).unwrap();
            std::fs::write(
                name(contract::secret::COOKIE_SECRET_REPLACED_AT),
                format!("{at}\n"),
            )
            .unwrap();
        };
        let start = |grace: u64, key: u8| {
            Shared::new(settings(d, grace), app(d, grace, key, "tool")).unwrap()
        };

        // Key 1 was replaced by key 2 ten seconds ago; a proxy starting now still opens its
        // cookies, until the replacement time plus the grace.
        let t = now();
        write_previous(1, t - 10);
        let restarted = start(GRACE, 2);
        assert_eq!(opens(&restarted, &one, t), Some(true));
        assert_eq!(opens(&restarted, &two, t), Some(false));
        assert_eq!(opens(&restarted, &one, t - 10 + GRACE - 1), Some(true));
        assert_eq!(opens(&restarted, &one, t - 10 + GRACE), None);
        // Replaced longer ago than the grace, or no grace: refused.
        write_previous(1, t - GRACE - 1);
        assert_eq!(opens(&start(GRACE, 2), &one, t), None);
        write_previous(1, t - 10);
        assert_eq!(opens(&start(0, 2), &one, t), None);

        // A running proxy that sees the replacement itself and then the files naming it keeps
        // the files' deadline, the one every replica reads.
        std::fs::remove_file(name(contract::secret::COOKIE_SECRET_PREVIOUS)).unwrap();
        std::fs::remove_file(name(contract::secret::COOKIE_SECRET_REPLACED_AT)).unwrap();
        let running = start(GRACE, 1);
        running.set_app(app(d, GRACE, 2, "tool"));
        assert!(running.app().retired.as_ref().unwrap().until() >= t + GRACE);
        write_previous(1, t - 10);
        running.set_app(app(d, GRACE, 2, "tool"));
        assert_eq!(
            running.app().retired.as_ref().unwrap().until(),
            t - 10 + GRACE
        );
        // Key 2 replaced here while the files still name key 1: what this proxy saw wins.
        running.set_app(app(d, GRACE, 3, "tool"));
        assert_eq!(opens(&running, &two, now()), Some(true));
        assert_eq!(opens(&running, &one, now()), None);
    }

    #[test]
    fn no_grace_or_another_app_refuses_the_replaced_secret() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = app(d, 0, 1, "tool");
        let one = sealed(&first);
        let shared = Shared::new(settings(d, 0), first).unwrap();
        shared.set_app(app(d, 0, 2, "tool"));
        assert_eq!(opens(&shared, &one, now()), None, "grace 0");

        let first = app(d, GRACE, 1, "tool");
        let one = sealed(&first);
        let shared = Shared::new(settings(d, GRACE), first).unwrap();
        shared.set_app(app(d, GRACE, 2, "other-app"));
        assert_eq!(opens(&shared, &one, now()), None, "bound to the client ID");
    }

    #[test]
    fn the_grace_defaults_to_the_session_lifetime() {
        let s = config::Cli::try_parse_from([
            "keyway-proxy",
            "--upstream-port",
            "9",
            "--session-lifetime",
            "7200",
        ])
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(s.cookie_secret_grace, 7200);
        assert!(!s.skip_auth_preflight);
    }
}
