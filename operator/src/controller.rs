//! The reconciler: fetches what is observed, asks [`crate::desired::plan`] what should be, and
//! applies only the differences.
//!
//! Order of writes for a new or rotated client secret: the status with the new hash first, then
//! the Secret, then the final status. The issuer therefore knows a secret before any sidecar can
//! read it, and the previous secret stays accepted until its grace period ends.
//!
//! Client IDs: before anything else, the app's client ID is looked up among the other
//! ConnectedApps in the controller's cache (no API call); when another app holds it
//! (`api::claims`), the app gets `Ready=False`/`ClientIDConflict` and nothing else is written.
//! Resources likewise: when the app's `spec.resource` is on a host bound to other namespaces
//! (`api::resource_hosts`, `--resource-hosts`), the app gets `Ready=False`/`ResourceNotPermitted`;
//! when another app holds it (`api::resources`, among the apps the bindings permit it),
//! `Ready=False`/`ResourceConflict`; and nothing else is written.
//! Every change of an app triggers the apps claiming the same ID or resource and those in
//! conflict, so a loser is looked at again when the holder changes or goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use api::{ConnectedApp, ConnectedAppStatus, FINALIZER};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::desired::{
    self, APP_LABEL, MANAGED_BY_LABEL, MANAGER, OsRandom, Plan, PlanConfig, Random, SecretAction,
};
use crate::metrics::{Metrics, Write};
use crate::{ControllerConfig, Error, Result};

/// A clock (the system clock in production; fixed in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Everything a reconcile needs.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Desired-state settings.
    pub plan: PlanConfig,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    clock: Clock,
    rng: Mutex<Box<dyn Random + Send>>,
    failures: Mutex<HashMap<ObjectRef<ConnectedApp>, u32>>,
    /// The controller's cache of every watched ConnectedApp (set by [`run`]).
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
    pub fn clock(&self) -> Clock {
        self.clock.clone()
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
    fn cached_apps(&self) -> Option<Vec<Arc<ConnectedApp>>> {
        self.apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(Store::state)
    }

    fn plan(&self, app: &ConnectedApp, observed: Option<&Secret>) -> Plan {
        let now = (self.clock)();
        match self.rng.lock() {
            Ok(mut rng) => desired::plan(app, observed, &self.plan, now, rng.as_mut()),
            // A panic elsewhere poisoned the lock; the OS source needs no state.
            Err(_) => desired::plan(app, observed, &self.plan, now, &mut OsRandom),
        }
    }
}

/// Reconciles one ConnectedApp (wrapped in the finalizer), checking its client ID and resource
/// against the apps in the controller's cache.
pub async fn reconcile(app: Arc<ConnectedApp>, ctx: Arc<Context>) -> Result<Action> {
    let peers = ctx.cached_apps().unwrap_or_default();
    reconcile_among(app, ctx, &peers).await
}

