//! Status writes: server-side apply of the `status` subresource with the operator's field
//! manager (forced: the status is the operator's alone).

use api::{ConnectedApp, ConnectedAppStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource as _, ResourceExt as _};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::MANAGER;
use crate::metrics::Write;

/// Applies `status` to the app `name`, and counts the write. Returns the app's resourceVersion
/// after the write.
pub(super) async fn publish(
    apps: &Api<ConnectedApp>,
    name: &str,
    status: &ConnectedAppStatus,
    ctx: &Context,
) -> Result<Option<String>> {
    let body = serde_json::json!({
        "apiVersion": ConnectedApp::api_version(&()),
        "kind": ConnectedApp::kind(&()),
        "status": status,
    });
    let written = apps
        .patch_status(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::Kube)?;
    ctx.metrics.write(Write::Status);
    Ok(written.resource_version())
}
