//! The plan for an app whose Secret someone else manages (`spec.secret.existingSecret`): keyway
//! never writes it, waits for it, checks that every key fits the app, and publishes the hash of
//! the client secret it holds.

use std::time::Duration;

use api::ConnectedApp;
use contract::secret as keys;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

use super::credentials::{text, valid_cookie_secret};
use super::events::transition_event;
use super::owned_secret::policy_json;
use super::status::{DEFAULT_GRACE, base_status, earliest_expiry, hashes, ready, reason, waiting};
use super::{Plan, PlanConfig, SecretAction};

/// How often an app waiting for its existingSecret (missing or incomplete) is looked at again.
pub(crate) const WAIT_FOR_SECRET: Duration = Duration::from_secs(10);
/// How often a ready app's existingSecret is read again, to publish the hash of a client secret
/// changed by whoever manages it. A Secret labelled [`crate::labels::APP_LABEL`] is watched
/// instead, so its changes are seen at once.
const EXISTING_SECRET_POLL: Duration = Duration::from_secs(30);
/// Minimum length of a client secret in an existingSecret (characters).
const MIN_EXTERNAL_SECRET_LEN: usize = 32;

/// The plan for `app`, given its existingSecret as observed.
pub(super) fn plan(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    cfg: &PlanConfig,
    now: Timestamp,
) -> Plan {
    let name = app.secret_name();
    let Some(secret) = observed else {
        return waiting(
            app,
            cfg,
            now,
            reason::SECRET_MISSING,
            format!(
                "waiting for Secret {name:?} (spec.secret.existingSecret); keyway does not create it"
            ),
            WAIT_FOR_SECRET,
        );
    };
    let problems = problems(app, secret, cfg);
    if !problems.is_empty() {
        return waiting(
            app,
            cfg,
            now,
            reason::SECRET_INVALID,
            format!(
                "Secret {name:?} (spec.secret.existingSecret): {}",
                problems.join("; ")
            ),
            WAIT_FOR_SECRET,
        );
    }
    let client_id = app.client_id().unwrap_or_default();
    let client_secret = text(secret, keys::CLIENT_SECRET);
    let mut status = base_status(app, cfg);
    let current = if app.spec.is_confidential() {
        client_secret.as_deref()
    } else {
        None
    };
    status.client_secrets = hashes(app, current, DEFAULT_GRACE, now);
    let condition = ready(
        app,
        true,
        reason::REGISTERED,
        format!("client {client_id} registered; credentials in Secret {name} (managed elsewhere)"),
        now,
    );
    let events = transition_event(app, &condition).into_iter().collect();
    status.conditions = vec![condition];
    let poll = EXISTING_SECRET_POLL.min(cfg.resync);
    let requeue_after = earliest_expiry(now, &status.client_secrets).map_or(poll, |e| e.min(poll));
    Plan {
        status_before_secret: None,
        secret: SecretAction::None,
        status,
        events,
        requeue_after,
    }
}

/// Every way the Secret does not fit the app, in the order of its keys' importance.
fn problems(app: &ConnectedApp, secret: &Secret, cfg: &PlanConfig) -> Vec<String> {
    let mut problems = Vec::new();
    client_problems(app, secret, cfg, &mut problems);
    cookie_problems(secret, &mut problems);
    policy_problems(app, secret, &mut problems);
    problems
}

/// The client ID, the client secret (of a confidential client) and the issuer URL.
fn client_problems(
    app: &ConnectedApp,
    secret: &Secret,
    cfg: &PlanConfig,
    problems: &mut Vec<String>,
) {
    let client_id = app.client_id().unwrap_or_default();
    match text(secret, keys::CLIENT_ID) {
        Some(id) if id == client_id => {}
        Some(id) => problems.push(format!(
            "key {} is {id:?}, but the app's client ID is {client_id:?}",
            keys::CLIENT_ID
        )),
        None => problems.push(format!("key {} is missing", keys::CLIENT_ID)),
    }
    if app.spec.is_confidential() {
        match text(secret, keys::CLIENT_SECRET) {
            Some(s) if s.chars().count() >= MIN_EXTERNAL_SECRET_LEN => {}
            Some(_) => problems.push(format!(
                "key {} must be at least {MIN_EXTERNAL_SECRET_LEN} characters long",
                keys::CLIENT_SECRET
            )),
            None => problems.push(format!(
                "key {} is missing (the app is a confidential client)",
                keys::CLIENT_SECRET
            )),
        }
    }
    match text(secret, keys::ISSUER_URL) {
        Some(url) if url == cfg.issuer_url => {}
        Some(url) => problems.push(format!(
            "key {} is {url:?}, but the issuer is {:?}",
            keys::ISSUER_URL,
            cfg.issuer_url
        )),
        None => problems.push(format!("key {} is missing", keys::ISSUER_URL)),
    }
}

/// The cookie secret, and the previous one with its time (both or neither).
fn cookie_problems(secret: &Secret, problems: &mut Vec<String>) {
    match text(secret, keys::COOKIE_SECRET) {
        Some(c) if valid_cookie_secret(&c) => {}
        Some(_) => problems.push(format!(
            "key {} must be 32 random bytes in base64",
            keys::COOKIE_SECRET
        )),
        None => problems.push(format!("key {} is missing", keys::COOKIE_SECRET)),
    }
    match (
        text(secret, keys::COOKIE_SECRET_PREVIOUS),
        text(secret, keys::COOKIE_SECRET_REPLACED_AT),
    ) {
        (None, None) => {}
        (Some(previous), Some(at)) => {
            if !valid_cookie_secret(&previous) {
                problems.push(format!(
                    "key {} must be 32 random bytes in base64",
                    keys::COOKIE_SECRET_PREVIOUS
                ));
            }
            if keys::parse_replaced_at(&at).is_none() {
                problems.push(format!(
                    "key {} must be seconds since the Unix epoch",
                    keys::COOKIE_SECRET_REPLACED_AT
                ));
            }
        }
        _ => problems.push(format!(
            "keys {} and {} go together: give both or neither",
            keys::COOKIE_SECRET_PREVIOUS,
            keys::COOKIE_SECRET_REPLACED_AT
        )),
    }
}