/// Reconciles one ConnectedApp, checking its client ID and resource against `peers` (every other
/// app that could claim them).
pub async fn reconcile_among(
    app: Arc<ConnectedApp>,
    ctx: Arc<Context>,
    peers: &[Arc<ConnectedApp>],
) -> Result<Action> {
    let span = info_span!(
        "reconcile",
        namespace = app.namespace().as_deref().unwrap_or(""),
        app = %app.name_any()
    );
    async move {
        let start = Instant::now();
        let ns = app.namespace().ok_or(Error::MissingNamespace)?;
        let apps: Api<ConnectedApp> = Api::namespaced(ctx.client.clone(), &ns);
        let has_finalizer = app.finalizers().iter().any(|f| f == FINALIZER);
        let deleting = app.meta().deletion_timestamp.is_some();
        let result = finalizer(&apps, FINALIZER, app, |event| async {
            match event {
                FinalizerEvent::Apply(app) => apply(app, &ctx, peers).await,
                FinalizerEvent::Cleanup(app) => cleanup(app, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        if result.is_ok() && has_finalizer == deleting {
            // The finalizer helper added (not yet present) or removed (deleting) it.
            ctx.metrics.write(Write::Finalizer);
        }
        ctx.metrics
            .reconciled(start.elapsed(), result.as_ref().err());
        result
    }
    .instrument(span)
    .await
}

async fn apply(
    app: Arc<ConnectedApp>,
    ctx: &Context,
    peers: &[Arc<ConnectedApp>],
) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let name = app.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let apps: Api<ConnectedApp> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = app.secret_name();
    let peer_apps = || peers.iter().map(AsRef::as_ref);
    let plan = if let Some(holder) = api::claims::holder_before(&app, peer_apps()) {
        // Not this app's client ID: its Secret is neither read nor written.
        desired::conflict(&app, holder, &ctx.plan, (ctx.clock)())
    } else if let Some(refusal) = ctx.plan.resource_hosts.refusal(&app) {
        // A resource on a host bound to other namespaces: not a client either, same as above.
        desired::resource_not_permitted(&app, &refusal, &ctx.plan, (ctx.clock)())
    } else if let Some(holder) =
        api::resources::holder_before(&app, peer_apps(), &ctx.plan.resource_hosts)
    {
        // Not this app's resource: not a client either, same as above.
        desired::resource_conflict(&app, holder, &ctx.plan, (ctx.clock)())
    } else {
        let observed = secrets.get_opt(&secret_name).await.map_err(Error::Kube)?;
        ctx.plan(&app, observed.as_ref())
    };

    let mut published: Option<&ConnectedAppStatus> = app.status.as_ref();
    if let Some(early) = &plan.status_before_secret {
        patch_status(&apps, &name, early).await?;
        ctx.metrics.write(Write::Status);
        published = Some(early);
    }
    match &plan.secret {
        SecretAction::None => {}
        SecretAction::Create(secret) => {
            let pp = PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            };
            secrets.create(&pp, secret).await.map_err(Error::Kube)?;
            ctx.metrics.write(Write::SecretCreate);
            info!(secret = %secret_name, "created Secret");
        }
        SecretAction::Replace(secret) => {
            let pp = PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            };
            // Leave field ownership to the server (an update without managedFields keeps them).
            let mut secret = secret.clone();
            secret.metadata.managed_fields = None;
            secrets
                .replace(&secret_name, &pp, &secret)
                .await
                .map_err(Error::Kube)?;
            ctx.metrics.write(Write::SecretReplace);
            info!(secret = %secret_name, "updated Secret");
        }
    }
    if published != Some(&plan.status) {
        patch_status(&apps, &name, &plan.status).await?;
        ctx.metrics.write(Write::Status);
    }
    let reference = app.object_ref(&());
    for event in &plan.events {
        let ev = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            note: Some(event.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        // Events are best effort: failing to record one must not fail (and repeat) the work.
        match ctx.recorder.publish(&ev, &reference).await {
            Ok(()) => ctx.metrics.write(Write::Event),
            Err(e) => warn!(error = %e, reason = %event.reason, "could not record event"),
        }
    }
    debug!(requeue_after = ?plan.requeue_after, "reconciled");
    Ok(Action::requeue(plan.requeue_after))
}

async fn patch_status(
    apps: &Api<ConnectedApp>,
    name: &str,
    status: &ConnectedAppStatus,
) -> Result<()> {
    let body = serde_json::json!({
        "apiVersion": ConnectedApp::api_version(&()),
        "kind": ConnectedApp::kind(&()),
        "status": status,
    });
    apps.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

async fn cleanup(app: Arc<ConnectedApp>, ctx: &Context) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    if app.spec.secret.existing_secret.is_none() {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let name = app.secret_name();
        if let Some(secret) = secrets.get_opt(&name).await.map_err(Error::Kube)?
            && desired::is_ours(&secret, &app)
        {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: secret.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match secrets.delete(&name, &dp).await {
                Ok(_) => {
                    ctx.metrics.write(Write::SecretDelete);
                    info!(secret = %name, "deleted Secret");
                }
                // Already gone (garbage collector or someone else): nothing left to do.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(Error::Kube(e)),
            }
        }
    }
    let ev = Event {
        type_: EventType::Normal,
        reason: "Unregistered".into(),
        note: Some(format!(
            "client {} removed",
            app.client_id().unwrap_or_default()
        )),
        action: "Delete".into(),
        secondary: None,
    };
    match ctx.recorder.publish(&ev, &app.object_ref(&())).await {
        Ok(()) => ctx.metrics.write(Write::Event),
        Err(e) => warn!(error = %e, "could not record event"),
    }
    Ok(Action::await_change())
}

/// Backoff after a failed reconcile: 1s doubling per consecutive failure of the same app, at most
/// 5 minutes. Counted by error kind in the metrics.
pub fn error_policy(app: Arc<ConnectedApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(app.as_ref());
    let failures = match ctx.failures.lock() {
        Ok(mut map) => {
            let n = map.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    let delay = backoff(failures);
    warn!(error = %error, kind = error.kind(), failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs(secs.min(300))
}

fn forget_failures(ctx: &Context, obj: &ObjectRef<ConnectedApp>) {
    if let Ok(mut map) = ctx.failures.lock() {
        map.remove(obj);
    }
}

/// The apps to look at again when `changed` changed or went away: those claiming the same client
/// ID or resource, and those in conflict (`changed` may have held their ID or resource before the
/// change).
fn rivals(cache: &Store<ConnectedApp>, changed: &ConnectedApp) -> Vec<ObjectRef<ConnectedApp>> {
    let id = changed.client_id().unwrap_or_default();
    let resource = changed.spec.resource.as_deref();
    let me = ObjectRef::from_obj(changed);
    cache
        .state()
        .iter()
        .filter(|app| {
            api::claims::claims(app, &id)
                || resource.is_some_and(|r| api::resources::claims(app, r))
                || app.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.reason == desired::reason::CLIENT_ID_CONFLICT
                            || c.reason == desired::reason::RESOURCE_CONFLICT
                    })
                })
        })
        .map(|app| ObjectRef::from_obj(app.as_ref()))
        .filter(|r| *r != me)
        .collect()
}

/// How long the controller's watches pause after a watch error: 800 ms, doubling, at most
/// [`WATCH_BACKOFF_MAX`]; back to 800 ms after any event.
///
/// kube-runtime pauses all of a controller's watches together after an error of any of them,
/// by default up to 30 s per error. Its four watches each fail once or twice after a restart
/// of the API server (connection refused while it is down, 403 until its authorizer has loaded
/// the RBAC rules, 410 Gone for the resourceVersion they resume from), so they stayed deaf to
/// every change for minutes (tests/controlplane, scenario 4); capped at 2 s, they relist within
/// seconds, and a persistent error costs the API server one request per 2 s.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchBackoff {
    next: Option<Duration>,
}

