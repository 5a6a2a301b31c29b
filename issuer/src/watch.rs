//! In-cluster clients: ConnectedApps watched from the Kubernetes API (read-only: list and watch
//! on `connectedapps.keyway.dev`; the issuer never reads Secrets). Client secrets are verified
//! against `status.clientSecrets[].hash`. An app whose spec is invalid is skipped (the operator
//! reports why on its status); the rest keep working.

use std::collections::BTreeMap;

use api::ConnectedApp;
use futures::TryStreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};

use crate::clients::Client;
use crate::server::Shared;

fn key(app: &ConnectedApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

fn publish(iss: &Shared, apps: &BTreeMap<String, ConnectedApp>) {
    let mut clients = Vec::with_capacity(apps.len());
    for (k, app) in apps {
        match Client::from_connected_app(app, None) {
            Ok(c) if clients.iter().any(|o: &Client| o.id == c.id) => {
                tracing::warn!(app = %k, client_id = %c.id, "client ID used twice; skipped");
            }
            Ok(c) => clients.push(c),
            Err(problems) => {
                tracing::warn!(app = %k, problems = %problems.join("; "), "invalid ConnectedApp skipped");
            }
        }
    }
    tracing::info!(clients = clients.len(), "ConnectedApps updated");
    iss.clients.replace(clients);
}

/// Watches ConnectedApps (all namespaces, or one) and keeps the issuer's clients in step.
/// Returns only when the watch stream ends (it retries with backoff on errors).
pub async fn run(iss: Shared, client: kube::Client, namespace: Option<String>) {
    let api: Api<ConnectedApp> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut current: BTreeMap<String, ConnectedApp> = BTreeMap::new();
    let mut pending: BTreeMap<String, ConnectedApp> = BTreeMap::new();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => match event {
                Event::Init => pending.clear(),
                Event::InitApply(app) => {
                    pending.insert(key(&app), app);
                }
                Event::InitDone => {
                    current = std::mem::take(&mut pending);
                    publish(&iss, &current);
                }
                Event::Apply(app) => {
                    current.insert(key(&app), app);
                    publish(&iss, &current);
                }
                Event::Delete(app) => {
                    current.remove(&key(&app));
                    publish(&iss, &current);
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "ConnectedApp watch error; retrying"),
        }
    }
}
