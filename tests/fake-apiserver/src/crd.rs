//! A CustomResourceDefinition manifest read into what the server serves: group, names, scope,
//! and the storage version with its schema and subresources.

use std::sync::Arc;

use serde_json::Value;

/// The served version of a CRD (`apiextensions.k8s.io/v1`, as JSON): group, names, scope, the
/// storage version's name, its `openAPIV3Schema` and whether it has a status subresource.
pub(crate) fn parse_crd(crd: &Value) -> Result<CrdVersion, String> {
    let spec = crd.get("spec").ok_or("a CRD needs a spec")?;
    let text = |v: Option<&Value>, what: &str| {
        v.and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the CRD has no {what}"))
    };
    let group = text(spec.get("group"), "spec.group")?;
    let names = spec.get("names").ok_or("the CRD has no spec.names")?;
    let plural = text(names.get("plural"), "spec.names.plural")?;
    let kind = text(names.get("kind"), "spec.names.kind")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned);
    let short_names = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope must be Namespaced or Cluster".into()),
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("the CRD has no versions")?;
    let version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| versions.first())
        .ok_or("the CRD has no versions")?;
    Ok(CrdVersion {
        group,
        version: text(version.get("name"), "version name")?,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status_subresource: version.pointer("/subresources/status").is_some(),
        schema: version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .map(Arc::new),
    })
}

/// A CRD's served version, see [`parse_crd`].
#[derive(Debug, Clone)]
pub(crate) struct CrdVersion {
    /// `spec.group`.
    pub(crate) group: String,
    /// The storage version's name.
    pub(crate) version: String,
    /// `spec.names.plural`.
    pub(crate) plural: String,
    /// `spec.names.singular`.
    pub(crate) singular: String,
    /// `spec.names.kind`.
    pub(crate) kind: String,
    /// `spec.scope == Namespaced`.
    pub(crate) namespaced: bool,
    /// `spec.names.shortNames`.
    pub(crate) short_names: Vec<String>,
    /// Whether the version has `subresources.status`.
    pub(crate) status_subresource: bool,
    /// The version's `openAPIV3Schema`.
    pub(crate) schema: Option<Arc<Value>>,
}
