//! Who holds a `spec.resource` that several ConnectedApps claim.
//!
//! An app's `spec.resource` is the audience of the access tokens issued for its tool (RFC 8707),
//! and the issuer gates such tokens with that app's `access` rules. Two apps naming the same
//! resource would leave it open which app's rules apply, and would let one namespace obtain
//! tokens for another namespace's tool. So a resource is held by one app, settled by the same
//! rule in the operator and the issuer (every replica, every restart and both components agree),
//! in the spirit of [`crate::claims`] (client IDs):
//!
//! 1. Only an app that holds its client ID ([`crate::claims`]) claims a resource: an app that is
//!    not a client can neither take nor block one.
//! 2. A resource already held stays with its holder: the *incumbent*, an app whose status
//!    (written by the operator) records it as `resource` with a `Ready` condition whose reason is
//!    neither `ResourceConflict` nor `ClientIDConflict` (see [`incumbent`]).
//! 3. Among claimants that are equally (not) incumbent: [`crate::claims::age_order`] (older
//!    first, then namespace, then name).
//!
//! Every other claimant is not a client (`Ready=False`, reason [`RESOURCE_CONFLICT`]).
//! Resources are compared byte for byte, exactly as the issuer and the proxy compare them with a
//! token's `aud`: `https://a.example/` and `https://a.example` are two resources.
//!
//! Apps whose status was written before the operator recorded `status.resource` are not
//! incumbent until it next reconciles them; until then, age decides.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use kube::ResourceExt as _;

use crate::ConnectedApp;
use crate::claims::{CLIENT_ID_CONFLICT, Conflict, age_order};

/// Reason of the `Ready` condition of an app left without its resource.
pub const RESOURCE_CONFLICT: &str = "ResourceConflict";

/// Whether `app` claims `resource` (byte-exact).
pub fn claims(app: &ConnectedApp, resource: &str) -> bool {
    app.spec.resource.as_deref() == Some(resource)
}

/// Whether `app` is the incumbent holder of its resource: its status records that resource as
/// `resource` and its `Ready` condition (of any generation, `True` or not) is neither the
/// `ResourceConflict` nor the `ClientIDConflict` the operator writes for an app it left without
/// it. The operator writes `status.resource` only for an app it judged to hold it. A local
/// manifest has no status and never is.
pub fn incumbent(app: &ConnectedApp) -> bool {
    crate::claims::recorded_holder(
        app,
        |s| s.resource.as_deref(),
        claims,
        &[RESOURCE_CONFLICT, CLIENT_ID_CONFLICT],
    )
}

/// The order in which resource claims are honoured (earlier first): incumbents ([`incumbent`])
/// before the rest, then [`age_order`].
pub fn claim_order(a: &ConnectedApp, b: &ConnectedApp) -> Ordering {
    incumbent(b)
        .cmp(&incumbent(a))
        .then_with(|| age_order(a, b))
}

fn same_object(a: &ConnectedApp, b: &ConnectedApp) -> bool {
    a.namespace() == b.namespace() && a.name_any() == b.name_any()
}

/// The app that holds `app`'s resource instead of it, if any: the first claimant of the same
/// resource in [`claim_order`] among `others` (which may include `app` itself, under its namespace
/// and name) that holds its client ID among `others` and `app`, when it comes before `app`.
/// `None` also when `app` claims no resource. Whether `app` itself holds its client ID is the
/// caller's to check first ([`crate::claims::holder_before`]).
pub fn holder_before<'a>(
    app: &'a ConnectedApp,
    others: impl IntoIterator<Item = &'a ConnectedApp>,
) -> Option<&'a ConnectedApp> {
    let resource = app.spec.resource.as_deref()?;
    let all: Vec<&ConnectedApp> = others
        .into_iter()
        .filter(|o| !same_object(o, app))
        .chain(std::iter::once(app))
        .collect();
    all.iter()
        .copied()
        .filter(|o| claims(o, resource) && !same_object(o, app))
        .filter(|o| claim_order(o, app) == Ordering::Less)
        .filter(|o| crate::claims::holder_before(o, all.iter().copied()).is_none())
        .min_by(|a, b| claim_order(a, b))
}

