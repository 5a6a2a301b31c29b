//! The reconcile of a live app (the finalizer's `Apply`): which plan (from the app's Secret as the
//! controller's cache of owned Secrets holds it, else as read), then its writes in order —
//! the status published before the Secret, the Secret, the final status, the events — each only
//! when it changes something.

use std::sync::Arc;

use api::{CONDITION_READY, ConnectedApp, ConnectedAppStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use tracing::debug;

use super::{conflicts, events, secret, status};
use crate::context::{CachedSecret, Context};
use crate::error::{Error, Result};
use crate::plan::{self, SecretAction};

/// Reconciles a live app: plans (conflicts among `peers` first, else from the observed Secret)
/// and writes what differs.
pub(super) async fn apply(
    app: Arc<ConnectedApp>,
    ctx: &Context,
    peers: &[Arc<ConnectedApp>],
) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let apps: Api<ConnectedApp> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = app.secret_name();
    let (mut plan, mut guessed) = match conflicts::plan_among(&app, ctx, peers) {
        // Not a client: its Secret is neither read nor written.
        Some(plan) => (plan, false),
        None => match ctx.cached_secret(&ns, &secret_name).await {
            CachedSecret::Held(cached) => (ctx.plan(&app, Some(&cached)), false),
            CachedSecret::NotOwned if app.status.is_none() => {
                // A new app whose Secret the controller does not hold: there is none, unless one
                // of that name is not the controller's. The create finds out (409), without a
                // read first.
                let plan = ctx.plan(&app, None);
                match (&plan.secret, &plan.status_before_secret) {
                    (SecretAction::Create(_), None) => (plan, true),
                    _ => (
                        read_and_plan(&app, &secrets, &secret_name, ctx).await?,
                        false,
                    ),
                }
            }
            CachedSecret::NotOwned | CachedSecret::Unknown => (
                read_and_plan(&app, &secrets, &secret_name, ctx).await?,
                false,
            ),
        },
    };

    let mut statuses = StatusWriter {
        apps: &apps,
        app: &app,
        published: app.status.clone(),
        version: app.resource_version(),
    };
    loop {
        if let Some(early) = &plan.status_before_secret {
            statuses.publish(early, ctx).await?;
        }
        match secret::write(&secrets, &secret_name, &plan.secret, ctx).await {
            Ok(()) => break,
            Err(Error::Kube(kube::Error::Api(status))) if guessed && status.code == 409 => {
                // A Secret of that name exists after all: plan from it.
                debug!(secret = %secret_name, "Secret exists though not cached; reading it");
                guessed = false;
                plan = read_and_plan(&app, &secrets, &secret_name, ctx).await?;
            }
            Err(e) => {
                let new_app = statuses
                    .published
                    .as_ref()
                    .is_none_or(|s| !s.conditions.iter().any(|c| c.type_ == CONDITION_READY));
                if new_app {
                    // Say why in status: the app has no condition yet.
                    let why = plan::provisioning(&app, &ctx.plan, ctx.now(), &describe(&e));
                    if statuses.publish(&why.status, ctx).await.is_ok() {
                        events::record(&app, &why.events, ctx).await;
                    }
                }
                return Err(e);
            }
        }
    }
    statuses.publish(&plan.status, ctx).await?;
    events::record(&app, &plan.events, ctx).await;
    debug!(requeue_after = ?plan.requeue_after, "reconciled");
    Ok(Action::requeue(plan.requeue_after))
}

/// The plan for `app` from its Secret as the API server has it.
async fn read_and_plan(
    app: &ConnectedApp,
    secrets: &Api<Secret>,
    name: &str,
    ctx: &Context,
) -> Result<plan::Plan> {
    let observed = secrets.get_opt(name).await.map_err(Error::Kube)?;
    Ok(ctx.plan(app, observed.as_ref()))
}

/// The app's status writes of one reconcile: each only when it differs from the status last
/// published, each recorded in the context as replacing the app's version before it.
struct StatusWriter<'a> {
    apps: &'a Api<ConnectedApp>,
    app: &'a ConnectedApp,
    published: Option<ConnectedAppStatus>,
    version: Option<String>,
}

impl StatusWriter<'_> {
    async fn publish(&mut self, status: &ConnectedAppStatus, ctx: &Context) -> Result<()> {
        if self.published.as_ref() == Some(status) {
            return Ok(());
        }
        let name = self.app.name_any();
        let after = status::publish(self.apps, &name, status, ctx).await?;
        ctx.wrote(self.app, self.version.take(), after.as_deref());
        self.version = after;
        self.published = Some(status.clone());
        Ok(())
    }
}

/// What went wrong, for a condition message: the API server's message when it sent one.
fn describe(error: &Error) -> String {
    match error {
        Error::Kube(kube::Error::Api(status)) if !status.message.is_empty() => {
            status.message.clone()
        }
        other => other.to_string(),
    }
}
