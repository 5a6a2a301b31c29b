//! The plan for an app whose Secret keyway writes (no `spec.secret.existingSecret`): the Secret's
//! keys (`contract::secret`), labels, issued-at annotation and owner reference, created or
//! replaced only when it differs; a Secret of that name that is not the app's own is never
//! touched. A new client secret's hash is published in status before the Secret carries it,
//! except for a new app (no Ready condition yet), whose Secret comes first and its status, Ready,
//! right after.

use std::collections::BTreeMap;
use std::time::Duration;

use api::{CONDITION_READY, ConnectedApp, ConnectedAppStatus};
use contract::secret as keys;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use super::conflicts::RECHECK;
use super::credentials::{Random, client_secret, cookie_secrets, rotation};
use super::events::{PlannedEvent, transition_event};
use super::ownership::{is_ours, owner_reference};
use super::status::{DEFAULT_GRACE, base_status, earliest_expiry, hashes, ready, reason, waiting};
use super::time::{add, until};
use super::{Plan, PlanConfig, SecretAction};
use crate::labels::{APP_LABEL, ISSUED_AT_ANNOTATION, MANAGED_BY_LABEL, MANAGER};

/// The event of a created Secret; not recorded when the same reconcile records `Registered`,
/// whose note names the Secret.
const SECRET_CREATED: &str = "SecretCreated";

/// The plan for `app`, given the Secret observed under its name.
pub(super) fn plan(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    cfg: &PlanConfig,
    now: Timestamp,
    rng: &mut dyn Random,
) -> Plan {
    let name = app.secret_name();
    if let Some(secret) = observed
        && !is_ours(secret, app)
    {
        return waiting(
            app,
            cfg,
            now,
            reason::SECRET_CONFLICT,
            format!(
                "Secret {name:?} exists and is not managed by keyway for this app, so it is left alone: \
                 delete it, or choose another name with spec.secret.name"
            ),
            RECHECK,
        );
    }
    let rotation = rotation(app);
    let grace = rotation.map_or(DEFAULT_GRACE, |(_, g)| g);
    let mut events = Vec::new();
    let (client_secret, issued_at) =
        client_secret(app, observed, rotation, grace, now, rng, &mut events);
    let (cookie, previous_cookie) = cookie_secrets(app, observed, now, rng, &mut events);
    let data = secret_data(app, cfg, client_secret.as_deref(), cookie, previous_cookie);
    let desired = desired_secret(app, observed, data, issued_at);
    let secret = secret_action(app, observed, desired, &mut events);
    let (status_before_secret, status) = statuses(
        app,
        cfg,
        client_secret.as_deref(),
        grace,
        &secret,
        now,
        &mut events,
    );

    let mut requeue_after = cfg.resync;
    if let (Some((interval, _)), Some(issued)) = (rotation, issued_at) {
        requeue_after =
            requeue_after.min(until(now, add(issued, interval)) + Duration::from_secs(1));
    }
    if let Some(e) = earliest_expiry(now, &status.client_secrets) {
        requeue_after = requeue_after.min(e);
    }
    Plan {
        status_before_secret,
        secret,
        status,
        events,
        requeue_after,
    }
}

/// The policy JSON the Secret carries (stable: serde writes fields in declaration order).
pub(crate) fn policy_json(app: &ConnectedApp) -> String {
    serde_json::to_string(&app.spec.app_policy()).unwrap_or_default()
}

/// keyway's keys of the Secret (`contract::secret`).
fn secret_data(
    app: &ConnectedApp,
    cfg: &PlanConfig,
    client_secret: Option<&str>,
    cookie: String,
    previous_cookie: Option<(String, String)>,
) -> BTreeMap<String, ByteString> {
    let client_id = app.client_id().unwrap_or_default();
    let mut data = BTreeMap::new();
    data.insert(
        keys::CLIENT_ID.to_string(),
        ByteString(client_id.into_bytes()),
    );
    if let Some(s) = client_secret {
        data.insert(
            keys::CLIENT_SECRET.to_string(),
            ByteString(s.to_owned().into_bytes()),
        );
    }
    data.insert(
        keys::ISSUER_URL.to_string(),
        ByteString(cfg.issuer_url.clone().into_bytes()),
    );
    data.insert(
        keys::COOKIE_SECRET_SEEN.to_string(),
        ByteString(cookie.clone().into_bytes()),
    );
    data.insert(
        keys::COOKIE_SECRET.to_string(),
        ByteString(cookie.into_bytes()),
    );
    if let Some((key, at)) = previous_cookie {
        data.insert(
            keys::COOKIE_SECRET_PREVIOUS.to_string(),
            ByteString(key.into_bytes()),
        );
        data.insert(
            keys::COOKIE_SECRET_REPLACED_AT.to_string(),
            ByteString(at.into_bytes()),
        );
    }
    data.insert(
        keys::POLICY.to_string(),
        ByteString(policy_json(app).into_bytes()),
    );
    data
}

