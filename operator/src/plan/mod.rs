//! Pure functions: from a `ConnectedApp`, the Secret observed under its name and the time, the
//! state the cluster should be in. The reconciler (`crate::reconcile`) fetches what is observed,
//! calls [`plan`] and applies only the differences, so nearly all the logic is tested here
//! without any API.
//!
//! - [`plan`] (this file): the checks every app passes first (a valid spec, an acceptable client
//!   ID, a default Secret name that fits), then the plan of one of the two kinds of app:
//!   - `owned_secret`: the Secret keyway writes for the app, with the credentials of
//!     `credentials` (client secret and its rotation, cookie secret);
//!   - `existing_secret`: the Secret someone else manages (`spec.secret.existingSecret`),
//!     checked and read;
//! - `conflicts`: the plan of an app whose client ID or resource another app holds, or whose
//!   resource is on a host bound to other namespaces (the reconciler decides which, among the
//!   other apps);
//! - `status`: the status, its `Ready` condition and the published client-secret hashes, and the
//!   plans of an app that is not ready (`provisioning`: a new app whose Secret write failed);
//! - `events`: the Kubernetes events a plan records;
//! - `ownership`: which Secrets are an app's own (owner references).

mod conflicts;
mod credentials;
mod events;
mod existing_secret;
mod owned_secret;
mod ownership;
mod status;
mod time;

#[cfg(test)]
pub(crate) mod test_support;

use std::time::Duration;

use api::{ConnectedApp, ConnectedAppStatus, validate};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

// What the reconciler's scenario tests check against.
pub(crate) use self::conflicts::{conflict, resource_conflict, resource_not_permitted};
pub use self::credentials::{OsRandom, Random};
pub(crate) use self::events::PlannedEvent;
pub(crate) use self::ownership::is_ours;
use self::status::waiting;
pub(crate) use self::status::{provisioning, reason};
use self::time::whole_seconds;
#[cfg(test)]
pub(crate) use self::{
    conflicts::{HOLDER_LEAVING, RECHECK},
    existing_secret::WAIT_FOR_SECRET,
    owned_secret::policy_json,
};

/// What the operator is configured with, as far as desired state goes.
#[derive(Clone, Debug)]
pub(crate) struct PlanConfig {
    /// The issuer URL written into Secrets and status.
    pub(crate) issuer_url: String,
    /// Resync period of settled apps.
    pub(crate) resync: Duration,
    /// Which namespaces may claim resources on which hosts (`--resource-hosts`).
    pub(crate) resource_hosts: api::resource_hosts::ResourceHosts,
}

/// What to do with the Secret.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SecretAction {
    /// Nothing.
    None,
    /// Create it (it does not exist).
    Create(Secret),
    /// Replace it (it exists, is ours, and differs); carries the observed resourceVersion.
    Replace(Secret),
}

/// The full plan for one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Status to publish before the Secret is written, when the Secret is about to carry a
    /// client secret whose hash the issuer does not know yet.
    pub(crate) status_before_secret: Option<ConnectedAppStatus>,
    /// What to do with the Secret.
    pub(crate) secret: SecretAction,
    /// The status the app should end with.
    pub(crate) status: ConnectedAppStatus,
    /// Events to record (only for changes).
    pub(crate) events: Vec<PlannedEvent>,
    /// When to look at the app again.
    pub(crate) requeue_after: Duration,
}

impl Plan {
    /// Whether the final status differs from what is observed.
    #[cfg(test)]
    pub(crate) fn status_changed(&self, app: &ConnectedApp) -> bool {
        app.status.as_ref() != Some(&self.status)
    }
}

/// Computes the plan for `app`, given the Secret observed under [`ConnectedApp::secret_name`].
pub(crate) fn plan(
    app: &ConnectedApp,
    observed: Option<&Secret>,
    cfg: &PlanConfig,
    now: Timestamp,
    rng: &mut dyn Random,
) -> Plan {
    let now = whole_seconds(now);
    if let Some(message) = invalid_spec(app) {
        return waiting(app, cfg, now, reason::INVALID_SPEC, message, cfg.resync);
    }
    if app.spec.secret.existing_secret.is_some() {
        existing_secret::plan(app, observed, cfg, now)
    } else {
        owned_secret::plan(app, observed, cfg, now, rng)
    }
}

/// Why the app cannot be a client as specified (every problem of the spec, a client ID it may
/// not have, or a default Secret name too long), or `None`.
fn invalid_spec(app: &ConnectedApp) -> Option<String> {
    let problems = validate(&app.spec);
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Some(format!("the spec is invalid: {message}"));
    }
    if let Some(problem) =
        api::claims::reserved_client_id(app).or_else(|| api::claims::foreign_client_id(app))
    {
        return Some(format!("the spec is invalid: {problem}"));
    }
    let secret_name = app.secret_name();
    if secret_name.len() > api::limits::NAME {
        return Some(format!(
            "the default Secret name {secret_name:?} is longer than {} characters: set spec.secret.name",
            api::limits::NAME
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::plan::SecretAction;
    use crate::plan::test_support::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::ResourceExt as _;

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
