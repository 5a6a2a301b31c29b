//! The issuer's signing-key Secret, kept by the operator, against the in-repo Kubernetes API test
//! server (`tests/fake-apiserver`): creation, rotation on schedule, pruning, idempotence, a 409
//! from a concurrent writer, a foreign Secret, a malformed key entry, and the wiring into the
//! running controller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use contract::signing_keys::{Alg, KeyFile, Policy};
use fake_apiserver::FakeApiServer;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator::signing_keys::{COOKIE_KEY, Outcome, SIGNING_KEYS_LABEL, SIGNING_KEYS_OWNER};
use operator::{
    ControllerConfig, LeaseConfig, Metrics, Operator, SigningKeyManager, SigningKeysConfig,
};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const NAME: &str = "issuer-signing-keys";
const T0: i64 = 1_800_000_000;

fn config() -> SigningKeysConfig {
    SigningKeysConfig {
        namespace: NS.into(),
        name: NAME.into(),
        policy: Policy {
            alg: Alg::Es256,
            rotation: 1000,
            lead: 100,
            retention: 50,
        },
    }
}

/// A manager whose clock reads `now`.
fn manager(client: Client, now: Arc<AtomicI64>) -> (SigningKeyManager, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let clock = Arc::new(move || Timestamp::from_second(now.load(Ordering::SeqCst)).unwrap());
    (
        SigningKeyManager::new(client, config(), metrics.clone(), "test", clock),
        metrics,
    )
}

/// The key files in the Secret, by kid.
async fn keys_in(client: &Client) -> BTreeMap<String, KeyFile> {
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap();
    secret
        .data
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k.ends_with(".json"))
        .map(|(k, v)| {
            let (file, _) = KeyFile::parse(k, &v.0).unwrap();
            (file.kid.clone(), file)
        })
        .collect()
}

async fn events(client: &Client, reason: &str) -> Vec<String> {
    let list = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn creates_rotates_and_prunes_on_schedule_with_no_write_when_settled() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let now = Arc::new(AtomicI64::new(T0));
    let (m, metrics) = manager(client.clone(), now.clone());

    assert_eq!(m.sync().await.unwrap(), Outcome::Created);
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(secret.labels()[SIGNING_KEYS_LABEL], SIGNING_KEYS_OWNER);
    assert!(secret.data.as_ref().unwrap().contains_key(COOKIE_KEY));
    let first = keys_in(&client).await;
    assert_eq!(first.len(), 1);
    let k1 = first.values().next().unwrap().clone();
    // The first key signs at once.
    assert_eq!(k1.not_before, Some(T0 as u64));

    // Settled: no write at all, at the same time and just before the successor is due.
    server.reset_counts();
    assert_eq!(m.sync().await.unwrap(), Outcome::Unchanged);
    now.store(T0 + 899, Ordering::SeqCst);
    assert_eq!(m.sync().await.unwrap(), Outcome::Unchanged);
    assert_eq!(server.write_counts().total_requests(), 0);

    // Lead before the rotation period ends: a successor, published now, signing at T0 + 1000.
    now.store(T0 + 900, Ordering::SeqCst);
    assert_eq!(m.sync().await.unwrap(), Outcome::Updated);
    let two = keys_in(&client).await;
    assert_eq!(two.len(), 2);
    let k2 = two.values().find(|k| k.kid != k1.kid).unwrap().clone();
    assert_eq!(k2.not_before, Some((T0 + 1000) as u64));
    assert_eq!(k2.created, (T0 + 900) as u64);

    // k1 may have signed tokens until T0 + 1000 that live 50 s: kept until T0 + 1050.
    now.store(T0 + 1049, Ordering::SeqCst);
    assert_eq!(m.sync().await.unwrap(), Outcome::Unchanged);
    assert!(keys_in(&client).await.contains_key(&k1.kid));
    now.store(T0 + 1050, Ordering::SeqCst);
    assert_eq!(m.sync().await.unwrap(), Outcome::Updated);
    let after = keys_in(&client).await;
    assert_eq!(after.keys().collect::<Vec<_>>(), vec![&k2.kid]);

    server.reset_counts();
    assert_eq!(m.sync().await.unwrap(), Outcome::Unchanged);
    assert_eq!(server.write_counts().total_requests(), 0);
    assert_eq!(metrics.total_writes(), 3);
    assert!(
        metrics
            .encode()
            .contains("keyway_operator_writes_total{kind=\"signing_keys_replace\"} 2")
    );
}

#[tokio::test]
async fn a_concurrent_write_is_a_conflict_then_read_again_and_kept() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let now = Arc::new(AtomicI64::new(T0));
    let (m, metrics) = manager(client.clone(), now.clone());
    assert_eq!(m.sync().await.unwrap(), Outcome::Created);
    now.store(T0 + 900, Ordering::SeqCst);

    // Between the manager's read and its write, someone else changes the Secret.
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let once = AtomicBool::new(false);
    let outcome = m
        .sync_with(|| {
            let secrets = secrets.clone();
            let first = !once.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    let patch = serde_json::json!({"metadata": {"annotations": {"x": "y"}}});
                    secrets
                        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Updated);
    assert_eq!(metrics.signing_key_syncs("conflict"), 1);
    let secret = secrets.get(NAME).await.unwrap();
    // The other writer's change survived, and the successor was added on top of it.
    assert_eq!(secret.annotations()["x"], "y");
    assert_eq!(keys_in(&client).await.len(), 2);
    let counts = server.write_counts();
    assert_eq!(counts.requests_of("update", "secrets"), 2, "{counts:?}");
    let changed = counts
        .changes
        .get(&("update".to_owned(), "secrets".to_owned()));
    assert_eq!(changed, Some(&1), "{counts:?}");
}

