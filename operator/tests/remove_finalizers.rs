//! `keyway-operator remove-finalizers` (what `helm uninstall` runs) against the in-repo API test
//! server: it waits while a controller holds the Lease, then removes `keyway.dev/cleanup` from
//! every app (an app being deleted goes at once, other finalizers stay); it gives up, touching
//! nothing, when the Lease stays held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{ConnectedApp, FINALIZER};
use fake_apiserver::{FakeApiServer, ResourceType};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator::RemoveFinalizers;
use serde_json::json;

async fn server() -> (FakeApiServer, Client) {
    let server = FakeApiServer::start().await.unwrap();
    server.register(ResourceType::connected_app());
    let client = server.client().unwrap();
    for ns in ["keyway-system", "tools"] {
        let object = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    (server, client)
}

async fn app(client: &Client, name: &str, finalizers: &[&str]) {
    let app: ConnectedApp = serde_json::from_value(json!({
        "apiVersion": "keyway.dev/v1alpha1", "kind": "ConnectedApp",
        "metadata": {"name": name, "namespace": "tools", "finalizers": finalizers},
        "spec": {"displayName": name, "redirectURIs": [format!("https://{name}.example.test/cb")]},
    }))
    .unwrap();
    Api::<ConnectedApp>::namespaced(client.clone(), "tools")
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
}

/// A Lease held by `controller-1`, renewed now, valid for `seconds`.
async fn held_lease(client: &Client, seconds: i32) {
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("kw-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("controller-1".into()),
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }),
    };
    Api::<Lease>::namespaced(client.clone(), "keyway-system")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

fn remover(wait: Duration) -> RemoveFinalizers {
    RemoveFinalizers {
        namespace: None,
        lease_namespace: "keyway-system".into(),
        lease_name: "kw-operator".into(),
        wait,
        poll: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn removes_the_finalizer_once_the_lease_is_free() {
    let (_server, client) = server().await;
    app(&client, "deleted", &[FINALIZER]).await;
    app(&client, "live", &[FINALIZER]).await;
    app(&client, "shared", &[FINALIZER, "example.com/other"]).await;
    app(&client, "bare", &[]).await;
    let apps = Api::<ConnectedApp>::namespaced(client.clone(), "tools");
    apps.delete("deleted", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        apps.get("deleted")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    held_lease(&client, 2).await;

    let started = tokio::time::Instant::now();
    let removed = remover(Duration::from_secs(20))
        .run(client.clone())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited for the lease to expire ({:?})",
        started.elapsed()
    );
    assert_eq!(removed, 3);
    assert!(
        apps.get_opt("deleted").await.unwrap().is_none(),
        "the app being deleted is gone"
    );
    assert!(apps.get("live").await.unwrap().finalizers().is_empty());
    assert_eq!(
        apps.get("shared").await.unwrap().finalizers(),
        ["example.com/other"]
    );
    // Nothing left to do: a second run changes nothing.
    assert_eq!(
        remover(Duration::ZERO).run(client.clone()).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn gives_up_untouched_while_a_controller_holds_the_lease() {
    let (_server, client) = server().await;
    app(&client, "live", &[FINALIZER]).await;
    held_lease(&client, 60).await;
    let error = remover(Duration::from_millis(300))
        .run(client.clone())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("controller-1") && message.contains("keyway-system/kw-operator"),
        "{message}"
    );
    let apps = Api::<ConnectedApp>::namespaced(client.clone(), "tools");
    assert_eq!(apps.get("live").await.unwrap().finalizers(), [FINALIZER]);
}
