//! What the unit tests of several modules build their apps from.
#![allow(clippy::unwrap_used)]

use crate::ConnectedApp;

/// A ConnectedApp `namespace/name` whose `spec` has `field` set to `value` when given, created
/// at `created` (RFC 3339) when given.
pub fn app(
    ns: &str,
    name: &str,
    field: &str,
    value: Option<&str>,
    created: Option<&str>,
) -> ConnectedApp {
    let mut json = serde_json::json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"displayName": name},
    });
    if let Some(v) = value {
        json["spec"][field] = v.into();
    }
    if let Some(t) = created {
        json["metadata"]["creationTimestamp"] = t.into();
    }
    serde_json::from_value(json).unwrap()
}
