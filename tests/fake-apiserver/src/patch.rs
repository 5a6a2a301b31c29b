//! The non-apply patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a
//! simplified strategic merge patch for built-in types.

use serde_json::{Map, Value};

use crate::error::{ApiError, Reason, Result};

/// The patch types the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Maps a `Content-Type` (parameters ignored) to a patch type; unknown types are 415.
    pub(crate) fn from_content_type(content_type: &str) -> Result<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types \
                     include: application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml (got \"{other}\")"
                ),
            )),
        }
    }
}

/// Applies a JSON merge patch (RFC 7386).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies a JSON patch (RFC 6902); a failed operation (missing path, failed `test`) is a 422
/// as on the real server. As in the JSON patch library the real server uses, a `test` for
/// `null` succeeds on a path that does not exist (kube-runtime's finalizer helper relies on it).
/// The patch applies atomically: `target` is unchanged on error.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<()> {
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut working = target.clone();
    for operation in operations.0 {
        if let json_patch::PatchOperation::Test(test) = &operation
            && test.value.is_null()
            && test.path.resolve(&working).is_err()
        {
            continue;
        }
        json_patch::patch(&mut working, &[operation]).map_err(|e| {
            ApiError::new(
                Reason::Invalid,
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    *target = working;
    Ok(())
}

/// The merge key of a list field in built-in types, for strategic merge patch and server-side
/// apply (the `patchMergeKey` / `listMapKeys` of the Kubernetes OpenAPI schema, for the lists
/// this server's built-in types contain).
pub(crate) fn merge_key(field: &str, elements: &[Value]) -> Option<&'static str> {
    let all_have =
        |key: &str| !elements.is_empty() && elements.iter().all(|e| e.get(key).is_some());
    let key = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "webhooks" => "name",
        "volumeMounts" => "mountPath",
        "ports" if all_have("containerPort") => "containerPort",
        "ports" => "port",
        "conditions" => "type",
        "ownerReferences" => "uid",
        _ => return None,
    };
    Some(key)
}

fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch: a JSON merge patch in which lists with a merge key are
/// merged element by element (`$patch: delete` removes an element, `$patch: replace` replaces a
/// map), `finalizers` are merged as a set, and other lists are replaced.
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<()> {
    smp_value(target, patch, None)
}

fn smp_value(target: &mut Value, patch: &Value, field: Option<&str>) -> Result<()> {
    match patch {
        Value::Object(patch_map) => {
            if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replacement = patch_map.clone();
                replacement.remove("$patch");
                *target = Value::Object(replacement);
                return Ok(());
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(target_map) = target else {
                return Err(ApiError::new(Reason::InternalError, "object expected"));
            };
            for (key, value) in patch_map {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    target_map.remove(key);
                    continue;
                }
                match target_map.get_mut(key) {
                    Some(existing) => smp_value(existing, value, Some(key))?,
                    None => {
                        let mut fresh = Value::Null;
                        smp_value(&mut fresh, value, Some(key))?;
                        target_map.insert(key.clone(), fresh);
                    }
                }
            }
            Ok(())
        }
        Value::Array(patch_items) => {
            let field = field.unwrap_or("");
            let Value::Array(target_items) = target else {
                *target = Value::Array(strip_directives(patch_items));
                return Ok(());
            };
            if is_primitive_merge_list(field) {
                for item in patch_items {
                    if !target_items.contains(item) {
                        target_items.push(item.clone());
                    }
                }
                return Ok(());
            }
            let Some(key) =
                merge_key(field, patch_items).or_else(|| merge_key(field, target_items))
            else {
                *target = Value::Array(patch_items.clone());
                return Ok(());
            };
            for item in patch_items {
                let Some(id) = item.get(key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let position = target_items.iter().position(|t| t.get(key) == Some(id));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        target_items.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => smp_value(&mut target_items[i], item, None)?,
                    (None, false) => {
                        let mut fresh = Value::Null;
                        smp_value(&mut fresh, item, None)?;
                        target_items.push(fresh);
                    }
                }
            }
            Ok(())
        }
        other => {
            *target = other.clone();
            Ok(())
        }
    }
}

fn strip_directives(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
        .map(|i| {
            let mut i = i.clone();
            if let Value::Object(m) = &mut i {
                m.retain(|k, _| !k.starts_with('$'));
            }
            i
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}
        ]}, "metadata": {"finalizers": ["x"]}});
        strategic_merge_patch(
            &mut pod,
            &json!({"spec": {"containers": [
                {"name": "app", "image": "a:2"},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "n:1"}
            ]}, "metadata": {"finalizers": ["y", "x"]}}),
        )
        .unwrap();
        assert_eq!(
            pod,
            json!({"spec": {"containers": [
                {"name": "app", "image": "a:2"}, {"name": "new", "image": "n:1"}
            ]}, "metadata": {"finalizers": ["x", "y"]}})
        );
    }

    #[test]
    fn json_patch_test_for_null_passes_on_a_missing_path() {
        let mut v = json!({"metadata": {}});
        json_patch(
            &mut v,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]}
            ]),
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"finalizers": ["a/b"]}}));
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let mut v = json!({"a": 1});
        let err =
            json_patch(&mut v, &json!([{"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert_eq!(err.reason, Reason::Invalid);
        assert_eq!(v, json!({"a": 1}));
    }
}
