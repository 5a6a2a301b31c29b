//! Reconciler scenarios against a mocked API (`tower-test`), in the kube-rs controller-rs style:
//! every request the reconciler makes is checked, in order, for method, path and body, and a
//! scenario fails on any request it did not expect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{ConnectedApp, FINALIZER};
use base64::Engine as _;
use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::reconcile;
use crate::config::ControllerConfig;
use crate::context::Context;
use crate::metrics::Metrics;
use crate::plan::test_support::{Counter, basic, cfg, first_plan, settle, t};
use crate::plan::{self, reason};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Check = Box<dyn FnOnce(&Value) + Send>;

/// One expected request and the answer to give.
struct Expect {
    method: &'static str,
    path: String,
    check: Check,
    status: u16,
    respond: Value,
}

fn expect(method: &'static str, path: impl Into<String>) -> Expect {
    Expect {
        method,
        path: path.into(),
        check: Box::new(|_| {}),
        status: 200,
        respond: json!({}),
    }
}

impl Expect {
    fn check(mut self, f: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.check = Box::new(f);
        self
    }
    fn respond(mut self, status: u16, body: Value) -> Self {
        self.status = status;
        self.respond = body;
        self
    }
    /// Answers with the request body (what the API server would store).
    fn echo(mut self) -> Self {
        self.respond = Value::Null;
        self
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "not found", "reason": "NotFound", "code": 404})
}

const SECRET: &str = "/api/v1/namespaces/tools/secrets/grafana-keyway";
const SECRETS_POST: &str = "/api/v1/namespaces/tools/secrets?&fieldManager=keyway-operator";
const SECRET_PUT: &str =
    "/api/v1/namespaces/tools/secrets/grafana-keyway?&fieldManager=keyway-operator";
const STATUS: &str = "/apis/keyway.dev/v1alpha1/namespaces/tools/connectedapps/grafana/status?&force=true&fieldManager=keyway-operator";
const APP: &str = "/apis/keyway.dev/v1alpha1/namespaces/tools/connectedapps/grafana?";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/tools/events?";