/// The Secret as it should be: the observed one (or a new one) with keyway's keys, labels,
/// issued-at annotation and owner reference.
fn desired_secret(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    data: BTreeMap<String, ByteString>,
    issued_at: Option<Timestamp>,
) -> Secret {
    let owner = owner_reference(app);
    let mut desired = observed.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(app.secret_name()),
            namespace: Some(app.namespace().unwrap_or_default()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    });
    // Our keys replace theirs; keys we do not know are left alone, except a client secret on a
    // public client.
    let mut merged = desired.data.clone().unwrap_or_default();
    for key in keys::ALL_KEYS {
        merged.remove(key);
    }
    merged.extend(data);
    desired.data = Some(merged);
    desired.string_data = None;
    let labels = desired.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels.insert(APP_LABEL.into(), app.name_any());
    let annotations = desired
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match issued_at {
        Some(t) => {
            annotations.insert(ISSUED_AT_ANNOTATION.into(), t.to_string());
        }
        None => {
            annotations.remove(ISSUED_AT_ANNOTATION);
        }
    }
    if desired
        .metadata
        .annotations
        .as_ref()
        .is_some_and(BTreeMap::is_empty)
    {
        desired.metadata.annotations = None;
    }
    if let Some(owner) = owner {
        let refs = desired
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new);
        if !refs.iter().any(|r| r.uid == owner.uid) {
            refs.push(owner);
        }
    }
    desired
}

/// Create the Secret when none is observed, replace it when it differs from `desired`, else
/// nothing; with a `SecretCreated` or `SecretUpdated` event (none for an update that a rotation
/// or a replaced cookie secret already announced; `statuses` drops `SecretCreated` for
/// `Registered`).
fn secret_action(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    desired: Secret,
    events: &mut Vec<PlannedEvent>,
) -> SecretAction {
    let name = app.secret_name();
    let client_id = app.client_id().unwrap_or_default();
    match observed {
        None => {
            events.push(PlannedEvent {
                warning: false,
                reason: SECRET_CREATED.into(),
                note: format!("wrote Secret {name} for client {client_id}"),
            });
            SecretAction::Create(desired)
        }
        Some(o) if *o != desired => {
            if !events
                .iter()
                .any(|e| e.reason == "SecretRotated" || e.reason == "CookieSecretReplaced")
            {
                events.push(PlannedEvent {
                    warning: false,
                    reason: "SecretUpdated".into(),
                    note: format!("updated Secret {name} for client {client_id}"),
                });
            }
            SecretAction::Replace(desired)
        }
        Some(_) => SecretAction::None,
    }
}

