//! DELETE: preconditions, finalizers (a deletion with finalizers only sets
//! `deletionTimestamp`), propagation policies, and the removal of an object for good.

use std::sync::Arc;

use serde_json::{Value, json};

use super::history::{Event, EventKind};
use super::metadata::{finalizers, is_deleting, meta_mut, meta_str, now};
use super::{Store, resource_id};
use crate::error::{ApiError, Reason, Result};
use crate::resources::ResourceType;

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    /// `propagationPolicy`: `Background` (default), `Foreground` or `Orphan`.
    pub(crate) propagation: Option<String>,
    /// `preconditions.uid`.
    pub(crate) uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub(crate) resource_version: Option<String>,
    /// `dryRun=All`.
    pub(crate) dry_run: bool,
}

impl Store {
    /// Deletes an object: with finalizers it only gets a `deletionTimestamp`; without, it is
    /// removed and its dependents are garbage-collected. Returns the object when deletion is
    /// pending and `None` when it is gone.
    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Value, bool)> {
        let namespace = Self::namespace_key(rt, namespace);
        let old = self.get(rt, &namespace, name)?;
        if let Some(uid) = opts.uid.as_deref()
            && meta_str(&old, "uid") != Some(uid)
        {
            return Err(ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = opts.resource_version.as_deref()
            && meta_str(&old, "resourceVersion") != Some(rv)
        {
            return Err(ApiError::about(
                Reason::Conflict,
                &rt.group,
                &rt.plural,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        match opts.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported propagationPolicy: {other}"
                )));
            }
        }
        if opts.dry_run {
            let pending = !finalizers(&old).is_empty();
            return Ok((old, pending));
        }
        if opts.propagation.as_deref() == Some("Orphan")
            && let Some(uid) = meta_str(&old, "uid").map(str::to_owned)
        {
            self.orphan_dependents(&uid);
        }
        if is_deleting(&old) {
            return Ok((old, true));
        }
        if !finalizers(&old).is_empty() {
            let mut candidate = old.clone();
            let m = meta_mut(&mut candidate);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.remove("resourceVersion");
            let stored = self.commit(rt, &namespace, name, Some(old), candidate, "delete");
            return Ok((stored, true));
        }
        Ok((self.remove(rt, &namespace, name, opts), false))
    }

    /// Removes an object for good, records `DELETED`, and collects its dependents.
    pub(super) fn remove(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        _opts: &DeleteOptions,
    ) -> Value {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(mut object) = self
            .objects
            .get_mut(&resource_id(rt))
            .and_then(|o| o.remove(&key))
        else {
            return Value::Null;
        };
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(Event {
            rv: self.rv,
            resource: resource_id(rt),
            kind: EventKind::Deleted,
            object: Arc::new(object.clone()),
            previous: None,
        });
        self.count_change("delete", &rt.plural);
        if let Some(uid) = meta_str(&object, "uid").map(str::to_owned) {
            self.collect_garbage(&uid);
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.delete_namespace_contents(name);
        }
        object
    }
}
