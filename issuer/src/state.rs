//! The issuer's shared state ([`Issuer`]): configuration, keys, clients, users, the store, the
//! clock and metrics, built once at start-up, with private fields. Beside building it: the
//! decisions that need several of its parts (is a subject a client's ID, who holds a resource,
//! delegation, minting with the current key and the lifetimes, verifying our own access
//! tokens). It names no endpoint and no HTTP type; `app` composes the router around it.

use std::sync::Arc;

use crate::config::{Config, Lifetimes};
use crate::directory::clients::{Client, Registry};
use crate::directory::upstream::{CookieKey, Upstream};
use crate::directory::users::Users;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::{KeyError, Keys, Typ};
use crate::metrics::{GrantLabels, Metrics};
use crate::oauth::Refusal;
use crate::oauth::tokens::{Grant, Minted, Minter};
use crate::store::Store;
use crate::util::Clock;

/// Everything a request handler needs.
pub struct Issuer {
    /// Issuer identifier (no trailing slash).
    pub(crate) issuer: String,
    /// Default lifetimes.
    pub(crate) lifetimes: Lifetimes,
    /// Signing keys.
    pub(crate) keys: Keys,
    /// ConnectedApp clients.
    pub(crate) clients: Registry,
    /// Resource hosts bound to namespaces, applied to watched ConnectedApps (`crate::app::watch`).
    pub(crate) resource_hosts: api::resource_hosts::ResourceHosts,
    /// Static users.
    pub(crate) users: Users,
    /// Persistent state.
    pub(crate) store: Arc<dyn Store>,
    /// Clock.
    pub(crate) clock: Clock,
    /// Metrics.
    pub(crate) metrics: Metrics,
    /// Cookies get `Secure` and the `__Host-` prefix.
    pub(crate) secure_cookies: bool,
    /// Dynamic client registration settings (`None`: disabled).
    pub(crate) dcr: Option<crate::directory::registered::DcrSettings>,
    /// Upstream OpenID providers (federation), in button order.
    pub(crate) upstreams: Vec<crate::directory::upstream::Upstream>,
    /// The federation cookie's key (loaded when there are upstreams).
    pub(crate) cookie_key: crate::directory::upstream::CookieKey,
    /// Cross-origin settings of the client-facing endpoints.
    pub(crate) cors: crate::directory::origins::Cors,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    pub(crate) trusted_proxies: Vec<crate::directory::client_addr::IpRange>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Shared handle to the issuer.
pub(crate) type Shared = Arc<Issuer>;

impl Issuer {
    /// The clients: ConnectedApps (from `--clients-dir` or the Kubernetes watch).
    pub fn clients(&self) -> &Registry {
        &self.clients
    }

    /// The persistent state.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock every expiry is measured with (tests move it forward).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

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
        problems.extend(crate::directory::identity::clashes(
            &clients,
            &users,
            &upstream_ids,
        ));
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
        let keys = open_keys(config, &clock, max_ttl);
        let keys = match keys {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(format!("--keys-dir: {e}"));
                None
            }
        };
        let (cookie_key, upstreams) = load_upstreams(config, &mut problems);
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
            cors: crate::directory::origins::Cors {
                allowed: config.cors_allowed_origins.clone(),
            },
            trusted_proxies: config.trusted_proxies.clone(),
            dcr: config.dcr.then(|| {
                crate::directory::registered::DcrSettings::new(
                    config.dcr_scopes.clone(),
                    config.dcr_rate,
                    config.dcr_rate_per_address,
                    config.dcr_idle_expiry,
                )
            }),
        })
    }

    /// Whether a person's `subject` is, or could be, a client's ID (ConnectedApp or dynamically
    /// registered; the latter never contain `:`, federated subjects always do).
    pub(crate) fn is_client_id(&self, subject: &str) -> bool {
        self.clients.get(subject).is_some()
            || (subject.starts_with(crate::directory::registered::ID_PREFIX)
                && !subject.contains(':'))
    }

    /// Whether a client ID is, or could be, a person's subject: a static user's, or one of a
    /// configured upstream provider's (`<provider id>:…`).
    pub(crate) fn is_person_subject(&self, client_id: &str) -> bool {
        self.users.by_subject(client_id).is_some()
            || client_id
                .split_once(':')
                .is_some_and(|(p, _)| self.upstreams.iter().any(|u| u.config.id == p))
    }

    /// A URL on this issuer.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A client by ID: ConnectedApps first, then dynamically registered clients (one unused for
    /// `--dcr-idle-expiry` is gone, even before the sweep deletes its row).
    pub(crate) async fn client(&self, id: &str) -> Result<Option<Arc<Client>>> {
        if let Some(c) = self.clients.get(id) {
            return Ok(Some(c));
        }
        let Some(dcr) = &self.dcr else {
            return Ok(None);
        };
        if !id.starts_with(crate::directory::registered::ID_PREFIX) {
            return Ok(None);
        }
        let row = self.store.get_client(id).await?;
        let used_since = dcr.used_since(self.clock.now());
        Ok(row
            .filter(|r| r.last_used >= used_since)
            .and_then(|r| crate::directory::registered::client_from_row(&r).map(Arc::new)))
    }

    /// Whether `client` may obtain a signed-in person's access token for `resource` with
    /// `scopes`: `Ok(holder)` with the ConnectedApp holding the resource when it admits the
    /// client (`contract::access::Access::admits_client`) and, for a client other than the
    /// holder, registers every one of the scopes; otherwise the OAuth error to answer
    /// (`invalid_target`, `invalid_scope`). The rule is `crate::oauth::delegation`; the
    /// authorization endpoint decides with it before any code or consent page, and the token
    /// endpoint again for every code and refresh.
    pub(crate) fn delegation(
        &self,
        client: &Client,
        resource: &str,
        scopes: &[String],
    ) -> Result<Arc<Client>, Refusal> {
        crate::oauth::delegation::decide(self.resource_owner(resource), client, scopes)
    }

    /// The ConnectedApp client holding `resource` (byte-exact), if any: a token may be issued for
    /// a resource only if one does, and that app's `access` rules gate it. One app at most holds
    /// a resource (`api::resources`; a loser is not a client), so the answer does not depend on
    /// the order of anything.
    pub(crate) fn resource_owner(&self, resource: &str) -> Option<Arc<Client>> {
        self.clients.resource_owner(resource)
    }
}