/// The status to publish before the Secret is written (when it is about to carry a client
/// secret whose hash the issuer does not know yet, for an app that already has a Ready
/// condition) and the final one (Ready), with the event of a change of the Ready condition.
fn statuses(
    app: &ConnectedApp,
    cfg: &PlanConfig,
    client_secret: Option<&str>,
    grace: Duration,
    secret: &SecretAction,
    now: Timestamp,
    events: &mut Vec<PlannedEvent>,
) -> (Option<ConnectedAppStatus>, ConnectedAppStatus) {
    let name = app.secret_name();
    let client_id = app.client_id().unwrap_or_default();
    let mut status = base_status(app, cfg);
    status.client_secrets = hashes(app, client_secret, grace, now);
    let known = app
        .status
        .as_ref()
        .map(|s| s.client_secrets.as_slice())
        .unwrap_or_default();
    let new_hash_unpublished = status
        .client_secrets
        .first()
        .filter(|_| client_secret.is_some())
        .is_some_and(|h| !known.iter().any(|k| k.hash == h.hash));
    // An app with a Ready condition may have sidecars running and the issuer knows it: a new
    // client secret's hash is published (under the condition it had) before the Secret carries
    // the secret. A new app has neither: its Secret is written first and its one status, Ready
    // with the hash, right after, so Ready never shows before the Secret exists.
    let previous = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY));
    let status_before_secret = previous
        .filter(|_| new_hash_unpublished && *secret != SecretAction::None)
        .map(|previous| {
            let mut early = status.clone();
            early.conditions = vec![previous.clone()];
            early
        });
    let condition = ready(
        app,
        true,
        reason::REGISTERED,
        format!("client {client_id} registered; credentials in Secret {name}"),
        now,
    );
    if let Some(registered) = transition_event(app, &condition) {
        // Its note names the Secret: one event for the app's registration, not two.
        events.retain(|e| e.reason != SECRET_CREATED);
        events.push(registered);
    }
    status.conditions = vec![condition];
    (status_before_secret, status)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::plan::credentials::valid_cookie_secret;
    use crate::plan::plan;
    use crate::plan::test_support::*;
    use api::{ClientSecretHash, Rotation};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn new_confidential_app_gets_a_secret_and_a_published_hash_first() {
        let app = basic();
        let now = t("2026-01-01T00:00:00Z");
        let plan = plan(&app, None, &cfg(), now, &mut Counter(0));
        let SecretAction::Create(secret) = &plan.secret else {
            panic!("expected a create: {:?}", plan.secret);
        };
        assert_eq!(secret.metadata.name.as_deref(), Some("grafana-keyway"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("tools"));
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller, owner.kind.as_str()),
            ("uid-1", Some(true), "ConnectedApp")
        );
        assert_eq!(
            data(secret, keys::CLIENT_ID).as_deref(),
            Some("tools.grafana")
        );
        assert_eq!(
            data(secret, keys::ISSUER_URL).as_deref(),
            Some("https://login.example.com")
        );
        let client_secret = data(secret, keys::CLIENT_SECRET).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&client_secret).unwrap().len(), 32);
        assert_eq!(
            STANDARD
                .decode(data(secret, keys::COOKIE_SECRET).unwrap())
                .unwrap()
                .len(),
            32
        );
        let policy: keys::AppPolicy =
            serde_json::from_str(&data(secret, keys::POLICY).unwrap()).unwrap();
        assert_eq!(policy, app.spec.app_policy());
        assert_eq!(
            secret.annotations()[ISSUED_AT_ANNOTATION],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(secret.labels()[MANAGED_BY_LABEL], MANAGER);

        let hash = keys::hash_client_secret(&client_secret);
        // A new app: the Secret first, then its one status, Ready with the hash.
        assert_eq!(plan.status_before_secret, None);
        assert_eq!(
            plan.status.client_secrets,
            vec![ClientSecretHash {
                hash: hash.clone(),
                expires_at: None
            }]
        );
        assert_eq!(plan.status.client_id.as_deref(), Some("tools.grafana"));
        assert_eq!(plan.status.secret_name.as_deref(), Some("grafana-keyway"));
        assert_eq!(plan.status.observed_generation, Some(1));
        assert_eq!(plan.status.conditions[0].status, "True");
        assert_eq!(plan.status.conditions[0].reason, reason::REGISTERED);
        // One event for the registration, whose note names the Secret.
        let reasons: Vec<_> = plan.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["Registered"]);
        assert!(plan.events[0].note.contains("Secret grafana-keyway"));
        assert_eq!(plan.requeue_after, Duration::from_secs(3600));
        // No secret in events or condition messages.
        for e in &plan.events {
            assert!(!e.note.contains(&client_secret));
        }
    }

    #[test]
    fn settled_app_plans_no_write_and_no_event() {
        let app = basic();
        let now = t("2026-01-01T00:00:00Z");
        let first = plan(&app, None, &cfg(), now, &mut Counter(0));
        let (app, secret) = settle(&app, &first, None);
        let later = t("2026-01-01T05:00:00Z");
        let again = plan(&app, secret.as_ref(), &cfg(), later, &mut Counter(50));
        assert_eq!(again.secret, SecretAction::None);
        assert_eq!(again.status_before_secret, None);
        assert!(!again.status_changed(&app), "{:#?}", again.status);
        assert!(again.events.is_empty());
    }

    #[test]
    fn public_client_has_no_client_secret() {
        let mut app = basic();
        app.spec.client_type = api::ClientType::Public;
        let plan = first_plan(&app);
        let SecretAction::Create(secret) = &plan.secret else {
            panic!()
        };
        assert!(data(secret, keys::CLIENT_SECRET).is_none());
        assert!(data(secret, keys::COOKIE_SECRET).is_some());
        assert!(secret.annotations().get(ISSUED_AT_ANNOTATION).is_none());
        assert!(plan.status.client_secrets.is_empty());
        assert!(plan.status_before_secret.is_none());
    }

    #[test]
    fn switching_to_public_removes_the_client_secret_and_lets_its_hash_expire() {
        let app = basic();
        let now = t("2026-01-01T00:00:00Z");
        let first = plan(&app, None, &cfg(), now, &mut Counter(0));
        let (mut app, secret) = settle(&app, &first, None);
        app.spec.client_type = api::ClientType::Public;
        app.metadata.generation = Some(2);
        let p = plan(&app, secret.as_ref(), &cfg(), now, &mut Counter(9));
        let SecretAction::Replace(s) = &p.secret else {
            panic!("{:?}", p.secret)
        };
        assert!(data(s, keys::CLIENT_SECRET).is_none());
        assert_eq!(p.status.client_secrets.len(), 1);
        assert_eq!(
            p.status.client_secrets[0].expires_at,
            Some(Time(t("2026-01-01T01:00:00Z")))
        );
    }

    fn rotating() -> ConnectedApp {
        let mut app = basic();
        app.spec.secret.rotation = Some(Rotation {
            interval: "720h".into(),
            grace_period: "24h".into(),
        });
        app
    }

    #[test]
    fn rotation_publishes_the_new_hash_first_and_keeps_the_old_one_for_the_grace_period() {
        let app = rotating();
        let start = t("2026-01-01T00:00:00Z");
        let first = plan(&app, None, &cfg(), start, &mut Counter(0));
        assert_eq!(first.requeue_after, Duration::from_secs(3600));
        let (app, secret) = settle(&app, &first, None);
        let old_secret = data(secret.as_ref().unwrap(), keys::CLIENT_SECRET).unwrap();
        let old_cookie = data(secret.as_ref().unwrap(), keys::COOKIE_SECRET).unwrap();

        // Not yet due: nothing; the requeue aims at the due time when it is nearer than a resync.
        let before = t("2026-01-30T23:30:00Z");
        let p = plan(&app, secret.as_ref(), &cfg(), before, &mut Counter(10));
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.requeue_after, Duration::from_secs(1801));

        let due = t("2026-01-31T00:00:00Z");
        let p = plan(&app, secret.as_ref(), &cfg(), due, &mut Counter(10));
        let SecretAction::Replace(new) = &p.secret else {
            panic!("{:?}", p.secret)
        };
        let new_secret = data(new, keys::CLIENT_SECRET).unwrap();
        assert_ne!(new_secret, old_secret);
        assert_eq!(
            data(new, keys::COOKIE_SECRET).unwrap(),
            old_cookie,
            "cookie secret is kept"
        );
        assert_eq!(
            new.annotations()[ISSUED_AT_ANNOTATION],
            "2026-01-31T00:00:00Z"
        );
        let expected = vec![
            ClientSecretHash {
                hash: keys::hash_client_secret(&new_secret),
                expires_at: None,
            },
            ClientSecretHash {
                hash: keys::hash_client_secret(&old_secret),
                expires_at: Some(Time(t("2026-02-01T00:00:00Z"))),
            },
        ];
        assert_eq!(
            p.status_before_secret.as_ref().unwrap().client_secrets,
            expected
        );
        assert_eq!(p.status.client_secrets, expected);
        // Ready stays True throughout; the early status equals the final one.
        assert_eq!(p.status_before_secret.as_ref(), Some(&p.status));
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].reason, "SecretRotated");
        // The old hash expires in 24h; the hourly resync comes first.
        assert_eq!(p.requeue_after, Duration::from_secs(3600));

        // During the grace period: settled, nothing to write.
        let (app, secret) = settle(&app, &p, secret);
        let mid = t("2026-01-31T12:00:00Z");
        let p = plan(&app, secret.as_ref(), &cfg(), mid, &mut Counter(20));
        assert_eq!(p.secret, SecretAction::None);
        assert!(!p.status_changed(&app));

        // After it: the old hash goes.
        let after = t("2026-02-01T00:00:01Z");
        let p = plan(&app, secret.as_ref(), &cfg(), after, &mut Counter(20));
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.status.client_secrets.len(), 1);
        assert!(p.status_changed(&app));
    }

    #[test]
    fn foreign_secret_is_never_overwritten() {
        let app = basic();
        let foreign = Secret {
            metadata: ObjectMeta {
                name: Some("grafana-keyway".into()),
                namespace: Some("tools".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let p = plan(
            &app,
            Some(&foreign),
            &cfg(),
            t("2026-01-01T00:00:00Z"),
            &mut Counter(0),
        );
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.status_before_secret, None);
        let c = &p.status.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::SECRET_CONFLICT)
        );
        assert!(c.message.contains("spec.secret.name"), "{}", c.message);
        assert_eq!(p.requeue_after, RECHECK);
        assert!(p.events[0].warning);
    }

    #[test]
    fn a_replaced_cookie_secret_is_kept_as_the_previous_one_with_its_time() {
        let app = basic();
        let first = first_plan(&app);
        let (app, secret) = settle(&app, &first, None);
        let mut secret = secret.unwrap();
        let old_cookie = data(&secret, keys::COOKIE_SECRET).unwrap();
        assert_eq!(data(&secret, keys::COOKIE_SECRET_PREVIOUS), None);
        assert_eq!(data(&secret, keys::COOKIE_SECRET_REPLACED_AT), None);

        // Someone writes a new cookie secret into the Secret.
        let by_hand = STANDARD.encode([42u8; 32]);
        let put = |secret: &mut Secret, key: &str, value: Option<&str>| {
            let data = secret.data.as_mut().unwrap();
            match value {
                Some(v) => data.insert(key.into(), ByteString(v.as_bytes().to_vec())),
                None => data.remove(key),
            };
        };
        put(&mut secret, keys::COOKIE_SECRET, Some(&by_hand));
        let at = t("2026-01-02T00:00:00Z");
        let p = plan(&app, Some(&secret), &cfg(), at, &mut Counter(10));
        let SecretAction::Replace(new) = &p.secret else {
            panic!("{:?}", p.secret)
        };
        assert_eq!(data(new, keys::COOKIE_SECRET), Some(by_hand.clone()));
        assert_eq!(data(new, keys::COOKIE_SECRET_PREVIOUS), Some(old_cookie));
        assert_eq!(
            data(new, keys::COOKIE_SECRET_REPLACED_AT),
            Some(at.as_second().to_string())
        );
        let reasons: Vec<_> = p.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["CookieSecretReplaced"]);
        assert!(!p.events[0].note.contains(&by_hand));

        // Settled, later reconciles write nothing and keep the previous one as it is.
        let (app, secret) = settle(&app, &p, Some(secret));
        let mut secret = secret.unwrap();
        let later = plan(
            &app,
            Some(&secret),
            &cfg(),
            t("2026-01-03T00:00:00Z"),
            &mut Counter(20),
        );
        assert_eq!(later.secret, SecretAction::None);
        assert!(later.events.is_empty());

        // A deleted cookie secret is generated anew, and the one it replaces is kept.
        put(&mut secret, keys::COOKIE_SECRET, None);
        let again = t("2026-01-04T00:00:00Z");
        let p = plan(&app, Some(&secret), &cfg(), again, &mut Counter(30));
        let SecretAction::Replace(new) = &p.secret else {
            panic!("{:?}", p.secret)
        };
        let fresh = data(new, keys::COOKIE_SECRET).unwrap();
        assert!(valid_cookie_secret(&fresh) && fresh != by_hand);
        assert_eq!(data(new, keys::COOKIE_SECRET_PREVIOUS), Some(by_hand));
        assert_eq!(
            data(new, keys::COOKIE_SECRET_REPLACED_AT),
            Some(again.as_second().to_string())
        );
    }

    #[test]
    fn deleted_secret_is_recreated_and_the_lost_secret_expires() {
        let app = basic();
        let first = first_plan(&app);
        let (app, _) = settle(&app, &first, None);
        let p = plan(
            &app,
            None,
            &cfg(),
            t("2026-01-02T00:00:00Z"),
            &mut Counter(5),
        );
        assert!(matches!(p.secret, SecretAction::Create(_)));
        assert_eq!(p.status.client_secrets.len(), 2);
        assert_eq!(
            p.status.client_secrets[1].expires_at,
            Some(Time(t("2026-01-02T01:00:00Z")))
        );
        // A Ready app may have sidecars: the new hash is published before the Secret, under the
        // condition it had (so the final status equals it and is not written again).
        assert_eq!(p.status_before_secret.as_ref(), Some(&p.status));
        let reasons: Vec<_> = p.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, [SECRET_CREATED]);
    }
}