/// The policy the sidecar enforces: the app's resource, scopes and access.
fn policy_problems(app: &ConnectedApp, secret: &Secret, problems: &mut Vec<String>) {
    match text(secret, keys::POLICY)
        .map(|p| serde_json::from_str::<keys::AppPolicy>(&p).map_err(|e| e.to_string()))
    {
        Some(Ok(p)) if p == app.spec.app_policy() => {}
        Some(Ok(_)) => problems.push(format!(
            "key {} does not match the app's resource, scopes and access (expected {})",
            keys::POLICY,
            policy_json(app)
        )),
        Some(Err(e)) => problems.push(format!("key {} is not valid JSON: {e}", keys::POLICY)),
        None => problems.push(format!(
            "key {} is missing (expected {})",
            keys::POLICY,
            policy_json(app)
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::plan::plan;
    use crate::plan::test_support::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn external(keys_: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("vault-grafana".into()),
                namespace: Some("tools".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                keys_
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn existing_secret_is_waited_for_then_checked_then_used() {
        let mut app = basic();
        app.spec.secret.existing_secret = Some("vault-grafana".into());
        let now = t("2026-01-01T00:00:00Z");
        let p = plan(&app, None, &cfg(), now, &mut Counter(0));
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.status.conditions[0].reason, reason::SECRET_MISSING);
        assert_eq!(p.requeue_after, WAIT_FOR_SECRET);
        assert_eq!(p.status.secret_name.as_deref(), Some("vault-grafana"));

        let incomplete = external(&[(keys::CLIENT_ID, "other")]);
        let p = plan(&app, Some(&incomplete), &cfg(), now, &mut Counter(0));
        assert_eq!(p.secret, SecretAction::None);
        let c = &p.status.conditions[0];
        assert_eq!(c.reason, reason::SECRET_INVALID);
        for needle in [
            "\"other\"",
            "client-secret is missing",
            "issuer-url is missing",
            "cookie-secret is missing",
            "policy.json is missing",
        ] {
            assert!(c.message.contains(needle), "{needle}: {}", c.message);
        }

        let policy = policy_json(&app);
        let cookie = STANDARD.encode([7u8; 32]);
        let client_secret = "s".repeat(40);
        let complete = external(&[
            (keys::CLIENT_ID, "tools.grafana"),
            (keys::CLIENT_SECRET, &client_secret),
            (keys::ISSUER_URL, "https://login.example.com"),
            (keys::COOKIE_SECRET, &cookie),
            (keys::POLICY, &policy),
        ]);
        let p = plan(&app, Some(&complete), &cfg(), now, &mut Counter(0));
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.status.conditions[0].reason, reason::REGISTERED);
        assert_eq!(
            p.status.client_secrets[0].hash,
            keys::hash_client_secret(&client_secret)
        );
        assert_eq!(p.requeue_after, EXISTING_SECRET_POLL);
    }

    #[test]
    fn an_existing_secret_may_name_a_previous_cookie_secret_with_its_time() {
        let mut app = basic();
        app.spec.secret.existing_secret = Some("vault-grafana".into());
        let now = t("2026-01-01T00:00:00Z");
        let policy = policy_json(&app);
        let cookie = STANDARD.encode([7u8; 32]);
        let previous = STANDARD.encode([6u8; 32]);
        let client_secret = "s".repeat(40);
        let with = |extra: &[(&str, &str)]| {
            let mut entries = vec![
                (keys::CLIENT_ID, "tools.grafana"),
                (keys::CLIENT_SECRET, client_secret.as_str()),
                (keys::ISSUER_URL, "https://login.example.com"),
                (keys::COOKIE_SECRET, cookie.as_str()),
                (keys::POLICY, policy.as_str()),
            ];
            entries.extend_from_slice(extra);
            let p = plan(
                &app,
                Some(&external(&entries)),
                &cfg(),
                now,
                &mut Counter(0),
            );
            assert_eq!(p.secret, SecretAction::None);
            p.status.conditions[0].clone()
        };
        let c = with(&[
            (keys::COOKIE_SECRET_PREVIOUS, &previous),
            (keys::COOKIE_SECRET_REPLACED_AT, "1767225600"),
        ]);
        assert_eq!(c.reason, reason::REGISTERED, "{}", c.message);
        let c = with(&[(keys::COOKIE_SECRET_PREVIOUS, &previous)]);
        assert_eq!(c.reason, reason::SECRET_INVALID);
        assert!(c.message.contains("give both or neither"), "{}", c.message);
        let c = with(&[
            (keys::COOKIE_SECRET_PREVIOUS, "c2hvcnQ="),
            (keys::COOKIE_SECRET_REPLACED_AT, "2026-01-01T00:00:00Z"),
        ]);
        assert_eq!(c.reason, reason::SECRET_INVALID);
        for needle in [
            "cookie-secret-previous must be 32 random bytes",
            "cookie-secret-replaced-at must be seconds",
        ] {
            assert!(c.message.contains(needle), "{needle}: {}", c.message);
        }
    }
}
