//! Server-side apply (PATCH with `application/apply-patch+yaml`): the applied configuration, its
//! conflicts with fields other managers own (409 unless forced), the merge into the live object,
//! the removal of fields the manager applied before and no longer applies, and the move of
//! ownership; a missing object is created ("Server-Side Apply" in the Kubernetes documentation).

use serde_json::{Value, json};

use super::managed_fields::{Managed, managed_entries, part_of, write_managed};
use super::metadata::{meta_mut, meta_str, now};
use super::{Store, WriteOptions};
use crate::error::{ApiError, Reason, Result};
use crate::fields::{self, FieldSet, Part};
use crate::resources::ResourceType;

/// A field another manager owns that an apply sets to another value: (manager, path).
type Conflict = (String, String);

impl Store {
    /// Server-side apply.
    pub(super) fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: &[u8],
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request(
                "PATCH with apply requires a fieldManager query parameter",
            ));
        };
        let applied = configuration(rt, namespace, name, body)?;
        let old = match self.get(rt, namespace, name) {
            Ok(old) => old,
            Err(e) if status => return Err(e),
            Err(_) => {
                // Apply creates the object; the applier owns everything it applied.
                let mut fresh = applied.clone();
                if let Some(m) = fresh.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                return self.create_as(
                    rt,
                    namespace,
                    fresh,
                    &WriteOptions {
                        field_manager: Some(manager.clone()),
                        ..opts.clone()
                    },
                    "Apply",
                );
            }
        };
        let part = part_of(rt, status);
        let subresource = if part == Part::Status { "status" } else { "" };
        let applied_set = fields::field_set(&applied, part, rt.custom);
        let mut entries = managed_entries(&old);
        let conflicts = conflicts(
            &entries,
            &manager,
            subresource,
            &applied_set,
            &old,
            &applied,
        );
        if !conflicts.is_empty() && !opts.force {
            return Err(conflict_error(rt, name, &conflicts));
        }
        // Build the new object: merge the applied part, then drop the fields this manager
        // applied before, no longer applies, and nobody else owns.
        let mut candidate = old.clone();
        let (applied_part, precondition) = applied_part(&applied, part);
        fields::merge_applied(&mut candidate, &applied_part, "", rt.custom);
        drop_unapplied(
            &mut candidate,
            &entries,
            &manager,
            subresource,
            &applied_set,
        );
        let change = Change {
            manager: &manager,
            subresource,
            old: &old,
            applied: &applied,
        };
        take_ownership(&mut entries, rt, &change, applied_set);
        write_managed(&mut candidate, &entries);
        if let Some(rv) = precondition {
            meta_mut(&mut candidate).insert("resourceVersion".into(), json!(rv));
        }
        self.finish_write(
            rt, namespace, name, old, candidate, status, opts, "patch", true,
        )
    }
}

/// The applied configuration from the request body (YAML or JSON): an object with `apiVersion`
/// and `kind`, the URL's name and namespace.
fn configuration(rt: &ResourceType, namespace: &str, name: &str, body: &[u8]) -> Result<Value> {
    let mut applied: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "an apply configuration must be an object",
        ));
    }
    for field in ["apiVersion", "kind"] {
        if applied.get(field).and_then(Value::as_str).is_none() {
            return Err(ApiError::bad_request(format!(
                "{field} must be set in an apply configuration"
            )));
        }
    }
    Store::check_type_meta(rt, &mut applied)?;
    if let Some(body_name) = meta_str(&applied, "name")
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Store::check_body_namespace(rt, namespace, &mut applied)?;
    meta_mut(&mut applied).insert("name".into(), json!(name));
    Ok(applied)
}

/// Whether `entry` is `manager`'s apply of `subresource`.
fn is_applier(entry: &Managed, manager: &str, subresource: &str) -> bool {
    entry.manager == manager && entry.operation == "Apply" && entry.subresource == subresource
}

