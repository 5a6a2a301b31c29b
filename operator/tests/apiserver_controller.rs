//! The controller against the in-repo Kubernetes API test server (`tests/fake-apiserver`): real
//! HTTP, the real kube client, resource versions, watches, server-side apply, the status
//! subresource, finalizers and garbage collection. See `docs/fake-apiserver.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use api::{ConnectedApp, FINALIZER};
use contract::secret as keys;
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator::{Context, ControllerConfig, LeaseConfig, Metrics, Operator, OsRandom};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ISSUER: &str = "https://id.example.test";
const WAIT: Duration = Duration::from_secs(20);

/// A running controller replica.
struct Replica {
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: JoinHandle<operator::Result<()>>,
}

impl Replica {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn config() -> ControllerConfig {
    let mut config = ControllerConfig::new(ISSUER);
    config.resync = Duration::from_secs(3600);
    config
}

fn start(
    client: Client,
    config: ControllerConfig,
    clock_offset: Option<Arc<AtomicI64>>,
) -> Replica {
    let metrics = Arc::new(Metrics::new());
    let operator = match clock_offset {
        None => {
            let ctx = Arc::new(Context::new(client, &config, metrics.clone()));
            Operator::with_context(ctx, config)
        }
        Some(offset) => {
            let clock = Arc::new(move || {
                Timestamp::now() + SignedDuration::from_secs(offset.load(Ordering::SeqCst))
            });
            let ctx = Arc::new(Context::with_clock_and_rng(
                client,
                &config,
                metrics.clone(),
                clock,
                Box::new(OsRandom),
            ));
            Operator::with_context(ctx, config)
        }
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { operator.run(stop).await });
    Replica {
        metrics,
        shutdown,
        task,
    }
}

/// A test server with the generated CRD installed: ConnectedApps are pruned, defaulted and
/// validated (OpenAPI constraints and CEL rules) as a cluster would.
async fn setup() -> (FakeApiServer, Client) {
    let server = FakeApiServer::start().await.unwrap();
    install_crd(&server);
    let client = server.client().unwrap();
    (server, client)
}

fn install_crd(server: &FakeApiServer) {
    server
        .install_crd(&operator::crdgen::crd_yaml().unwrap())
        .unwrap();
}

/// A server whose ConnectedApp resource has no schema yet (the test server's default) stores
/// an app the CRD's rules refuse, as one stored under an older, laxer CRD would be; then the
/// real CRD is installed.
async fn setup_with_legacy_object(invalid_name: &str) -> (FakeApiServer, Client) {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let spec = json!({"clientType": "public", "grantTypes": ["client_credentials"]});
    apps.create(&PostParams::default(), &app(invalid_name, spec))
        .await
        .unwrap();
    install_crd(&server);
    (server, client)
}

/// An app in `default` with `spec` over a default spec; each name has its own resource (a
/// resource has one app).
fn app(name: &str, spec: Value) -> ConnectedApp {
    let mut full = json!({
        "displayName": name,
        "redirectURIs": ["https://tool.example.test/oauth2/callback"],
        "resource": format!("https://{name}.example.test"),
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            full.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": name, "namespace": "default"},
        "spec": full,
    }))
    .unwrap()
}

/// `app` in namespace `ns`.
fn app_in(ns: &str, name: &str, spec: Value) -> ConnectedApp {
    let mut a = app(name, spec);
    a.metadata.namespace = Some(ns.into());
    a
}

/// Creates the namespaces `a` and `b`; their ConnectedApps, and the Secrets of `b`.
async fn namespaces_a_and_b(
    client: &Client,
) -> (Api<ConnectedApp>, Api<ConnectedApp>, Api<Secret>) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["a", "b"] {
        let body: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &body)
            .await
            .unwrap();
    }
    (
        Api::namespaced(client.clone(), "a"),
        Api::namespaced(client.clone(), "b"),
        Api::namespaced(client.clone(), "b"),
    )
}

/// After a takeover attempt from namespace `a`: B's app `tool` stays Ready and keeps its Secret
/// (`before`), once the controller had time to (wrongly) act on it too.
async fn holder_kept(
    apps_b: &Api<ConnectedApp>,
    secrets_b: &Api<Secret>,
    before: &Secret,
) -> ConnectedApp {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = apps_b.get("tool").await.unwrap();
    assert!(
        holder.is_ready(),
        "the holder stays Ready: {:?}",
        holder.status
    );
    let after = secrets_b.get("tool-keyway").await.unwrap();
    assert_eq!(after.data, before.data, "the holder keeps its Secret");
    holder
}

