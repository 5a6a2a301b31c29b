//! In-cluster clients: ConnectedApps watched from the Kubernetes API (read-only: list and watch
//! on `connectedapps.keyway.dev`; the issuer never reads Secrets). Client secrets are verified
//! against `status.clientSecrets[].hash`. An app whose spec is invalid is skipped (the operator
//! reports why on its status); the rest keep working.
//!
//! When several apps claim one client ID, the rule of `api::claims` (the operator's too) picks
//! the app the ID was issued to (its status records it), else the oldest (`creationTimestamp`,
//! then namespace and name); the others
//! are not clients, and each such conflict is logged once, with both apps' names, while it lasts.
//! Then, among the clients, the rule of `api::resources` settles each `spec.resource` claimed by
//! several apps in the same way (the operator's too): the app holding it (its status records it),
//! else the oldest; the others are not clients, each conflict logged once. With
//! `--resource-hosts` (`api::resource_hosts`, the operator's flag too), an app whose resource is
//! on a host bound to other namespaces is not a client, and neither takes nor blocks the resource,
//! whatever its status says; each such app is logged once.

use std::collections::{BTreeMap, BTreeSet};

use api::ConnectedApp;
use futures::TryStreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};

use crate::directory::clients::Client;
use crate::state::Shared;

fn key(app: &ConnectedApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

/// What two apps claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Claimed {
    /// A client ID (`api::claims`).
    ClientId,
    /// A resource (`api::resources`).
    Resource,
    /// A resource on a host bound to other namespaces (`api::resource_hosts`).
    NotPermitted,
}

/// A conflict: what was claimed, the client ID or resource, the app left without it, the app
/// holding it (for [`Claimed::NotPermitted`]: the binding refusing it, empty when the resource's
/// host cannot be read).
type Conflict = (Claimed, String, String, String);

/// The clients the watched apps make: one per client ID, the holder's (`api::claims`), and among
/// those one per resource, the holder's among the apps `hosts` permit it (`api::resources`).
/// `reported` holds the conflicts already logged; only new ones are logged, and it is left with
/// the current ones.
fn clients_of(
    apps: &BTreeMap<String, ConnectedApp>,
    reported: &mut BTreeSet<Conflict>,
    hosts: &api::resource_hosts::ResourceHosts,
) -> Vec<Client> {
    let (clients, id_conflicts) = api::claims::resolve(apps.values());
    let (winners, resource_conflicts, refused) = api::resources::resolve(clients, hosts);
    let mut current = BTreeSet::new();
    let conflicts = id_conflicts
        .iter()
        .map(|c| {
            (
                Claimed::ClientId,
                c.loser.client_id().unwrap_or_default(),
                c,
            )
        })
        .chain(resource_conflicts.iter().map(|c| {
            let resource = c.loser.spec.resource.clone().unwrap_or_default();
            (Claimed::Resource, resource, c)
        }));
    let conflicts = conflicts
        .map(|(claimed, what, c)| {
            (
                claimed,
                what,
                api::claims::display_name(c.loser),
                api::claims::display_name(c.holder),
            )
        })
        .chain(refused.into_iter().map(|(app, refusal)| {
            (
                Claimed::NotPermitted,
                refusal.resource,
                api::claims::display_name(app),
                refusal.binding.map(|b| b.to_string()).unwrap_or_default(),
            )
        }));
    for conflict in conflicts {
        if !reported.contains(&conflict) {
            match conflict.0 {
                Claimed::ClientId => tracing::warn!(
                    client_id = %conflict.1,
                    app = %conflict.2,
                    holder = %conflict.3,
                    "client ID held by another ConnectedApp; this app is not a client"
                ),
                Claimed::Resource => tracing::warn!(
                    resource = %conflict.1,
                    app = %conflict.2,
                    holder = %conflict.3,
                    "resource held by another ConnectedApp; this app is not a client"
                ),
                Claimed::NotPermitted => tracing::warn!(
                    resource = %conflict.1,
                    app = %conflict.2,
                    binding = %conflict.3,
                    "resource on a host bound to other namespaces (--resource-hosts), or without \
                     a readable host; this app is not a client"
                ),
            }
        }
        current.insert(conflict);
    }
    *reported = current;
    let mut clients = Vec::with_capacity(winners.len());
    for app in winners {
        match Client::from_connected_app(app, None) {
            Ok(c) => clients.push(c),
            Err(problems) => {
                tracing::warn!(app = %key(app), problems = %problems.join("; "), "invalid ConnectedApp skipped");
            }
        }
    }
    clients
}

