//! What every reconcile shares: the Kubernetes client, the plan settings, the event recorder,
//! the metrics, the clock and random source, the controller's caches of ConnectedApps and of
//! the Secrets it owns, the count of consecutive failures per app (for the backoff), and the
//! versions of apps and Secrets its own writes replaced (to recognise a cache that has not
//! caught up with them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::app_cache::AppCache;
use crate::clock::Clock;
use crate::config::ControllerConfig;
use crate::event_recorder::EventRecorder;
use crate::labels::MANAGER;
use crate::metrics::Metrics;
use crate::own_writes::OwnWrites;
use crate::plan::{self, OsRandom, Plan, PlanConfig, Random};

/// Everything a reconcile needs.
pub struct Context {
    /// The Kubernetes client.
    pub(crate) client: Client,
    /// Desired-state settings.
    pub(crate) plan: PlanConfig,
    /// Event recorder.
    pub(crate) recorder: EventRecorder,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    clock: Clock,
    rng: Mutex<Box<dyn Random + Send>>,
    failures: Mutex<HashMap<ObjectRef<ConnectedApp>, u32>>,
    /// The controller's cache of every watched ConnectedApp (set by `controller::run`).
    apps: RwLock<Option<AppCache>>,
    /// The controller's cache of the Secrets it owns (set by `controller::run`).
    secrets: RwLock<Option<Store<Secret>>>,
    /// Versions of apps this controller's writes replaced (see
    /// [`Context::replaced_by_own_write`]).
    replaced_apps: OwnWrites<ConnectedApp>,
    /// Versions of Secrets this controller's writes replaced (see [`Context::cached_secret`]).
    replaced_secrets: OwnWrites<Secret>,
}

/// What the controller's cache of the Secrets it owns says about one Secret.
pub(crate) enum CachedSecret {
    /// It holds the Secret, in a version no own write has replaced.
    Held(Arc<Secret>),
    /// It has listed the owned Secrets and holds none of that name: there is none, or one this
    /// controller does not own (or its own create is not seen yet).
    NotOwned,
    /// No cache, not listed yet, or behind an own write: read the API server.
    Unknown,
}

/// How long a reconcile waits for the first list of owned Secrets before it reads the Secret
/// from the API server instead.
const SECRETS_LISTED_WAIT: Duration = Duration::from_secs(10);

impl Context {
    /// A context with the system clock and the OS random source.
    pub fn new(client: Client, config: &ControllerConfig, metrics: Arc<Metrics>) -> Self {
        Self::with_clock_and_rng(
            client,
            config,
            metrics,
            Arc::new(Timestamp::now),
            Box::new(OsRandom),
        )
    }

    /// A context with a given clock and random source (tests).
    pub fn with_clock_and_rng(
        client: Client,
        config: &ControllerConfig,
        metrics: Arc<Metrics>,
        clock: Clock,
        rng: Box<dyn Random + Send>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: Some(config.identity.clone()),
        };
        Self {
            recorder: EventRecorder::new(client.clone(), reporter),
            client,
            plan: PlanConfig {
                issuer_url: config.issuer_url.clone(),
                resync: config.resync,
                resource_hosts: config.resource_hosts.clone(),
            },
            metrics,
            clock,
            rng: Mutex::new(rng),
            failures: Mutex::new(HashMap::new()),
            apps: RwLock::new(None),
            secrets: RwLock::new(None),
            replaced_apps: OwnWrites::default(),
            replaced_secrets: OwnWrites::default(),
        }
    }

    /// The clock.
    pub(crate) fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// The time now, by the clock.
    pub(crate) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Uses `cache` (the controller's cache of ConnectedApps) to find apps claiming the same
    /// client ID or resource.
    pub(crate) fn set_apps(&self, cache: AppCache) {
        *self
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cache);
    }

    /// The cached apps that can decide whether `app` holds its client ID and its resource
    /// (`reconcile::conflicts`, [`AppCache::peers_of`]); `None` without a cache (a reconcile
    /// outside the controller that did not list them).
    pub(crate) fn peers_of(&self, app: &ConnectedApp) -> Option<Vec<Arc<ConnectedApp>>> {
        let guard = self
            .apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_ref().map(|cache| cache.peers_of(app))
    }

    /// The plan for `app` now, given the Secret observed under its name.
    pub(crate) fn plan(&self, app: &ConnectedApp, observed: Option<&Secret>) -> Plan {
        let now = self.now();
        match self.rng.lock() {
            Ok(mut rng) => plan::plan(app, observed, &self.plan, now, rng.as_mut()),
            // A panic elsewhere poisoned the lock; the OS source needs no state.
            Err(_) => plan::plan(app, observed, &self.plan, now, &mut OsRandom),
        }
    }

    /// Records that a write of this controller changed `app` from `before` to `after`
    /// (resourceVersions), so that a reconcile of the cached `before` is recognised as stale
    /// ([`Context::replaced_by_own_write`]).
    pub(crate) fn wrote(&self, app: &ConnectedApp, before: Option<String>, after: Option<&str>) {
        self.replaced_apps
            .wrote(ObjectRef::from_obj(app), before, after);
    }

    /// Whether `app`, as the cache holds it, is a version that one of this controller's own
    /// writes has already replaced: the watch event of that write is still on its way and will
    /// bring a reconcile of the current version.
    pub(crate) fn replaced_by_own_write(&self, app: &ConnectedApp) -> bool {
        self.replaced_apps.replaced(
            &ObjectRef::from_obj(app),
            app.metadata.resource_version.as_deref(),
        )
    }

    /// Uses `store` (the controller's watch of the Secrets it owns) for [`Context::cached_secret`].
    pub(crate) fn set_secrets(&self, store: Store<Secret>) {
        *self.secrets.write().unwrap_or_else(PoisonError::into_inner) = Some(store);
    }

    /// The Secret `namespace/name` as the controller's cache of owned Secrets holds it. A cache
    /// behind a change made by someone else is safe: a replace carries the version it was
    /// planned from and is refused (409), and the watch event of the change brings another
    /// reconcile; one behind this controller's own replace is not used.
    pub(crate) async fn cached_secret(&self, namespace: &str, name: &str) -> CachedSecret {
        let Some(store) = self
            .secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return CachedSecret::Unknown;
        };
        let listed = tokio::time::timeout(SECRETS_LISTED_WAIT, store.wait_until_ready()).await;
        if !matches!(listed, Ok(Ok(()))) {
            return CachedSecret::Unknown;
        }
        let key = ObjectRef::new(name).within(namespace);
        match store.get(&key) {
            None => CachedSecret::NotOwned,
            Some(secret) => {
                let version = secret.metadata.resource_version.as_deref();
                if self.replaced_secrets.replaced(&key, version) {
                    CachedSecret::Unknown
                } else {
                    CachedSecret::Held(secret)
                }
            }
        }
    }

    /// Records that this controller replaced the Secret `namespace/name` (version `before`).
    pub(crate) fn wrote_secret(&self, namespace: &str, name: &str, before: Option<String>) {
        self.replaced_secrets
            .wrote(ObjectRef::new(name).within(namespace), before, None);
    }

    /// Counts a failed reconcile of `app`; returns its consecutive failures so far.
    pub(crate) fn count_failure(&self, app: ObjectRef<ConnectedApp>) -> u32 {
        match self.failures.lock() {
            Ok(mut map) => {
                let n = map.entry(app).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        }
    }

    /// Forgets the failures of `app` (it was reconciled).
    pub(crate) fn forget_failures(&self, app: &ObjectRef<ConnectedApp>) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(app);
        }
    }
}