/// Resolves every resource claim among `clients`, the apps that hold their client ID (the
/// winners of [`crate::claims::resolve`]): the apps that hold their resource or claim none (in
/// claim order), and the conflicts (each loser with the holder).
pub fn resolve<'a>(
    clients: impl IntoIterator<Item = &'a ConnectedApp>,
) -> (Vec<&'a ConnectedApp>, Vec<Conflict<'a>>) {
    let mut sorted: Vec<&ConnectedApp> = clients.into_iter().collect();
    sorted.sort_by(|a, b| claim_order(a, b));
    let mut holders: BTreeMap<&str, &ConnectedApp> = BTreeMap::new();
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for app in sorted {
        let Some(resource) = app.spec.resource.as_deref() else {
            winners.push(app);
            continue;
        };
        match holders.get(resource) {
            Some(holder) => conflicts.push(Conflict { loser: app, holder }),
            None => {
                holders.insert(resource, app);
                winners.push(app);
            }
        }
    }
    (winners, conflicts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::claims::display_name;

    const R: &str = "https://tool.example.com/";

    fn app(ns: &str, name: &str, resource: Option<&str>, created: Option<&str>) -> ConnectedApp {
        crate::test_support::app(ns, name, "resource", resource, created)
    }

    /// `app` as the operator leaves it: `status.resource` = `recorded`, `Ready` with `reason`.
    fn with_status(
        mut app: ConnectedApp,
        recorded: Option<&str>,
        ready: &str,
        reason: &str,
    ) -> ConnectedApp {
        app.status = Some(
            serde_json::from_value(serde_json::json!({
                "clientID": app.client_id().unwrap(),
                "resource": recorded,
                "conditions": [{
                    "type": "Ready", "status": ready, "reason": reason, "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }],
            }))
            .unwrap(),
        );
        app
    }

    fn names(apps: &[&ConnectedApp]) -> Vec<String> {
        apps.iter().map(|a| display_name(a)).collect()
    }

    #[test]
    fn the_oldest_claimant_holds_the_resource_then_namespace_then_name() {
        let t = Some("2026-01-01T00:00:00Z");
        let old = app("z", "zeta", Some(R), Some("2025-01-01T00:00:00Z"));
        let b = app("ns", "b", Some(R), t);
        let a = app("ns", "a", Some(R), t);
        let other_ns = app("mm", "z", Some(R), t);
        let untimed = app("aa", "a", Some(R), None);
        let unrelated = app("ns", "c", Some("https://other.example.com/"), t);
        let all = [&b, &a, &untimed, &other_ns, &old, &unrelated];
        assert!(holder_before(&old, all).is_none());
        assert!(holder_before(&unrelated, all).is_none());
        for loser in [&a, &b, &other_ns, &untimed] {
            assert_eq!(display_name(holder_before(loser, all).unwrap()), "z/zeta");
        }
        // Without the oldest: namespace, then name, an object without a time last.
        assert_eq!(
            display_name(holder_before(&b, [&b, &a, &other_ns, &untimed]).unwrap()),
            "mm/z"
        );
        assert_eq!(
            display_name(holder_before(&b, [&b, &a, &untimed]).unwrap()),
            "ns/a"
        );
        assert_eq!(
            display_name(holder_before(&untimed, [&b, &untimed]).unwrap()),
            "ns/b"
        );
        let (winners, conflicts) = resolve(all);
        assert_eq!(names(&winners), ["z/zeta", "ns/c"]);
        let losers: Vec<_> = conflicts.iter().map(|c| display_name(c.loser)).collect();
        assert_eq!(losers, ["mm/z", "ns/a", "ns/b", "aa/a"]);
        assert!(conflicts.iter().all(|c| display_name(c.holder) == "z/zeta"));
    }

    #[test]
    fn resources_are_compared_byte_for_byte() {
        let a = app(
            "a",
            "x",
            Some("https://tool.example.com/"),
            Some("2025-01-01T00:00:00Z"),
        );
        for distinct in [
            "https://tool.example.com",
            "https://TOOL.example.com/",
            "HTTPS://tool.example.com/",
            "https://tool.example.com:443/",
            "https://tool.example.com/%7e",
        ] {
            let b = app("b", "y", Some(distinct), Some("2026-01-01T00:00:00Z"));
            assert!(holder_before(&b, [&a]).is_none(), "{distinct}");
            let (winners, conflicts) = resolve([&a, &b]);
            assert_eq!(winners.len(), 2, "{distinct}");
            assert!(conflicts.is_empty(), "{distinct}");
        }
        let same = app(
            "b",
            "y",
            Some("https://tool.example.com/"),
            Some("2026-01-01T00:00:00Z"),
        );
        assert_eq!(display_name(holder_before(&same, [&a]).unwrap()), "a/x");
    }

    #[test]
    fn a_held_resource_stays_with_its_holder_against_an_older_app() {
        // B (newer) holds R; A (older, another namespace) then names R too.
        let b = with_status(
            app("b", "tool", Some(R), Some("2026-02-01T00:00:00Z")),
            Some(R),
            "True",
            "Registered",
        );
        let a = with_status(
            app("a", "x", Some(R), Some("2025-01-01T00:00:00Z")),
            None,
            "True",
            "Registered",
        );
        assert!(incumbent(&b));
        assert!(!incumbent(&a));
        assert_eq!(display_name(holder_before(&a, [&a, &b]).unwrap()), "b/tool");
        assert!(holder_before(&b, [&a, &b]).is_none());
        let (winners, conflicts) = resolve([&a, &b]);
        assert_eq!(names(&winners), ["b/tool"]);
        assert_eq!(display_name(conflicts[0].loser), "a/x");
        // B stays incumbent while not Ready for another reason (edited, invalid, Secret missing).
        let b_invalid = with_status(b.clone(), Some(R), "False", "InvalidSpec");
        assert!(incumbent(&b_invalid));
        assert!(holder_before(&b_invalid, [&a]).is_none());
        // Not incumbent: a conflict of either kind, a status recording another resource, no
        // Ready condition, no status at all.
        for reason in [RESOURCE_CONFLICT, CLIENT_ID_CONFLICT] {
            assert!(!incumbent(&with_status(
                b.clone(),
                Some(R),
                "False",
                reason
            )));
        }
        assert!(!incumbent(&with_status(
            b.clone(),
            Some("https://other.example.com/"),
            "True",
            "Registered"
        )));
        let mut bare = b.clone();
        bare.status.as_mut().unwrap().conditions.clear();
        assert!(!incumbent(&bare));
        assert!(!incumbent(&app("b", "tool", Some(R), None)));
        // Both incumbent (a buggy past): age decides.
        let a_incumbent = with_status(a, Some(R), "True", "Registered");
        assert_eq!(
            display_name(holder_before(&b, [&a_incumbent]).unwrap()),
            "a/x"
        );
    }

    #[test]
    fn an_app_without_its_client_id_neither_takes_nor_blocks_a_resource() {
        // "old" claims R first, but loses its client ID to "holder" (older): it is not a client.
        let holder = app("n", "h", None, Some("2024-01-01T00:00:00Z"));
        let mut old = app("m", "old", Some(R), Some("2025-01-01T00:00:00Z"));
        old.spec.client_id = Some("n.h".into());
        let new = app("b", "new", Some(R), Some("2026-01-01T00:00:00Z"));
        let all = [&holder, &old, &new];
        assert!(holder_before(&new, all).is_none());
        let (clients, _) = crate::claims::resolve(all);
        let (winners, conflicts) = resolve(clients);
        assert_eq!(names(&winners), ["n/h", "b/new"]);
        assert!(conflicts.is_empty());
        // The app itself is never its own rival, nor is an app claiming no resource.
        let stale = app("b", "new", Some(R), Some("2020-01-01T00:00:00Z"));
        assert!(holder_before(&new, [&stale]).is_none());
        assert!(holder_before(&holder, all).is_none());
    }
}
