//! One reconcile of one ConnectedApp: fetch what is observed, ask [`crate::plan`] what should
//! be, and apply only the differences. Idempotent: a reconcile with nothing to change makes no
//! write.
//!
//! - this file: the finalizer around it (`Apply` while the app lives, `Cleanup` once it is being
//!   deleted), the span and the metrics;
//! - `apply`: the steps while the app lives, in order: which plan (`conflicts` first, then
//!   the observed Secret), the status published before the Secret, the Secret (`secret`), the
//!   final status (`status`), the events (`events`);
//! - `cleanup`: what deleting the app removes.
//!
//! Order of writes for a new or rotated client secret: the status with the new hash first, then
//! the Secret, then the final status. The issuer therefore knows a secret before any sidecar can
//! read it, and the previous secret stays accepted until its grace period ends.

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
use tracing::{Instrument as _, info_span};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::Write;

/// Reconciles one ConnectedApp (wrapped in the finalizer), checking its client ID and resource
/// against the apps in the controller's cache.
pub(crate) async fn reconcile(app: Arc<ConnectedApp>, ctx: Arc<Context>) -> Result<Action> {
    let peers = ctx.cached_apps().unwrap_or_default();
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
        }
        ctx.metrics
            .reconciled(start.elapsed(), result.as_ref().err());
        result
    }
    .instrument(span)
    .await
}