fn publish(iss: &Shared, apps: &BTreeMap<String, ConnectedApp>, reported: &mut BTreeSet<Conflict>) {
    let clients = clients_of(apps, reported, iss.resource_hosts());
    tracing::info!(clients = clients.len(), "ConnectedApps updated");
    iss.clients().replace(clients);
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
    let mut reported = BTreeSet::new();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => match event {
                Event::Init => pending.clear(),
                Event::InitApply(app) => {
                    pending.insert(key(&app), app);
                }
                Event::InitDone => {
                    current = std::mem::take(&mut pending);
                    publish(&iss, &current, &mut reported);
                }
                Event::Apply(app) => {
                    current.insert(key(&app), app);
                    publish(&iss, &current, &mut reported);
                }
                Event::Delete(app) => {
                    current.remove(&key(&app));
                    publish(&iss, &current, &mut reported);
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "ConnectedApp watch error; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn app(ns: &str, name: &str, pinned: Option<&str>, created: &str) -> ConnectedApp {
        let mut value = serde_json::json!({
            "apiVersion": "keyway.dev/v1alpha1",
            "kind": "ConnectedApp",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"displayName": name, "grantTypes": ["client_credentials"]},
        });
        if let Some(id) = pinned {
            value["spec"]["clientID"] = id.into();
        }
        serde_json::from_value(value).unwrap()
    }

    fn table(apps: &[ConnectedApp], reported: &mut BTreeSet<Conflict>) -> Vec<Client> {
        table_bound(apps, reported, "")
    }

    /// [`table`] under the resource-host bindings `hosts` (`--resource-hosts`).
    fn table_bound(
        apps: &[ConnectedApp],
        reported: &mut BTreeSet<Conflict>,
        hosts: &str,
    ) -> Vec<Client> {
        let map = apps.iter().map(|a| (key(a), a.clone())).collect();
        let hosts = api::resource_hosts::ResourceHosts::parse([hosts]).unwrap();
        clients_of(&map, reported, &hosts)
    }

    #[test]
    fn the_first_claimant_is_the_client_and_the_conflict_is_remembered() {
        let old = app("z", "zeta", Some("shared"), "2026-01-01T00:00:00Z");
        let new = app("a", "alpha", Some("shared"), "2026-01-02T00:00:00Z");
        // Pins the default ID of an older app.
        let default = app("tools", "wiki", None, "2025-01-01T00:00:00Z");
        let squatter = app("a", "beta", Some("tools.wiki"), "2024-06-01T00:00:00Z");
        let mut reported = BTreeSet::new();
        let clients = table(
            &[new.clone(), old.clone(), default, squatter],
            &mut reported,
        );
        let names: BTreeMap<_, _> = clients
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(names.len(), 2);
        assert_eq!(names["shared"], "zeta");
        // The squatter was created first, but pins another namespace's ID: it comes last, the
        // default app holds its ID.
        assert_eq!(names["tools.wiki"], "wiki");
        assert!(reported.contains(&(
            Claimed::ClientId,
            "shared".into(),
            "a/alpha".into(),
            "z/zeta".into()
        )));
        assert!(reported.contains(&(
            Claimed::ClientId,
            "tools.wiki".into(),
            "a/beta".into(),
            "tools/wiki".into()
        )));
        // The holder goes away: the other claimant becomes the client, nothing is left reported.
        let clients = table(&[new], &mut reported);
        assert_eq!(clients.len(), 1);
        assert_eq!(
            (clients[0].id.as_str(), clients[0].name.as_str()),
            ("shared", "alpha")
        );
        assert!(reported.is_empty());
    }

    #[test]
    fn an_invalid_holder_keeps_the_id_from_the_other_claimant() {
        let mut old = app("z", "zeta", Some("shared"), "2026-01-01T00:00:00Z");
        old.spec.display_name = String::new();
        let new = app("a", "alpha", Some("shared"), "2026-01-02T00:00:00Z");
        let mut reported = BTreeSet::new();
        assert!(table(&[old, new], &mut reported).is_empty());
        assert_eq!(reported.len(), 1);
    }

    fn with_resource(mut app: ConnectedApp, resource: &str) -> ConnectedApp {
        app.spec.resource = Some(resource.into());
        app
    }

    #[test]
    fn one_client_per_resource_the_holder_first_then_the_oldest() {
        const R: &str = "https://tool.example.com/";
        let old = with_resource(app("z", "zeta", None, "2026-01-01T00:00:00Z"), R);
        let new = with_resource(app("a", "alpha", None, "2026-01-02T00:00:00Z"), R);
        // Another resource byte for byte (no trailing slash): no conflict.
        let near = with_resource(
            app("c", "near", None, "2026-01-03T00:00:00Z"),
            "https://tool.example.com",
        );
        let mut reported = BTreeSet::new();
        let clients = table(&[new.clone(), old.clone(), near.clone()], &mut reported);
        let ids: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["z.zeta", "c.near"]);
        let conflict = (
            Claimed::Resource,
            R.to_string(),
            "a/alpha".to_string(),
            "z/zeta".to_string(),
        );
        assert_eq!(reported, BTreeSet::from([conflict.clone()]));
        // The newer app holds it (its status says so, as the operator writes it): it keeps it.
        let mut holder = new.clone();
        holder.status = Some(
            serde_json::from_value(serde_json::json!({
                "clientID": "a.alpha",
                "resource": R,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Registered", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }],
            }))
            .unwrap(),
        );
        let clients = table(&[holder, old.clone()], &mut reported);
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].id, "a.alpha");
        // The holder goes away: the other claimant is the client, nothing is left reported.
        let clients = table(&[new], &mut reported);
        assert_eq!(clients[0].id, "a.alpha");
        assert!(reported.is_empty());
    }

    #[test]
    fn an_app_outside_the_binding_of_its_resource_host_is_not_a_client() {
        const R: &str = "https://tool.example.com/";
        let registered = |mut app: ConnectedApp| {
            let id = app.client_id().unwrap();
            app.status = Some(
                serde_json::from_value(serde_json::json!({
                    "clientID": id,
                    "resource": R,
                    "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Registered", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }],
                }))
                .unwrap(),
            );
            app
        };
        // The squatter is older and holds the resource (its status says so).
        let squatter = registered(with_resource(
            app("evil", "tool", None, "2025-01-01T00:00:00Z"),
            R,
        ));
        let owner = with_resource(app("tools", "tool", None, "2026-01-01T00:00:00Z"), R);
        let variant = with_resource(
            app("evil", "variant", None, "2024-01-01T00:00:00Z"),
            "https://TOOL.example.com:443/",
        );
        let all = [squatter, owner, variant];
        let mut reported = BTreeSet::new();
        // Without bindings: the squatter and the other spelling are clients, the owner is not.
        let ids =
            |clients: Vec<Client>| -> Vec<String> { clients.into_iter().map(|c| c.id).collect() };
        assert_eq!(
            ids(table(&all, &mut reported)),
            ["evil.tool", "evil.variant"]
        );
        // Bound to the owner's namespace: only the owner.
        let clients = table_bound(&all, &mut reported, "tool.example.com=tools");
        assert_eq!(ids(clients), ["tools.tool"]);
        let refused = |app: &str| {
            (
                Claimed::NotPermitted,
                if app == "evil/tool" {
                    R.to_string()
                } else {
                    "https://TOOL.example.com:443/".to_string()
                },
                app.to_string(),
                "tool.example.com=tools".to_string(),
            )
        };
        assert_eq!(
            reported,
            BTreeSet::from([refused("evil/tool"), refused("evil/variant")])
        );
    }
}
