//! API errors, rendered as `meta.k8s.io/v1` `Status` objects exactly where the real API server
//! would return one (see "API concepts → Status" in the Kubernetes API documentation).

use serde_json::{Value, json};

/// The `reason` field of a failure `Status`, as listed in `metav1.StatusReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 404: the object (or the resource) does not exist.
    NotFound,
    /// 409: create of an object whose name is taken.
    AlreadyExists,
    /// 409: a stale `resourceVersion`, a uid precondition, or a server-side apply conflict.
    Conflict,
    /// 400: the request itself is malformed.
    BadRequest,
    /// 422: the object fails validation.
    Invalid,
    /// 410: the requested `resourceVersion` is older than the retained history.
    Expired,
    /// 405: the verb is not supported on this resource.
    MethodNotAllowed,
    /// 415: the patch type is not supported for this resource.
    UnsupportedMediaType,
    /// 500: an internal failure of the test server.
    InternalError,
}

impl Reason {
    /// The HTTP status code the real API server uses for this reason.
    pub(crate) fn code(self) -> u16 {
        match self {
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::BadRequest => 400,
            Reason::Invalid => 422,
            Reason::Expired => 410,
            Reason::MethodNotAllowed => 405,
            Reason::UnsupportedMediaType => 415,
            Reason::InternalError => 500,
        }
    }

    /// The reason as spelled in the `Status` object.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::BadRequest => "BadRequest",
            Reason::Invalid => "Invalid",
            Reason::Expired => "Expired",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::InternalError => "InternalError",
        }
    }
}

/// A failed API request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} ({}): {message}", reason.as_str(), reason.code())]
pub struct ApiError {
    /// Why it failed.
    pub reason: Reason,
    /// The human-readable message, phrased like the real server's.
    pub message: String,
    /// `details.group`, `details.kind` (the resource plural, as the real server reports it) and
    /// `details.name`, when the failure concerns one object.
    pub details: Option<Box<Details>>,
}

/// The `details` of a failure `Status`.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// API group of the resource ("" for core).
    pub group: String,
    /// The resource, e.g. `secrets` (the real server puts the plural resource here).
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Field-level causes (for `Invalid` and apply conflicts).
    pub causes: Vec<(String, String, String)>,
}

/// `Result` with [`ApiError`].
pub(crate) type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// An error without details.
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// An error about one object of a resource.
    pub(crate) fn about(
        reason: Reason,
        group: &str,
        resource: &str,
        name: &str,
        message: String,
    ) -> Self {
        ApiError {
            reason,
            message,
            details: Some(Box::new(Details {
                group: group.to_owned(),
                kind: resource.to_owned(),
                name: name.to_owned(),
                causes: Vec::new(),
            })),
        }
    }

    /// `<resource>.<group> "<name>" not found`.
    pub(crate) fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::about(
            Reason::NotFound,
            group,
            resource,
            name,
            format!("{qualified} \"{name}\" not found"),
        )
    }

    /// `<resource>.<group> "<name>" already exists`.
    pub(crate) fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::about(
            Reason::AlreadyExists,
            group,
            resource,
            name,
            format!("{qualified} \"{name}\" already exists"),
        )
    }

    /// The optimistic-concurrency conflict of a stale `resourceVersion`.
    pub(crate) fn stale(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::about(
            Reason::Conflict,
            group,
            resource,
            name,
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
    }

    /// A request that is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// An object that fails validation, with one field cause.
    pub(crate) fn invalid(group: &str, kind: &str, name: &str, field: &str, message: &str) -> Self {
        let mut error = Self::about(
            Reason::Invalid,
            group,
            kind,
            name,
            format!("{kind} \"{name}\" is invalid: {field}: {message}"),
        );
        if let Some(details) = error.details.as_mut() {
            details
                .causes
                .push(("FieldValueInvalid".into(), message.into(), field.into()));
        }
        error
    }

    /// The `Status` object the real server sends for this error.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.reason.code(),
        });
        if let Some(details) = &self.details {
            let mut d = serde_json::Map::new();
            if !details.name.is_empty() {
                d.insert("name".into(), json!(details.name));
            }
            if !details.group.is_empty() {
                d.insert("group".into(), json!(details.group));
            }
            d.insert("kind".into(), json!(details.kind));
            if !details.causes.is_empty() {
                let causes: Vec<Value> = details
                    .causes
                    .iter()
                    .map(|(reason, message, field)| {
                        json!({"reason": reason, "message": message, "field": field})
                    })
                    .collect();
                d.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(d);
        }
        status
    }
}

/// `secrets` or `connectedapps.keyway.dev`.
pub(crate) fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}
