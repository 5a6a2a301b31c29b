//! The checks a write passes before anything is stored: type meta, namespaces, finalizer names,
//! an Event's note length, and a custom resource's schema (pruning, defaulting, validation with
//! ratcheting).

use serde_json::{Value, json};

use super::Store;
use super::metadata::{meta, meta_mut, meta_str};
use crate::error::{ApiError, Result};
use crate::resources::ResourceType;

/// The longest `note` an `events.k8s.io` Event may carry, in bytes.
const EVENT_NOTE_LIMIT: usize = 1024;

impl Store {
    /// A custom resource's schema on every write: prune, default, validate.
    pub(super) fn apply_schema(
        &self,
        rt: &ResourceType,
        name: &str,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        let Some(schema) = rt.schema.as_deref() else {
            return Ok(());
        };
        crate::schema::prune(schema, object, true);
        crate::schema::default(schema, object);
        let mut violations = Vec::new();
        self.validator.validate(schema, object, "", &mut violations);
        if let Some(old) = old {
            // Ratcheting: values the update does not change may stay invalid.
            violations
                .retain(|v| v.node.is_empty() || old.pointer(&v.node) != object.pointer(&v.node));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(crate::schema::invalid(
                &rt.group,
                &rt.kind,
                name,
                &violations,
            ))
        }
    }

    pub(super) fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<()> {
        if !rt.namespaced() {
            return Ok(());
        }
        if namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the object is required",
            ));
        }
        let exists = self
            .objects
            .get("/namespaces")
            .is_some_and(|n| n.contains_key(&(String::new(), namespace.to_owned())));
        if exists {
            Ok(())
        } else {
            Err(ApiError::not_found("", "namespaces", namespace))
        }
    }

    pub(super) fn check_type_meta(rt: &ResourceType, object: &mut Value) -> Result<()> {
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        };
        let api_version = rt.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None => {
                map.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None => {
                map.insert("kind".into(), json!(rt.kind));
            }
            Some(k) if k == rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
        }
        Ok(())
    }

    pub(super) fn check_body_namespace(
        rt: &ResourceType,
        namespace: &str,
        object: &mut Value,
    ) -> Result<()> {
        let body_ns = meta_str(object, "namespace").map(str::to_owned);
        if rt.namespaced() {
            match body_ns.as_deref() {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent \
                         on the request",
                    ));
                }
                _ => {
                    meta_mut(object).insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta_mut(object).remove("namespace");
        }
        Ok(())
    }

    pub(super) fn check_finalizer_names(
        rt: &ResourceType,
        name: &str,
        object: &Value,
    ) -> Result<()> {
        if let Some(list) = meta(object).and_then(|m| m.get("finalizers")) {
            let Some(items) = list.as_array() else {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    name,
                    "metadata.finalizers",
                    "must be a list of strings",
                ));
            };
            for item in items {
                let ok = item.as_str().is_some_and(|f| {
                    !f.is_empty()
                        && (f.contains('/')
                            || ["kubernetes", "orphan", "foregroundDeletion"].contains(&f))
                });
                if !ok {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        name,
                        "metadata.finalizers",
                        &format!(
                            "Invalid value: {item}: name is neither a standard finalizer name nor is it fully qualified"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// An `events.k8s.io` Event's `note` is at most 1 KiB (1024 bytes), as kube-apiserver's
    /// validation has it (`NoteLengthLimit`); a longer one is 422 Invalid.
    pub(super) fn check_event_note(rt: &ResourceType, name: &str, object: &Value) -> Result<()> {
        if rt.group != "events.k8s.io" || rt.kind != "Event" {
            return Ok(());
        }
        match object.get("note").and_then(Value::as_str) {
            Some(note) if note.len() > EVENT_NOTE_LIMIT => Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                name,
                "note",
                &format!("Too long: may not be more than {EVENT_NOTE_LIMIT} bytes"),
            )),
            _ => Ok(()),
        }
    }
}