/// Conflicts: fields another manager owns, that this configuration sets to a different value.
fn conflicts(
    entries: &[Managed],
    manager: &str,
    subresource: &str,
    applied_set: &FieldSet,
    old: &Value,
    applied: &Value,
) -> Vec<Conflict> {
    let mut conflicts: Vec<Conflict> = Vec::new();
    for entry in entries {
        if entry.manager == manager && entry.operation == "Apply"
            || entry.subresource != subresource
        {
            continue;
        }
        for owned in &entry.set {
            for path in applied_set {
                if fields::overlaps(owned, path)
                    && fields::get_at(old, path) != fields::get_at(applied, path)
                {
                    conflicts.push((entry.manager.clone(), fields::display_path(path)));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    conflicts
}

/// The 409 of an apply with conflicts, a cause per field.
fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[Conflict]) -> ApiError {
    let mut error = ApiError::about(
        Reason::Conflict,
        &rt.group,
        &rt.plural,
        name,
        format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            conflicts
                .iter()
                .map(|(m, p)| format!("conflict with \"{m}\": {p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if let Some(d) = error.details.as_mut() {
        d.causes = conflicts
            .iter()
            .map(|(m, p)| {
                (
                    "FieldManagerConflict".to_owned(),
                    format!("conflict with \"{m}\""),
                    p.clone(),
                )
            })
            .collect();
    }
    error
}

/// The part of the configuration the apply writes (without the metadata the server owns), and
/// the `resourceVersion` it gives as a precondition, if any.
fn applied_part(applied: &Value, part: Part) -> (Value, Option<String>) {
    let mut applied_part = applied.clone();
    if let Some(map) = applied_part.as_object_mut() {
        match part {
            Part::Status => map.retain(|k, _| k == "status"),
            Part::Main => {
                map.remove("status");
            }
            Part::Whole => {}
        }
        if let Some(m) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| {
                ![
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "managedFields",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ]
                .contains(&k.as_str())
            });
        }
    }
    let precondition = meta_str(applied, "resourceVersion").map(str::to_owned);
    if let Some(m) = applied_part
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        m.remove("resourceVersion");
    }
    (applied_part, precondition)
}

/// Removes from `candidate` the fields `manager` applied before and no longer applies, unless
/// another manager owns them.
fn drop_unapplied(
    candidate: &mut Value,
    entries: &[Managed],
    manager: &str,
    subresource: &str,
    applied_set: &FieldSet,
) {
    let previous_set = entries
        .iter()
        .find(|e| is_applier(e, manager, subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    for dropped in previous_set.difference(applied_set) {
        let owned_elsewhere = entries.iter().any(|e| {
            !is_applier(e, manager, subresource)
                && e.set.iter().any(|p| fields::overlaps(p, dropped))
        });
        let covered = applied_set.iter().any(|p| fields::overlaps(p, dropped));
        if !owned_elsewhere && !covered {
            fields::remove_at(candidate, dropped);
        }
    }
}

/// Who applies what to which object.
struct Change<'a> {
    manager: &'a str,
    subresource: &'a str,
    old: &'a Value,
    applied: &'a Value,
}

/// Ownership after the apply: forced fields move to the applier, shared values stay shared, and
/// the applier's entry holds exactly the applied set (its time changes when the set does).
fn take_ownership(
    entries: &mut Vec<Managed>,
    rt: &ResourceType,
    change: &Change<'_>,
    applied_set: FieldSet,
) {
    let (manager, subresource) = (change.manager, change.subresource);
    for entry in entries.iter_mut() {
        if entry.manager == manager && entry.operation == "Apply"
            || entry.subresource != subresource
        {
            continue;
        }
        entry.set.retain(|owned| {
            !applied_set.iter().any(|p| {
                fields::overlaps(owned, p)
                    && fields::get_at(change.old, p) != fields::get_at(change.applied, p)
            })
        });
    }
    let time = now();
    match entries
        .iter_mut()
        .find(|e| is_applier(e, manager, subresource))
    {
        Some(entry) => {
            if entry.set != applied_set {
                entry.time = time;
            }
            entry.set = applied_set;
        }
        None => entries.push(Managed {
            manager: manager.to_owned(),
            operation: "Apply".into(),
            subresource: subresource.to_owned(),
            api_version: rt.api_version(),
            time,
            set: applied_set,
        }),
    }
}