/// Minting, counting and verifying tokens.
impl Issuer {
    /// Refuses a token whose `sub` would not tell a person from a client (see
    /// [`crate::directory::identity`]): a person whose subject is a client ID, or a client (its own
    /// token, `sub` = its ID) whose ID is a person's subject.
    fn check_identity(&self, client: &Client, g: &Grant<'_>) -> Result<()> {
        let person = g.auth_time.is_some();
        if person && self.is_client_id(g.subject) {
            tracing::warn!(
                client = %client.id,
                "token refused: the person's subject is also a client ID"
            );
            return Err(Error::oauth(
                ErrorCode::InvalidGrant,
                "the person's subject identifier is also a client ID",
            ));
        }
        if !person && self.is_person_subject(&client.id) {
            tracing::warn!(
                client = %client.id,
                "token refused: the client ID is also a person's subject"
            );
            return Err(Error::oauth(
                ErrorCode::UnauthorizedClient,
                "the client ID is also a person's subject identifier",
            ));
        }
        Ok(())
    }

    fn access_ttl(&self, client: &Client) -> u64 {
        client.lifetimes.map_or(self.lifetimes.access, |l| l.access)
    }

    /// Mints the tokens of a grant for `client` (an ID token only if `want_id`), after checking
    /// that `sub` tells a person from a client.
    pub(crate) fn mint(&self, client: &Client, g: &Grant<'_>, want_id: bool) -> Result<Minted> {
        self.check_identity(client, g)?;
        let ring = self.keys.ring();
        let signer = ring
            .signing
            .as_ref()
            .ok_or_else(|| Error::Unavailable("no signing key yet".into()))?;
        Minter {
            issuer: &self.issuer,
            signer,
            now: self.clock.now(),
            access_ttl: self.access_ttl(client),
            id_token_ttl: want_id.then_some(self.lifetimes.id_token),
        }
        .mint(client, g)
    }

    /// Counts a token request by grant and outcome.
    pub(crate) fn count(&self, grant: &'static str, outcome: &'static str) {
        self.metrics
            .tokens
            .get_or_create(&GrantLabels { grant, outcome })
            .inc();
    }

    /// Verifies one of our access tokens, that `accept` accepts its claims (checked before the
    /// store is asked) and that it is not revoked.
    pub(crate) async fn verified_access(
        &self,
        token: &str,
        accept: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> bool,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let Some(claims) = self
            .keys
            .ring()
            .verify(token, Typ::AccessToken, &self.issuer, self.clock.now_u64())
            .filter(|c| accept(c))
        else {
            return Ok(None);
        };
        let Some(jti) = claims.get("jti").and_then(|j| j.as_str()) else {
            return Ok(None);
        };
        if self.store.is_access_revoked(jti).await? {
            return Ok(None);
        }
        Ok(Some(claims))
    }
}

/// The signing keys: read-only from a mounted Secret, or a local directory the issuer rotates
/// (`max_ttl`: the longest token lifetime, which a retired key must outlive).
fn open_keys(config: &Config, clock: &Clock, max_ttl: u64) -> Result<Keys, KeyError> {
    if config.keys_read_only {
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
    }
}

/// The federation cookie key and the upstream providers; problems are added to `problems`.
fn load_upstreams(config: &Config, problems: &mut Vec<String>) -> (CookieKey, Vec<Upstream>) {
    let cookie_key = CookieKey::default();
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
            match Upstream::new(u.clone(), cookie_key.clone()) {
                Ok(up) => upstreams.push(up),
                Err(e) => problems.push(format!("upstream {:?}: {e}", u.id)),
            }
        }
    }
    (cookie_key, upstreams)
}