async fn serve(mut handle: Handle, expectations: Vec<Expect>) {
    for (i, e) in expectations.into_iter().enumerate() {
        let (request, send) = handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("request #{i} ({} {}) never came", e.method, e.path));
        let method = request.method().to_string();
        let path = request.uri().path_and_query().unwrap().to_string();
        assert_eq!(
            (method.as_str(), path.as_str()),
            (e.method, e.path.as_str()),
            "request #{i}"
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (e.check)(&body);
        let answer = if e.respond.is_null() { body } else { e.respond };
        send.send_response(
            Response::builder()
                .status(e.status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
    }
    if let Some((request, _)) = handle.next_request().await {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

/// Runs one reconcile of `app` against `expectations`; returns the reconcile's result and the
/// number of writes counted.
async fn scenario(
    app: ConnectedApp,
    expectations: Vec<Expect>,
) -> (crate::Result<kube::runtime::controller::Action>, u64) {
    scenario_among(app, Vec::new(), expectations).await
}

/// [`scenario`] with `cached` in the controller's cache of ConnectedApps.
async fn scenario_among(
    app: ConnectedApp,
    cached: Vec<ConnectedApp>,
    expectations: Vec<Expect>,
) -> (crate::Result<kube::runtime::controller::Action>, u64) {
    scenario_bound(app, cached, "", expectations).await
}

/// [`scenario_among`] with the operator's `--resource-hosts` set to `resource_hosts`.
async fn scenario_bound(
    app: ConnectedApp,
    cached: Vec<ConnectedApp>,
    resource_hosts: &str,
    expectations: Vec<Expect>,
) -> (crate::Result<kube::runtime::controller::Action>, u64) {
    run_scenario(app, cached, resource_hosts, None, expectations).await
}

/// [`scenario`] with the controller's cache of owned Secrets listed, holding `owned`.
async fn scenario_owning(
    app: ConnectedApp,
    owned: Vec<Secret>,
    expectations: Vec<Expect>,
) -> (crate::Result<kube::runtime::controller::Action>, u64) {
    run_scenario(app, Vec::new(), "", Some(owned), expectations).await
}

async fn run_scenario(
    app: ConnectedApp,
    cached: Vec<ConnectedApp>,
    resource_hosts: &str,
    owned: Option<Vec<Secret>>,
    expectations: Vec<Expect>,
) -> (crate::Result<kube::runtime::controller::Action>, u64) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut config = ControllerConfig::new(cfg().issuer_url);
    config.identity = "test".into();
    config.resource_hosts = api::resource_hosts::ResourceHosts::parse([resource_hosts]).unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(Context::with_clock_and_rng(
        client,
        &config,
        metrics.clone(),
        Arc::new(|| t("2026-01-01T00:00:00Z")),
        // Not the sequence `settled()` used, so that fresh secrets differ from its.
        Box::new(Counter(100)),
    ));
    let (cache, mut indexer) = crate::app_cache::new();
    for other in cached {
        indexer.apply(&kube::runtime::watcher::Event::Apply(other));
    }
    ctx.set_apps(cache);
    let (secrets, mut secrets_writer) = kube::runtime::reflector::store::<Secret>();
    if let Some(owned) = owned {
        use kube::runtime::watcher::Event;
        secrets_writer.apply_watcher_event(&Event::Init);
        for secret in owned {
            secrets_writer.apply_watcher_event(&Event::InitApply(secret));
        }
        secrets_writer.apply_watcher_event(&Event::InitDone);
        ctx.set_secrets(secrets);
    }
    let verifier = tokio::spawn(serve(handle, expectations));
    let result = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(app), ctx))
        .await
        .expect("reconcile timed out");
    tokio::time::timeout(Duration::from_secs(10), verifier)
        .await
        .expect("verifier timed out")
        .expect("expectations failed");
    (result, metrics.total_writes())
}

fn event(reason_: &'static str, kind: &'static str) -> Expect {
    expect("POST", EVENTS).echo().check(move |b| {
        assert_eq!(b["reason"], reason_);
        assert_eq!(b["type"], kind);
        assert_eq!(b["regarding"]["name"], "grafana");
        assert_eq!(b["regarding"]["uid"], "uid-1");
        // Left out, so that a repeat after a write to the app is counted as a series.
        assert_eq!(b["regarding"]["resourceVersion"], Value::Null);
        assert_eq!(b["reportingController"], "keyway-operator");
    })
}

fn data(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no key {key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn app_json(app: &ConnectedApp) -> Value {
    serde_json::to_value(app).unwrap()
}

#[tokio::test]
async fn create_writes_the_secret_then_one_ready_status_with_its_hash_and_one_event() {
    let app = basic();
    let hash = Arc::new(Mutex::new(String::new()));
    let (h1, h2) = (hash.clone(), hash.clone());
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(404, not_found()),
            expect("POST", SECRETS_POST).echo().check(move |b| {
                assert_eq!(b["metadata"]["name"], "grafana-keyway");
                assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "uid-1");
                assert_eq!(b["metadata"]["ownerReferences"][0]["controller"], true);
                assert_eq!(
                    b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                    "keyway-operator"
                );
                assert_eq!(data(b, "client-id"), "tools.grafana");
                assert_eq!(data(b, "issuer-url"), "https://login.example.com");
                let secret = data(b, "client-secret");
                *h1.lock().unwrap() = contract::secret::hash_client_secret(&secret);
                let policy: Value = serde_json::from_str(&data(b, "policy.json")).unwrap();
                assert_eq!(policy["access"]["allowedGroups"], json!(["eng"]));
            }),
            expect("PATCH", STATUS)
                .check(move |b| {
                    assert_eq!(b["apiVersion"], "keyway.dev/v1alpha1");
                    assert_eq!(b["kind"], "ConnectedApp");
                    let s = &b["status"];
                    let c = &s["conditions"][0];
                    assert_eq!(
                        (c["type"].as_str(), c["status"].as_str()),
                        (Some("Ready"), Some("True"))
                    );
                    assert_eq!(c["reason"], reason::REGISTERED);
                    assert_eq!(s["observedGeneration"], 1);
                    assert_eq!(s["issuer"], "https://login.example.com");
                    assert_eq!(s["clientID"], "tools.grafana");
                    assert_eq!(
                        s["clientSecrets"][0]["hash"].as_str().unwrap(),
                        *h2.lock().unwrap(),
                        "the published hash is the hash of the written secret"
                    );
                    assert!(s["clientSecrets"][0].get("expiresAt").is_none());
                })
                .respond(200, app_json(&app)),
            // One event for the registration: its note names the Secret.
            expect("POST", EVENTS).echo().check(|b| {
                assert_eq!(
                    (b["reason"].as_str(), b["type"].as_str()),
                    (Some("Registered"), Some("Normal"))
                );
                assert!(
                    b["note"]
                        .as_str()
                        .unwrap()
                        .contains("Secret grafana-keyway"),
                    "{b}"
                );
            }),
        ],
    )
    .await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(Duration::from_secs(3600))
    );
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn a_new_app_whose_secret_cannot_be_written_says_why_in_status() {
    let app = basic();
    let forbidden = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
        "reason": "Forbidden",
        "message": "secrets is forbidden: exceeded quota: few-secrets",
    });
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(404, not_found()),
            expect("POST", SECRETS_POST).respond(403, forbidden),
            expect("PATCH", STATUS)
                .check(|b| {
                    let s = &b["status"];
                    let c = &s["conditions"][0];
                    assert_eq!(
                        (c["status"].as_str(), c["reason"].as_str()),
                        (Some("False"), Some(reason::PROVISIONING))
                    );
                    let message = c["message"].as_str().unwrap();
                    assert!(message.contains("Secret grafana-keyway"), "{message}");
                    assert!(message.contains("exceeded quota"), "{message}");
                    assert_eq!(s["clientSecrets"], json!(null), "no hash without a Secret");
                })
                .respond(200, app_json(&app)),
            event("Provisioning", "Warning"),
        ],
    )
    .await;
    assert!(result.is_err());
    assert_eq!(writes, 2);
}

