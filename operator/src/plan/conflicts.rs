//! The plans of an app that is not a client because of other apps or of the operator's
//! configuration: its client ID is held by another app ([`conflict`], `api::claims`), its
//! `spec.resource` is held by another app ([`resource_conflict`], `api::resources`), or its
//! resource is on a host bound to other namespaces ([`resource_not_permitted`],
//! `api::resource_hosts`). Which of them applies is decided by the reconciler, among the other
//! apps (`crate::reconcile`); each plan writes nothing but the status.

use std::time::Duration;

use api::ConnectedApp;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;

use super::status::{reason, waiting};
use super::time::whole_seconds;
use super::{Plan, PlanConfig};

/// How often an app blocked by a foreign Secret, or by another app holding its client ID or its
/// resource, is looked at again.
pub(crate) const RECHECK: Duration = Duration::from_secs(30);
/// How soon an app is looked at again when the app holding its client ID or its resource is being
/// deleted.
pub(crate) const HOLDER_LEAVING: Duration = Duration::from_secs(2);

/// The plan for an app whose client ID `holder` claimed first (see `api::claims`): not ready,
/// nothing written but the status; its Secret, if any, is left as it is. Looked at again when
/// the holder changes or goes away (the controller maps the holder's events to it), and after
/// [`RECHECK`] (or [`HOLDER_LEAVING`] while the holder is being deleted) in any case.
pub(crate) fn conflict(
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
pub(crate) fn resource_conflict(
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
pub(crate) fn resource_not_permitted(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::plan::SecretAction;
    use crate::plan::test_support::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;

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
}
