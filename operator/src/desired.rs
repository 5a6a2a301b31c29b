//! Pure functions: from a `ConnectedApp`, the Secret observed under its name and the time, the
//! state the cluster should be in. The reconciler fetches what is observed, calls [`plan`] and
//! applies only the differences, so nearly all the logic is tested here without any API.

use std::collections::BTreeMap;
use std::time::Duration;

use api::{
    CONDITION_READY, ClientSecretHash, ConnectedApp, ConnectedAppStatus, parse_duration, validate,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use contract::secret as keys;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};

/// Label on every Secret the operator writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`]; also the field manager of status writes.
pub const MANAGER: &str = "keyway-operator";
/// Label naming the ConnectedApp a Secret belongs to.
pub const APP_LABEL: &str = "keyway.dev/connected-app";
/// Annotation on the Secret: when the current client secret was generated (RFC 3339).
pub const ISSUED_AT_ANNOTATION: &str = "keyway.dev/client-secret-issued-at";

/// How long a replaced client secret stays valid when no rotation grace period applies (the
/// Secret was deleted or an existingSecret changed).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// How often an app blocked by a foreign Secret, or by another app holding its client ID or its
/// resource, is looked at again.
pub const RECHECK: Duration = Duration::from_secs(30);
/// How soon an app is looked at again when the app holding its client ID or its resource is being
/// deleted.
pub const HOLDER_LEAVING: Duration = Duration::from_secs(2);
/// How often an app waiting for its existingSecret (missing or incomplete) is looked at again.
pub const WAIT_FOR_SECRET: Duration = Duration::from_secs(10);
/// How often a ready app's existingSecret is read again, to publish the hash of a client secret
/// changed by whoever manages it. A Secret labelled [`APP_LABEL`] is watched instead, so its
/// changes are seen at once.
pub const EXISTING_SECRET_POLL: Duration = Duration::from_secs(30);
/// At most this many client-secret hashes in status (the current one and those expiring).
pub const MAX_HASHES: usize = 4;
/// Minimum length of a client secret in an existingSecret (characters).
pub const MIN_EXTERNAL_SECRET_LEN: usize = 32;
/// Maximum length of a condition message we write (the API allows 32768).
const MAX_MESSAGE: usize = 4096;

/// Reasons of the `Ready` condition.
pub mod reason {
    /// Registered; credentials in the Secret.
    pub const REGISTERED: &str = "Registered";
    /// A new client secret is published in status and about to be written to the Secret.
    pub const PROVISIONING: &str = "Provisioning";
    /// The spec breaks a rule; the message lists every problem.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A Secret of the target name exists and is not keyway's for this app.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// The existingSecret does not exist (yet).
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// The existingSecret lacks keys or holds values that do not fit the app.
    pub const SECRET_INVALID: &str = "SecretInvalid";
    /// Another app holds the same client ID (`api::claims`).
    pub const CLIENT_ID_CONFLICT: &str = api::claims::CLIENT_ID_CONFLICT;
    /// Another app holds the same resource (`api::resources`).
    pub const RESOURCE_CONFLICT: &str = api::resources::RESOURCE_CONFLICT;
    /// The resource's host is bound to other namespaces (`api::resource_hosts`).
    pub const RESOURCE_NOT_PERMITTED: &str = api::resource_hosts::RESOURCE_NOT_PERMITTED;
}

/// What the operator is configured with, as far as desired state goes.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// The issuer URL written into Secrets and status.
    pub issuer_url: String,
    /// Resync period of settled apps.
    pub resync: Duration,
    /// Which namespaces may claim resources on which hosts (`--resource-hosts`).
    pub resource_hosts: api::resource_hosts::ResourceHosts,
}

/// A Kubernetes event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: String,
    /// Human-readable note (never contains secrets).
    pub note: String,
}

/// What to do with the Secret.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretAction {
    /// Nothing.
    None,
    /// Create it (it does not exist).
    Create(Secret),
    /// Replace it (it exists, is ours, and differs); carries the observed resourceVersion.
    Replace(Secret),
}

/// The full plan for one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Status to publish before the Secret is written, when the Secret is about to carry a
    /// client secret whose hash the issuer does not know yet.
    pub status_before_secret: Option<ConnectedAppStatus>,
    /// What to do with the Secret.
    pub secret: SecretAction,
    /// The status the app should end with.
    pub status: ConnectedAppStatus,
    /// Events to record (only for changes).
    pub events: Vec<PlannedEvent>,
    /// When to look at the app again.
    pub requeue_after: Duration,
}