fn ready_condition(app: &ConnectedApp) -> Option<(String, String, String)> {
    let status = app.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls until `check` holds for the app, or fails after [`WAIT`].
async fn wait_app(
    apps: &Api<ConnectedApp>,
    name: &str,
    what: &str,
    check: impl Fn(&ConnectedApp) -> bool,
) -> ConnectedApp {
    wait_app_for(apps, name, what, WAIT, check).await
}

/// Polls until the app's Ready condition has `reason`.
async fn wait_reason(apps: &Api<ConnectedApp>, name: &str, reason: &str) -> ConnectedApp {
    wait_app(apps, name, reason, |a| {
        ready_condition(a).is_some_and(|(_, r, _)| r == reason)
    })
    .await
}

/// Creates `app` and waits until it is Ready.
async fn create_ready(apps: &Api<ConnectedApp>, app: &ConnectedApp) -> ConnectedApp {
    apps.create(&PostParams::default(), app).await.unwrap();
    let name = app.metadata.name.as_deref().unwrap();
    wait_app(apps, name, "Ready", ConnectedApp::is_ready).await
}

async fn wait_app_for(
    apps: &Api<ConnectedApp>,
    name: &str,
    what: &str,
    wait: Duration,
    check: impl Fn(&ConnectedApp) -> bool,
) -> ConnectedApp {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let current = apps.get_opt(name).await.unwrap();
        if let Some(app) = &current
            && check(app)
        {
            return app.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name}: {what}; last seen: {:?}",
            current.map(|a| (a.metadata.generation, a.status))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn create_writes_secret_and_ready_status() {
    let (server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    apps.create(&PostParams::default(), &app("wiki", json!({})))
        .await
        .unwrap();
    let ready = wait_app(&apps, "wiki", "Ready", ConnectedApp::is_ready).await;

    assert!(ready.finalizers().iter().any(|f| f == FINALIZER));
    let status = ready.status.clone().unwrap();
    assert_eq!(status.client_id.as_deref(), Some("default.wiki"));
    assert_eq!(status.issuer.as_deref(), Some(ISSUER));
    assert_eq!(status.secret_name.as_deref(), Some("wiki-keyway"));
    assert_eq!(status.observed_generation, Some(1));

    let secret = secrets.get("wiki-keyway").await.unwrap();
    assert_eq!(text(&secret, keys::CLIENT_ID), "default.wiki");
    assert_eq!(text(&secret, keys::ISSUER_URL), ISSUER);
    let client_secret = text(&secret, keys::CLIENT_SECRET);
    assert!(client_secret.len() >= 43);
    assert_eq!(status.client_secrets.len(), 1);
    assert_eq!(
        status.client_secrets[0].hash,
        keys::hash_client_secret(&client_secret)
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (ready.uid().unwrap().as_str(), Some(true))
    );
    let policy: keys::AppPolicy = serde_json::from_str(&text(&secret, keys::POLICY)).unwrap();
    assert_eq!(
        policy.resource.as_deref(),
        Some("https://wiki.example.test")
    );

    // The status went through the status subresource with server-side apply.
    let counts = server.write_counts();
    assert!(
        counts.requests_of("patch", "connectedapps/status") >= 1,
        "{counts:?}"
    );
    assert_eq!(
        counts.requests_of("update", "connectedapps"),
        0,
        "{counts:?}"
    );
    replica.stop().await;
}

#[tokio::test]
async fn spec_update_updates_secret_and_observed_generation() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    create_ready(&apps, &app("wiki", json!({}))).await;
    let before = secrets.get("wiki-keyway").await.unwrap();

    let patch = json!({"spec": {"scopes": ["openid", "profile", "wiki:read"]}});
    let patched = apps
        .patch("wiki", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    let ready = wait_app(&apps, "wiki", "observedGeneration 2 and Ready", |a| {
        a.is_ready() && a.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    let after = secrets.get("wiki-keyway").await.unwrap();
    let policy: keys::AppPolicy = serde_json::from_str(&text(&after, keys::POLICY)).unwrap();
    assert_eq!(policy.scopes, ["openid", "profile", "wiki:read"]);
    assert_eq!(
        text(&after, keys::CLIENT_SECRET),
        text(&before, keys::CLIENT_SECRET),
        "no rotation on update"
    );
    assert_eq!(ready.status.unwrap().client_secrets.len(), 1);
    replica.stop().await;
}

#[tokio::test]
async fn rotation_publishes_the_new_hash_first_and_keeps_the_old_one_valid() {
    let (server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let offset = Arc::new(AtomicI64::new(0));
    let replica = start(client, config(), Some(offset.clone()));
    let spec = json!({"secret": {"rotation": {"interval": "1h", "gracePeriod": "10m"}}});
    create_ready(&apps, &app("wiki", spec)).await;
    let old_secret = text(
        &secrets.get("wiki-keyway").await.unwrap(),
        keys::CLIENT_SECRET,
    );
    let old_hash = keys::hash_client_secret(&old_secret);

    // Two hours later, something makes the controller look again.
    offset.store(2 * 3600, Ordering::SeqCst);
    let first_request = server.requests().len();
    let nudge = json!({"metadata": {"annotations": {"test/nudge": "1"}}});
    apps.patch("wiki", &PatchParams::default(), &Patch::Merge(&nudge))
        .await
        .unwrap();
    let rotated = wait_app(&apps, "wiki", "two hashes", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.client_secrets.len() == 2)
            && a.is_ready()
    })
    .await;
    let new_secret = text(
        &secrets.get("wiki-keyway").await.unwrap(),
        keys::CLIENT_SECRET,
    );
    assert_ne!(new_secret, old_secret);
    let hashes = rotated.status.unwrap().client_secrets;
    assert_eq!(hashes[0].hash, keys::hash_client_secret(&new_secret));
    assert!(hashes[0].expires_at.is_none());
    assert_eq!(hashes[1].hash, old_hash);
    let expiry = hashes[1].expires_at.as_ref().unwrap().0;
    let expected = Timestamp::now() + SignedDuration::from_secs(2 * 3600 + 600);
    assert!(
        (expiry.as_second() - expected.as_second()).abs() < 30,
        "{expiry} vs {expected}"
    );

    // No moment in which the Secret carries a secret the issuer does not know: the status with
    // the new hash is written before the Secret.
    let requests = server.requests()[first_request..].to_vec();
    let status_write = requests
        .iter()
        .position(|r| r.starts_with("PATCH") && r.contains("/connectedapps/wiki/status"));
    let secret_write = requests
        .iter()
        .position(|r| r.starts_with("PUT") && r.contains("/secrets/wiki-keyway"));
    assert!(
        status_write.unwrap() < secret_write.unwrap(),
        "{requests:#?}"
    );
    replica.stop().await;
}

#[tokio::test]
async fn a_foreign_secret_is_left_alone_and_reported() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut foreign = Secret::default();
    foreign.metadata.name = Some("wiki-keyway".into());
    foreign.string_data = Some([("password".to_owned(), "hunter2".to_owned())].into());
    let foreign = secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let replica = start(client, config(), None);
    apps.create(&PostParams::default(), &app("wiki", json!({})))
        .await
        .unwrap();
    let app = wait_app(&apps, "wiki", "Ready=False", |a| {
        ready_condition(a).is_some()
    })
    .await;
    let (status, reason, message) = ready_condition(&app).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretConflict")
    );
    assert!(message.contains("wiki-keyway"), "{message}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = secrets.get("wiki-keyway").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "never overwritten"
    );
    replica.stop().await;
}

/// A Secret as an external manager (e.g. ExternalSecrets) would write it for `app`.
fn external_secret(app: &ConnectedApp, name: &str, client_secret: &str) -> Secret {
    let policy = serde_json::to_string(&app.spec.app_policy()).unwrap();
    let mut external = Secret::default();
    external.metadata.name = Some(name.into());
    // The test server, like the real one, turns stringData into data on write.
    external.string_data = Some(
        [
            (keys::CLIENT_ID, "default.wiki"),
            (keys::CLIENT_SECRET, client_secret),
            (keys::ISSUER_URL, ISSUER),
            (
                keys::COOKIE_SECRET,
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            (keys::POLICY, policy.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    external
}

/// Creates an app with an existingSecret that does not exist, checks that it waits (and that
/// keyway invents nothing), then lets `write` create the Secret and returns how long the app
/// took to become Ready.
async fn existing_secret_scenario(labelled: bool) -> Duration {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    let spec = json!({"secret": {"existingSecret": "wiki-credentials"}});
    let created = apps
        .create(&PostParams::default(), &app("wiki", spec))
        .await
        .unwrap();
    let waiting = wait_reason(&apps, "wiki", "SecretMissing").await;
    assert_eq!(ready_condition(&waiting).unwrap().0, "False");
    assert!(
        secrets.get_opt("wiki-credentials").await.unwrap().is_none(),
        "keyway never invents credentials"
    );

    let client_secret = "an-externally-managed-client-secret-0123456789";
    let mut external = external_secret(&created, "wiki-credentials", client_secret);
    if labelled {
        external.metadata.labels =
            Some([("keyway.dev/connected-app".to_owned(), "wiki".to_owned())].into());
    }
    let appeared = tokio::time::Instant::now();
    secrets
        .create(&PostParams::default(), &external)
        .await
        .unwrap();
    let ready = wait_app_for(
        &apps,
        "wiki",
        "Ready with the external secret",
        Duration::from_secs(45),
        ConnectedApp::is_ready,
    )
    .await;
    let took = appeared.elapsed();
    assert_eq!(
        ready.status.unwrap().client_secrets[0].hash,
        keys::hash_client_secret(client_secret)
    );
    replica.stop().await;
    took
}

#[tokio::test]
async fn an_existing_secret_is_waited_for_then_used() {
    // Unlabelled: the controller finds it by polling the waiting app.
    existing_secret_scenario(false).await;
}

#[tokio::test]
async fn a_labelled_existing_secret_is_seen_through_the_watch() {
    // Labelled with its app: the Secret watch (a label selector with exists and !=) triggers
    // the reconcile at once, well before the next poll.
    let took = existing_secret_scenario(true).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn an_invalid_spec_is_not_ready_with_a_precise_message_and_no_secret() {
    // Updates are ratcheted, so the controller can report on an invalid object that predates
    // the CRD's rules (its status writes leave the invalid spec unchanged).
    let (server, client) = setup_with_legacy_object("agent").await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    let app = wait_app(&apps, "agent", "InvalidSpec", |a| {
        ready_condition(a).is_some()
    })
    .await;
    let (status, reason, message) = ready_condition(&app).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.contains("client_credentials"), "{message}");
    assert!(secrets.get_opt("agent-keyway").await.unwrap().is_none());
    // No churn: once reported, nothing more is written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.reset_counts();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        server.write_counts().total_requests(),
        0,
        "{:?}",
        server.write_counts()
    );
    replica.stop().await;
}

#[tokio::test]
async fn a_spec_the_crd_rules_refuse_never_reaches_the_controller() {
    let (server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let spec = json!({"clientType": "public", "grantTypes": ["client_credentials"]});
    let refused = apps
        .create(&PostParams::default(), &app("agent", spec))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("a public client cannot use the client_credentials grant"),
        "{}",
        status.message
    );
    assert_eq!(server.write_counts().total_changes(), 0);
}

#[tokio::test]
async fn defaults_come_from_the_crd_schema() {
    let (_server, client) = setup().await;
    let raw = json!({
        "apiVersion": "keyway.dev/v1alpha1", "kind": "ConnectedApp",
        "metadata": {"name": "raw"},
        "spec": {"displayName": "Raw", "redirectURIs": ["https://raw.example.test/cb"], "unknownField": 1},
    });
    let dynamic: Api<kube::api::DynamicObject> =
        Api::default_namespaced_with(client, &kube::api::ApiResource::erase::<ConnectedApp>(&()));
    let created = dynamic
        .create(
            &PostParams::default(),
            &serde_json::from_value(raw).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["grantTypes"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(created.data["spec"]["clientType"], "confidential");
    assert!(
        created.data["spec"].get("unknownField").is_none(),
        "unknown fields are pruned"
    );
}

#[tokio::test]
async fn deletion_runs_the_finalizer_and_removes_the_secret() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    create_ready(&apps, &app("wiki", json!({}))).await;
    assert!(secrets.get_opt("wiki-keyway").await.unwrap().is_some());
    apps.delete("wiki", &DeleteParams::default()).await.unwrap();
    wait_gone(&apps, "wiki").await;
    wait_gone(&secrets, "wiki-keyway").await;
    replica.stop().await;
}

#[tokio::test]
async fn a_client_id_claimed_twice_goes_to_the_older_app_until_it_is_deleted() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    // The older app sorts after the newer one by name: creation time decides.
    create_ready(&apps, &app("zeta", json!({"clientID": "shared"}))).await;
    // Creation timestamps have whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps.create(
        &PostParams::default(),
        &app("alpha", json!({"clientID": "shared"})),
    )
    .await
    .unwrap();
    let loser = wait_reason(&apps, "alpha", "ClientIDConflict").await;
    let (status, _, message) = ready_condition(&loser).unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("default/zeta"), "{message}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(secrets.get_opt("alpha-keyway").await.unwrap().is_none());
    let holder = apps.get("zeta").await.unwrap();
    assert!(holder.is_ready(), "the holder is untouched");
    let holder_secret = secrets.get("zeta-keyway").await.unwrap();
    assert_eq!(text(&holder_secret, keys::CLIENT_ID), "shared");

    apps.delete("zeta", &DeleteParams::default()).await.unwrap();
    wait_gone(&apps, "zeta").await;
    let winner = wait_app(&apps, "alpha", "Ready", ConnectedApp::is_ready).await;
    let secret = secrets.get("alpha-keyway").await.unwrap();
    assert_eq!(text(&secret, keys::CLIENT_ID), "shared");
    let status = winner.status.unwrap();
    assert_eq!(
        status.client_secrets[0].hash,
        keys::hash_client_secret(&text(&secret, keys::CLIENT_SECRET))
    );
    replica.stop().await;
}

#[tokio::test]
async fn a_holder_that_changes_its_client_id_frees_it_at_once() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    create_ready(&apps, &app("zeta", json!({"clientID": "shared"}))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps.create(
        &PostParams::default(),
        &app("alpha", json!({"clientID": "shared"})),
    )
    .await
    .unwrap();
    wait_reason(&apps, "alpha", "ClientIDConflict").await;
    let patch = json!({"spec": {"clientID": "zeta-own"}});
    apps.patch("zeta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // Seen through the watch mapping, well before the 30 s recheck.
    wait_app_for(
        &apps,
        "alpha",
        "Ready",
        Duration::from_secs(10),
        ConnectedApp::is_ready,
    )
    .await;
    let secret = secrets.get("alpha-keyway").await.unwrap();
    assert_eq!(text(&secret, keys::CLIENT_ID), "shared");
    let zeta = wait_app(&apps, "zeta", "Ready under its new ID", |a| {
        a.is_ready() && a.status.as_ref().and_then(|s| s.client_id.as_deref()) == Some("zeta-own")
    })
    .await;
    assert!(zeta.is_ready());
    replica.stop().await;
}

#[tokio::test]
async fn an_older_app_cannot_take_over_an_issued_client_id() {
    let (_server, client) = setup().await;
    let (apps_a, apps_b, secrets_b) = namespaces_a_and_b(&client).await;
    let replica = start(client, config(), None);
    // A (older) in namespace a, Ready under its own default ID.
    create_ready(&apps_a, &app_in("a", "x", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // B (newer) in namespace b, issued its default ID b.tool.
    create_ready(&apps_b, &app_in("b", "tool", json!({}))).await;
    let before = secrets_b.get("tool-keyway").await.unwrap();
    assert_eq!(text(&before, keys::CLIENT_ID), "b.tool");
    // A's owner pins B's ID.
    let patch = json!({"spec": {"clientID": "b.tool"}});
    apps_a
        .patch("x", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let loser = wait_reason(&apps_a, "x", "ClientIDConflict").await;
    let (_, _, message) = ready_condition(&loser).unwrap();
    assert!(message.contains("b/tool"), "{message}");
    let holder = holder_kept(&apps_b, &secrets_b, &before).await;
    assert_eq!(
        holder.status.as_ref().and_then(|s| s.client_id.as_deref()),
        Some("b.tool")
    );
    replica.stop().await;
}

const SHARED_RESOURCE: &str = "https://shared.example.test/";

fn recorded_resource(app: &ConnectedApp) -> Option<&str> {
    app.status.as_ref().and_then(|s| s.resource.as_deref())
}

#[tokio::test]
async fn a_resource_claimed_twice_goes_to_the_older_app_until_it_is_deleted() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    // The older app sorts after the newer one by name: creation time decides.
    create_ready(&apps, &app("zeta", json!({"resource": SHARED_RESOURCE}))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps.create(
        &PostParams::default(),
        &app("alpha", json!({"resource": SHARED_RESOURCE})),
    )
    .await
    .unwrap();
    let loser = wait_reason(&apps, "alpha", "ResourceConflict").await;
    let (status, _, message) = ready_condition(&loser).unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("default/zeta"), "{message}");
    assert!(message.contains(SHARED_RESOURCE), "{message}");
    assert_eq!(recorded_resource(&loser), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(secrets.get_opt("alpha-keyway").await.unwrap().is_none());
    let holder = apps.get("zeta").await.unwrap();
    assert!(holder.is_ready(), "the holder is untouched");
    assert_eq!(recorded_resource(&holder), Some(SHARED_RESOURCE));

    apps.delete("zeta", &DeleteParams::default()).await.unwrap();
    wait_gone(&apps, "zeta").await;
    let winner = wait_app(&apps, "alpha", "Ready", ConnectedApp::is_ready).await;
    assert_eq!(recorded_resource(&winner), Some(SHARED_RESOURCE));
    let secret = secrets.get("alpha-keyway").await.unwrap();
    let policy: keys::AppPolicy = serde_json::from_str(&text(&secret, keys::POLICY)).unwrap();
    assert_eq!(policy.resource.as_deref(), Some(SHARED_RESOURCE));
    replica.stop().await;
}

#[tokio::test]
async fn an_older_app_of_another_namespace_cannot_take_over_a_held_resource() {
    let (_server, client) = setup().await;
    let (apps_a, apps_b, secrets_b) = namespaces_a_and_b(&client).await;
    let replica = start(client, config(), None);
    // A (older) in namespace a, Ready with its own resource.
    create_ready(&apps_a, &app_in("a", "x", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // B (newer) in namespace b holds its tool's resource.
    create_ready(
        &apps_b,
        &app_in("b", "tool", json!({"resource": SHARED_RESOURCE})),
    )
    .await;
    let before = secrets_b.get("tool-keyway").await.unwrap();
    // A's owner names B's resource.
    let patch = json!({"spec": {"resource": SHARED_RESOURCE}});
    apps_a
        .patch("x", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let loser = wait_reason(&apps_a, "x", "ResourceConflict").await;
    let (_, _, message) = ready_condition(&loser).unwrap();
    assert!(message.contains("b/tool"), "{message}");
    // A keeps its client ID (recorded), not the resource.
    let status = loser.status.as_ref().unwrap();
    assert_eq!(status.client_id.as_deref(), Some("a.x"));
    assert_eq!(status.resource, None);
    let holder = holder_kept(&apps_b, &secrets_b, &before).await;
    assert_eq!(recorded_resource(&holder), Some(SHARED_RESOURCE));
    // A names its own resource again: Ready at once (through the watch mapping).
    let patch = json!({"spec": {"resource": "https://x.example.test"}});
    apps_a
        .patch("x", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let back = wait_app_for(
        &apps_a,
        "x",
        "Ready",
        Duration::from_secs(10),
        ConnectedApp::is_ready,
    )
    .await;
    assert_eq!(recorded_resource(&back), Some("https://x.example.test"));
    replica.stop().await;
}

/// [`config`] with `--resource-hosts` set to `bindings`.
fn config_bound(bindings: &str) -> ControllerConfig {
    let mut config = config();
    config.resource_hosts = api::resource_hosts::ResourceHosts::parse([bindings]).unwrap();
    config
}

#[tokio::test]
async fn a_bound_host_is_taken_back_from_a_squatter_of_another_namespace() {
    let (_server, client) = setup().await;
    let (apps_a, apps_b, secrets_b) = namespaces_a_and_b(&client).await;
    let secrets_a: Api<Secret> = Api::namespaced(client.clone(), "a");
    // No binding (the default): namespace a names b's tool first and holds it.
    let replica = start(client.clone(), config(), None);
    create_ready(
        &apps_a,
        &app_in("a", "x", json!({"resource": SHARED_RESOURCE})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps_b
        .create(
            &PostParams::default(),
            &app_in("b", "tool", json!({"resource": SHARED_RESOURCE})),
        )
        .await
        .unwrap();
    wait_reason(&apps_b, "tool", "ResourceConflict").await;
    assert!(secrets_b.get_opt("tool-keyway").await.unwrap().is_none());
    replica.stop().await;

    // The platform team binds the host to b: the operator restarted with the binding gives the
    // tool to b, whatever the letter case of the binding, and refuses a.
    let replica = start(client, config_bound("SHARED.example.test=b"), None);
    let owner = wait_app(&apps_b, "tool", "Ready", ConnectedApp::is_ready).await;
    assert_eq!(recorded_resource(&owner), Some(SHARED_RESOURCE));
    let secret = secrets_b.get("tool-keyway").await.unwrap();
    let policy: keys::AppPolicy = serde_json::from_str(&text(&secret, keys::POLICY)).unwrap();
    assert_eq!(policy.resource.as_deref(), Some(SHARED_RESOURCE));
    let squatter = wait_reason(&apps_a, "x", "ResourceNotPermitted").await;
    let (status, _, message) = ready_condition(&squatter).unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("\"shared.example.test=b\""), "{message}");
    assert!(message.contains("namespace \"a\""), "{message}");
    assert_eq!(recorded_resource(&squatter), None);
    // Its Secret is left as it is (no write, no delete); the issuer no longer makes it a client.
    assert!(secrets_a.get_opt("x-keyway").await.unwrap().is_some());

    // Another spelling of the bound host from namespace a is refused too, with no Secret.
    apps_a
        .create(
            &PostParams::default(),
            &app_in(
                "a",
                "y",
                json!({"resource": "https://Shared.EXAMPLE.test:8443/"}),
            ),
        )
        .await
        .unwrap();
    wait_reason(&apps_a, "y", "ResourceNotPermitted").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(secrets_a.get_opt("y-keyway").await.unwrap().is_none());
    // The owner was not disturbed.
    holder_kept(&apps_b, &secrets_b, &secret).await;
    replica.stop().await;
}

#[tokio::test]
async fn the_schema_refuses_a_client_id_of_a_registered_client() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client);
    let err = apps
        .create(
            &PostParams::default(),
            &app("wiki", json!({"clientID": "dcr.abc"})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

#[tokio::test]
async fn the_secret_is_garbage_collected_through_its_owner_reference() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let replica = start(client, config(), None);
    create_ready(&apps, &app("wiki", json!({}))).await;
    replica.stop().await;
    // With the controller gone, someone removes the finalizer by hand: the owner reference
    // alone must take the Secret with the app.
    apps.delete("wiki", &DeleteParams::default()).await.unwrap();
    assert!(
        apps.get("wiki")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(secrets.get_opt("wiki-keyway").await.unwrap().is_some());
    let strip = json!({"metadata": {"finalizers": null}});
    apps.patch("wiki", &PatchParams::default(), &Patch::Merge(&strip))
        .await
        .unwrap();
    wait_gone(&apps, "wiki").await;
    wait_gone(&secrets, "wiki-keyway").await;
}

fn lease_config(identity: &str) -> ControllerConfig {
    let mut config = config();
    config.identity = identity.into();
    config.leader_election = Some(LeaseConfig {
        namespace: "default".into(),
        name: "keyway-operator".into(),
        identity: identity.into(),
        // Generous against a loaded machine: a spurious failover would be a false failure.
        lease_duration: Duration::from_secs(8),
        renew_deadline: Duration::from_secs(6),
        retry_period: Duration::from_millis(250),
    });
    config
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("keyway-operator")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let (_server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let a = start(client.clone(), lease_config("replica-a"), None);
    let b = start(client.clone(), lease_config("replica-b"), None);
    create_ready(&apps, &app("one", json!({}))).await;
    let leader = holder(&leases).await.unwrap();
    let (leading, following) = if leader == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    assert!(leading.metrics.total_writes() > 0);
    assert_eq!(
        following.metrics.total_writes(),
        0,
        "the follower wrote nothing"
    );

    // The leader stops (and releases the lease); the follower takes over.
    leading.stop().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while holder(&leases).await.as_deref() == Some(leader.as_str())
        || holder(&leases).await.is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    apps.create(&PostParams::default(), &app("two", json!({})))
        .await
        .unwrap();
    wait_app(&apps, "two", "Ready after failover", ConnectedApp::is_ready).await;
    assert!(following.metrics.total_writes() > 0);
    following.stop().await;
}

#[tokio::test]
async fn a_settled_resync_makes_no_writes() {
    let (server, client) = setup_with_legacy_object("bad").await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    let mut fast = config();
    fast.resync = Duration::from_secs(1);
    let replica = start(client.clone(), fast.clone(), None);
    for name in ["a", "b", "c"] {
        apps.create(&PostParams::default(), &app(name, json!({})))
            .await
            .unwrap();
    }
    for name in ["a", "b", "c"] {
        wait_app(&apps, name, "Ready", ConnectedApp::is_ready).await;
    }
    wait_app(&apps, "bad", "reported", |a| ready_condition(a).is_some()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Periodic resyncs (every second) of the settled state.
    server.reset_counts();
    let reconciles = replica.metrics.successful_reconciles();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        replica.metrics.successful_reconciles() >= reconciles + 8,
        "resyncs happened"
    );
    assert_eq!(
        server.write_counts().total_requests(),
        0,
        "{:?}",
        server.write_counts()
    );
    replica.stop().await;

    // A cold restart over the settled state: every app reconciled again, nothing written.
    server.reset_counts();
    let restarted = start(client, fast, None);
    let deadline = tokio::time::Instant::now() + WAIT;
    while restarted.metrics.successful_reconciles() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "restart did not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.write_counts().total_requests(),
        0,
        "{:?}",
        server.write_counts()
    );
    assert_eq!(restarted.metrics.total_writes(), 0);
    restarted.stop().await;
}

/// The requests the server received from the `first`-th on that `matches` accepts.
fn requests_since(
    server: &FakeApiServer,
    first: usize,
    matches: impl Fn(&str) -> bool,
) -> Vec<String> {
    server.requests()[first..]
        .iter()
        .filter(|r| matches(r))
        .cloned()
        .collect()
}

/// The write budget of a cold start (issue 15, docs/operator.md "Scale"): at most four write
/// requests per new app — the finalizer, the Secret, one status, one event — and none that
/// changes nothing (a repeated status apply, a repeated event); then none at all from a
/// controller restarted over the settled state. `operator/benches/controller_scale.rs` measures
/// the same at scale.
#[tokio::test]
async fn a_cold_start_writes_at_most_four_requests_per_app_and_a_settled_restart_none() {
    const APPS: usize = 50;
    let (server, client) = setup().await;
    let apps: Api<ConnectedApp> = Api::default_namespaced(client.clone());
    for i in 0..APPS {
        apps.create(
            &PostParams::default(),
            &app(&format!("app-{i:02}"), json!({})),
        )
        .await
        .unwrap();
    }
    server.reset_counts();
    let first_request = server.requests().len();
    let replica = start(client.clone(), config(), None);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = apps.list(&Default::default()).await.unwrap();
        if list.items.iter().filter(|a| a.is_ready()).count() == APPS {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes that trail the last Ready (reconciles of a stale cache) count too.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let counts = server.write_counts();
    let per_app =
        |verb: &str, resource: &str| counts.requests_of(verb, resource) as f64 / APPS as f64;
    assert!(
        counts.total_requests() <= 4 * APPS as u64,
        "{} write requests for {APPS} apps: {counts:?}",
        counts.total_requests()
    );
    assert_eq!(
        per_app("patch", "connectedapps"),
        1.0,
        "the finalizer: {counts:?}"
    );
    assert_eq!(per_app("create", "secrets"), 1.0, "{counts:?}");
    assert_eq!(per_app("patch", "connectedapps/status"), 1.0, "{counts:?}");
    assert_eq!(per_app("create", "events"), 1.0, "{counts:?}");
    assert_eq!(
        counts.requests_of("patch", "events"),
        0,
        "no repeated event: {counts:?}"
    );
    let app_watches = requests_since(&server, first_request, |r| {
        r.contains("/connectedapps?") && r.contains("watch=true")
    });
    assert_eq!(
        app_watches.len(),
        1,
        "one watch of ConnectedApps serves the cache, the reconciles and the rechecks of rivals: {app_watches:?}"
    );
    replica.stop().await;

    server.reset_counts();
    let restart_request = server.requests().len();
    let restarted = start(client, config(), None);
    while restarted.metrics.successful_reconciles() < APPS as u64 {
        assert!(
            tokio::time::Instant::now() < deadline + WAIT,
            "restart did not reconcile"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.write_counts().total_requests(),
        0,
        "{:?}",
        server.write_counts()
    );
    let secret_reads = requests_since(&server, restart_request, |r| {
        r.starts_with("GET ") && r.contains("/secrets/")
    });
    assert!(
        secret_reads.is_empty(),
        "a settled app's Secret is read from the controller's watch, not the API server: {secret_reads:?}"
    );
    restarted.stop().await;
}
