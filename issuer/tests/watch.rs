//! In-cluster clients: ConnectedApps watched through the real kube client from the in-repo
//! Kubernetes API test server; status hashes authenticate clients; updates and deletions apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use api::ConnectedApp;
use common::*;
use http::StatusCode;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}

/// An issuer that takes its clients from the ConnectedApp watch (not started yet).
async fn issuer_watching() -> (Arc<issuer::Issuer>, axum::Router, tempfile::TempDir) {
    issuer_watching_with(&[]).await
}

/// [`issuer_watching`] with more flags.
async fn issuer_watching_with(
    extra: &[&str],
) -> (Arc<issuer::Issuer>, axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys").display().to_string();
    let config = {
        use clap::Parser;
        let mut argv = vec![
            "keyway-issuer",
            "--issuer-url",
            ISSUER,
            "--watch-connectedapps",
            "--keys-dir",
            &keys,
        ];
        argv.extend_from_slice(extra);
        issuer::Config::from_args(issuer::Args::try_parse_from(argv).unwrap()).unwrap()
    };
    let store = issuer::store::open(&format!(
        "sqlite://{}",
        dir.path().join("watch.db").display()
    ))
    .await
    .unwrap();
    let iss = Arc::new(issuer::Issuer::new(&config, store).unwrap());
    let router = issuer::router(iss.clone());
    (iss, router, dir)
}

#[tokio::test]
async fn watched_connectedapps_become_clients() {
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "tools"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let apps: Api<ConnectedApp> = Api::namespaced(client.clone(), "tools");
    let app: ConnectedApp = serde_yaml::from_str(
        "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: batch, namespace: tools}\nspec:\n  displayName: Batch\n  grantTypes: [client_credentials]\n  scopes: [\"tool:read\"]\n",
    )
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();

    let (iss, router, _dir) = issuer_watching().await;
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::spawn(issuer::watch_apps(iss.clone(), client, None));
    eventually(|| iss.clients().get("tools.batch").is_some()).await;
    assert_eq!(get(&router, "/readyz").await.status, StatusCode::OK);

    // No status hash yet: the client cannot authenticate.
    let try_token = || {
        let r = router.clone();
        async move {
            post(
                &r,
                "/token",
                "grant_type=client_credentials",
                Some(&basic("tools.batch", "the-secret")),
            )
            .await
        }
    };
    assert_eq!(try_token().await.status, StatusCode::UNAUTHORIZED);

    // The operator publishes the hash in status.
    let status = serde_json::json!({"status": {"clientID": "tools.batch", "clientSecrets": [
        {"hash": contract::secret::hash_client_secret("the-secret")}
    ]}});
    apps.patch_status("batch", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    eventually(|| {
        iss.clients()
            .get("tools.batch")
            .is_some_and(|c| !c.secrets.is_empty())
    })
    .await;
    assert_eq!(try_token().await.status, StatusCode::OK);

    // Deleted: gone.
    apps.delete("batch", &Default::default()).await.unwrap();
    eventually(|| iss.clients().get("tools.batch").is_none()).await;
    assert_eq!(try_token().await.status, StatusCode::UNAUTHORIZED);
}

fn pinned(name: &str) -> ConnectedApp {
    serde_yaml::from_str(&format!(
        "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  displayName: {name}\n  clientID: shared\n  grantTypes: [client_credentials]\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn a_client_id_claimed_twice_belongs_to_the_older_app_until_it_is_deleted() {
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let apps: Api<ConnectedApp> = Api::namespaced(client.clone(), "default");
    let with_hash = |secret: &str| {
        serde_json::json!({"status": {"clientSecrets": [
            {"hash": contract::secret::hash_client_secret(secret)}
        ]}})
    };
    // The older app sorts after the newer one by name: creation time decides.
    apps.create(&PostParams::default(), &pinned("zeta"))
        .await
        .unwrap();
    apps.patch_status(
        "zeta",
        &PatchParams::default(),
        &Patch::Merge(&with_hash("zeta-secret")),
    )
    .await
    .unwrap();
    // Creation timestamps have whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps.create(&PostParams::default(), &pinned("alpha"))
        .await
        .unwrap();
    apps.patch_status(
        "alpha",
        &PatchParams::default(),
        &Patch::Merge(&with_hash("alpha-secret")),
    )
    .await
    .unwrap();

    let (iss, router, _dir) = issuer_watching().await;
    tokio::spawn(issuer::watch_apps(iss.clone(), client, None));
    eventually(|| iss.clients().get("shared").is_some()).await;
    let token = |secret: &'static str| {
        let r = router.clone();
        async move {
            post(
                &r,
                "/token",
                "grant_type=client_credentials",
                Some(&basic("shared", secret)),
            )
            .await
            .status
        }
    };
    assert_eq!(iss.clients().get("shared").unwrap().name, "zeta");
    assert_eq!(token("zeta-secret").await, StatusCode::OK);
    assert_eq!(token("alpha-secret").await, StatusCode::UNAUTHORIZED);

    // A change of the newer app does not take the ID over.
    let patch = serde_json::json!({"spec": {"displayName": "alpha 2"}});
    apps.patch("alpha", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(iss.clients().get("shared").unwrap().name, "zeta");

    apps.delete("zeta", &Default::default()).await.unwrap();
    eventually(|| {
        iss.clients()
            .get("shared")
            .is_some_and(|c| c.name == "alpha 2")
    })
    .await;
    assert_eq!(token("alpha-secret").await, StatusCode::OK);
    assert_eq!(token("zeta-secret").await, StatusCode::UNAUTHORIZED);
}

/// A ConnectedApp in `ns`, with `clientID: <pin>` when given.
fn app_in(ns: &str, name: &str, pin: Option<&str>) -> ConnectedApp {
    let mut value = serde_json::json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"displayName": format!("{ns}/{name}"), "grantTypes": ["client_credentials"]},
    });
    if let Some(pin) = pin {
        value["spec"]["clientID"] = pin.into();
    }
    serde_json::from_value(value).unwrap()
}