/// The app and its Secret after a successful first reconcile at the scenario clock.
fn settled() -> (ConnectedApp, Secret) {
    let app = basic();
    let plan = first_plan(&app);
    let (app, secret) = settle(&app, &plan, None);
    let mut secret = secret.unwrap();
    secret.metadata.resource_version = Some("7".into());
    secret.metadata.uid = Some("secret-uid".into());
    (app, secret)
}

#[tokio::test]
async fn settled_app_makes_no_write() {
    let (app, secret) = settled();
    let (result, writes) = scenario(
        app,
        vec![expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap())],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_settled_app_is_planned_from_the_cached_secret_without_a_request() {
    let (app, secret) = settled();
    let (result, writes) = scenario_owning(app, vec![secret], vec![]).await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_new_app_whose_secret_is_not_cached_creates_it_without_a_read() {
    let app = basic();
    let (result, writes) = scenario_owning(
        app.clone(),
        vec![],
        vec![
            expect("POST", SECRETS_POST).echo(),
            expect("PATCH", STATUS)
                .check(|b| assert_eq!(b["status"]["conditions"][0]["reason"], reason::REGISTERED))
                .respond(200, app_json(&app)),
            event("Registered", "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn a_new_app_whose_create_meets_a_foreign_secret_reads_it_and_leaves_it_alone() {
    let app = basic();
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "grafana-keyway", "namespace": "tools", "resourceVersion": "3"},
        "data": {"password": "aHVudGVyMg=="}});
    let (result, writes) = scenario_owning(
        app.clone(),
        vec![],
        vec![
            expect("POST", SECRETS_POST).respond(
                409,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "secrets \"grafana-keyway\" already exists",
                       "reason": "AlreadyExists", "code": 409}),
            ),
            expect("GET", SECRET).respond(200, foreign),
            expect("PATCH", STATUS)
                .check(|b| {
                    let c = &b["status"]["conditions"][0];
                    assert_eq!(c["reason"], reason::SECRET_CONFLICT);
                    assert!(b["status"].get("clientSecrets").is_none());
                })
                .respond(200, app_json(&app)),
            event("SecretConflict", "Warning"),
        ],
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(writes, 2, "the refused create is not a write");
}

#[tokio::test]
async fn spec_update_replaces_the_secret_keeping_credentials() {
    let (mut app, secret) = settled();
    app.spec.scopes.push("grafana:read".into());
    app.metadata.generation = Some(2);
    let old_secret =
        String::from_utf8(secret.data.as_ref().unwrap()["client-secret"].0.clone()).unwrap();
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap()),
            expect("PUT", SECRET_PUT).echo().check(move |b| {
                assert_eq!(
                    b["metadata"]["resourceVersion"], "7",
                    "optimistic concurrency"
                );
                assert_eq!(data(b, "client-secret"), old_secret);
                let policy: Value = serde_json::from_str(&data(b, "policy.json")).unwrap();
                assert!(
                    policy["scopes"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("grafana:read"))
                );
            }),
            expect("PATCH", STATUS)
                .check(|b| {
                    assert_eq!(b["status"]["observedGeneration"], 2);
                    assert_eq!(b["status"]["conditions"][0]["observedGeneration"], 2);
                    assert_eq!(b["status"]["clientSecrets"].as_array().unwrap().len(), 1);
                })
                .respond(200, app_json(&app)),
            event("SecretUpdated", "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn rotation_publishes_both_hashes_before_the_new_secret() {
    let (mut app, mut secret) = settled();
    app.spec.secret.rotation = Some(api::Rotation {
        interval: "720h".into(),
        grace_period: "24h".into(),
    });
    // Issued 31 days before the scenario clock: due.
    secret.metadata.annotations.as_mut().unwrap().insert(
        crate::labels::ISSUED_AT_ANNOTATION.into(),
        "2025-12-01T00:00:00Z".into(),
    );
    let old_hash = app.status.as_ref().unwrap().client_secrets[0].hash.clone();
    let new_hash = Arc::new(Mutex::new(String::new()));
    let (n1, n2) = (new_hash.clone(), new_hash.clone());
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap()),
            expect("PATCH", STATUS)
                .check(move |b| {
                    let hashes = b["status"]["clientSecrets"].as_array().unwrap();
                    assert_eq!(hashes.len(), 2);
                    assert_eq!(hashes[1]["hash"], old_hash.as_str());
                    assert_eq!(hashes[1]["expiresAt"], "2026-01-02T00:00:00Z");
                    assert!(hashes[0].get("expiresAt").is_none());
                    assert_eq!(b["status"]["conditions"][0]["status"], "True", "no outage");
                    *n1.lock().unwrap() = hashes[0]["hash"].as_str().unwrap().into();
                })
                .respond(200, app_json(&app)),
            expect("PUT", SECRET_PUT).echo().check(move |b| {
                let s = data(b, "client-secret");
                assert_eq!(
                    contract::secret::hash_client_secret(&s),
                    *n2.lock().unwrap()
                );
                assert_eq!(
                    b["metadata"]["annotations"][crate::labels::ISSUED_AT_ANNOTATION],
                    "2026-01-01T00:00:00Z"
                );
            }),
            event("SecretRotated", "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn foreign_secret_is_left_alone_and_reported() {
    let app = basic();
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "grafana-keyway", "namespace": "tools", "resourceVersion": "3"},
        "data": {"password": "aHVudGVyMg=="}});
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(200, foreign),
            expect("PATCH", STATUS)
                .check(|b| {
                    let c = &b["status"]["conditions"][0];
                    assert_eq!(c["status"], "False");
                    assert_eq!(c["reason"], reason::SECRET_CONFLICT);
                    assert!(b["status"].get("clientSecrets").is_none());
                })
                .respond(200, app_json(&app)),
            event("SecretConflict", "Warning"),
        ],
    )
    .await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(plan::RECHECK)
    );
    assert_eq!(writes, 2);
}