/// The longest pause of [`WatchBackoff`].
pub(crate) const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next.unwrap_or(Duration::from_millis(800));
        self.next = Some((now * 2).min(WATCH_BACKOFF_MAX));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = None;
    }
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(ctx: Arc<Context>, config: &ControllerConfig, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (apps, secrets): (Api<ConnectedApp>, Api<Secret>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    // existingSecrets labelled with their app's name: their changes are seen at once (unlabelled
    // ones are polled, see `desired::EXISTING_SECRET_POLL`).
    let labelled_external =
        watcher::Config::default().labels(&format!("{APP_LABEL},{MANAGED_BY_LABEL}!={MANAGER}"));
    let stop = shutdown.clone();
    let loop_ctx = ctx.clone();
    let controller = Controller::new(apps.clone(), watcher::Config::default().any_semantic());
    let cache = controller.store();
    ctx.set_apps(cache.clone());
    let running = controller
        // A change of one app (or its deletion) re-checks the apps it may hold a client ID or a
        // resource against; a second watch, because the controller's own only triggers the app itself.
        .watches(
            apps,
            watcher::Config::default().any_semantic(),
            move |changed: ConnectedApp| rivals(&cache, &changed),
        )
        .owns(secrets.clone(), owned)
        .watches(secrets, labelled_external, |secret: Secret| {
            let app = secret.labels().get(APP_LABEL).cloned();
            let ns = secret.namespace();
            app.zip(ns)
                .map(|(app, ns)| ObjectRef::<ConnectedApp>::new(&app).within(&ns))
        })
        .trigger_backoff(WatchBackoff::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let ctx = loop_ctx.clone();
            async move {
                match result {
                    Ok((obj, _)) => forget_failures(&ctx, &obj),
                    Err(e) => debug!(error = %e, "controller event"),
                }
            }
        });
    // kube-runtime's graceful shutdown waits for the reconciles in flight, but when it comes
    // before the first list of ConnectedApps has completed it waits forever (its runner waits for
    // the cache, which the stopped watches never fill): a leader stopped while starting kept
    // running until killed (tests/controlplane, scenario 5). Reconciles are idempotent and
    // survive being cut at any point (scenario 4), so after SHUTDOWN_GRACE the rest is dropped.
    tokio::select! {
        () = running => {}
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => warn!(grace = ?SHUTDOWN_GRACE, "the controller did not stop in time; stopping it"),
    }
}

/// How long a shutdown waits for the reconciles in flight (the chart's pods get 30 s).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