/// The status the operator writes for an app registered as `id` with `secret`.
fn registered(id: &str, secret: &str) -> serde_json::Value {
    serde_json::json!({"status": {
        "clientID": id,
        "observedGeneration": 1,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Registered", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
        "clientSecrets": [{"hash": contract::secret::hash_client_secret(secret)}],
    }})
}

#[tokio::test]
async fn an_older_app_that_pins_an_issued_client_id_does_not_take_it_over() {
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["a", "b"] {
        let body = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &body)
            .await
            .unwrap();
    }
    let apps_a: Api<ConnectedApp> = Api::namespaced(client.clone(), "a");
    let apps_b: Api<ConnectedApp> = Api::namespaced(client.clone(), "b");
    // A (older) registered under its default ID; B (newer) registered under "tool".
    apps_a
        .create(&PostParams::default(), &app_in("a", "x", None))
        .await
        .unwrap();
    let status = registered("a.x", "a-secret");
    apps_a
        .patch_status("x", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apps_b
        .create(&PostParams::default(), &app_in("b", "tool", Some("tool")))
        .await
        .unwrap();
    let status = registered("tool", "b-secret");
    apps_b
        .patch_status("tool", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let (iss, router, _dir) = issuer_watching().await;
    tokio::spawn(issuer::watch_apps(iss.clone(), client, None));
    eventually(|| iss.clients().get("tool").is_some() && iss.clients().get("a.x").is_some()).await;
    let token = |secret: &'static str| {
        let r = router.clone();
        async move {
            post(
                &r,
                "/token",
                "grant_type=client_credentials",
                Some(&basic("tool", secret)),
            )
            .await
            .status
        }
    };
    assert_eq!(token("b-secret").await, StatusCode::OK);

    // A's owner pins B's ID; A's status still records "a.x" (the operator would now write
    // ClientIDConflict).
    let patch = serde_json::json!({"spec": {"clientID": "tool"}});
    apps_a
        .patch("x", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(|| iss.clients().get("a.x").is_none()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(iss.clients().get("tool").unwrap().name, "b/tool");
    assert_eq!(token("b-secret").await, StatusCode::OK);
    assert_eq!(token("a-secret").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_squatter_outside_the_binding_of_a_resource_host_is_not_a_client() {
    const R: &str = "https://tool.example.test/";
    let server = fake_apiserver::FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["evil", "tools"] {
        let body = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &body)
            .await
            .unwrap();
    }
    // The squatter (older) names the tools' resource and was registered as its holder before
    // the binding; the owner is registered under its client ID.
    for (ns, name, secret) in [
        ("evil", "x", "evil-secret"),
        ("tools", "tool", "tools-secret"),
    ] {
        let apps: Api<ConnectedApp> = Api::namespaced(client.clone(), ns);
        let mut app = app_in(ns, name, None);
        app.spec.resource = Some(R.into());
        apps.create(&PostParams::default(), &app).await.unwrap();
        let mut status = registered(&format!("{ns}.{name}"), secret);
        if ns == "evil" {
            status["status"]["resource"] = R.into();
        }
        apps.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let token = |router: &axum::Router, id: &'static str, secret: &'static str| {
        let r = router.clone();
        async move {
            post(
                &r,
                "/token",
                "grant_type=client_credentials",
                Some(&basic(id, secret)),
            )
            .await
            .status
        }
    };

    // Without a binding the squatter holds the resource: it is the client, the owner is not.
    let (iss, router, _dir) = issuer_watching().await;
    tokio::spawn(issuer::watch_apps(iss.clone(), client.clone(), None));
    eventually(|| iss.clients().get("evil.x").is_some()).await;
    assert_eq!(
        token(&router, "evil.x", "evil-secret").await,
        StatusCode::OK
    );
    assert_eq!(
        token(&router, "tools.tool", "tools-secret").await,
        StatusCode::UNAUTHORIZED
    );

    // With the operator's binding (another spelling of the host): the other way round.
    let (iss, router, _dir) =
        issuer_watching_with(&["--resource-hosts", "TOOL.example.test.=tools"]).await;
    tokio::spawn(issuer::watch_apps(iss.clone(), client, None));
    eventually(|| iss.clients().get("tools.tool").is_some()).await;
    assert!(iss.clients().get("evil.x").is_none());
    assert_eq!(
        iss.clients()
            .resource_owner(R)
            .map(|c| c.id.clone())
            .as_deref(),
        Some("tools.tool")
    );
    assert_eq!(
        token(&router, "tools.tool", "tools-secret").await,
        StatusCode::OK
    );
    assert_eq!(
        token(&router, "evil.x", "evil-secret").await,
        StatusCode::UNAUTHORIZED
    );
}