#[tokio::test]
async fn existing_secret_missing_then_appearing() {
    let mut app = basic();
    app.spec.secret.existing_secret = Some("vault-grafana".into());
    let path = "/api/v1/namespaces/tools/secrets/vault-grafana";
    let captured = Arc::new(Mutex::new(Value::Null));
    let c1 = captured.clone();
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", path).respond(404, not_found()),
            expect("PATCH", STATUS)
                .check(move |b| {
                    assert_eq!(
                        b["status"]["conditions"][0]["reason"],
                        reason::SECRET_MISSING
                    );
                    assert_eq!(b["status"]["secretName"], "vault-grafana");
                    *c1.lock().unwrap() = b["status"].clone();
                })
                .respond(200, app_json(&app)),
            event("SecretMissing", "Warning"),
        ],
    )
    .await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(plan::WAIT_FOR_SECRET)
    );
    assert_eq!(writes, 2);

    // The Secret appears (ExternalSecrets wrote it); the app becomes ready, nothing is written
    // to the Secret.
    app.status = Some(serde_json::from_value(captured.lock().unwrap().clone()).unwrap());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cookie = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
    "metadata": {"name": "vault-grafana", "namespace": "tools", "resourceVersion": "5"},
    "data": {
        "client-id": b64("tools.grafana"),
        "client-secret": b64(&"v".repeat(48)),
        "issuer-url": b64("https://login.example.com"),
        "cookie-secret": b64(&cookie),
        "policy.json": b64(&plan::policy_json(&app)),
    }});
    let expected_hash = contract::secret::hash_client_secret(&"v".repeat(48));
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", path).respond(200, secret),
            expect("PATCH", STATUS)
                .check(move |b| {
                    assert_eq!(b["status"]["conditions"][0]["reason"], reason::REGISTERED);
                    assert_eq!(
                        b["status"]["clientSecrets"][0]["hash"],
                        expected_hash.as_str()
                    );
                })
                .respond(200, app_json(&app)),
            event("Registered", "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 2);
}

