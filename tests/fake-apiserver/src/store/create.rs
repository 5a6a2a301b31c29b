//! CREATE (POST to a collection, and server-side apply of a missing object): names (and
//! `generateName`), the metadata the server sets, the status a subresource keeps out of a create,
//! and the first `managedFields` entry.

use serde_json::{Value, json};

use super::managed_fields::{Managed, manager_name, part_of, write_managed};
use super::metadata::{meta_mut, meta_str, new_uid, normalize, now, random_suffix, valid_name};
use super::{Store, WriteOptions};
use crate::error::{ApiError, Reason, Result};
use crate::fields;
use crate::resources::ResourceType;

impl Store {
    /// Creates an object (POST to the collection).
    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        self.create_as(rt, namespace, object, opts, "Update")
    }

    /// Creates an object; `operation` is the managedFields operation (`Update` for POST,
    /// `Apply` for server-side apply of a missing object).
    pub(super) fn create_as(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        opts: &WriteOptions,
        operation: &str,
    ) -> Result<Value> {
        Self::check_type_meta(rt, &mut object)?;
        Self::check_body_namespace(rt, namespace, &mut object)?;
        let namespace = Self::namespace_key(rt, namespace);
        self.check_namespace(rt, &namespace)?;
        let name = self.new_name(rt, &namespace, &object)?;
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        if meta_str(&object, "resourceVersion").is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::new(
                Reason::InternalError,
                "resourceVersion should not be set on objects to be created",
            ));
        }
        Self::check_finalizer_names(rt, &name, &object)?;
        Self::check_event_note(rt, &name, &object)?;
        normalize(rt, &mut object);
        if self.get(rt, &namespace, &name).is_ok() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
            if rt.group.is_empty() && rt.plural == "namespaces" {
                // The namespace lifecycle sets the phase; deletion is not modelled (see docs).
                map.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        self.apply_schema(rt, &name, &mut object, None)?;
        stamp_new(rt, &name, &mut object);
        let part = part_of(rt, false);
        let set = fields::field_set(&object, part, rt.custom);
        let entries = vec![Managed {
            manager: manager_name(opts),
            operation: operation.into(),
            subresource: String::new(),
            api_version: rt.api_version(),
            time: now(),
            set,
        }];
        write_managed(&mut object, &entries);
        if opts.dry_run {
            return Ok(object);
        }
        Ok(self.commit(rt, &namespace, &name, None, object, "create"))
    }

    /// The new object's name: `metadata.name`, or `metadata.generateName` with a random suffix
    /// that no object in the namespace has.
    fn new_name(&self, rt: &ResourceType, namespace: &str, object: &Value) -> Result<String> {
        if let Some(name) = meta_str(object, "name").filter(|n| !n.is_empty()) {
            return Ok(name.to_owned());
        }
        let Some(prefix) = meta_str(object, "generateName").filter(|n| !n.is_empty()) else {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        };
        let mut candidate;
        loop {
            candidate = format!("{prefix}{}", random_suffix());
            if self.get(rt, namespace, &candidate).is_err() {
                break;
            }
        }
        Ok(candidate)
    }
}

/// The metadata the server sets on a new object: its name, a UID, the creation time, generation
/// 1 (for types that track it), and none of the system fields a client may have sent.
fn stamp_new(rt: &ResourceType, name: &str, object: &mut Value) {
    let m = meta_mut(object);
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(new_uid()));
    m.insert("creationTimestamp".into(), json!(now()));
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("managedFields");
    m.remove("selfLink");
    if rt.tracks_generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
}
