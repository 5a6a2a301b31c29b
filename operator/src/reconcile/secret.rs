//! Writes of the app's Secret while the app lives: create it, or replace it (with the
//! resourceVersion observed, so a concurrent change makes the write fail and the reconcile run
//! again), as the plan says. Its deletion is `cleanup`'s.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use tracing::info;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::MANAGER;
use crate::metrics::Write;
use crate::plan::SecretAction;

/// Carries out `action` on the Secret `name`, and counts the write.
pub(super) async fn write(
    secrets: &Api<Secret>,
    name: &str,
    action: &SecretAction,
    ctx: &Context,
) -> Result<()> {
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match action {
        SecretAction::None => {}
        SecretAction::Create(secret) => {
            secrets.create(&pp, secret).await.map_err(Error::Kube)?;
            ctx.metrics.write(Write::SecretCreate);
            info!(secret = %name, "created Secret");
        }
        SecretAction::Replace(secret) => {
            // Leave field ownership to the server (an update without managedFields keeps them).
            let mut secret = secret.clone();
            secret.metadata.managed_fields = None;
            let before = secret.metadata.resource_version.clone();
            secrets
                .replace(name, &pp, &secret)
                .await
                .map_err(Error::Kube)?;
            if let Some(ns) = secrets.namespace() {
                ctx.wrote_secret(ns, name, before);
            }
            ctx.metrics.write(Write::SecretReplace);
            info!(secret = %name, "updated Secret");
        }
    }
    Ok(())
}
