//! The app: everything derived from the mounted configuration (the `ConnectedApp`'s Secret and
//! `policy.json`), swapped as a whole when the files change — the configuration, cookie sealing
//! and names, the opened-session cache, and the retired cookie secret still in its grace period.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::cache;
use crate::clock::now;
use crate::config::{AppConfig, Settings};
use crate::error::{Error, Result};
use crate::session::{self, Names, Purpose, Retired, Sealer, ct_eq};

/// Everything derived from the mounted configuration, swapped as a whole on change.
#[derive(Debug)]
pub(crate) struct App {
    /// The configuration.
    pub(crate) cfg: AppConfig,
    /// Cookie sealing for this app.
    pub(crate) sealer: Sealer,
    /// Cookie names.
    pub(crate) names: Names,
    /// Opened session cookies (per app: a new cookie key starts empty).
    pub(crate) sessions: cache::SessionCache,
    /// The cookie secret replaced last, still opening cookies for `--cookie-secret-grace`.
    pub(crate) retired: Option<Retired>,
}

impl App {
    /// Builds the app state from a configuration. A replaced cookie secret named by the files
    /// (`cookie-secret-previous`, replaced at `cookie-secret-replaced-at`) is retired until that
    /// time plus the grace, so that it survives a restart of the proxy.
    pub(crate) fn new(cfg: AppConfig, settings: &Settings) -> Result<Self> {
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
    pub(crate) fn retire_from(&mut self, old: &App, grace: u64, now: u64) {
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
    pub(crate) fn open<T: DeserializeOwned>(
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
    pub(crate) fn cache_session(
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
    pub(crate) fn session_cookies(
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
