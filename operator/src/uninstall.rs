//! `keyway-operator remove-finalizers`: what `helm uninstall` runs (the chart's post-delete hook)
//! so that no ConnectedApp keeps the finalizer `keyway.dev/cleanup` once no controller is left to
//! remove it. Without it, deleting an app, or its namespace, after the uninstall would hang.
//!
//! It waits until no controller holds the leader Lease (a stopping controller releases it; an
//! abandoned one expires), so that no controller re-adds the finalizer behind it, then removes
//! the finalizer from every ConnectedApp it can see, each with a `test`-guarded JSON patch. An
//! app being deleted then goes at once; its Secret follows through its owner reference
//! (Kubernetes' garbage collector), which is what the finalizer would have done.

use std::time::Duration;

use api::{ConnectedApp, FINALIZER};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

/// Flags of `keyway-operator remove-finalizers`.
#[derive(clap::Args, Debug)]
pub(crate) struct RemoveFinalizersArgs {
    /// Only ConnectedApps in this namespace (the controller's --watch-namespace); default: all.
    #[arg(long, env = "KEYWAY_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Namespace of the controller's leader Lease.
    #[arg(long, env = "KEYWAY_LEASE_NAMESPACE", default_value = "keyway-system")]
    lease_namespace: String,
    /// Name of the controller's leader Lease.
    #[arg(long, env = "KEYWAY_LEASE_NAME", default_value = "keyway-operator")]
    lease_name: String,
    /// How long to wait for a running controller to release the Lease (or for it to expire).
    #[arg(long, env = "KEYWAY_LEASE_WAIT", default_value = "90s", value_parser = contract::duration::parse_flag)]
    wait: Duration,
    /// Log format: text or json.
    #[arg(long, env = "KEYWAY_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: String,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "KEYWAY_LOG", default_value = "info")]
    pub(crate) log: String,
}

impl RemoveFinalizersArgs {
    /// Every problem with the flags (empty when valid).
    pub(crate) fn problems(&self) -> Vec<String> {
        if ["json", "text"].contains(&self.log_format.as_str()) {
            Vec::new()
        } else {
            vec![format!(
                "--log-format: {:?} is not json or text",
                self.log_format
            )]
        }
    }

    /// The run these flags describe.
    pub(crate) fn remove_finalizers(&self) -> RemoveFinalizers {
        RemoveFinalizers {
            namespace: self.watch_namespace.clone().filter(|n| !n.is_empty()),
            lease_namespace: self.lease_namespace.clone(),
            lease_name: self.lease_name.clone(),
            wait: self.wait,
            poll: Duration::from_secs(1),
        }
    }
}

/// Runs `keyway-operator remove-finalizers` with a client from the environment.
pub(crate) async fn run(args: RemoveFinalizers) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = crate::kube_client::connect(crate::kube_client::Part::RemoveFinalizers)
        .await
        .map_err(Error::Kube)?;
    let removed = args.run(client).await?;
    tracing::info!(removed, "no ConnectedApp keeps the finalizer {FINALIZER}");
    Ok(())
}

/// Where the controller's Lease is and how long to wait for it to be free.
#[derive(Clone, Debug)]
pub struct RemoveFinalizers {
    /// Only ConnectedApps in this namespace (the controller's `--watch-namespace`); `None`: all.
    pub namespace: Option<String>,
    /// Namespace of the controller's leader Lease.
    pub lease_namespace: String,
    /// Name of the controller's leader Lease.
    pub lease_name: String,
    /// How long to wait for the Lease to be released or to expire.
    pub wait: Duration,
    /// How often to look at the Lease meanwhile.
    pub poll: Duration,
}

/// Who holds the Lease at `now`: `None` when nobody does (released, expired, or no Lease).
fn holder(lease: Option<&Lease>, now: Timestamp) -> Option<String> {
    let spec = lease?.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    (renewed + duration > now).then_some(holder)
}

impl RemoveFinalizers {
    /// Waits for the Lease to be free, then removes the finalizer everywhere; returns how many
    /// apps it was removed from. Fails when a controller still holds the Lease after `wait`.
    pub async fn run(&self, client: Client) -> Result<usize> {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &self.lease_namespace);
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let lease = leases
                .get_opt(&self.lease_name)
                .await
                .map_err(Error::Kube)?;
            let Some(holder) = holder(lease.as_ref(), Timestamp::now()) else {
                break;
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::StillLeading {
                    lease: format!("{}/{}", self.lease_namespace, self.lease_name),
                    holder,
                });
            }
            tracing::info!(%holder, "waiting for the controller to release its lease");
            tokio::time::sleep(self.poll).await;
        }
        let apps: Api<ConnectedApp> = match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut removed = 0;
        for app in apps
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
        {
            let finalizers = app.finalizers().to_vec();
            if !finalizers.iter().any(|f| f == FINALIZER) {
                continue;
            }
            let kept: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
            let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
                {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                {"op": "replace", "path": "/metadata/finalizers", "value": kept},
            ]))
            .map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
            let namespace = app.namespace().unwrap_or_default();
            let name = app.name_any();
            match Api::<ConnectedApp>::namespaced(client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(%namespace, %name, "removed the finalizer {FINALIZER}");
                    removed += 1;
                }
                // Gone meanwhile, or its finalizers changed: either way not ours to force.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => {
                    tracing::info!(%namespace, %name, code = s.code, "left alone (changed meanwhile)");
                }
                Err(e) => return Err(Error::Kube(e)),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed: i64, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_lease_is_held_until_released_or_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(holder(None, now), None);
        assert_eq!(
            holder(Some(&lease(Some("a"), 990, 15)), now).as_deref(),
            Some("a")
        );
        assert_eq!(
            holder(Some(&lease(Some("a"), 980, 15)), now),
            None,
            "expired"
        );
        assert_eq!(holder(Some(&lease(None, 999, 15)), now), None, "released");
        assert_eq!(
            holder(Some(&lease(Some(""), 999, 15)), now),
            None,
            "released"
        );
    }
}
