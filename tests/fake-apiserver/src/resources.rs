//! The resource registry: which group/version/resource paths exist and how each behaves.

use std::sync::Arc;

use serde_json::Value;

/// Whether objects of a resource live in a namespace or at cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/…/namespaces/{ns}/{plural}`.
    Namespaced,
    /// `/…/{plural}`.
    Cluster,
}

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, "" for the core group.
    pub group: String,
    /// Version, e.g. `v1` or `v1alpha1`.
    pub version: String,
    /// Plural resource name used in paths, e.g. `connectedapps`.
    pub plural: String,
    /// Singular name, e.g. `connectedapp`.
    pub singular: String,
    /// Kind, e.g. `ConnectedApp`.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// Whether the `/status` subresource exists (then main-resource writes ignore `status` and
    /// `/status` writes change only `status`).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained.
    pub tracks_generation: bool,
    /// Custom resources (from a CRD) refuse strategic-merge patches with 415, as the real
    /// server does, and treat every list as atomic in server-side apply.
    pub custom: bool,
    /// Short names advertised in discovery.
    pub short_names: Vec<String>,
    /// The structural schema (`openAPIV3Schema`) of a custom resource installed from its CRD:
    /// writes are pruned, defaulted and validated against it. `None` accepts anything.
    pub schema: Option<Arc<Value>>,
}

impl ResourceType {
    /// A built-in resource.
    pub fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        scope: Scope,
        status_subresource: bool,
        tracks_generation: bool,
    ) -> Self {
        ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_owned(),
            scope,
            status_subresource,
            tracks_generation,
            custom: false,
            short_names: Vec::new(),
            schema: None,
        }
    }

    /// A custom resource as a CRD would declare it. Custom resources always track
    /// `metadata.generation`.
    pub fn custom(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        scope: Scope,
        status_subresource: bool,
    ) -> Self {
        ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_owned(),
            scope,
            status_subresource,
            tracks_generation: true,
            custom: true,
            short_names: Vec::new(),
            schema: None,
        }
    }

    /// Adds short names for discovery.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// A custom resource as its CRD (`apiextensions.k8s.io/v1`, YAML or JSON) declares it: the
    /// storage version, its scope, names, status subresource and schema.
    pub(crate) fn from_crd(crd: &str) -> Result<Self, String> {
        let crd: Value =
            serde_yaml::from_str(crd).map_err(|e| format!("the CRD does not parse: {e}"))?;
        let parsed = crate::crd::parse_crd(&crd)?;
        let scope = if parsed.namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        };
        let mut rt = ResourceType::custom(
            &parsed.group,
            &parsed.version,
            &parsed.plural,
            &parsed.kind,
            scope,
            parsed.status_subresource,
        );
        rt.singular = parsed.singular;
        rt.short_names = parsed.short_names;
        rt.schema = parsed.schema;
        Ok(rt)
    }

    /// `v1` or `keyway.dev/v1alpha1`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects live in namespaces.
    pub(crate) fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The ConnectedApp custom resource, `keyway.dev/v1alpha1`, namespaced, with status.
    pub fn connected_app() -> Self {
        Self::custom(
            "keyway.dev",
            "v1alpha1",
            "connectedapps",
            "ConnectedApp",
            Scope::Namespaced,
            true,
        )
        .with_short_names(&["capp"])
    }
}

/// The built-in resources every server starts with.
pub(crate) fn builtins() -> Vec<ResourceType> {
    use Scope::{Cluster, Namespaced};
    vec![
        ResourceType::builtin("", "v1", "namespaces", "Namespace", Cluster, true, false)
            .with_short_names(&["ns"]),
        ResourceType::builtin("", "v1", "secrets", "Secret", Namespaced, false, false),
        ResourceType::builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            Namespaced,
            false,
            false,
        )
        .with_short_names(&["cm"]),
        ResourceType::builtin("", "v1", "events", "Event", Namespaced, false, false)
            .with_short_names(&["ev"]),
        ResourceType::builtin("", "v1", "pods", "Pod", Namespaced, true, true)
            .with_short_names(&["po"]),
        ResourceType::builtin("", "v1", "services", "Service", Namespaced, true, false)
            .with_short_names(&["svc"]),
        ResourceType::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            Namespaced,
            false,
            false,
        )
        .with_short_names(&["sa"]),
        ResourceType::builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            Namespaced,
            false,
            false,
        )
        .with_short_names(&["ev"]),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            Namespaced,
            false,
            false,
        ),
        ResourceType::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            Cluster,
            false,
            true,
        ),
        ResourceType::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            Cluster,
            false,
            true,
        ),
        ResourceType::builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            Namespaced,
            true,
            true,
        )
        .with_short_names(&["deploy"]),
    ]
}
