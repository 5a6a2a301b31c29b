//! One reconcile of one ConnectedApp: fetch what is observed, ask [`crate::plan`] what should
//! be, and apply only the differences. Idempotent: a reconcile with nothing to change makes no
//! write.
//!
//! - this file: the finalizer around it (`Apply` while the app lives, `Cleanup` once it is being
//!   deleted), the span and the metrics, and the check that the cached app is not a version the
//!   controller's own write already replaced;
//! - `apply`: the steps while the app lives, in order: which plan (`conflicts` first, then
//!   the observed Secret), the status published before the Secret, the Secret (`secret`), the
//!   final status (`status`), the events (`events`). The Secret is observed in the controller's
//!   cache of the Secrets it owns and read from the API server only when the cache cannot say
//!   (not listed yet, behind an own write, or no owned Secret of that name for an app that
//!   already has a status); a new app's Secret that the cache does not hold is created without a
//!   read, and a 409 (a Secret of that name that is not the controller's) makes it read and plan
//!   again;
//! - `cleanup`: what deleting the app removes.
//!
//! Order of writes for a rotated or replaced client secret of an app that has a Ready condition:
//! the status with the new hash first, then the Secret, then the final status if it differs. The
//! issuer therefore knows a secret before any sidecar can read it, and the previous secret stays
//! accepted until its grace period ends. A new app has no sidecar yet: its Secret is written
//! first and its one status, Ready with the hash, right after, so `Ready` never shows before the
//! Secret exists; should the Secret write fail, the status says so instead (`Ready=False`,
//! `Provisioning`, with the API server's message).
//!
//! Each write is sent only when it changes something, and each event only for a transition, so
//! a new app costs four writes (finalizer, Secret, status, `Registered`) and a settled one none.
//! A reconcile whose cached app is a version the controller's own write has already replaced is
//! skipped: the watch event of that write brings the next one (planning from the old version
//! would repeat the write and its event).

mod apply;
mod cleanup;
mod conflicts;
mod events;
mod secret;
mod status;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use api::{ConnectedApp, FINALIZER};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource as _, ResourceExt as _};
use tracing::{Instrument as _, debug, info_span};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::Write;

/// Reconciles one ConnectedApp (wrapped in the finalizer), checking its client ID and resource
/// against the apps in the controller's cache.
pub(crate) async fn reconcile(app: Arc<ConnectedApp>, ctx: Arc<Context>) -> Result<Action> {
    if ctx.replaced_by_own_write(&app) {
        // The cache is behind this controller's own write: the watch event of that write brings
        // a reconcile of the current version (planning from this one would repeat the write).
        debug!(namespace = app.namespace().as_deref().unwrap_or(""), app = %app.name_any(), "cache behind an own write; waiting for it");
        return Ok(Action::await_change());
    }
    let peers = ctx.peers_of(&app).unwrap_or_default();
    reconcile_among(app, ctx, &peers).await
}

/// Reconciles one ConnectedApp, checking its client ID and resource against `peers` (every other
/// app that could claim them).
pub(crate) async fn reconcile_among(
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
        let before = app.clone();
        let result = finalizer(&apps, FINALIZER, app, |event| async {
            match event {
                FinalizerEvent::Apply(app) => apply::apply(app, &ctx, peers).await,
                FinalizerEvent::Cleanup(app) => cleanup::cleanup(app, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        if result.is_ok() && has_finalizer == deleting {
            // The finalizer helper added (not yet present) or removed (deleting) it.
            ctx.metrics.write(Write::Finalizer);
            ctx.wrote(&before, before.resource_version(), None);
        }
        ctx.metrics
            .reconciled(start.elapsed(), result.as_ref().err());
        result
    }
    .instrument(span)
    .await
}
