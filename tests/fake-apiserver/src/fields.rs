//! Field ownership for server-side apply: field sets in the `FieldsV1` format of
//! `metadata.managedFields`, conflict detection between managers, and the merge of an applied
//! configuration into the live object ("Server-Side Apply" in the Kubernetes documentation).
//!
//! This is a faithful but simplified model: a field set is the set of leaf paths of a
//! configuration; lists with a merge key (built-in types only, see [`crate::patch::merge_key`])
//! are associative (`k:{…}` path elements), `finalizers` is a set (`v:…`), every other list and
//! every list of a custom resource is atomic.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::merge_key;

/// One path element, spelled as in `FieldsV1`: `f:name`, `k:{"name":"x"}` or `v:"x"`.
pub(crate) type Path = Vec<String>;

/// A set of owned leaf paths.
pub(crate) type FieldSet = BTreeSet<Path>;

/// Metadata fields the server owns, never tracked in field sets.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `status` (for resources with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// The whole object (resources without a status subresource).
    Whole,
}

/// The leaf paths of `object` restricted to `part`.
pub(crate) fn field_set(object: &Value, part: Part, custom: bool) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = object.as_object() else {
        return set;
    };
    for (key, value) in map {
        if key == "apiVersion" || key == "kind" {
            continue;
        }
        let included = match part {
            Part::Main => key != "status",
            Part::Status => key == "status",
            Part::Whole => true,
        };
        if !included {
            continue;
        }
        let mut path = vec![format!("f:{key}")];
        if key == "metadata" {
            if let Some(meta) = value.as_object() {
                for (mk, mv) in meta {
                    if SYSTEM_METADATA.contains(&mk.as_str()) {
                        continue;
                    }
                    let mut p = path.clone();
                    p.push(format!("f:{mk}"));
                    collect(mv, mk, &mut p, custom, &mut set);
                }
            }
            continue;
        }
        collect(value, key, &mut path, custom, &mut set);
    }
    set
}

fn collect(value: &Value, field: &str, path: &mut Path, custom: bool, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(format!("f:{k}"));
                collect(v, k, path, custom, set);
                path.pop();
            }
        }
        Value::Array(items) if !custom && field == "finalizers" => {
            if items.is_empty() {
                set.insert(path.clone());
            }
            for item in items {
                path.push(format!("v:{item}"));
                set.insert(path.clone());
                path.pop();
            }
        }
        Value::Array(items) if !custom && items.iter().all(Value::is_object) => {
            match merge_key(field, items).filter(|k| items.iter().all(|i| i.get(*k).is_some())) {
                Some(key) if !items.is_empty() => {
                    for item in items {
                        let id = item.get(key).cloned().unwrap_or(Value::Null);
                        path.push(format!("k:{}", json!({ key: id })));
                        collect(item, "", path, custom, set);
                        path.pop();
                    }
                }
                _ => {
                    set.insert(path.clone());
                }
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

/// The value at a path, if present.
pub(crate) fn get_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for segment in path {
        current = step(current, segment)?;
    }
    Some(current)
}

fn step<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    if let Some(field) = segment.strip_prefix("f:") {
        value.as_object()?.get(field)
    } else if let Some(key) = segment.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        value
            .as_array()?
            .iter()
            .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
    } else if let Some(item) = segment.strip_prefix("v:") {
        let item: Value = serde_json::from_str(item).ok()?;
        value.as_array()?.iter().find(|i| **i == item)
    } else {
        None
    }
}

/// Removes the value at a path (a map entry or a list element); a no-op when absent.
pub(crate) fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for segment in parents {
        let next = if let Some(field) = segment.strip_prefix("f:") {
            current.as_object_mut().and_then(|m| m.get_mut(field))
        } else if let Some(key) = segment.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            current.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        } else {
            None
        };
        let Some(next) = next else { return };
        current = next;
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(map) = current.as_object_mut() {
            map.remove(field);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(key), Some(items)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            current.as_array_mut(),
        ) {
            items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    } else if let Some(item) = last.strip_prefix("v:")
        && let (Ok(item), Some(items)) =
            (serde_json::from_str::<Value>(item), current.as_array_mut())
    {
        items.retain(|i| *i != item);
    }
}

/// Whether one path is a prefix of the other (they address overlapping values).
pub(crate) fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// `.spec.containers[name="app"].image`, the form the real server uses in conflict messages.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(f) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = segment.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push('[');
            out.push_str(&parts.join(","));
            out.push(']');
        } else if let Some(v) = segment.strip_prefix("v:") {
            out.push('[');
            out.push_str(v);
            out.push(']');
        }
    }
    out
}

/// Renders a field set as a `FieldsV1` tree.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for (i, segment) in path.iter().enumerate() {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(child) = entry else { break };
            if segment.starts_with("k:") && i + 1 < path.len() {
                child
                    .entry(".")
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            node = child;
        }
    }
    Value::Object(root)
}

/// Parses a `FieldsV1` tree back into leaf paths.
pub(crate) fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    walk(tree, &mut path, &mut set);
    set
}

fn walk(node: &Value, path: &mut Path, set: &mut FieldSet) {
    let children: Vec<(&String, &Value)> = node
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.as_str() != ".").collect())
        .unwrap_or_default();
    if children.is_empty() {
        if !path.is_empty() {
            set.insert(path.clone());
        }
        return;
    }
    for (k, v) in children {
        path.push(k.clone());
        walk(v, path, set);
        path.pop();
    }
}

/// Merges an applied configuration into the live object: maps recursively, associative lists by
/// key, `finalizers` as a set, everything else replaced.
pub(crate) fn merge_applied(live: &mut Value, applied: &Value, field: &str, custom: bool) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            for (k, v) in applied_map {
                match live_map.get_mut(k) {
                    Some(existing) => merge_applied(existing, v, k, custom),
                    None => {
                        live_map.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(live_items), Value::Array(applied_items)) if !custom => {
            if field == "finalizers" {
                for item in applied_items {
                    if !live_items.contains(item) {
                        live_items.push(item.clone());
                    }
                }
                return;
            }
            let keyed = applied_items.iter().all(Value::is_object)
                && live_items.iter().all(Value::is_object);
            let key = if keyed {
                merge_key(field, applied_items)
            } else {
                None
            };
            match key {
                Some(key) if applied_items.iter().all(|i| i.get(key).is_some()) => {
                    for item in applied_items {
                        let id = item.get(key);
                        match live_items.iter_mut().find(|l| l.get(key) == id) {
                            Some(existing) => merge_applied(existing, item, "", custom),
                            None => live_items.push(item.clone()),
                        }
                    }
                }
                _ => *live_items = applied_items.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "app", "image": "i"}], "tolerations": [{"k": 1}]},
            "status": {"phase": "Running"}
        });
        let set = field_set(&object, Part::Main, false);
        assert!(set.contains(&vec!["f:metadata".into(), "f:labels".into(), "f:a".into()]));
        assert!(set.contains(&vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"app\"}".into(),
            "f:image".into()
        ]));
        assert!(set.contains(&vec!["f:spec".into(), "f:tolerations".into()]));
        assert!(!set.iter().any(|p| p[0] == "f:status"));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn remove_at_removes_keyed_elements_and_fields() {
        let mut object = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "x": 1}});
        remove_at(
            &mut object,
            &[
                "f:spec".into(),
                "f:containers".into(),
                "k:{\"name\":\"a\"}".into(),
            ],
        );
        remove_at(&mut object, &["f:spec".into(), "f:x".into()]);
        assert_eq!(object, json!({"spec": {"containers": [{"name": "b"}]}}));
    }
}