#[tokio::test]
async fn invalid_spec_reports_without_touching_secrets() {
    let mut app = basic();
    app.spec.client_type = api::ClientType::Public;
    app.spec.grant_types.push(api::GrantType::ClientCredentials);
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(404, not_found()),
            expect("PATCH", STATUS)
                .check(|b| {
                    let c = &b["status"]["conditions"][0];
                    assert_eq!(c["reason"], reason::INVALID_SPEC);
                    assert!(c["message"].as_str().unwrap().contains(
                        "spec.grantTypes: a public client cannot use the client_credentials grant"
                    ));
                })
                .respond(200, app_json(&app)),
            event("InvalidSpec", "Warning"),
        ],
    )
    .await;
    assert!(
        result.is_ok(),
        "an invalid spec is not an error to retry: no crash loop"
    );
    assert_eq!(writes, 2);
}

#[tokio::test]
async fn invalid_spec_settled_makes_no_write() {
    let mut app = basic();
    app.spec.redirect_uris.clear();
    let plan = first_plan(&app);
    let (app, _) = settle(&app, &plan, None);
    let (result, writes) =
        scenario(app, vec![expect("GET", SECRET).respond(404, not_found())]).await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn new_app_first_gets_the_finalizer() {
    let mut app = basic();
    app.metadata.finalizers = None;
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("PATCH", APP)
                .check(|b| {
                    assert_eq!(
                        b,
                        &json!([
                            {"op": "test", "path": "/metadata/finalizers", "value": null},
                            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
                        ])
                    );
                })
                .respond(200, app_json(&app)),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 1);
}

#[tokio::test]
async fn deletion_removes_the_owned_secret_then_the_finalizer() {
    let (mut app, secret) = settled();
    app.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        t("2026-01-01T00:00:00Z"),
    ));
    let (result, writes) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap()),
            expect("DELETE", format!("{SECRET}?"))
                .check(|b| assert_eq!(b["preconditions"]["uid"], "secret-uid"))
                .respond(200, serde_json::to_value(&secret).unwrap()),
            event("Unregistered", "Normal"),
            expect("PATCH", APP)
                .check(|b| {
                    assert_eq!(
                        b,
                        &json!([
                            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                            {"op": "remove", "path": "/metadata/finalizers/0"}
                        ])
                    );
                })
                .respond(200, app_json(&app)),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 3);
}

