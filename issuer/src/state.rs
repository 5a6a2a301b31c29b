//! The issuer's shared state ([`Issuer`]): configuration, keys, clients, users, the store, the
//! clock and metrics, built once at start-up, with private fields. Beside building it: the
//! decisions that need several of its parts (is a subject a client's ID, who holds a resource,
//! delegation, minting with the current key and the lifetimes, verifying our own access
//! tokens). It names no endpoint and no HTTP type; `app` composes the router around it.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::config::{Config, Lifetimes};
use crate::directory::client_addr::IpRange;
use crate::directory::clients::{Client, Registry};
use crate::directory::origins::Cors;
use crate::directory::registered::DcrSettings;
use crate::directory::upstream::{CookieKey, Upstream};
use crate::directory::users::Users;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::{KeyError, Keys, Typ};
use crate::metrics::{GrantLabels, Metrics};
use crate::oauth::Refusal;
use crate::oauth::tokens::{Grant, Minted, Minter};
use crate::store::Store;

/// Everything a request handler needs, composed of the sub-states that the endpoints which
/// need less than all of it take instead (each built from it by axum's `FromRef`, a few `Arc`
/// clones):
///
/// - `Tokens` (the issuer identifier, signing keys, clock, store): `/userinfo`, `/jwks`;
/// - `Clients` (`Tokens` with the ConnectedApps and dynamic registration): `/revoke`,
///   `/introspect`, `/register`, the discovery documents;
/// - `Ops` (readiness and metrics): `/readyz`, `/metrics`.
///
/// `/token`, `/authorize`, `/login`, `/consent`, federation (`/upstream/*`) and the account
/// endpoints (`/end_session`, `/logout`, `/account`, `/account/revoke`) take the whole state
/// (`State<Shared>`, one `Arc` clone): besides `Clients`, `/token` reads the lifetimes, the
/// users and upstream providers (no subject may pass for a client) and the metrics; the others
/// read the session and cookie settings and, most of them, the users, the upstream providers or
/// the lifetimes. Together that is nearly all of it.
pub struct Issuer {
    /// The clients with the issuer identifier, signing keys, clock and store ([`Tokens`]).
    clients: Clients,
    /// Default lifetimes.
    lifetimes: Lifetimes,
    /// Resource hosts bound to namespaces, applied to watched ConnectedApps (`crate::app::watch`).
    resource_hosts: api::resource_hosts::ResourceHosts,
    /// Static users.
    users: Users,
    /// Metrics.
    metrics: Arc<Metrics>,
    /// Cookies get `Secure` and the `__Host-` prefix.
    secure_cookies: bool,
    /// Upstream OpenID providers (federation), in button order.
    upstreams: Vec<Upstream>,
    /// The federation cookie's key (loaded when there are upstreams).
    cookie_key: CookieKey,
    /// Cross-origin settings of the client-facing endpoints.
    cors: Cors,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    trusted_proxies: Vec<IpRange>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.clients.tokens.issuer())
            .finish_non_exhaustive()
    }
}

/// Shared handle to the issuer.
pub(crate) type Shared = Arc<Issuer>;

/// The issuer identifier, the signing keys, the clock and the store: what signing, verifying
/// and looking up tokens reads. `/userinfo` and `/jwks` take only this; cloning it is one `Arc`
/// clone.
#[derive(Clone)]
pub(crate) struct Tokens(Arc<TokenParts>);

struct TokenParts {
    /// Issuer identifier (no trailing slash).
    issuer: String,
    /// Signing keys.
    keys: Keys,
    /// Clock.
    clock: Clock,
    /// Persistent state.
    store: Arc<dyn Store>,
}

impl FromRef<Shared> for Tokens {
    fn from_ref(iss: &Shared) -> Self {
        iss.clients.tokens.clone()
    }
}

