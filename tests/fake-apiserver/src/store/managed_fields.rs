//! Field ownership: `metadata.managedFields` parsed and written, which part of an object a write
//! addresses, and how a non-apply write changes ownership (server-side apply's own rules are in
//! `apply`).

use serde_json::{Value, json};

use super::WriteOptions;
use super::metadata::{meta, meta_mut, now};
use crate::fields::{self, FieldSet, Part};
use crate::resources::ResourceType;

/// One `managedFields` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Managed {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) subresource: String,
    pub(super) api_version: String,
    pub(super) time: String,
    pub(super) set: FieldSet,
}

pub(super) fn managed_entries(object: &Value) -> Vec<Managed> {
    meta(object)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| Managed {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    set: e
                        .get("fieldsV1")
                        .map(fields::from_fields_v1)
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn write_managed(object: &mut Value, entries: &[Managed]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let m = meta_mut(object);
    if rendered.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(rendered));
    }
}

/// Which part of the object a write addresses, given the resource and the subresource.
pub(super) fn part_of(rt: &ResourceType, status: bool) -> Part {
    match (rt.status_subresource, status) {
        (true, true) => Part::Status,
        (true, false) => Part::Main,
        (false, _) => Part::Whole,
    }
}

pub(super) fn managed_sets(object: &Value) -> Vec<(String, String, String, FieldSet)> {
    let mut sets: Vec<_> = managed_entries(object)
        .into_iter()
        .map(|e| (e.manager, e.operation, e.subresource, e.set))
        .collect();
    sets.sort();
    sets
}

/// The name a write is recorded under: its `fieldManager`, or `unknown`.
pub(super) fn manager_name(opts: &WriteOptions) -> String {
    opts.field_manager
        .clone()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Field ownership after a non-apply write of `part`: the writer takes the fields it changed,
/// fields removed are dropped from every manager.
pub(super) fn record_update(
    rt: &ResourceType,
    part: Part,
    old: &Value,
    candidate: &mut Value,
    opts: &WriteOptions,
) {
    let subresource = if part == Part::Status { "status" } else { "" };
    let old_set = fields::field_set(old, part, rt.custom);
    let new_set = fields::field_set(candidate, part, rt.custom);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(*p) || fields::get_at(old, p) != fields::get_at(candidate, p))
        .cloned()
        .collect();
    let mut entries = managed_entries(old);
    for entry in entries.iter_mut().filter(|e| e.subresource == subresource) {
        entry
            .set
            .retain(|p| new_set.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let manager = manager_name(opts);
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(entry) => {
                entry.set.extend(changed);
                entry.time = now();
            }
            None => entries.push(Managed {
                manager,
                operation: "Update".into(),
                subresource: subresource.to_owned(),
                api_version: rt.api_version(),
                time: now(),
                set: changed,
            }),
        }
    }
    write_managed(candidate, &entries);
}
