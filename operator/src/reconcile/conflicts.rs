//! Client IDs and resources among apps, decided before anything else.
//!
//! The app's client ID is looked up among the other ConnectedApps in the controller's cache (no
//! API call); when another app holds it (`api::claims`), the app gets
//! `Ready=False`/`ClientIDConflict` and nothing else is written. Resources likewise: when the
//! app's `spec.resource` is on a host bound to other namespaces (`api::resource_hosts`,
//! `--resource-hosts`), the app gets `Ready=False`/`ResourceNotPermitted`; when another app holds
//! it (`api::resources`, among the apps the bindings permit it), `Ready=False`/`ResourceConflict`;
//! and nothing else is written. The plans are `crate::plan`'s (`plan/conflicts.rs`); every change
//! of an app triggers the apps claiming the same ID or resource and those in conflict
//! (`controller/triggers.rs`), so a loser is looked at again when the holder changes or goes
//! away.

use std::sync::Arc;

use api::ConnectedApp;

use crate::context::Context;
use crate::plan::{self, Plan};

/// The plan of an app that is not a client because another of `peers` holds its client ID or
/// its resource, or because its resource is on a host bound to other namespaces; `None` when it
/// may be a client.
pub(super) fn plan_among(
    app: &ConnectedApp,
    ctx: &Context,
    peers: &[Arc<ConnectedApp>],
) -> Option<Plan> {
    let peer_apps = || peers.iter().map(AsRef::as_ref);
    if let Some(holder) = api::claims::holder_before(app, peer_apps()) {
        // Not this app's client ID.
        Some(plan::conflict(app, holder, &ctx.plan, ctx.now()))
    } else if let Some(refusal) = ctx.plan.resource_hosts.refusal(app) {
        // A resource on a host bound to other namespaces: not a client either.
        Some(plan::resource_not_permitted(
            app,
            &refusal,
            &ctx.plan,
            ctx.now(),
        ))
    } else {
        // Not this app's resource: not a client either.
        api::resources::holder_before(app, peer_apps(), &ctx.plan.resource_hosts)
            .map(|holder| plan::resource_conflict(app, holder, &ctx.plan, ctx.now()))
    }
}
