//! UPDATE (PUT, and PUT to `/status`) and PATCH (merge, JSON, strategic merge; server-side apply
//! is `apply`), and the tail every update shares ([`Store::finish_write`]): preconditions, the
//! part of the object the write may change, system metadata, finalizer rules, generation, field
//! ownership, no-op detection, commit, and the removal of a deleted object whose last finalizer
//! went.

use serde_json::{Value, json};

use super::managed_fields::{managed_sets, part_of, record_update};
use super::metadata::{
    content, finalizers, generation_relevant, is_deleting, meta, meta_mut, meta_str, normalize,
};
use super::{DeleteOptions, Store, WriteOptions};
use crate::error::{ApiError, Reason, Result};
use crate::fields::Part;
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;

impl Store {
    /// Replaces an object (PUT), or its status (PUT to `/status`).
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        Self::check_type_meta(rt, &mut object)?;
        Self::check_body_namespace(rt, namespace, &mut object)?;
        if let Some(body_name) = meta_str(&object, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let namespace = Self::namespace_key(rt, namespace);
        let old = self.get(rt, &namespace, name)?;
        self.finish_write(
            rt, &namespace, name, old, object, status, opts, "update", false,
        )
    }

    /// Patches an object or its status.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let namespace = Self::namespace_key(rt, namespace);
        if patch_type == PatchType::Apply {
            return self.apply(rt, &namespace, name, body, status, opts);
        }
        if patch_type == PatchType::Strategic && rt.custom {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let old = self.get(rt, &namespace, name)?;
        let mut candidate = old.clone();
        match patch_type {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut candidate, &patch);
            }
            PatchType::Json => patch::json_patch(&mut candidate, &patch)?,
            PatchType::Strategic => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                patch::strategic_merge_patch(&mut candidate, &patch)?;
            }
            PatchType::Apply => {}
        }
        Self::check_type_meta(rt, &mut candidate)?;
        if meta_str(&candidate, "name") != Some(name)
            || meta_str(&candidate, "namespace").unwrap_or("") != namespace
        {
            return Err(ApiError::bad_request(
                "a patch may not change the object's name or namespace",
            ));
        }
        self.finish_write(
            rt, &namespace, name, old, candidate, status, opts, "patch", false,
        )
    }

    /// The common tail of update, patch and apply (`applied`): preconditions, system metadata,
    /// status subresource rules, finalizer rules, generation, field ownership, no-op detection,
    /// commit and finalization.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_write(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        old: Value,
        mut candidate: Value,
        status: bool,
        opts: &WriteOptions,
        verb: &str,
        applied: bool,
    ) -> Result<Value> {
        if status && !rt.status_subresource {
            return Err(ApiError::not_found(
                &rt.group,
                &format!("{}/status", rt.plural),
                name,
            ));
        }
        check_preconditions(rt, name, &old, &candidate)?;
        let part = part_of(rt, status);
        keep_other_part(part, &old, &mut candidate, applied);
        keep_system_metadata(&old, &mut candidate, applied);
        Self::check_finalizer_names(rt, name, &candidate)?;
        Self::check_event_note(rt, name, &candidate)?;
        normalize(rt, &mut candidate);
        self.apply_schema(rt, name, &mut candidate, Some(&old))?;
        check_no_new_finalizers(rt, name, &old, &candidate)?;
        bump_generation(rt, part, &old, &mut candidate);
        if !applied {
            record_update(rt, part, &old, &mut candidate, opts);
        }
        // A write that changes nothing is not a write: no new resourceVersion, no event.
        let unchanged =
            content(&old) == content(&candidate) && managed_sets(&old) == managed_sets(&candidate);
        if unchanged {
            return Ok(old);
        }
        if opts.dry_run {
            let old_rv = meta_str(&old, "resourceVersion").unwrap_or("").to_owned();
            meta_mut(&mut candidate).insert("resourceVersion".into(), json!(old_rv));
            return Ok(candidate);
        }
        let verb_resource = if part == Part::Status {
            format!("{}/status", rt.plural)
        } else {
            rt.plural.clone()
        };
        let stored = self.commit_as(
            rt,
            namespace,
            name,
            Some(old),
            candidate,
            verb,
            &verb_resource,
        );
        if is_deleting(&stored) && finalizers(&stored).is_empty() {
            return Ok(self.remove(rt, namespace, name, &DeleteOptions::default()));
        }
        Ok(stored)
    }
}

/// The candidate's `resourceVersion` and `uid`, when it gives them, are the stored object's.
fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    candidate: &Value,
) -> Result<()> {
    let old_rv = meta_str(old, "resourceVersion").unwrap_or("").to_owned();
    if let Some(rv) = meta_str(candidate, "resourceVersion")
        && !rv.is_empty()
        && rv != old_rv
    {
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    let old_uid = meta_str(old, "uid").unwrap_or("").to_owned();
    if let Some(uid) = meta_str(candidate, "uid")
        && !uid.is_empty()
        && uid != old_uid
    {
        return Err(ApiError::about(
            Reason::Conflict,
            &rt.group,
            &rt.plural,
            name,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
            ),
        ));
    }
    Ok(())
}

/// Status subresource: each side writes only its own part. A write of `status` keeps the rest
/// of the stored object (and, when applied, brings its `managedFields`); a write of the main
/// part keeps the stored `status`.
fn keep_other_part(part: Part, old: &Value, candidate: &mut Value, applied: bool) {
    if part == Part::Status {
        let new_status = candidate.get("status").cloned();
        let new_managed = if applied {
            meta(candidate)
                .and_then(|m| m.get("managedFields"))
                .cloned()
        } else {
            None
        };
        *candidate = old.clone();
        match (candidate.as_object_mut(), new_status) {
            (Some(map), Some(s)) => {
                map.insert("status".into(), s);
            }
            (Some(map), None) => {
                map.remove("status");
            }
            (None, _) => {}
        }
        if let Some(mf) = new_managed {
            meta_mut(candidate).insert("managedFields".into(), mf);
        }
    } else if part == Part::Main
        && let Some(map) = candidate.as_object_mut()
    {
        match old.get("status") {
            Some(s) => {
                map.insert("status".into(), s.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
}

/// System metadata is the server's: the stored values replace the candidate's (and so do the
/// stored `managedFields`, unless the write is an apply, which computed its own).
fn keep_system_metadata(old: &Value, candidate: &mut Value, applied: bool) {
    let old_meta = meta(old).cloned().unwrap_or_default();
    let m = meta_mut(candidate);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    if !applied {
        match old_meta.get("managedFields") {
            Some(v) => {
                m.insert("managedFields".into(), v.clone());
            }
            None => {
                m.remove("managedFields");
            }
        }
    }
    m.remove("resourceVersion");
}

/// An object being deleted may lose finalizers, never gain one.
fn check_no_new_finalizers(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    candidate: &Value,
) -> Result<()> {
    if is_deleting(old) {
        let before = finalizers(old);
        if finalizers(candidate).iter().any(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                name,
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    Ok(())
}

/// `metadata.generation` goes up by one when anything but metadata (and status, for a status
/// subresource) changes, for types that track it.
fn bump_generation(rt: &ResourceType, part: Part, old: &Value, candidate: &mut Value) {
    if rt.tracks_generation && part != Part::Status {
        let changed = generation_relevant(old, rt.status_subresource)
            != generation_relevant(candidate, rt.status_subresource);
        if changed {
            let generation = meta(old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(candidate).insert("generation".into(), json!(generation));
        }
    }
}
