//! Which Secrets are an app's own: the Secret keyway writes carries a controller owner reference
//! to its app (so that deleting the app deletes it), and keyway writes or deletes a Secret only
//! when it carries one with the app's UID.

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

/// Whether the Secret is controlled by this app (an owner reference with `controller: true` and
/// the app's UID).
pub(crate) fn is_ours(secret: &Secret, app: &ConnectedApp) -> bool {
    let Some(uid) = app.meta().uid.as_deref() else {
        return false;
    };
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The controller owner reference of a Secret to its app (deleting the app deletes the Secret).
pub(super) fn owner_reference(app: &ConnectedApp) -> Option<OwnerReference> {
    let mut owner = app.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}