impl Plan {
    /// Whether the final status differs from what is observed.
    pub fn status_changed(&self, app: &ConnectedApp) -> bool {
        app.status.as_ref() != Some(&self.status)
    }
}

/// A source of random bytes (the OS in production; deterministic in tests).
pub trait Random {
    /// `n` random bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8>;
}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        use rand::RngCore as _;
        let mut buf = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        buf
    }
}

/// A new client secret: 256 random bits, base64url without padding (43 characters).
pub fn new_client_secret(rng: &mut dyn Random) -> String {
    URL_SAFE_NO_PAD.encode(rng.bytes(32))
}

/// A new cookie secret: 32 random bytes, base64 (standard, padded), per `contract::secret`.
pub fn new_cookie_secret(rng: &mut dyn Random) -> String {
    STANDARD.encode(rng.bytes(32))
}

fn valid_cookie_secret(value: &str) -> bool {
    STANDARD.decode(value).is_ok_and(|b| b.len() == 32)
}

/// Whether the Secret is controlled by this app (an owner reference with `controller: true` and
/// the app's UID).
pub fn is_ours(secret: &Secret, app: &ConnectedApp) -> bool {
    let Some(uid) = app.meta().uid.as_deref() else {
        return false;
    };
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let data = secret.data.as_ref()?;
    let bytes = data.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Truncates `t` to whole seconds (the API stores times with second precision).
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
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
fn ready(app: &ConnectedApp, ok: bool, reason: &str, message: String, now: Timestamp) -> Condition {
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
fn hashes(
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

fn base_status(app: &ConnectedApp, cfg: &PlanConfig) -> ConnectedAppStatus {
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

/// Events for a change of the Ready condition (none when it stays the same).
fn transition_event(app: &ConnectedApp, condition: &Condition) -> Option<PlannedEvent> {
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
        note: truncate_note(&condition.message),
    })
}

fn truncate_note(note: &str) -> String {
    // Events notes are limited to 1 kB.
    let mut end = note.len().min(1000);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_string()
}

fn earliest_expiry(now: Timestamp, hashes: &[ClientSecretHash]) -> Option<Duration> {
    hashes
        .iter()
        .filter_map(|h| h.expires_at.as_ref())
        .map(|t| until(now, t.0) + Duration::from_secs(1))
        .min()
}

/// Computes the plan for `app`, given the Secret observed under [`ConnectedApp::secret_name`].
pub fn plan(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    cfg: &PlanConfig,
    now: Timestamp,
    rng: &mut dyn Random,
) -> Plan {
    let now = whole_seconds(now);
    let problems = validate(&app.spec);
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return waiting(
            app,
            cfg,
            now,
            reason::INVALID_SPEC,
            format!("the spec is invalid: {message}"),
            cfg.resync,
        );
    }
    if let Some(problem) =
        api::claims::reserved_client_id(app).or_else(|| api::claims::foreign_client_id(app))
    {
        return waiting(
            app,
            cfg,
            now,
            reason::INVALID_SPEC,
            format!("the spec is invalid: {problem}"),
            cfg.resync,
        );
    }
    let secret_name = app.secret_name();
    if secret_name.len() > api::limits::NAME {
        return waiting(
            app,
            cfg,
            now,
            reason::INVALID_SPEC,
            format!(
                "the default Secret name {secret_name:?} is longer than {} characters: set spec.secret.name",
                api::limits::NAME
            ),
            cfg.resync,
        );
    }
    if app.spec.secret.existing_secret.is_some() {
        plan_existing(app, observed, cfg, now)
    } else {
        plan_owned(app, observed, cfg, now, rng)
    }
}

/// The plan for an app whose client ID `holder` claimed first (see `api::claims`): not ready,
/// nothing written but the status; its Secret, if any, is left as it is. Looked at again when
/// the holder changes or goes away (the controller maps the holder's events to it), and after
/// [`RECHECK`] (or [`HOLDER_LEAVING`] while the holder is being deleted) in any case.
pub fn conflict(
    app: &ConnectedApp,
    holder: &ConnectedApp,
    cfg: &PlanConfig,
    now: Timestamp,
) -> Plan {
    let id = app.client_id().unwrap_or_default();
    lost(
        app,
        holder,
        cfg,
        now,
        reason::CLIENT_ID_CONFLICT,
        format!(
            "client ID {id:?} is held by ConnectedApp {}, which holds it; no Secret is written for this app: \
             choose another spec.clientID, or delete the other app",
            api::claims::display_name(holder)
        ),
    )
}

/// The plan for an app whose `spec.resource` `holder` holds (see `api::resources`): treated as an
/// app without its client ID ([`conflict`]), because it is not a client either (the issuer
/// refuses it, so credentials for it would be useless): not ready, nothing written but the
/// status (without `status.resource`), its Secret, if any, left as it is. Its client ID stays
/// recorded in status: it still holds that. Looked at again when the holder changes or goes away
/// (the controller maps the holder's events to it), and after [`RECHECK`] (or
/// [`HOLDER_LEAVING`] while the holder is being deleted) in any case.
pub fn resource_conflict(
    app: &ConnectedApp,
    holder: &ConnectedApp,
    cfg: &PlanConfig,
    now: Timestamp,
) -> Plan {
    let resource = app.spec.resource.as_deref().unwrap_or_default();
    lost(
        app,
        holder,
        cfg,
        now,
        reason::RESOURCE_CONFLICT,
        format!(
            "resource {resource:?} is held by ConnectedApp {}; this app is not a client and no Secret is written for it: \
             choose another spec.resource, or delete the other app",
            api::claims::display_name(holder)
        ),
    )
}

/// The plan for an app whose `spec.resource` is on a host bound to other namespaces (see
/// `api::resource_hosts`): treated as an app without its resource ([`resource_conflict`]), because
/// it is not a client either: not ready, nothing written but the status (without
/// `status.resource`), its Secret, if any, left as it is, its client ID still recorded. Only an
/// edit of the app (or the operator's configuration, which a restart brings) changes that, so it
/// is looked at again at the resync.
pub fn resource_not_permitted(
    app: &ConnectedApp,
    refusal: &api::resource_hosts::Refusal,
    cfg: &PlanConfig,
    now: Timestamp,
) -> Plan {
    let mut plan = waiting(
        app,
        cfg,
        whole_seconds(now),
        reason::RESOURCE_NOT_PERMITTED,
        refusal.to_string(),
        cfg.resync,
    );
    plan.status.resource = None;
    plan
}

/// Not ready because `holder` holds what `app` claims: the status records no resource.
fn lost(
    app: &ConnectedApp,
    holder: &ConnectedApp,
    cfg: &PlanConfig,
    now: Timestamp,
    why: &str,
    message: String,
) -> Plan {
    let now = whole_seconds(now);
    let recheck = if holder.meta().deletion_timestamp.is_some() {
        HOLDER_LEAVING
    } else {
        RECHECK
    };
    let mut plan = waiting(app, cfg, now, why, message, recheck);
    plan.status.resource = None;
    plan
}

/// Not ready: keep publishing the hashes that are still valid, write nothing else.
fn waiting(
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

fn plan_existing(
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
    let mut problems = Vec::new();
    let client_id = app.client_id().unwrap_or_default();
    match text(secret, keys::CLIENT_ID) {
        Some(id) if id == client_id => {}
        Some(id) => problems.push(format!(
            "key {} is {id:?}, but the app's client ID is {client_id:?}",
            keys::CLIENT_ID
        )),
        None => problems.push(format!("key {} is missing", keys::CLIENT_ID)),
    }
    let client_secret = text(secret, keys::CLIENT_SECRET);
    if app.spec.is_confidential() {
        match &client_secret {
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

/// The policy JSON the Secret carries (stable: serde writes fields in declaration order).
pub fn policy_json(app: &ConnectedApp) -> String {
    serde_json::to_string(&app.spec.app_policy()).unwrap_or_default()
}

fn rotation(app: &ConnectedApp) -> Option<(Duration, Duration)> {
    let r = app.spec.secret.rotation.as_ref()?;
    let interval = parse_duration(&r.interval).ok()?;
    let grace = parse_duration(&r.grace_period).ok()?;
    Some((interval, grace))
}

fn plan_owned(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    cfg: &PlanConfig,
    now: Timestamp,
    rng: &mut dyn Random,
) -> Plan {
    let name = app.secret_name();
    let namespace = app.namespace().unwrap_or_default();
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
    let client_id = app.client_id().unwrap_or_default();
    let rotation = rotation(app);
    let grace = rotation.map_or(DEFAULT_GRACE, |(_, g)| g);

    // Client secret: keep the one in the Secret unless it is missing or due for rotation.
    let observed_secret = observed.and_then(|s| text(s, keys::CLIENT_SECRET));
    let observed_issued = observed
        .and_then(|s| s.annotations().get(ISSUED_AT_ANNOTATION))
        .and_then(|t| t.parse::<Timestamp>().ok());
    let mut events = Vec::new();
    let (client_secret, issued_at) = if app.spec.is_confidential() {
        match (observed_secret, observed_issued) {
            (Some(s), Some(issued))
                if s.len() >= 43
                    && rotation.is_none_or(|(interval, _)| add(issued, interval) > now) =>
            {
                (Some(s), Some(issued))
            }
            (Some(s), None) if s.len() >= 43 => (Some(s), Some(now)),
            (previous, _) => {
                let fresh = new_client_secret(rng);
                if previous.is_some() {
                    events.push(PlannedEvent {
                        warning: false,
                        reason: "SecretRotated".into(),
                        note: format!(
                            "generated a new client secret for {client_id}; the previous one stays valid for {}s",
                            grace.as_secs()
                        ),
                    });
                }
                (Some(fresh), Some(now))
            }
        }
    } else {
        (None, None)
    };
    let cookie = observed
        .and_then(|s| text(s, keys::COOKIE_SECRET))
        .filter(|c| valid_cookie_secret(c))
        .unwrap_or_else(|| new_cookie_secret(rng));
    // A cookie secret replaced since the last write (by hand, or regenerated above) keeps the one
    // it replaced as the previous, stamped now: sidecars, restarted or not, still open cookies
    // sealed with it for their --cookie-secret-grace. Otherwise the previous one stays as it is.
    let seen = observed
        .and_then(|s| text(s, keys::COOKIE_SECRET_SEEN))
        .filter(|c| valid_cookie_secret(c));
    let previous = match seen {
        Some(seen) if seen != cookie => {
            events.push(PlannedEvent {
                warning: false,
                reason: "CookieSecretReplaced".into(),
                note: format!(
                    "the cookie secret of {client_id} was replaced; sidecars still open cookies of the previous one for their --cookie-secret-grace"
                ),
            });
            Some((
                seen,
                u64::try_from(now.as_second()).unwrap_or(0).to_string(),
            ))
        }
        _ => observed.and_then(|s| {
            let key = text(s, keys::COOKIE_SECRET_PREVIOUS).filter(|c| valid_cookie_secret(c))?;
            let at = text(s, keys::COOKIE_SECRET_REPLACED_AT)
                .filter(|t| keys::parse_replaced_at(t).is_some())?;
            Some((key, at))
        }),
    };

    let mut data = BTreeMap::new();
    data.insert(
        keys::CLIENT_ID.to_string(),
        ByteString(client_id.clone().into_bytes()),
    );
    if let Some(s) = &client_secret {
        data.insert(
            keys::CLIENT_SECRET.to_string(),
            ByteString(s.clone().into_bytes()),
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
    if let Some((key, at)) = previous {
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

    let owner = owner_reference(app);
    let mut desired = observed.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
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

    let secret_action = match observed {
        None => {
            events.push(PlannedEvent {
                warning: false,
                reason: "SecretCreated".into(),
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
    };

    let mut status = base_status(app, cfg);
    status.client_secrets = hashes(app, client_secret.as_deref(), grace, now);
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
    let status_before_secret =
        (new_hash_unpublished && secret_action != SecretAction::None).then(|| {
            let mut early = status.clone();
            let previous = app
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY))
                .cloned();
            early.conditions = vec![previous.unwrap_or_else(|| {
                ready(
                    app,
                    false,
                    reason::PROVISIONING,
                    format!("writing Secret {name}"),
                    now,
                )
            })];
            early
        });
    let condition = ready(
        app,
        true,
        reason::REGISTERED,
        format!("client {client_id} registered; credentials in Secret {name}"),
        now,
    );
    events.extend(transition_event(app, &condition));
    status.conditions = vec![condition];

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
        secret: secret_action,
        status,
        events,
        requeue_after,
    }
}

/// The controller owner reference of a Secret to its app (deleting the app deletes the Secret).
pub fn owner_reference(app: &ConnectedApp) -> Option<OwnerReference> {
    let mut owner = app.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use api::{ConnectedAppSpec, Rotation};
    use pretty_assertions::assert_eq;

    /// Deterministic "random" bytes: each call returns a run of the next byte value.
    pub(crate) struct Counter(pub u8);
    impl Random for Counter {
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            self.0 = self.0.wrapping_add(1);
            vec![self.0; n]
        }
    }

    pub(crate) fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub(crate) fn app(spec: serde_json::Value) -> ConnectedApp {
        let spec: ConnectedAppSpec = serde_json::from_value(spec).unwrap();
        let mut app = ConnectedApp::new("grafana", spec);
        app.metadata.namespace = Some("tools".into());
        app.metadata.uid = Some("uid-1".into());
        app.metadata.generation = Some(1);
        app.metadata.resource_version = Some("100".into());
        app.metadata.finalizers = Some(vec![api::FINALIZER.into()]);
        app
    }

    pub(crate) fn basic() -> ConnectedApp {
        app(serde_json::json!({
            "displayName": "Grafana",
            "redirectURIs": ["https://grafana.example.com/oauth2/callback"],
            "resource": "https://grafana.example.com",
            "access": {"allowedGroups": ["eng"]},
        }))
    }

    pub(crate) fn cfg() -> PlanConfig {
        PlanConfig {
            issuer_url: "https://login.example.com".into(),
            resync: Duration::from_secs(3600),
            resource_hosts: Default::default(),
        }
    }

    /// The plan for `app` seen for the first time (no Secret yet) at 2026-01-01T00:00:00Z.
    pub(crate) fn first_plan(app: &ConnectedApp) -> Plan {
        plan(
            app,
            None,
            &cfg(),
            t("2026-01-01T00:00:00Z"),
            &mut Counter(0),
        )
    }

    fn data(secret: &Secret, key: &str) -> Option<String> {
        text(secret, key)
    }

    /// The cluster after a plan is applied (what the next reconcile observes).
    pub(crate) fn settle(
        app: &ConnectedApp,
        plan: &Plan,
        observed: Option<Secret>,
    ) -> (ConnectedApp, Option<Secret>) {
        let mut app = app.clone();
        app.status = Some(plan.status.clone());
        let secret = match &plan.secret {
            SecretAction::None => observed,
            SecretAction::Create(s) | SecretAction::Replace(s) => Some(s.clone()),
        };
        (app, secret)
    }

    /// A conflict plan (`plan_for`: [`conflict`] or [`resource_conflict`]) for the Ready app
    /// against a holder in namespace `other`, checked for what both make: no Secret, the hashes
    /// kept, Ready False with `reason` naming the holder, one event, a recheck. Returns the Ready
    /// app, the holder, the time and the plan.
    fn lost(
        plan_for: fn(&ConnectedApp, &ConnectedApp, &PlanConfig, Timestamp) -> Plan,
        reason: &str,
    ) -> (ConnectedApp, ConnectedApp, Timestamp, Plan) {
        let (ready_app, _) = settle(&basic(), &first_plan(&basic()), None);
        let mut holder = basic();
        holder.metadata.name = Some("wiki".into());
        holder.metadata.namespace = Some("other".into());
        let now = t("2026-01-01T01:00:00Z");
        let plan = plan_for(&ready_app, &holder, &cfg(), now);
        assert_eq!(plan.secret, SecretAction::None);
        assert_eq!(plan.status_before_secret, None);
        let c = &plan.status.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason));
        assert!(c.message.contains("other/wiki"), "{}", c.message);
        assert_eq!(
            plan.status.client_secrets,
            ready_app.status.as_ref().unwrap().client_secrets
        );
        assert_eq!(plan.requeue_after, RECHECK);
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.events[0].reason, reason);
        (ready_app, holder, now, plan)
    }

    #[test]
    fn a_conflict_keeps_the_hashes_writes_no_secret_and_names_the_holder() {
        let (ready_app, mut holder, now, plan) = lost(conflict, reason::CLIENT_ID_CONFLICT);
        let c = &plan.status.conditions[0];
        assert!(c.message.contains("\"tools.grafana\""), "{}", c.message);
        assert_eq!(plan.status.resource, None);
        assert!(plan.events[0].warning);
        // Settled: the same plan again records no event and changes nothing.
        let (settled, _) = settle(&ready_app, &plan, None);
        let again = conflict(
            &settled,
            &holder,
            &cfg(),
            now + SignedDuration::from_secs(60),
        );
        assert!(again.events.is_empty());
        assert!(!again.status_changed(&settled));
        // A holder being deleted: looked at again soon.
        holder.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(
            conflict(&settled, &holder, &cfg(), now).requeue_after,
            HOLDER_LEAVING
        );
    }

    #[test]
    fn a_resource_conflict_keeps_the_client_id_drops_the_resource_and_names_both() {
        let (ready_app, mut holder, now, plan) = lost(resource_conflict, reason::RESOURCE_CONFLICT);
        assert_eq!(
            ready_app.status.as_ref().unwrap().resource.as_deref(),
            Some("https://grafana.example.com")
        );
        let c = &plan.status.conditions[0];
        assert!(
            c.message.contains("\"https://grafana.example.com\""),
            "{}",
            c.message
        );
        // Still the holder of its client ID; no longer of the resource.
        assert_eq!(plan.status.client_id.as_deref(), Some("tools.grafana"));
        assert_eq!(plan.status.resource, None);
        let (settled, _) = settle(&ready_app, &plan, None);
        assert!(!api::resources::incumbent(&settled));
        assert!(api::claims::incumbent(&settled));
        let again = resource_conflict(&settled, &holder, &cfg(), now);
        assert!(again.events.is_empty());
        assert!(!again.status_changed(&settled));
        holder.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(
            resource_conflict(&settled, &holder, &cfg(), now).requeue_after,
            HOLDER_LEAVING
        );
    }

    #[test]
    fn a_resource_outside_its_binding_keeps_the_client_id_and_hashes_and_names_the_binding() {
        let (ready_app, _) = settle(&basic(), &first_plan(&basic()), None);
        let hosts =
            api::resource_hosts::ResourceHosts::parse(["grafana.example.com=monitoring"]).unwrap();
        let refusal = hosts.refusal(&ready_app).unwrap();
        let now = t("2026-01-01T01:00:00Z");
        let plan = resource_not_permitted(&ready_app, &refusal, &cfg(), now);
        assert_eq!(plan.secret, SecretAction::None);
        assert_eq!(plan.status_before_secret, None);
        let c = &plan.status.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::RESOURCE_NOT_PERMITTED)
        );
        for needle in [
            "\"https://grafana.example.com\"",
            "\"grafana.example.com=monitoring\"",
            "namespace \"tools\"",
            "no Secret",
        ] {
            assert!(c.message.contains(needle), "{needle}: {}", c.message);
        }
        // Still the holder of its client ID; the published hashes stay (the issuer ignores them
        // while the app is not a client); no longer the holder of the resource.
        assert_eq!(plan.status.client_id.as_deref(), Some("tools.grafana"));
        assert_eq!(plan.status.resource, None);
        assert_eq!(
            plan.status.client_secrets,
            ready_app.status.as_ref().unwrap().client_secrets
        );
        assert_eq!(plan.requeue_after, cfg().resync);
        assert_eq!(plan.events.len(), 1);
        assert!(plan.events[0].warning);
        assert_eq!(plan.events[0].reason, reason::RESOURCE_NOT_PERMITTED);
        let (settled, _) = settle(&ready_app, &plan, None);
        assert!(!api::resources::incumbent(&settled));
        assert!(api::claims::incumbent(&settled));
        // Settled: no event, no change.
        let again = resource_not_permitted(&settled, &refusal, &cfg(), now);
        assert!(again.events.is_empty());
        assert!(!again.status_changed(&settled));
    }

    #[test]
    fn a_default_client_id_in_the_dcr_namespace_is_refused() {
        let mut app = basic();
        app.metadata.namespace = Some("dcr".into());
        let plan = first_plan(&app);
        assert_eq!(plan.secret, SecretAction::None);
        let c = &plan.status.conditions[0];
        assert_eq!(c.reason, reason::INVALID_SPEC);
        assert!(c.message.contains("set spec.clientID"), "{}", c.message);
        app.spec.client_id = Some("grafana".into());
        assert!(matches!(first_plan(&app).secret, SecretAction::Create(_)));
    }

    #[test]
    fn a_pinned_client_id_with_a_dot_must_start_with_the_apps_namespace() {
        let mut app = basic();
        let ns = app.namespace().unwrap();
        for refused in ["other.wiki", &format!("{ns}x.wiki"), "a.b.c"] {
            app.spec.client_id = Some(refused.to_string());
            let plan = first_plan(&app);
            assert_eq!(plan.secret, SecretAction::None, "{refused}");
            let c = &plan.status.conditions[0];
            assert_eq!(c.reason, reason::INVALID_SPEC, "{refused}");
            assert!(c.message.contains(&format!("{ns}.")), "{}", c.message);
        }
        for accepted in [format!("{ns}.wiki-2"), "wiki_2".to_string()] {
            app.spec.client_id = Some(accepted.clone());
            assert!(
                matches!(first_plan(&app).secret, SecretAction::Create(_)),
                "{accepted}"
            );
        }
    }

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
        let early = plan.status_before_secret.as_ref().unwrap();
        assert_eq!(
            early.client_secrets,
            vec![ClientSecretHash {
                hash: hash.clone(),
                expires_at: None
            }]
        );
        assert_eq!(early.conditions[0].reason, reason::PROVISIONING);
        assert_eq!(early.conditions[0].status, "False");
        assert_eq!(plan.status.client_secrets, early.client_secrets);
        assert_eq!(plan.status.client_id.as_deref(), Some("tools.grafana"));
        assert_eq!(plan.status.secret_name.as_deref(), Some("grafana-keyway"));
        assert_eq!(plan.status.observed_generation, Some(1));
        assert_eq!(plan.status.conditions[0].status, "True");
        assert_eq!(plan.status.conditions[0].reason, reason::REGISTERED);
        let reasons: Vec<_> = plan.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["SecretCreated", "Registered"]);
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
    fn invalid_spec_gets_every_problem_and_no_secret() {
        let mut app = basic();
        app.spec.redirect_uris = vec!["http://grafana.example.com/cb".into()];
        app.spec.token_lifetimes.access = "2d".into();
        let p = first_plan(&app);
        assert_eq!(p.secret, SecretAction::None);
        let c = &p.status.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::INVALID_SPEC)
        );
        assert!(c.message.contains("spec.redirectURIs[0]"), "{}", c.message);
        assert!(
            c.message.contains("spec.tokenLifetimes.access"),
            "{}",
            c.message
        );
        // Same problem again: the condition (and its transition time) stays; no new event.
        let (app2, _) = settle(&app, &p, None);
        let p2 = plan(
            &app2,
            None,
            &cfg(),
            t("2026-01-01T01:00:00Z"),
            &mut Counter(0),
        );
        assert!(!p2.status_changed(&app2));
        assert!(p2.events.is_empty());
    }

    #[test]
    fn invalid_spec_keeps_published_hashes() {
        let app = basic();
        let first = first_plan(&app);
        let (mut app, secret) = settle(&app, &first, None);
        app.spec.redirect_uris.clear();
        let p = plan(
            &app,
            secret.as_ref(),
            &cfg(),
            t("2026-01-01T00:10:00Z"),
            &mut Counter(0),
        );
        assert_eq!(p.secret, SecretAction::None);
        assert_eq!(p.status.client_secrets, first.status.client_secrets);
        assert_eq!(
            p.status.conditions[0].last_transition_time,
            Time(t("2026-01-01T00:10:00Z"))
        );
    }

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
    }

    #[test]
    fn a_default_secret_name_that_is_too_long_is_reported() {
        let mut app = basic();
        app.metadata.name = Some("a".repeat(250));
        let p = first_plan(&app);
        assert_eq!(p.secret, SecretAction::None);
        let c = &p.status.conditions[0];
        assert_eq!(c.reason, reason::INVALID_SPEC);
        assert!(c.message.contains("set spec.secret.name"), "{}", c.message);
    }

    #[test]
    fn client_id_is_stable_across_delete_and_reapply() {
        let a = basic();
        let mut b = basic();
        b.metadata.uid = Some("uid-2".into());
        assert_eq!(a.client_id(), b.client_id());
        b.spec.client_id = Some("pinned".into());
        assert_eq!(b.client_id().as_deref(), Some("pinned"));
    }
}