impl Tokens {
    /// The issuer identifier (no trailing slash).
    pub(crate) fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// A URL on this issuer.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0.issuer)
    }

    /// The signing keys.
    pub(crate) fn keys(&self) -> &Keys {
        &self.0.keys
    }

    /// The clock every expiry is measured with.
    pub(crate) fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// The persistent state.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The claims of one of our access tokens if its signature, issuer and expiry hold (the
    /// revocation list is not consulted).
    pub(crate) fn access_claims(
        &self,
        token: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.0.keys.ring().verify(
            token,
            Typ::AccessToken,
            &self.0.issuer,
            self.0.clock.now_u64(),
        )
    }

    /// Verifies one of our access tokens, that `accept` accepts its claims (checked before the
    /// store is asked) and that it is not revoked.
    pub(crate) async fn verified_access(
        &self,
        token: &str,
        accept: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> bool,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let Some(claims) = self.access_claims(token).filter(|c| accept(c)) else {
            return Ok(None);
        };
        let Some(jti) = claims.get("jti").and_then(|j| j.as_str()) else {
            return Ok(None);
        };
        if self.0.store.is_access_revoked(jti).await? {
            return Ok(None);
        }
        Ok(Some(claims))
    }
}

/// The clients, ConnectedApps and dynamically registered, with [`Tokens`]: what authenticating
/// a client and answering it about its tokens reads (`/revoke`, `/introspect`), what
/// registering a client reads (`/register`), and what the discovery documents list. Cloning it
/// is three `Arc` clones at most.
#[derive(Clone)]
pub(crate) struct Clients {
    tokens: Tokens,
    /// ConnectedApp clients.
    registry: Arc<Registry>,
    /// Dynamic client registration settings (`None`: disabled).
    dcr: Option<Arc<DcrSettings>>,
}

impl FromRef<Shared> for Clients {
    fn from_ref(iss: &Shared) -> Self {
        iss.clients.clone()
    }
}

impl Clients {
    /// Issuer identifier, keys, clock and store.
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The ConnectedApp clients.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Dynamic client registration settings (`None`: disabled).
    pub(crate) fn dcr(&self) -> Option<&DcrSettings> {
        self.dcr.as_deref()
    }

    /// A client by ID: ConnectedApps first, then dynamically registered clients (one unused for
    /// `--dcr-idle-expiry` is gone, even before the sweep deletes its row).
    pub(crate) async fn client(&self, id: &str) -> Result<Option<Arc<Client>>> {
        if let Some(c) = self.registry.get(id) {
            return Ok(Some(c));
        }
        let Some(dcr) = &self.dcr else {
            return Ok(None);
        };
        if !id.starts_with(crate::directory::registered::ID_PREFIX) {
            return Ok(None);
        }
        let row = self.tokens.store().get_client(id).await?;
        let used_since = dcr.used_since(self.tokens.clock().now());
        Ok(row
            .filter(|r| r.last_used >= used_since)
            .and_then(|r| crate::directory::registered::client_from_row(&r).map(Arc::new)))
    }
}

/// What `/readyz` and `/metrics` read: [`Clients`] (a signing key, a store that answers, the
/// ConnectedApps loaded), the federation cookie key when there are upstream providers, and the
/// metrics. Cloning it is five `Arc` clones at most.
#[derive(Clone)]
pub(crate) struct Ops {
    clients: Clients,
    /// `Some` when there are upstream providers.
    cookie_key: Option<CookieKey>,
    metrics: Arc<Metrics>,
}

impl FromRef<Shared> for Ops {
    fn from_ref(iss: &Shared) -> Self {
        Ops {
            clients: iss.clients.clone(),
            cookie_key: (!iss.upstreams.is_empty()).then(|| iss.cookie_key.clone()),
            metrics: iss.metrics.clone(),
        }
    }
}

impl Ops {
    /// Issuer identifier, keys, clock and store.
    pub(crate) fn tokens(&self) -> &Tokens {
        self.clients.tokens()
    }

    /// The ConnectedApp clients.
    pub(crate) fn registry(&self) -> &Registry {
        self.clients.registry()
    }

