//! What every reconcile shares: the Kubernetes client, the plan settings, the event recorder,
//! the metrics, the clock and random source, the controller's cache of ConnectedApps, and the
//! count of consecutive failures per app (for the backoff).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

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
    apps: RwLock<Option<Store<ConnectedApp>>>,
}

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

    /// Uses `store` (the controller's cache of ConnectedApps) to find apps claiming the same
    /// client ID or resource.
    pub(crate) fn set_apps(&self, store: Store<ConnectedApp>) {
        *self
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(store);
    }

    /// Every known ConnectedApp, from the cache; `None` without one (a reconcile outside the
    /// controller that did not list them).
    pub(crate) fn cached_apps(&self) -> Option<Vec<Arc<ConnectedApp>>> {
        self.apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(Store::state)
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
