//! The claims index against the store: lookups, changed and deleted claims, conflicts, relists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::ResourceExt as _;
use kube::runtime::watcher::Event;

use super::*;
use crate::plan::test_support::basic;

/// An app `name` in namespace `ns` claiming `resource` (and, when given, the client ID `id`).
fn app(ns: &str, name: &str, resource: Option<&str>, id: Option<&str>) -> ConnectedApp {
    let mut app = basic();
    app.metadata.namespace = Some(ns.into());
    app.metadata.name = Some(name.into());
    app.metadata.uid = Some(format!("uid-{ns}-{name}"));
    app.spec.resource = resource.map(Into::into);
    app.spec.client_id = id.map(Into::into);
    app
}

fn names(apps: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = apps.into_iter().collect();
    v.sort();
    v
}

fn peers(cache: &AppCache, of: &ConnectedApp) -> Vec<String> {
    names(cache.peers_of(of).iter().map(|a| a.name_any()))
}

fn rivals(cache: &AppCache, of: &ConnectedApp) -> Vec<String> {
    names(cache.rivals(of).into_iter().map(|r| r.name))
}

const A: &str = "https://a.example.com";
const B: &str = "https://b.example.com";

#[test]
fn peers_are_the_claimants_of_the_id_and_the_resource_and_the_ids_of_the_resource_claimants() {
    let (cache, mut indexer) = new();
    let me = app("t", "me", Some(A), None);
    let same_resource = app("u", "same-resource", Some(A), None);
    // Claims the client ID of `same-resource`, on another resource: it decides whether
    // `same-resource` holds its ID, so whether `same-resource` competes for A.
    let id_of_rival = app("v", "id-of-rival", Some(B), Some("u.same-resource"));
    let same_id = app("w", "same-id", None, Some("t.me"));
    let unrelated = app("x", "unrelated", Some(B), None);
    for a in [&me, &same_resource, &id_of_rival, &same_id, &unrelated] {
        indexer.apply(&Event::Apply(a.clone()));
    }
    assert_eq!(
        peers(&cache, &me),
        ["id-of-rival", "me", "same-id", "same-resource"]
    );
    assert_eq!(
        rivals(&cache, &me),
        ["same-id", "same-resource"],
        "a change of `me` re-checks the claimants of its ID and resource"
    );
    assert_eq!(
        peers(&cache, &unrelated),
        ["id-of-rival", "same-resource", "unrelated"]
    );
}

#[test]
fn a_changed_claim_moves_and_a_deleted_app_leaves() {
    let (cache, mut indexer) = new();
    let me = app("t", "me", Some(A), None);
    let mut other = app("u", "other", Some(A), None);
    indexer.apply(&Event::Apply(me.clone()));
    indexer.apply(&Event::Apply(other.clone()));
    assert_eq!(peers(&cache, &me), ["me", "other"]);
    other.spec.resource = Some(B.into());
    indexer.apply(&Event::Apply(other.clone()));
    assert_eq!(peers(&cache, &me), ["me"]);
    assert_eq!(rivals(&cache, &app("z", "new", Some(B), None)), ["other"]);
    indexer.apply(&Event::Delete(other));
    assert!(rivals(&cache, &app("z", "new", Some(B), None)).is_empty());
    assert!(!cache.index.read().unwrap().by_resource.contains_key(B));
}

#[test]
fn apps_reporting_a_conflict_are_rivals_of_every_change_until_it_clears() {
    let (cache, mut indexer) = new();
    let mut loser = app("t", "loser", Some(A), None);
    loser.status = Some(
        serde_json::from_value(serde_json::json!({"conditions": [{
        "type": "Ready", "status": "False", "reason": reason::RESOURCE_CONFLICT,
        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap(),
    );
    indexer.apply(&Event::Apply(loser.clone()));
    let unrelated = app("x", "unrelated", Some(B), None);
    assert_eq!(rivals(&cache, &unrelated), ["loser"]);
    loser.status = None;
    indexer.apply(&Event::Apply(loser));
    assert!(rivals(&cache, &unrelated).is_empty());
}

#[test]
fn a_relist_replaces_the_index_when_it_is_done_as_it_replaces_the_store() {
    let (cache, mut indexer) = new();
    let me = app("t", "me", Some(A), None);
    let gone = app("u", "gone", Some(A), None);
    indexer.apply(&Event::Apply(me.clone()));
    indexer.apply(&Event::Apply(gone.clone()));
    // A relist (after a 410) in which `gone` is missing: until it is done, both store and index
    // still answer with the old state; then neither knows `gone`.
    indexer.apply(&Event::Init);
    indexer.apply(&Event::InitApply(me.clone()));
    assert_eq!(peers(&cache, &me), ["gone", "me"]);
    indexer.apply(&Event::InitDone);
    assert_eq!(peers(&cache, &me), ["me"]);
    assert!(cache.store().get(&ObjectRef::from_obj(&gone)).is_none());
    assert_eq!(cache.index.read().unwrap().keys.len(), 1);
}

#[test]
fn an_app_the_index_has_under_a_claim_it_no_longer_makes_is_not_a_peer() {
    // The store moved on before the index (an event between the two writes): the lookup
    // re-checks the claim on the store's object.
    let (cache, mut indexer) = new();
    let me = app("t", "me", Some(A), None);
    let mut other = app("u", "other", Some(A), None);
    indexer.apply(&Event::Apply(me.clone()));
    indexer.apply(&Event::Apply(other.clone()));
    other.spec.resource = Some(B.into());
    indexer.writer.apply_watcher_event(&Event::Apply(other));
    assert_eq!(peers(&cache, &me), ["me"]);
}
