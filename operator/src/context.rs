//! What every reconcile shares: the Kubernetes client, the plan settings, the event recorder,
//! the metrics, the clock and random source, the controller's cache of ConnectedApps, the
//! count of consecutive failures per app (for the backoff), and the versions of apps its own
//! writes replaced (to recognise a cache that has not caught up with them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::app_cache::AppCache;
use crate::clock::Clock;
use crate::config::ControllerConfig;
use crate::labels::MANAGER;
use crate::metrics::Metrics;
use crate::plan::{self, OsRandom, Plan, PlanConfig, Random};

/// Everything a reconcile needs.
pub struct Context {
    /// The Kubernetes client.
    pub(crate) client: Client,
    /// Desired-state settings.
    pub(crate) plan: PlanConfig,
    /// Event recorder.
    pub(crate) recorder: Recorder,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    clock: Clock,
    rng: Mutex<Box<dyn Random + Send>>,
    failures: Mutex<HashMap<ObjectRef<ConnectedApp>, u32>>,
    /// The controller's cache of every watched ConnectedApp (set by `controller::run`).
    apps: RwLock<Option<AppCache>>,
    /// Per app, the resourceVersions its reconciles' own writes replaced, until the cache has
    /// moved past them (see [`Context::replaced_by_own_write`]).
    replaced: Mutex<Replaced>,
}

/// The resourceVersions of apps that this controller's writes replaced.
#[derive(Default)]
struct Replaced {
    versions: HashMap<ObjectRef<ConnectedApp>, (Vec<String>, Instant)>,
    /// Writes recorded since the last purge.
    since_purge: usize,
}

/// An entry older than this is forgotten (for an app deleted before its reconcile saw the cache
/// catch up): a cache is never that far behind.
const REPLACED_MEMORY: Duration = Duration::from_secs(120);
/// Old entries are purged every this many recorded writes.
const PURGE_EVERY: usize = 1024;

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
            recorder: Recorder::new(client.clone(), reporter),
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
            replaced: Mutex::new(Replaced::default()),
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
        let Some(before) = before.filter(|b| Some(b.as_str()) != after) else {
            return;
        };
        let mut replaced = self
            .replaced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        replaced.since_purge += 1;
        if replaced.since_purge >= PURGE_EVERY {
            replaced.since_purge = 0;
            replaced
                .versions
                .retain(|_, (_, at)| at.elapsed() < REPLACED_MEMORY);
        }
        let entry = replaced
            .versions
            .entry(ObjectRef::from_obj(app))
            .or_insert_with(|| (Vec::new(), Instant::now()));
        entry.0.push(before);
        entry.1 = Instant::now();
    }

    /// Whether `app`, as the cache holds it, is a version that one of this controller's own
    /// writes has already replaced: the watch event of that write is still on its way and will
    /// bring a reconcile of the current version. Once the cache holds another version, the
    /// record is forgotten.
    pub(crate) fn replaced_by_own_write(&self, app: &ConnectedApp) -> bool {
        let key = ObjectRef::from_obj(app);
        let mut replaced = self
            .replaced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = match (
            replaced.versions.get(&key),
            app.metadata.resource_version.as_ref(),
        ) {
            (Some((versions, _)), Some(version)) => versions.contains(version),
            (Some(_), None) => false,
            (None, _) => return false,
        };
        if !stale {
            replaced.versions.remove(&key);
        }
        stale
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
