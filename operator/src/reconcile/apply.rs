//! The reconcile of a live app (the finalizer's `Apply`): which plan, then its writes in order —
//! the status published before the Secret, the Secret, the final status, the events — each only
//! when it changes something.

use std::sync::Arc;

use api::{ConnectedApp, ConnectedAppStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use tracing::debug;

use super::{conflicts, events, secret, status};
use crate::context::Context;
use crate::error::{Error, Result};

/// Reconciles a live app: plans (conflicts among `peers` first, else from the observed Secret)
/// and writes what differs.
pub(super) async fn apply(
    app: Arc<ConnectedApp>,
    ctx: &Context,
    peers: &[Arc<ConnectedApp>],
) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let name = app.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let apps: Api<ConnectedApp> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = app.secret_name();
    let plan = match conflicts::plan_among(&app, ctx, peers) {
        // Not a client: its Secret is neither read nor written.
        Some(plan) => plan,
        None => {
            let observed = secrets.get_opt(&secret_name).await.map_err(Error::Kube)?;
            ctx.plan(&app, observed.as_ref())
        }
    };

    let mut published: Option<&ConnectedAppStatus> = app.status.as_ref();
    if let Some(early) = &plan.status_before_secret {
        status::publish(&apps, &name, early, ctx).await?;
        published = Some(early);
    }
    secret::write(&secrets, &secret_name, &plan.secret, ctx).await?;
    if published != Some(&plan.status) {
        status::publish(&apps, &name, &plan.status, ctx).await?;
    }
    events::record(&app, &plan.events, ctx).await;
    debug!(requeue_after = ?plan.requeue_after, "reconciled");
    Ok(Action::requeue(plan.requeue_after))
}
