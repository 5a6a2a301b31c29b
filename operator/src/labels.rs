//! The names the operator puts on the objects it writes: labels, annotations and its field
//! manager.

/// Label on every Secret the operator writes.
pub(crate) const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`]; also the field manager of status writes.
pub(crate) const MANAGER: &str = "keyway-operator";
/// Label naming the ConnectedApp a Secret belongs to.
pub(crate) const APP_LABEL: &str = "keyway.dev/connected-app";
/// Annotation on the Secret: when the current client secret was generated (RFC 3339).
pub(crate) const ISSUED_AT_ANNOTATION: &str = "keyway.dev/client-secret-issued-at";
