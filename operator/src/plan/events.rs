//! The Kubernetes events a plan records: one for each change of the `Ready` condition, and those
//! the Secret's changes add (`SecretCreated`, `SecretUpdated`, `SecretRotated`,
//! `CookieSecretReplaced`; `SecretCreated` not beside `Registered`, whose note names the Secret).
//! Notes never contain secrets.

use api::{CONDITION_READY, ConnectedApp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::event_fields::event_note;

/// A Kubernetes event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedEvent {
    /// Warning (true) or Normal.
    pub(crate) warning: bool,
    /// PascalCase reason.
    pub(crate) reason: String,
    /// Human-readable note (never contains secrets).
    pub(crate) note: String,
}

/// Events for a change of the Ready condition (none when it stays the same).
pub(super) fn transition_event(app: &ConnectedApp, condition: &Condition) -> Option<PlannedEvent> {
    let previous = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY));
    if previous.is_some_and(|p| p.status == condition.status && p.reason == condition.reason) {
        return None;
    }
    Some(PlannedEvent {
        warning: condition.status != "True",
        reason: condition.reason.clone(),
        note: event_note(&condition.message),
    })
}
