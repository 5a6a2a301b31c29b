//! The status a plan publishes: the client ID, resource, Secret name and issuer, the `Ready`
//! condition (its reasons in [`reason`]), and the hashes of the client secrets the issuer accepts;
//! and [`waiting`], the plan of an app that is not ready.

use std::time::Duration;

use api::{CONDITION_READY, ClientSecretHash, ConnectedApp, ConnectedAppStatus};
use contract::secret as keys;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::events::transition_event;
use super::time::{add, until};
use super::{Plan, PlanConfig, SecretAction};

/// How long a replaced client secret stays valid when no rotation grace period applies (the
/// Secret was deleted or an existingSecret changed).
pub(super) const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// At most this many client-secret hashes in status (the current one and those expiring).
const MAX_HASHES: usize = 4;
/// Maximum length of a condition message we write (the API allows 32768).
const MAX_MESSAGE: usize = 4096;

/// Reasons of the `Ready` condition.
pub(crate) mod reason {
    /// Registered; credentials in the Secret.
    pub(crate) const REGISTERED: &str = "Registered";
    /// A new app whose Secret could not be written yet (the message says why); retried.
    pub(crate) const PROVISIONING: &str = "Provisioning";
    /// The spec breaks a rule; the message lists every problem.
    pub(crate) const INVALID_SPEC: &str = "InvalidSpec";
    /// A Secret of the target name exists and is not keyway's for this app.
    pub(crate) const SECRET_CONFLICT: &str = "SecretConflict";
    /// The existingSecret does not exist (yet).
    pub(crate) const SECRET_MISSING: &str = "SecretMissing";
    /// The existingSecret lacks keys or holds values that do not fit the app.
    pub(crate) const SECRET_INVALID: &str = "SecretInvalid";
    /// Another app holds the same client ID (`api::claims`).
    pub(crate) const CLIENT_ID_CONFLICT: &str = api::claims::CLIENT_ID_CONFLICT;
    /// Another app holds the same resource (`api::resources`).
    pub(crate) const RESOURCE_CONFLICT: &str = api::resources::RESOURCE_CONFLICT;
    /// The resource's host is bound to other namespaces (`api::resource_hosts`).
    pub(crate) const RESOURCE_NOT_PERMITTED: &str = api::resource_hosts::RESOURCE_NOT_PERMITTED;
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// The Ready condition, keeping the observed transition time when the status does not change.
pub(super) fn ready(
    app: &ConnectedApp,
    ok: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY));
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: CONDITION_READY.into(),
        status: status.into(),
        reason: reason.into(),
        message: truncate(message),
        observed_generation: app.metadata.generation,
        last_transition_time,
    }
}

/// The hashes to publish: `current` first (if any), then the previously published ones that
/// are not expired, each with an expiry (`now + grace` for one that had none).
pub(super) fn hashes(
    app: &ConnectedApp,
    current: Option<&str>,
    grace: Duration,
    now: Timestamp,
) -> Vec<ClientSecretHash> {
    let mut out = Vec::new();
    let current_hash = current.map(keys::hash_client_secret);
    if let Some(hash) = &current_hash {
        out.push(ClientSecretHash {
            hash: hash.clone(),
            expires_at: None,
        });
    }
    let previous = app
        .status
        .as_ref()
        .map(|s| s.client_secrets.as_slice())
        .unwrap_or_default();
    for old in previous {
        if Some(&old.hash) == current_hash.as_ref() || out.iter().any(|h| h.hash == old.hash) {
            continue;
        }
        let expires_at = old
            .expires_at
            .clone()
            .unwrap_or_else(|| Time(add(now, grace)));
        if expires_at.0 > now {
            out.push(ClientSecretHash {
                hash: old.hash.clone(),
                expires_at: Some(expires_at),
            });
        }
    }
    out.truncate(MAX_HASHES);
    out
}

/// The status fields every plan writes, without conditions and hashes.
pub(super) fn base_status(app: &ConnectedApp, cfg: &PlanConfig) -> ConnectedAppStatus {
    ConnectedAppStatus {
        client_id: app.client_id(),
        // Cleared again by the plans of an app left without its client ID or its resource.
        resource: app.spec.resource.clone(),
        secret_name: Some(app.secret_name()),
        issuer: Some(cfg.issuer_url.clone()),
        observed_generation: app.metadata.generation,
        conditions: Vec::new(),
        client_secrets: Vec::new(),
    }
}

/// How long until the first of `hashes` expires (plus a second, so that it has expired then).
pub(super) fn earliest_expiry(now: Timestamp, hashes: &[ClientSecretHash]) -> Option<Duration> {
    hashes
        .iter()
        .filter_map(|h| h.expires_at.as_ref())
        .map(|t| until(now, t.0) + Duration::from_secs(1))
        .min()
}

/// The plan of a new app (no Ready condition yet) whose Secret could not be written (`why`): not
/// ready, reason [`reason::PROVISIONING`]; the failed reconcile is retried with backoff.
pub(crate) fn provisioning(
    app: &ConnectedApp,
    cfg: &PlanConfig,
    now: Timestamp,
    why: &str,
) -> Plan {
    waiting(
        app,
        cfg,
        super::time::whole_seconds(now),
        reason::PROVISIONING,
        format!("cannot write Secret {}: {why}", app.secret_name()),
        cfg.resync,
    )
}

/// Not ready: keep publishing the hashes that are still valid, write nothing else.
pub(super) fn waiting(
    app: &ConnectedApp,
    cfg: &PlanConfig,
    now: Timestamp,
    why: &str,
    message: String,
    recheck: Duration,
) -> Plan {
    let mut status = base_status(app, cfg);
    let previous = app
        .status
        .as_ref()
        .map(|s| s.client_secrets.clone())
        .unwrap_or_default();
    // The hashes stay as they are (a broken spec must not lock out a running app), minus the
    // expired ones.
    status.client_secrets = previous
        .into_iter()
        .filter(|h| h.expires_at.as_ref().is_none_or(|t| t.0 > now))
        .collect();
    let condition = ready(app, false, why, message, now);
    let events = transition_event(app, &condition).into_iter().collect();
    status.conditions = vec![condition];
    let requeue_after =
        earliest_expiry(now, &status.client_secrets).map_or(recheck, |e| e.min(recheck));
    Plan {
        status_before_secret: None,
        secret: SecretAction::None,
        status,
        events,
        requeue_after,
    }
}
