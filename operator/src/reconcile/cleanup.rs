//! The reconcile of an app being deleted (the finalizer's `Cleanup`): its own Secret (never an
//! existingSecret, never one it does not own) is deleted, then the finalizer goes.

use std::sync::Arc;

use api::ConnectedApp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};
use tracing::info;

use super::events;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::Write;
use crate::plan;

/// Deletes the app's own Secret and records `Unregistered`.
pub(super) async fn cleanup(app: Arc<ConnectedApp>, ctx: &Context) -> Result<Action> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    if app.spec.secret.existing_secret.is_none() {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let name = app.secret_name();
        if let Some(secret) = secrets.get_opt(&name).await.map_err(Error::Kube)?
            && plan::is_ours(&secret, &app)
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
    events::unregistered(&app, ctx).await;
    Ok(Action::await_change())
}