#[tokio::test]
async fn deletion_never_deletes_a_foreign_secret() {
    let mut app = basic();
    app.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        t("2026-01-01T00:00:00Z"),
    ));
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "grafana-keyway", "namespace": "tools", "uid": "x"}});
    let (result, _) = scenario(
        app.clone(),
        vec![
            expect("GET", SECRET).respond(200, foreign),
            event("Unregistered", "Normal"),
            expect("PATCH", APP).respond(200, app_json(&app)),
        ],
    )
    .await;
    assert!(result.is_ok());
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_for_backoff() {
    let app = basic();
    let (result, writes) = scenario(
        app,
        vec![expect("GET", SECRET).respond(
            500,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "etcd is down", "reason": "InternalError", "code": 500}),
        )],
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "api");
    assert_eq!(writes, 0);
    assert_eq!(
        crate::controller::backoff::backoff(1),
        Duration::from_secs(1)
    );
    assert_eq!(
        crate::controller::backoff::backoff(4),
        Duration::from_secs(8)
    );
    assert_eq!(
        crate::controller::backoff::backoff(30),
        Duration::from_secs(300)
    );
    let _ = ResourceExt::name_any(&basic());
}

/// Another app in the namespace, created before the scenario's app, pinning its client ID.
fn holder() -> ConnectedApp {
    let mut holder = basic();
    holder.metadata.name = Some("wiki".into());
    holder.metadata.uid = Some("uid-holder".into());
    holder.spec.client_id = Some("tools.grafana".into());
    holder.metadata.creation_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t("2025-06-01T00:00:00Z")),
    );
    holder
}

fn created_at(mut app: ConnectedApp, when: &str) -> ConnectedApp {
    app.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        t(when),
    ));
    app
}

/// The scenario's app (newer) against `holder` (older): no GET of the Secret and no Secret
/// write, only a status whose Ready condition is False with `reason` (and passes `check`, given
/// the status and the condition's message) and a Warning event; looked at again at the recheck.
async fn loses_to(
    holder: ConnectedApp,
    reason: &'static str,
    check: impl FnOnce(&Value, &str) + Send + 'static,
) {
    let app = created_at(basic(), "2025-12-01T00:00:00Z");
    let (result, writes) = scenario_among(
        app.clone(),
        vec![holder, app.clone()],
        vec![
            expect("PATCH", STATUS)
                .check(move |b| {
                    let s = &b["status"];
                    let c = &s["conditions"][0];
                    assert_eq!(c["status"], "False");
                    assert_eq!(c["reason"], reason);
                    check(s, c["message"].as_str().unwrap());
                })
                .respond(200, app_json(&app)),
            event(reason, "Warning"),
        ],
    )
    .await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(plan::RECHECK)
    );
    assert_eq!(writes, 2);
}

