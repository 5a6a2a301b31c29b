//! What makes the controller reconcile an app besides a change of the app itself (and of the
//! Secrets it owns, and the requeue a reconcile asks for): a change of another app claiming the
//! same client ID or resource ([`rivals`]), and a change of an existingSecret labelled with the
//! app's name ([`app_of_labelled_secret`]).

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::app_cache::AppCache;
use crate::labels::APP_LABEL;

/// The apps to look at again after `event` of the controller's ConnectedApp watch, once the
/// cache's index holds it: for a changed or deleted app, [`AppCache::rivals`]. None for the
/// events of a relist: it brings every app, and each is reconciled anyway.
pub(crate) fn rivals(
    cache: &AppCache,
    event: &Event<ConnectedApp>,
) -> Vec<ObjectRef<ConnectedApp>> {
    match event {
        Event::Apply(changed) | Event::Delete(changed) => cache.rivals(changed),
        Event::Init | Event::InitApply(_) | Event::InitDone => Vec::new(),
    }
}

/// The app an existingSecret labelled [`APP_LABEL`] belongs to (its namespace's app of that
/// name).
pub(super) fn app_of_labelled_secret(secret: &Secret) -> Option<ObjectRef<ConnectedApp>> {
    let app = secret.labels().get(APP_LABEL).cloned();
    let ns = secret.namespace();
    app.zip(ns)
        .map(|(app, ns)| ObjectRef::<ConnectedApp>::new(&app).within(&ns))
}
