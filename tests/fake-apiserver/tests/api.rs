//! The test server, exercised through the real `kube` client, one behaviour per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use fake_apiserver::{Config, FakeApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

fn app_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keyway.dev", "v1alpha1", "ConnectedApp"),
        "connectedapps",
    )
}

async fn server() -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    (server, client)
}

fn apps(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &app_resource())
}

fn app(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "keyway.dev/v1alpha1",
        "kind": "ConnectedApp",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_owned());
    if !labels.is_empty() {
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    }
    s.string_data = None;
    s.data = Some(BTreeMap::new());
    s
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv_of(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version.as_deref().unwrap().parse().unwrap()
}

#[tokio::test]
async fn discovery_finds_core_builtin_and_custom_resources() {
    let (_server, client) = server().await;
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let gvk = GroupVersionKind::gvk("keyway.dev", "v1alpha1", "ConnectedApp");
    let (resource, capabilities) = discovery.resolve_gvk(&gvk).unwrap();
    assert_eq!(resource.plural, "connectedapps");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Namespaced);
    assert!(
        capabilities
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "status")
    );
    for (group, version, kind) in [
        ("", "v1", "Secret"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("events.k8s.io", "v1", "Event"),
        (
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
        ),
    ] {
        assert!(
            discovery
                .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
                .is_some(),
            "{kind}"
        );
    }
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn create_assigns_uid_timestamp_and_resource_version() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(created.metadata.uid.as_deref().map(str::len), Some(36));
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(rv_of(&created.metadata) > 0);
    let fetched = secrets.get("a").await.unwrap();
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    assert_eq!(
        fetched.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn create_twice_is_already_exists() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let status = api_error(
        secrets
            .create(&PostParams::default(), &secret("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
    assert_eq!(status.message, "secrets \"a\" already exists");
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("a", "secrets")
    );
}

#[tokio::test]
async fn get_missing_is_not_found_status() {
    let (_server, client) = server().await;
    let status = api_error(apps(&client).get("nope").await.unwrap_err());
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(
        status.message,
        "connectedapps.keyway.dev \"nope\" not found"
    );
    assert_eq!(status.details.unwrap().group, "keyway.dev");
}

#[tokio::test]
async fn generate_name_appends_a_random_suffix() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let mut s = secret("", &[]);
    s.metadata.name = None;
    s.metadata.generate_name = Some("gen-".into());
    let a = secrets.create(&PostParams::default(), &s).await.unwrap();
    let b = secrets.create(&PostParams::default(), &s).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn invalid_name_and_missing_namespace_are_refused() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let status = api_error(
        secrets
            .create(&PostParams::default(), &secret("Bad_Name", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let elsewhere: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let status = api_error(
        elsewhere
            .create(&PostParams::default(), &secret("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "namespaces \"team-a\" not found")
    );
    let namespaces: Api<Namespace> = Api::all(client);
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    elsewhere
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn resource_versions_come_from_one_global_counter() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let a = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    let c = maps.create(&PostParams::default(), &cm).await.unwrap();
    let b = secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    assert!(rv_of(&a.metadata) < rv_of(&c.metadata));
    assert!(rv_of(&c.metadata) < rv_of(&b.metadata));
}

#[tokio::test]
async fn replace_with_stale_resource_version_is_conflict() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let mut first = created.clone();
    first.metadata.labels = Some([("v".to_owned(), "1".to_owned())].into());
    let updated = secrets
        .replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    assert!(rv_of(&updated.metadata) > rv_of(&created.metadata));
    let mut stale = created;
    stale.metadata.labels = Some([("v".to_owned(), "2".to_owned())].into());
    let status = api_error(
        secrets
            .replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn an_unchanged_write_keeps_the_resource_version() {
    let (server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[("x", "1")]))
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}));
    let patched = secrets
        .patch("a", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.resource_version,
        created.metadata.resource_version
    );
    let counts = server.write_counts();
    assert_eq!(counts.requests_of("patch", "secrets"), 1);
    assert_eq!(
        counts.total_changes(),
        1,
        "only the create changed anything: {counts:?}"
    );
}

#[tokio::test]
async fn list_filters_by_label_selector_operators() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    for (name, labels) in [
        ("a", vec![("app", "web"), ("tier", "front")]),
        ("b", vec![("app", "api")]),
        ("c", vec![]),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, &labels))
            .await
            .unwrap();
    }
    for (selector, expected) in [
        ("app=web", vec!["a"]),
        ("app==api", vec!["b"]),
        ("app!=web", vec!["b", "c"]),
        ("app in (web,api)", vec!["a", "b"]),
        ("app notin (web)", vec!["b", "c"]),
        ("app", vec!["a", "b"]),
        ("!app", vec!["c"]),
        ("app,tier=front", vec!["a"]),
    ] {
        let list = secrets
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        let names: Vec<String> = list
            .items
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, expected, "{selector}");
    }
    let status = api_error(
        secrets
            .list(&ListParams::default().labels("app in web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn list_filters_by_field_selector() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    for name in ["a", "b"] {
        secrets
            .create(&PostParams::default(), &secret(name, &[]))
            .await
            .unwrap();
    }
    let list = secrets
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let all: Api<Secret> = Api::all(client);
    let list = all
        .list(&ListParams::default().fields("metadata.namespace!=default"))
        .await
        .unwrap();
    assert!(list.items.is_empty());
    let status = api_error(
        secrets
            .list(&ListParams::default().fields("spec.x=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    for i in 0..5 {
        secrets
            .create(&PostParams::default(), &secret(&format!("s{i}"), &[]))
            .await
            .unwrap();
    }
    let first = secrets.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    let second = secrets
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = secrets
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let names: Vec<String> = [first.items, second.items, third.items.clone()]
        .concat()
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    assert!(third.metadata.continue_.is_none());
}

#[tokio::test]
async fn watch_streams_added_modified_deleted() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let list = secrets.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    secrets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    secrets.delete("a", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(s) => {
                assert_eq!(s.metadata.labels.unwrap()["x"], "y");
                kinds.push("MODIFIED");
            }
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let a = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(s) => assert_eq!(s.metadata.name.as_deref(), Some("b")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_gone() {
    let (server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let a = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    server.compact();
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn history_limit_expires_old_resource_versions() {
    let config = Config {
        history_limit: 2,
        ..Config::default()
    };
    let server = FakeApiServer::start_with(config).await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().unwrap());
    let a = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    for name in ["b", "c", "d"] {
        secrets
            .create(&PostParams::default(), &secret(name, &[]))
            .await
            .unwrap();
    }
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(stream.try_next().await.unwrap().unwrap(), WatchEvent::Error(e) if e.code == 410)
    );
}

#[tokio::test]
async fn watch_sends_bookmarks_when_asked() {
    let config = Config {
        bookmark_interval: Duration::from_millis(100),
        ..Config::default()
    };
    let server = FakeApiServer::start_with(config).await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(server.client().unwrap());
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("unexpected {other:?}"),
    }
    let mut plain = secrets
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let next = tokio::time::timeout(Duration::from_millis(400), plain.try_next()).await;
    assert!(
        next.is_err(),
        "no bookmark without allowWatchBookmarks: {next:?}"
    );
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let mut stream = secrets
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn watch_with_selector_reports_objects_moving_in_and_out() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let mut stream = secrets
        .watch(&WatchParams::default().labels("app=web"), "0")
        .await
        .unwrap()
        .boxed();
    let label = |v: Value| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    secrets
        .patch("a", &PatchParams::default(), &label(json!("web")))
        .await
        .unwrap();
    secrets
        .patch("a", &PatchParams::default(), &label(Value::Null))
        .await
        .unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
}

#[tokio::test]
async fn runtime_watcher_lists_then_watches() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret("before", &[]))
        .await
        .unwrap();
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut stream = watcher(secrets.clone(), config).boxed();
        let mut seen_before = false;
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(s) if s.metadata.name.as_deref() == Some("before") => {
                    seen_before = true
                }
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert!(seen_before);
        let name = format!("after-{}", rand_suffix());
        secrets
            .create(&PostParams::default(), &secret(&name, &[]))
            .await
            .unwrap();
        loop {
            if let watcher::Event::Apply(s) = stream.try_next().await.unwrap().unwrap()
                && s.metadata.name.as_deref() == Some(name.as_str())
            {
                break;
            }
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[tokio::test]
async fn send_initial_events_ends_with_an_annotated_bookmark() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let params = WatchParams::default().initial_events();
    let mut stream = secrets.watch(&params, "0").await.unwrap().boxed();
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn merge_and_json_patches_apply() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(
            &PostParams::default(),
            &secret("a", &[("a", "1"), ("b", "2")]),
        )
        .await
        .unwrap();
    let merged = secrets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": null, "c": "3"}}})),
        )
        .await
        .unwrap();
    let labels = merged.metadata.labels.unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["b", "c"]);
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/metadata/labels/b", "value": "20"}
    ]))
    .unwrap();
    let patched = secrets
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["b"], "20");
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/labels/b", "value": "2"}]))
            .unwrap();
    let status = api_error(
        secrets
            .patch("a", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn merge_patch_with_stale_resource_version_is_conflict() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let patch =
        |v: &str| Patch::Merge(json!({"metadata": {"resourceVersion": rv, "labels": {"v": v}}}));
    secrets
        .patch("a", &PatchParams::default(), &patch("1"))
        .await
        .unwrap();
    let status = api_error(
        secrets
            .patch("a", &PatchParams::default(), &patch("2"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);
}

#[tokio::test]
async fn strategic_merge_patch_works_on_builtins_and_is_415_on_custom_resources() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut s = secret("a", &[]);
    s.metadata.finalizers = Some(vec!["example.com/a".into()]);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let patched = secrets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"finalizers": ["example.com/b"]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.finalizers.unwrap(),
        ["example.com/a", "example.com/b"]
    );
    let apps = apps(&client);
    apps.create(&PostParams::default(), &app("x", json!({})))
        .await
        .unwrap();
    let status = api_error(
        apps.patch(
            "x",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"a": 1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}

#[tokio::test]
async fn server_side_apply_creates_and_records_the_manager() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let params = PatchParams::apply("keyway-test");
    let applied = apps
        .patch(
            "x",
            &params,
            &Patch::Apply(app("x", json!({"displayName": "X"}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["displayName"], "X");
    let managed = applied.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("keyway-test"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&managed[0].fields_v1).unwrap();
    assert!(
        fields.pointer("/f:spec/f:displayName").is_some(),
        "{fields}"
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    apps.patch(
        "x",
        &PatchParams::apply("alice"),
        &Patch::Apply(app("x", json!({"displayName": "A"}))),
    )
    .await
    .unwrap();
    let status = api_error(
        apps.patch(
            "x",
            &PatchParams::apply("bob"),
            &Patch::Apply(app("x", json!({"displayName": "B"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains("conflict with \"alice\": .spec.displayName"),
        "{}",
        status.message
    );
    // The same value is shared ownership, not a conflict.
    apps.patch(
        "x",
        &PatchParams::apply("bob"),
        &Patch::Apply(app("x", json!({"displayName": "A"}))),
    )
    .await
    .unwrap();
    let forced = apps
        .patch(
            "x",
            &PatchParams::apply("carol").force(),
            &Patch::Apply(app("x", json!({"displayName": "C"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["displayName"], "C");
    let owners: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter(|m| {
            serde_json::to_value(&m.fields_v1)
                .unwrap()
                .pointer("/f:spec/f:displayName")
                .is_some()
        })
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(owners, ["carol"]);
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stops_applying() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let params = PatchParams::apply("alice");
    apps.patch(
        "x",
        &params,
        &Patch::Apply(app("x", json!({"displayName": "A", "description": "d"}))),
    )
    .await
    .unwrap();
    // Another manager sets a field alice never applied: it survives alice's applies.
    apps.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"logoURI": "https://l"}})),
    )
    .await
    .unwrap();
    let applied = apps
        .patch(
            "x",
            &params,
            &Patch::Apply(app("x", json!({"displayName": "A"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.data["spec"],
        json!({"displayName": "A", "logoURI": "https://l"})
    );
}

#[tokio::test]
async fn server_side_apply_requires_a_field_manager() {
    let (server, _client) = server().await;
    let response = raw_patch(
        &server,
        "/apis/keyway.dev/v1alpha1/namespaces/default/connectedapps/x",
        "application/apply-patch+yaml",
        "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\n",
    )
    .await;
    assert_eq!(response.0, 400, "{}", response.1);
}

async fn raw_patch(
    server: &FakeApiServer,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let client = server.client().unwrap();
    let request = http::Request::patch(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body.as_bytes().to_vec())
        .unwrap();
    match client.request_text(request).await {
        Ok(text) => (200, text),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_subresource_writes_only_status_and_keeps_generation() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let mut with_status = app("x", json!({"displayName": "A"}));
    with_status.data["status"] = json!({"ignored": true});
    let created = apps
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "create ignores status"
    );
    assert_eq!(created.metadata.generation, Some(1));
    let patched = apps
        .patch_status(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"displayName": "ignored"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["ready"], true);
    assert_eq!(patched.data["spec"]["displayName"], "A");
    assert_eq!(patched.metadata.generation, Some(1));
    assert!(rv_of(&patched.metadata) > rv_of(&created.metadata));
}

#[tokio::test]
async fn main_resource_writes_ignore_status_and_spec_changes_bump_generation() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    apps.create(
        &PostParams::default(),
        &app("x", json!({"displayName": "A"})),
    )
    .await
    .unwrap();
    apps.patch_status(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"ready": true}})),
    )
    .await
    .unwrap();
    let labelled = apps
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    assert_eq!(
        labelled.data["status"]["ready"], true,
        "main-resource writes ignore status"
    );
    let changed = apps
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"displayName": "B"}})),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    let status_apply = apps
        .patch_status(
            "x",
            &PatchParams::apply("keyway-status"),
            &Patch::Apply(json!({"apiVersion": "keyway.dev/v1alpha1", "kind": "ConnectedApp", "status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(status_apply.data["status"]["observedGeneration"], 2);
    assert_eq!(status_apply.metadata.generation, Some(2));
    let entry = status_apply
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("keyway-status"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
}

#[tokio::test]
async fn deletion_with_finalizers_waits_for_them() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let mut object = app("x", json!({}));
    object.metadata.finalizers = Some(vec!["keyway.dev/cleanup".into()]);
    apps.create(&PostParams::default(), &object).await.unwrap();
    let pending = apps.delete("x", &DeleteParams::default()).await.unwrap();
    let pending = pending.left().expect("deletion is pending");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = apps.get("x").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    let status = api_error(
        apps.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["keyway.dev/cleanup", "keyway.dev/other"]}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("no new finalizers"),
        "{}",
        status.message
    );
    apps.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(apps.get("x").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn delete_without_finalizers_removes_and_returns_status() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let result = secrets.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(result.is_right());
    assert_eq!(api_error(secrets.get("a").await.unwrap_err()).code, 404);
    assert_eq!(
        api_error(
            secrets
                .delete("a", &DeleteParams::default())
                .await
                .unwrap_err()
        )
        .code,
        404
    );
}

fn owned_secret(name: &str, owners: &[&DynamicObject]) -> Secret {
    let mut s = secret(name, &[]);
    s.metadata.owner_references = Some(
        owners
            .iter()
            .map(
                |o| k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "keyway.dev/v1alpha1".into(),
                    kind: "ConnectedApp".into(),
                    name: o.metadata.name.clone().unwrap(),
                    uid: o.metadata.uid.clone().unwrap(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            )
            .collect(),
    );
    s
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = apps
        .create(&PostParams::default(), &app("x", json!({})))
        .await
        .unwrap();
    let other = apps
        .create(&PostParams::default(), &app("y", json!({})))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &owned_secret("only-x", &[&owner]))
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &owned_secret("x-and-y", &[&owner, &other]),
        )
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("unowned", &[]))
        .await
        .unwrap();
    apps.delete("x", &DeleteParams::background()).await.unwrap();
    assert_eq!(
        api_error(secrets.get("only-x").await.unwrap_err()).code,
        404
    );
    let shared = secrets.get("x-and-y").await.unwrap();
    let refs = shared.metadata.owner_references.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "y");
    secrets.get("unowned").await.unwrap();
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = apps
        .create(&PostParams::default(), &app("x", json!({})))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &owned_secret("s", &[&owner]))
        .await
        .unwrap();
    apps.delete("x", &DeleteParams::orphan()).await.unwrap();
    let kept = secrets.get("s").await.unwrap();
    assert!(kept.metadata.owner_references.is_none());
}

#[tokio::test]
async fn write_counters_count_by_verb_and_resource() {
    let (server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let apps = apps(&client);
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let _ = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await;
    apps.create(&PostParams::default(), &app("x", json!({})))
        .await
        .unwrap();
    apps.patch_status(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"a": 1}})),
    )
    .await
    .unwrap();
    secrets.list(&ListParams::default()).await.unwrap();
    let counts = server.write_counts();
    assert_eq!(counts.requests_of("create", "secrets"), 2);
    assert_eq!(counts.requests_of("create", "connectedapps"), 1);
    assert_eq!(counts.requests_of("patch", "connectedapps/status"), 1);
    assert_eq!(counts.total_requests(), 4);
    assert_eq!(counts.total_changes(), 3);
    server.reset_counts();
    assert_eq!(server.write_counts().total_requests(), 0);
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let (server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let rv = server.resource_version();
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    secrets.create(&pp, &secret("a", &[])).await.unwrap();
    assert_eq!(api_error(secrets.get("a").await.unwrap_err()).code, 404);
    assert_eq!(server.resource_version(), rv);
}

#[tokio::test]
async fn cluster_scoped_webhook_configurations_are_served() {
    let (_server, client) = server().await;
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut hook = MutatingWebhookConfiguration::default();
    hook.metadata.name = Some("keyway".into());
    let created = hooks.create(&PostParams::default(), &hook).await.unwrap();
    assert!(created.metadata.namespace.is_none());
    let patched = hooks
        .patch(
            "keyway",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([{"op": "add", "path": "/webhooks", "value": [{
                "name": "inject.keyway.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"caBundle": "Y2E="}
            }]}])).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        b"ca"
    );
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn replace_status_changes_only_status() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    apps.create(
        &PostParams::default(),
        &app("x", json!({"displayName": "A"})),
    )
    .await
    .unwrap();
    let mut current = apps.get("x").await.unwrap();
    current.data["status"] = json!({"ready": true});
    current.data["spec"] = json!({"displayName": "ignored"});
    let replaced = apps
        .replace_status("x", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"], json!({"ready": true}));
    assert_eq!(replaced.data["spec"]["displayName"], "A");
    assert_eq!(replaced.metadata.generation, Some(1));
}

#[tokio::test]
async fn an_update_takes_ownership_so_a_later_apply_conflicts() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let alice = PatchParams::apply("alice");
    apps.patch(
        "x",
        &alice,
        &Patch::Apply(app("x", json!({"displayName": "A"}))),
    )
    .await
    .unwrap();
    let edit = PatchParams {
        field_manager: Some("editor".into()),
        ..PatchParams::default()
    };
    let edited = apps
        .patch(
            "x",
            &edit,
            &Patch::Merge(json!({"spec": {"displayName": "E"}})),
        )
        .await
        .unwrap();
    let editor = edited
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("editor"))
        .unwrap();
    assert_eq!(editor.operation.as_deref(), Some("Update"));
    let status = api_error(
        apps.patch(
            "x",
            &alice,
            &Patch::Apply(app("x", json!({"displayName": "A"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"editor\""),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn delete_collection_honours_the_label_selector() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    for (name, labels) in [
        ("a", vec![("app", "web")]),
        ("b", vec![("app", "web")]),
        ("c", vec![]),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, &labels))
            .await
            .unwrap();
    }
    secrets
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    let left: Vec<String> = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let (_server, client) = server().await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(secrets.delete("a", &wrong).await.unwrap_err()).code,
        409
    );
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_error(secrets.delete("a", &stale).await.unwrap_err()).code,
        409
    );
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    secrets.delete("a", &right).await.unwrap();
}

#[tokio::test]
async fn garbage_collection_respects_a_dependents_finalizers() {
    let (_server, client) = server().await;
    let apps = apps(&client);
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = apps
        .create(&PostParams::default(), &app("x", json!({})))
        .await
        .unwrap();
    let mut dependent = owned_secret("s", &[&owner]);
    dependent.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    secrets
        .create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    apps.delete("x", &DeleteParams::default()).await.unwrap();
    let pending = secrets.get("s").await.unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .unwrap();
    assert_eq!(api_error(secrets.get("s").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn unknown_resources_and_wrong_scopes_are_not_found() {
    let (server, client) = server().await;
    for path in [
        "/apis/example.com/v1/namespaces/default/widgets",
        "/api/v1/namespaces/default/namespaces/x",
        "/api/v1/secrets/a",
        "/apis/keyway.dev/v1alpha1/namespaces/default/connectedapps/x/scale",
    ] {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(server.requests().len() >= 4);
}

#[tokio::test]
async fn watch_across_namespaces_sees_every_namespace() {
    let (_server, client) = server().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let all: Api<Secret> = Api::all(client.clone());
    let mut stream = all
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    for namespace in ["default", "team-a"] {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        api.create(&PostParams::default(), &secret("s", &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let WatchEvent::Added(s) = stream.try_next().await.unwrap().unwrap() {
            seen.push(s.metadata.namespace.unwrap());
        }
    }
    assert_eq!(seen, ["default", "team-a"]);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let (_server, client) = server().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    namespaces
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(secrets.get("s").await.unwrap_err()).code, 404);
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, minimum: 0, default: 1}
              name: {type: string, maxLength: 8, pattern: '^[a-z]+$'}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
            x-kubernetes-validations:
            - rule: "self.size != 'small' || self.replicas <= 3"
              message: a small widget has at most 3 replicas
              fieldPath: .replicas
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

fn widgets(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn an_installed_crd_is_discoverable_and_prunes_and_defaults() {
    let (server, client) = server().await;
    server.install_crd(WIDGET_CRD).unwrap();
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .unwrap();
    assert_eq!(resource.plural, "widgets");
    let created = widgets(&client)
        .create(
            &PostParams::default(),
            &widget(
                "w",
                json!({"size": "large", "unknown": 1, "extra": {"kept": true}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"],
        json!({"size": "large", "replicas": 1, "extra": {"kept": true}})
    );
    let status = json!({"status": {"ready": true, "unknown": 1}});
    let patched = widgets(&client)
        .patch_status("w", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    assert_eq!(patched.data["status"], json!({"ready": true}));
}

#[tokio::test]
async fn an_installed_crd_refuses_invalid_objects_listing_every_cause() {
    let (server, client) = server().await;
    server.install_crd(WIDGET_CRD).unwrap();
    let spec = json!({"size": "small", "replicas": 5, "name": "Not-OK!!!"});
    let status = api_error(
        widgets(&client)
            .create(&PostParams::default(), &widget("w", spec))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes: Vec<(String, String)> = status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| (c.field, c.reason))
        .collect();
    assert_eq!(
        causes,
        [
            ("spec.name".to_owned(), "FieldValueTooLong".to_owned()),
            ("spec.name".to_owned(), "FieldValueInvalid".to_owned()),
            ("spec.replicas".to_owned(), "FieldValueInvalid".to_owned()),
        ]
    );
    assert!(
        status
            .message
            .contains("a small widget has at most 3 replicas"),
        "{}",
        status.message
    );
    let missing = api_error(
        widgets(&client)
            .create(&PostParams::default(), &widget("w", json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        missing.message.contains("spec.size: Required value"),
        "{}",
        missing.message
    );
}

#[tokio::test]
async fn updates_ratchet_over_values_they_leave_unchanged() {
    let (server, client) = server().await;
    // Stored before the CRD (and its rules) existed.
    let resource = fake_apiserver::ResourceType::custom(
        "example.com",
        "v1",
        "widgets",
        "Widget",
        fake_apiserver::Scope::Namespaced,
        true,
    );
    server.register(resource);
    widgets(&client)
        .create(
            &PostParams::default(),
            &widget("w", json!({"size": "small", "replicas": 9})),
        )
        .await
        .unwrap();
    server.install_crd(WIDGET_CRD).unwrap();
    let label = Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}));
    widgets(&client)
        .patch("w", &PatchParams::default(), &label)
        .await
        .unwrap();
    let status = Patch::Merge(json!({"status": {"ready": false}}));
    widgets(&client)
        .patch_status("w", &PatchParams::default(), &status)
        .await
        .unwrap();
    let worse = Patch::Merge(json!({"spec": {"replicas": 10}}));
    let refused = api_error(
        widgets(&client)
            .patch("w", &PatchParams::default(), &worse)
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 422);
}

#[tokio::test]
async fn an_event_note_over_one_kib_is_invalid() {
    let (_server, client) = server().await;
    let events: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        ),
    );
    let event = |name: &str, note: String| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "test", "reportingInstance": "test",
            "action": "Test", "reason": "Test", "type": "Normal",
            "regarding": {"kind": "Secret", "namespace": "default", "name": "s"},
            "note": note,
        }))
        .unwrap()
    };
    // 1024 bytes, counted in bytes: 512 two-byte characters.
    events
        .create(&PostParams::default(), &event("fits", "é".repeat(512)))
        .await
        .unwrap();
    let error = events
        .create(&PostParams::default(), &event("long", "x".repeat(1025)))
        .await
        .unwrap_err();
    let status = api_error(error);
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("note"), "{status:?}");
    // A patch that makes the note too long is refused as well.
    let error = events
        .patch(
            "fits",
            &PatchParams::default(),
            &Patch::Merge(json!({"note": "x".repeat(1025)})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(error).code, 422);
}
