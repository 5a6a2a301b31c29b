//! The state every request shares: the flags, the current [`App`] (swapped on a configuration
//! change), the loaded issuer, the clients for the issuer and the tool, the token cache, the
//! refresh gate and the metrics. It composes the layers below it and is named by the pipeline
//! and the server only: nothing it holds names it (the sign-in flow gets a
//! [`login::Context`], the forwarder the settings and the tool client).

use std::sync::{Arc, RwLock};

use crate::app::App;
use crate::clock::now;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::forward::tool_client::Upstream;
use crate::{cache, login, metrics};
use oidc::{Client as IssuerClient, Provider};

/// State shared by every request.
pub(crate) struct Shared {
    /// Flags.
    pub(crate) settings: Settings,
    app: RwLock<Arc<App>>,
    provider: RwLock<Option<Arc<Provider>>>,
    /// Client for the issuer.
    pub(crate) issuer: IssuerClient,
    /// Validated tokens.
    pub(crate) tokens: cache::TokenCache,
    /// Once-per-session refreshes.
    pub(crate) refresher: login::Refresher,
    /// Metrics.
    pub(crate) metrics: metrics::Metrics,
    /// Client for the tool.
    pub(crate) upstream: Upstream,
    /// Signalled when the issuer URL changes.
    pub(crate) issuer_changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Builds the shared state (no I/O besides reading CA files).
    pub(crate) fn new(settings: Settings, app: App) -> Result<Self> {
        let https = app.cfg.issuer.starts_with("https:");
        let issuer = IssuerClient::new(https, settings.issuer_ca_file.as_deref())
            .map_err(|e| Error::Config(vec![format!("--issuer-ca-file: {e}")]))?;
        let upstream = Upstream::new(
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
            refresher: login::Refresher::default(),
            metrics: metrics::Metrics::new(),
            upstream,
            issuer_changed: tokio::sync::Notify::new(),
        })
    }

    /// The current app configuration.
    pub(crate) fn app(&self) -> Arc<App> {
        self.app
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swaps in a new app configuration (retiring a replaced cookie secret, see
    /// [`App::retire_from`]); forgets cached tokens.
    pub(crate) fn set_app(&self, mut app: App) {
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

    /// What the sign-in flow needs of this state.
    pub(crate) fn login(&self) -> login::Context<'_> {
        login::Context {
            settings: &self.settings,
            issuer: &self.issuer,
            metrics: &self.metrics,
            refresher: &self.refresher,
        }
    }

    /// The loaded issuer, once ready.
    pub(crate) fn provider(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sets (or clears) the loaded issuer.
    pub(crate) fn set_provider(&self, provider: Option<Arc<Provider>>) {
        self.metrics.ready.set(i64::from(provider.is_some()));
        match self.provider.write() {
            Ok(mut p) => *p = provider,
            Err(p) => *p.into_inner() = provider,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use clap::Parser as _;

    use super::*;
    use crate::config;
    use crate::session::{Presence, Purpose, Session};

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
