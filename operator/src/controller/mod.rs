//! The ConnectedApp controller (kube-runtime's `Controller`): what it watches, what triggers a
//! reconcile (`triggers`), how it retries (`backoff`), how many apps it reconciles at once, and
//! how it stops. The reconcile itself is `crate::reconcile`'s.

pub(crate) mod backoff;
pub(crate) mod triggers;

use std::sync::Arc;
use std::time::Duration;

use api::ConnectedApp;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::controller::Controller;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::backoff::{WatchBackoff, error_policy};
use crate::app_cache;
use crate::config::ControllerConfig;
use crate::context::Context;
use crate::labels::{APP_LABEL, MANAGED_BY_LABEL, MANAGER};
use crate::reconcile::reconcile;

/// How long a shutdown waits for the reconciles in flight (the chart's pods get 30 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the controller until `shutdown` is cancelled.
pub(crate) async fn run(ctx: Arc<Context>, config: &ControllerConfig, shutdown: CancellationToken) {
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
    // ones are polled, see `EXISTING_SECRET_POLL` in `plan/existing_secret.rs`).
    let labelled_external =
        watcher::Config::default().labels(&format!("{APP_LABEL},{MANAGED_BY_LABEL}!={MANAGER}"));
    let stop = shutdown.clone();
    let loop_ctx = ctx.clone();
    // The controller's own watch of ConnectedApps, written into the cache and its index of
    // claims in one step (`app_cache`), as `Controller::new` would write only the store.
    // A change of one app (or its deletion) also re-checks the apps it may hold a client ID or a
    // resource against, from the same watch, once the index has taken the change in.
    let (cache, mut indexer) = app_cache::new();
    let (recheck, rechecks) = futures::channel::mpsc::unbounded();
    let rivals_of = cache.clone();
    let own = watcher(apps, watcher::Config::default().any_semantic())
        .inspect_ok(move |event| {
            indexer.apply(event);
            for rival in triggers::rivals(&rivals_of, event) {
                // Unbounded: the receiver lives as long as the controller.
                let _ = recheck.unbounded_send(rival);
            }
        })
        .applied_objects();
    let controller = Controller::for_stream(own, cache.store());
    ctx.set_apps(cache);
    // The Secrets it owns, kept in a cache the reconciles read instead of the API server
    // (`Context::cached_secret`); each change also reconciles the Secret's app.
    let (secret_store, secret_writer) = reflector::store();
    let owned_secrets = reflector(secret_writer, watcher(secrets.clone(), owned)).touched_objects();
    ctx.set_secrets(secret_store);
    let running = controller
        .reconcile_on(rechecks)
        .owns_stream(owned_secrets)
        .watches(secrets, labelled_external, |secret: Secret| {
            triggers::app_of_labelled_secret(&secret)
        })
        .trigger_backoff(WatchBackoff::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let ctx = loop_ctx.clone();
            async move {
                match result {
                    Ok((obj, _)) => ctx.forget_failures(&obj),
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
