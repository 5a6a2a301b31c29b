//! What makes the controller reconcile an app besides a change of the app itself (and of the
//! Secrets it owns, and the requeue a reconcile asks for): a change of another app claiming the
//! same client ID or resource ([`rivals`]), and a change of an existingSecret labelled with the
//! app's name ([`app_of_labelled_secret`]).

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;

use crate::app_cache::AppCache;
use crate::labels::APP_LABEL;

/// The apps to look at again when `changed` changed or went away: those claiming the same client
/// ID or resource, and those in conflict (`changed` may have held their ID or resource before the
/// change). Tested with the reconcile scenarios (`reconcile/tests.rs`) and `app_cache`'s tests.
pub(crate) fn rivals(cache: &AppCache, changed: &ConnectedApp) -> Vec<ObjectRef<ConnectedApp>> {
    cache.rivals(changed)
}

/// The app an existingSecret labelled [`APP_LABEL`] belongs to (its namespace's app of that
/// name).
pub(super) fn app_of_labelled_secret(secret: &Secret) -> Option<ObjectRef<ConnectedApp>> {
    let app = secret.labels().get(APP_LABEL).cloned();
    let ns = secret.namespace();
    app.zip(ns)
        .map(|(app, ns)| ObjectRef::<ConnectedApp>::new(&app).within(&ns))
}
