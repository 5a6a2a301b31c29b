//! Discovery: `/version`, `/api`, `/apis`, an API group, and a group version's resource list,
//! as kube clients read them.

use serde_json::{Value, json};

use super::routes::not_found_path;
use crate::error::Result;
use crate::store::Store;

fn discovery_groups(store: &Store) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in store.resources() {
        if rt.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, versions)) => {
                if !versions.contains(&rt.version) {
                    versions.push(rt.version.clone());
                }
            }
            None => groups.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    groups
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

pub(super) fn resource_list(store: &Store, group: &str, version: &str) -> Result<Value> {
    let mut resources = Vec::new();
    for rt in store
        .resources()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced(),
            "kind": rt.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": rt.short_names,
        }));
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced(),
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return Err(not_found_path());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `/version`.
pub(super) fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-keyway-fake-apiserver",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "",
        "compiler": "rustc", "platform": "linux/amd64"
    })
}

/// `/api`: the core group's versions, and the address clients reach the server at.
pub(super) fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
    })
}

/// `/apis`: every group but the core one.
pub(super) fn groups(store: &Store) -> Value {
    let groups: Vec<Value> = discovery_groups(store)
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub(super) fn group(store: &Store, name: &str) -> Result<Value> {
    let groups = discovery_groups(store);
    let (_, versions) = groups
        .iter()
        .find(|(g, _)| *g == name)
        .ok_or_else(not_found_path)?;
    let mut group = group_json(name, versions);
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Ok(group)
}