#[tokio::test]
async fn a_foreign_secret_is_never_written() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Secret::default()
    };
    let before = secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let (m, metrics) = manager(client.clone(), Arc::new(AtomicI64::new(T0)));
    assert_eq!(m.sync().await.unwrap(), Outcome::Foreign);
    assert_eq!(m.sync().await.unwrap(), Outcome::Foreign);
    let after = secrets.get(NAME).await.unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(after.data, before.data);
    assert_eq!(metrics.signing_key_syncs("foreign"), 2);
    let notes = events(&client, "ForeignSecret").await;
    assert_eq!(notes.len(), 1, "one Event per distinct problem: {notes:?}");
    assert!(notes[0].contains(SIGNING_KEYS_LABEL), "{notes:?}");
}

#[tokio::test]
async fn a_malformed_key_entry_is_reported_and_kept() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let now = Arc::new(AtomicI64::new(T0));
    let (m, metrics) = manager(client.clone(), now.clone());
    assert_eq!(m.sync().await.unwrap(), Outcome::Created);
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let patch = serde_json::json!({"stringData": {"broken.json": "{\"kid\": 1"}});
    secrets
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let before = secrets.get(NAME).await.unwrap();
    // Even when a successor is due, nothing is written while an entry is malformed.
    now.store(T0 + 5000, Ordering::SeqCst);
    assert_eq!(m.sync().await.unwrap(), Outcome::Invalid);
    let after = secrets.get(NAME).await.unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert!(after.data.unwrap().contains_key("broken.json"));
    assert_eq!(metrics.signing_key_syncs("invalid"), 1);
    let notes = events(&client, "InvalidSigningKey").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("broken.json"), "{notes:?}");
    // Removed by a person: rotation resumes.
    let patch = serde_json::json!({"data": {"broken.json": null}});
    secrets
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(m.sync().await.unwrap(), Outcome::Updated);
    assert_eq!(keys_in(&client).await.len(), 2);
}

#[tokio::test]
async fn a_report_longer_than_an_event_note_is_recorded_cut_to_one_kib() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let (m, _) = manager(client.clone(), Arc::new(AtomicI64::new(T0)));
    assert_eq!(m.sync().await.unwrap(), Outcome::Created);
    // Forty malformed entries: the note naming them all is well over the API's 1 KiB.
    let broken: serde_json::Map<String, serde_json::Value> = (0..40)
        .map(|i| (format!("broken-entry-{i:02}.json"), serde_json::json!("{")))
        .collect();
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": broken})),
        )
        .await
        .unwrap();
    assert_eq!(m.sync().await.unwrap(), Outcome::Invalid);
    let notes = events(&client, "InvalidSigningKey").await;
    assert_eq!(notes.len(), 1, "the Event is recorded: {notes:?}");
    assert!(notes[0].len() <= 1024, "{}", notes[0].len());
    assert!(notes[0].contains("broken-entry-00.json"), "{notes:?}");
    assert!(notes[0].ends_with('…'), "{notes:?}");
}

#[tokio::test]
async fn the_running_controller_keeps_the_secret() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let mut config = ControllerConfig::new("https://id.example.test");
    config.signing_keys = Some(config_with_short_lead());
    let operator = Operator::new(client.clone(), config);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { operator.run(stop).await });
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while secrets.get_opt(NAME).await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no Secret");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(keys_in(&client).await.len(), 1);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn only_the_leader_keeps_the_secret() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    let mut replicas = Vec::new();
    for identity in ["a", "b"] {
        let mut config = ControllerConfig::new("https://id.example.test");
        config.identity = identity.into();
        config.signing_keys = Some(config_with_short_lead());
        config.leader_election = Some(LeaseConfig {
            namespace: NS.into(),
            name: "keyway-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(6),
            retry_period: Duration::from_millis(250),
        });
        let operator = Operator::new(client.clone(), config);
        let metrics = operator.metrics();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { operator.run(stop).await });
        replicas.push((identity, metrics, shutdown, task));
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while secrets.get_opt(NAME).await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no Secret");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let both run a few check intervals (1 s here).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let holder = Api::<Lease>::namespaced(client.clone(), NS)
        .get("keyway-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let passes = |m: &Metrics| -> u64 {
        ["created", "unchanged", "updated", "conflict", "error"]
            .iter()
            .map(|r| m.signing_key_syncs(r))
            .sum()
    };
    for (identity, metrics, _, _) in &replicas {
        if *identity == holder {
            assert_eq!(metrics.signing_key_syncs("created"), 1);
            assert!(metrics.signing_key_syncs("unchanged") >= 1);
        } else {
            assert_eq!(passes(metrics), 0, "follower {identity} touched the keys");
        }
    }
    for (_, _, shutdown, task) in replicas {
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
}

fn config_with_short_lead() -> SigningKeysConfig {
    let mut c = config();
    c.policy.lead = 4;
    c
}