#[tokio::test]
async fn a_client_id_held_by_an_older_app_gets_a_conflict_and_no_secret() {
    loses_to(holder(), reason::CLIENT_ID_CONFLICT, |_, message| {
        assert!(message.contains("tools/wiki"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn a_settled_conflict_makes_no_request() {
    let app = created_at(basic(), "2025-12-01T00:00:00Z");
    let plan = plan::conflict(&app, &holder(), &cfg(), t("2026-01-01T00:00:00Z"));
    let (settled, _) = settle(&app, &plan, None);
    let (result, writes) = scenario_among(settled, vec![holder()], vec![]).await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn the_older_app_keeps_its_client_id() {
    // The scenario's app is the older one: the newer claimant does not affect it.
    let (app, secret) = settled();
    let app = created_at(app, "2025-01-01T00:00:00Z");
    let (result, writes) = scenario_among(
        app,
        vec![holder()],
        vec![expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap())],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

const RESOURCE: &str = "https://grafana.example.com";

/// An app in another namespace, under its own client ID, created before the scenario's app and
/// naming the same resource.
fn resource_holder() -> ConnectedApp {
    let mut holder = created_at(basic(), "2025-06-01T00:00:00Z");
    holder.metadata.name = Some("wiki".into());
    holder.metadata.namespace = Some("other".into());
    holder.metadata.uid = Some("uid-holder".into());
    assert_eq!(holder.spec.resource.as_deref(), Some(RESOURCE));
    holder
}

/// The scenario's app after it lost its resource to [`resource_holder`] while Ready, and its
/// Secret.
fn resource_loser() -> (ConnectedApp, Secret) {
    let (app, secret) = settled();
    let app = created_at(app, "2025-12-01T00:00:00Z");
    let plan = plan::resource_conflict(&app, &resource_holder(), &cfg(), t("2026-01-01T00:00:00Z"));
    let (app, _) = settle(&app, &plan, None);
    (app, secret)
}

#[tokio::test]
async fn a_resource_held_by_an_older_app_gets_a_conflict_and_no_secret() {
    loses_to(
        resource_holder(),
        reason::RESOURCE_CONFLICT,
        |s, message| {
            assert!(message.contains("other/wiki"), "{message}");
            assert!(message.contains(&format!("{RESOURCE:?}")), "{message}");
            // Still the holder of its client ID, not of the resource.
            assert_eq!(s["clientID"], "tools.grafana");
            assert!(s.get("resource").is_none(), "{s}");
        },
    )
    .await;
}

#[tokio::test]
async fn the_holder_of_a_resource_is_unaffected_by_other_claimants() {
    // Older than the other claimant: nothing to do, as with no claimant.
    let (app, secret) = settled();
    let app = created_at(app, "2025-01-01T00:00:00Z");
    assert_eq!(
        app.status.as_ref().unwrap().resource.as_deref(),
        Some(RESOURCE),
        "a Ready app records the resource it holds"
    );
    let (result, writes) = scenario_among(
        app.clone(),
        vec![resource_holder(), app.clone()],
        vec![expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap())],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
    // Newer than the other claimant, but incumbent (its status records the resource): it keeps
    // it.
    let app = created_at(app, "2026-01-01T00:00:00Z");
    let (result, writes) = scenario_among(
        app.clone(),
        vec![resource_holder(), app],
        vec![expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap())],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_settled_resource_conflict_makes_no_request() {
    let (loser, _) = resource_loser();
    let (result, writes) = scenario_among(loser, vec![resource_holder()], vec![]).await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_resource_loser_recovers_when_the_holder_is_deleted() {
    let (loser, secret) = resource_loser();
    // The holder is being deleted: still held, looked at again soon.
    let mut leaving = resource_holder();
    leaving.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t("2026-01-01T00:00:00Z")),
    );
    let (result, writes) = scenario_among(loser.clone(), vec![leaving], vec![]).await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(plan::HOLDER_LEAVING)
    );
    assert_eq!(writes, 0);
    // Gone: the app takes the resource, with the Secret it already had.
    let (result, writes) = scenario_among(
        loser.clone(),
        vec![loser.clone()],
        vec![
            expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap()),
            expect("PATCH", STATUS)
                .check(|b| {
                    let s = &b["status"];
                    assert_eq!(s["conditions"][0]["status"], "True");
                    assert_eq!(s["conditions"][0]["reason"], reason::REGISTERED);
                    assert_eq!(s["resource"], RESOURCE);
                })
                .respond(200, app_json(&loser)),
            event(reason::REGISTERED, "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 2);
}

#[test]
fn a_change_of_an_app_rechecks_the_claimants_of_its_resource_and_the_losers() {
    let (cache, mut indexer) = crate::app_cache::new();
    let holder = resource_holder();
    let (loser, _) = resource_loser();
    let mut unrelated = created_at(basic(), "2025-01-01T00:00:00Z");
    unrelated.metadata.name = Some("unrelated".into());
    unrelated.spec.resource = Some("https://unrelated.example.com".into());
    let mut claimant = unrelated.clone();
    claimant.metadata.name = Some("claimant".into());
    claimant.spec.resource = Some(RESOURCE.into());
    for app in [&holder, &loser, &unrelated, &claimant] {
        indexer.apply(&kube::runtime::watcher::Event::Apply(app.clone()));
    }
    let names = |changed: &ConnectedApp| {
        let mut v: Vec<String> = cache.rivals(changed).into_iter().map(|r| r.name).collect();
        v.sort();
        v
    };
    // The holder changed (or went away): the other claimants, the loser among them.
    assert_eq!(names(&holder), ["claimant", "grafana"]);
    // An unrelated app changed: only the loser (its holder may have changed before).
    assert_eq!(names(&unrelated), ["grafana"]);
}

#[tokio::test]
async fn a_resource_on_a_host_bound_to_other_namespaces_is_refused_without_reading_the_secret() {
    let (app, _) = settled();
    let (result, writes) = scenario_bound(
        app.clone(),
        vec![app.clone()],
        "grafana.example.com=monitoring",
        vec![
            expect("PATCH", STATUS)
                .check(|b| {
                    let s = &b["status"];
                    let c = &s["conditions"][0];
                    assert_eq!(c["status"], "False");
                    assert_eq!(c["reason"], reason::RESOURCE_NOT_PERMITTED);
                    let message = c["message"].as_str().unwrap();
                    assert!(
                        message.contains("\"grafana.example.com=monitoring\""),
                        "{message}"
                    );
                    assert!(message.contains(&format!("{RESOURCE:?}")), "{message}");
                    // Still the holder of its client ID, not of the resource.
                    assert_eq!(s["clientID"], "tools.grafana");
                    assert!(s.get("resource").is_none(), "{s}");
                })
                .respond(200, app_json(&app)),
            event(reason::RESOURCE_NOT_PERMITTED, "Warning"),
        ],
    )
    .await;
    assert_eq!(
        result.unwrap(),
        kube::runtime::controller::Action::requeue(cfg().resync)
    );
    assert_eq!(writes, 2);
    // The bound namespace, or a binding of another host: as without bindings.
    for hosts in [
        "grafana.example.com=monitoring,tools",
        "*.grafana.example.com=monitoring",
    ] {
        let (app, secret) = settled();
        let (result, writes) = scenario_bound(
            app,
            vec![],
            hosts,
            vec![expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap())],
        )
        .await;
        assert!(result.is_ok(), "{hosts}");
        assert_eq!(writes, 0, "{hosts}");
    }
}

#[tokio::test]
async fn the_bound_namespace_takes_a_resource_an_older_app_of_another_namespace_held() {
    // The squatter (namespace other, older) was registered as the holder before the binding.
    let squatter = resource_holder();
    let (squatter, _) = settle(&squatter, &first_plan(&squatter), None);
    assert!(api::resources::incumbent(&squatter));
    let (loser, secret) = resource_loser();
    // Without a binding the squatter keeps it.
    let (result, writes) = scenario_among(loser.clone(), vec![squatter.clone()], vec![]).await;
    assert!(result.is_ok());
    assert_eq!(writes, 0);
    // Bound to the app's namespace: the app takes the resource, with the Secret it already had.
    let (result, writes) = scenario_bound(
        loser.clone(),
        vec![squatter, loser.clone()],
        "grafana.example.com=tools",
        vec![
            expect("GET", SECRET).respond(200, serde_json::to_value(&secret).unwrap()),
            expect("PATCH", STATUS)
                .check(|b| {
                    let s = &b["status"];
                    assert_eq!(s["conditions"][0]["status"], "True");
                    assert_eq!(s["conditions"][0]["reason"], reason::REGISTERED);
                    assert_eq!(s["resource"], RESOURCE);
                })
                .respond(200, app_json(&loser)),
            event(reason::REGISTERED, "Normal"),
        ],
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(writes, 2);
}
