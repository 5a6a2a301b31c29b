//! What the plan tests (and the reconciler's scenario tests) share: an app, the operator's
//! configuration, a fixed time and deterministic randomness, and the cluster after a plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{ConnectedApp, ConnectedAppSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

use super::credentials::text;
use super::{Plan, PlanConfig, Random, SecretAction, plan};

/// Deterministic "random" bytes: each call returns a run of the next byte value.
pub(crate) struct Counter(pub(crate) u8);
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

/// The value of `key` in the Secret.
pub(crate) fn data(secret: &Secret, key: &str) -> Option<String> {
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