    /// Whether there are upstream providers and the federation cookie key is not loaded yet.
    pub(crate) fn awaits_cookie_key(&self) -> bool {
        self.cookie_key.as_ref().is_some_and(|k| k.get().is_none())
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The parts, read by other modules (the fields are private to this file).
impl Issuer {
    /// The clients with [`Tokens`] (client authentication).
    pub(crate) fn client_auth(&self) -> &Clients {
        &self.clients
    }

    /// The issuer identifier (no trailing slash).
    pub(crate) fn issuer(&self) -> &str {
        self.clients.tokens.issuer()
    }

    /// The signing keys.
    pub(crate) fn keys(&self) -> &Keys {
        self.clients.tokens.keys()
    }

    /// Default lifetimes.
    pub(crate) fn lifetimes(&self) -> &Lifetimes {
        &self.lifetimes
    }

    /// Resource hosts bound to namespaces.
    pub(crate) fn resource_hosts(&self) -> &api::resource_hosts::ResourceHosts {
        &self.resource_hosts
    }

    /// Static users.
    pub(crate) fn users(&self) -> &Users {
        &self.users
    }

    /// Metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether cookies get `Secure` and the `__Host-` prefix.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// Dynamic client registration settings (`None`: disabled).
    pub(crate) fn dcr(&self) -> Option<&DcrSettings> {
        self.clients.dcr()
    }

    /// Upstream OpenID providers (federation), in button order.
    pub(crate) fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// Cross-origin settings of the client-facing endpoints.
    pub(crate) fn cors(&self) -> &Cors {
        &self.cors
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub(crate) fn trusted_proxies(&self) -> &[IpRange] {
        &self.trusted_proxies
    }
}

impl Issuer {
    /// The clients: ConnectedApps (from `--clients-dir` or the Kubernetes watch).
    pub fn clients(&self) -> &Registry {
        &self.clients.registry
    }

    /// The persistent state.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.clients.tokens.store()
    }

    /// The clock every expiry is measured with (tests move it forward).
    pub fn clock(&self) -> &Clock {
        self.clients.tokens.clock()
    }

    /// Loads the federation cookie key from the key directory when there are upstreams and it
    /// is not loaded yet (it may arrive after start-up in a mounted Secret); `true` when this
    /// call loaded it.
    pub fn load_cookie_key(&self) -> bool {
        !self.upstreams.is_empty()
            && self.cookie_key.get().is_none()
            && self.cookie_key.load(self.keys().dir(), false).is_ok()
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
        problems.extend(crate::directory::distinct_subjects::clashes(
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
        let tokens = Tokens(Arc::new(TokenParts {
            issuer: config.issuer.clone(),
            keys,
            clock,
            store,
        }));
        let dcr = config.dcr.then(|| {
            Arc::new(DcrSettings::new(
                config.dcr_scopes.clone(),
                config.dcr_rate,
                config.dcr_rate_per_address,
                config.dcr_idle_expiry,
            ))
        });
        Ok(Self {
            clients: Clients {
                tokens,
                registry: Arc::new(clients),
                dcr,
            },
            lifetimes: l,
            resource_hosts: config.resource_hosts.clone(),
            users,
            metrics: Arc::default(),
            secure_cookies: config.secure_cookies,
            upstreams,
            cookie_key,
            cors: Cors {
                allowed: config.cors_allowed_origins.clone(),
            },
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// Whether a person's `subject` is, or could be, a client's ID (ConnectedApp or dynamically
    /// registered; the latter never contain `:`, federated subjects always do).
    pub(crate) fn is_client_id(&self, subject: &str) -> bool {
        self.clients.registry.get(subject).is_some()
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
        self.clients.tokens.url(path)
    }

    /// A client by ID (see [`Clients::client`]).
    pub(crate) async fn client(&self, id: &str) -> Result<Option<Arc<Client>>> {
        self.clients.client(id).await
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
        self.clients.registry.resource_owner(resource)
    }
}

/// Minting and counting tokens.
impl Issuer {
    /// Refuses a token whose `sub` would not tell a person from a client (see
    /// [`crate::directory::distinct_subjects`]): a person whose subject is a client ID, or a client (its own
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
        let ring = self.keys().ring();
        let signer = ring
            .signing
            .as_ref()
            .ok_or_else(|| Error::Unavailable("no signing key yet".into()))?;
        Minter {
            issuer: self.issuer(),
            signer,
            now: self.clock().now(),
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
