//! Who holds a `spec.resource` that several ConnectedApps claim.
//!
//! An app's `spec.resource` is the audience of the access tokens issued for its tool (RFC 8707),
//! and the issuer gates such tokens with that app's `access` rules. Two apps naming the same
//! resource would leave it open which app's rules apply, and would let one namespace obtain
//! tokens for another namespace's tool. So a resource is held by one app, settled by the same
//! rule in the operator and the issuer (every replica, every restart and both components agree),
//! in the spirit of [`crate::claims`] (client IDs):
//!
//! 1. Only an app that holds its client ID ([`crate::claims`]) claims a resource, and only when
//!    the resource-host bindings permit its namespace that resource ([`crate::resource_hosts`]):
//!    an app that is not a client, or whose resource's host is bound to other namespaces, can
//!    neither take nor block one (the latter is `Ready=False`, reason `ResourceNotPermitted`).
//! 2. A resource already held stays with its holder: the *incumbent*, an app whose status
//!    (written by the operator) records it as `resource` with a `Ready` condition whose reason is
//!    none of `ResourceConflict`, `ResourceNotPermitted` and `ClientIDConflict` (see
//!    [`incumbent`]).
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
use crate::resource_hosts::{RESOURCE_NOT_PERMITTED, Refusal, ResourceHosts};

/// Reason of the `Ready` condition of an app left without its resource.
pub const RESOURCE_CONFLICT: &str = "ResourceConflict";

/// Whether `app` claims `resource` (byte-exact).
pub fn claims(app: &ConnectedApp, resource: &str) -> bool {
    app.spec.resource.as_deref() == Some(resource)
}

/// Whether `app` is the incumbent holder of its resource: its status records that resource as
/// `resource` and its `Ready` condition (of any generation, `True` or not) is none of the
/// `ResourceConflict`, `ResourceNotPermitted` and `ClientIDConflict` the operator writes for an
/// app it left without it. The operator writes `status.resource` only for an app it judged to
/// hold it. A local manifest has no status and never is.
pub fn incumbent(app: &ConnectedApp) -> bool {
    crate::claims::recorded_holder(
        app,
        |s| s.resource.as_deref(),
        claims,
        &[
            RESOURCE_CONFLICT,
            RESOURCE_NOT_PERMITTED,
            CLIENT_ID_CONFLICT,
        ],
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
/// and name) that holds its client ID among `others` and `app` and that `hosts` permit the
/// resource, when it comes before `app`. `None` also when `app` claims no resource. Whether
/// `app` itself holds its client ID ([`crate::claims::holder_before`]) and may claim its
/// resource ([`ResourceHosts::refusal`]) is the caller's to check first, in that order, as
/// [`resolve`] does.
pub fn holder_before<'a>(
    app: &'a ConnectedApp,
    others: impl IntoIterator<Item = &'a ConnectedApp>,
    hosts: &ResourceHosts,
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
        .filter(|o| hosts.permits(o))
        .filter(|o| crate::claims::holder_before(o, all.iter().copied()).is_none())
        .min_by(|a, b| claim_order(a, b))
}

/// Resolves every resource claim among `clients`, the apps that hold their client ID (the
/// winners of [`crate::claims::resolve`]), under the resource-host bindings `hosts`: the apps
/// that hold their resource or claim none (in claim order), the conflicts (each loser with the
/// holder), and the apps whose resource `hosts` refuse them (each with the refusal). Only the
/// first are clients.
pub fn resolve<'a>(
    clients: impl IntoIterator<Item = &'a ConnectedApp>,
    hosts: &ResourceHosts,
) -> (
    Vec<&'a ConnectedApp>,
    Vec<Conflict<'a>>,
    Vec<(&'a ConnectedApp, Refusal)>,
) {
    let mut sorted: Vec<&ConnectedApp> = clients.into_iter().collect();
    sorted.sort_by(|a, b| claim_order(a, b));
    let mut holders: BTreeMap<&str, &ConnectedApp> = BTreeMap::new();
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    let mut refused = Vec::new();
    for app in sorted {
        let Some(resource) = app.spec.resource.as_deref() else {
            winners.push(app);
            continue;
        };
        if let Some(refusal) = hosts.refusal(app) {
            refused.push((app, refusal));
            continue;
        }
        match holders.get(resource) {
            Some(holder) => conflicts.push(Conflict { loser: app, holder }),
            None => {
                holders.insert(resource, app);
                winners.push(app);
            }
        }
    }
    (winners, conflicts, refused)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::claims::display_name;

    const R: &str = "https://tool.example.com/";

    /// [`super::holder_before`] without resource-host bindings.
    fn holder_before<'a>(
        app: &'a ConnectedApp,
        others: impl IntoIterator<Item = &'a ConnectedApp>,
    ) -> Option<&'a ConnectedApp> {
        super::holder_before(app, others, &ResourceHosts::default())
    }

    /// [`super::resolve`] without resource-host bindings (which refuse nothing).
    fn resolve<'a>(
        clients: impl IntoIterator<Item = &'a ConnectedApp>,
    ) -> (Vec<&'a ConnectedApp>, Vec<Conflict<'a>>) {
        let (winners, conflicts, refused) = super::resolve(clients, &ResourceHosts::default());
        assert!(refused.is_empty());
        (winners, conflicts)
    }

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

    fn bound(values: &str) -> ResourceHosts {
        ResourceHosts::parse([values]).unwrap()
    }

    #[test]
    fn an_app_outside_the_binding_neither_takes_nor_blocks_the_resource() {
        let hosts = bound("tool.example.com=tools");
        // The squatter is older and was even registered as the holder before the binding.
        let squatter = with_status(
            app("evil", "tool", Some(R), Some("2024-01-01T00:00:00Z")),
            Some(R),
            "True",
            "Registered",
        );
        let owner = app("tools", "tool", Some(R), Some("2026-01-01T00:00:00Z"));
        // Another spelling of the same host is bound too.
        let variant = app(
            "evil",
            "variant",
            Some("https://TOOL.example.com./"),
            Some("2023-01-01T00:00:00Z"),
        );
        let all = [&squatter, &owner, &variant];
        assert!(super::holder_before(&owner, all, &hosts).is_none());
        // Without the binding, the squatter keeps it.
        assert_eq!(
            display_name(holder_before(&owner, all).unwrap()),
            "evil/tool"
        );
        let (winners, conflicts, refused) = super::resolve(all, &hosts);
        assert_eq!(names(&winners), ["tools/tool"]);
        assert!(conflicts.is_empty());
        let refused: Vec<_> = refused
            .iter()
            .map(|(a, r)| (display_name(a), r.namespace.clone()))
            .collect();
        assert_eq!(
            refused,
            [
                ("evil/tool".to_string(), "evil".to_string()),
                ("evil/variant".to_string(), "evil".to_string()),
            ]
        );
        // Once the operator records the refusal, the squatter is no longer incumbent, so lifting
        // the binding does not hand the resource back to it.
        for recorded in [None, Some(R)] {
            let refused = with_status(squatter.clone(), recorded, "False", RESOURCE_NOT_PERMITTED);
            assert!(!incumbent(&refused), "{recorded:?}");
        }
    }

    /// What the operator decides for `app` among `all` (reconciling one app at a time), and what
    /// the issuer decides (resolving them all at once), as one word each.
    fn operator_view(app: &ConnectedApp, all: &[&ConnectedApp], hosts: &ResourceHosts) -> String {
        if let Some(h) = crate::claims::holder_before(app, all.iter().copied()) {
            format!("ClientIDConflict {}", display_name(h))
        } else if hosts.refusal(app).is_some() {
            RESOURCE_NOT_PERMITTED.to_string()
        } else if let Some(h) = super::holder_before(app, all.iter().copied(), hosts) {
            format!("ResourceConflict {}", display_name(h))
        } else {
            "client".to_string()
        }
    }

    fn issuer_view(all: &[&ConnectedApp], hosts: &ResourceHosts) -> BTreeMap<String, String> {
        let (clients, id_conflicts) = crate::claims::resolve(all.iter().copied());
        let (winners, conflicts, refused) = super::resolve(clients, hosts);
        let mut out = BTreeMap::new();
        for c in id_conflicts {
            out.insert(
                display_name(c.loser),
                format!("ClientIDConflict {}", display_name(c.holder)),
            );
        }
        for c in conflicts {
            out.insert(
                display_name(c.loser),
                format!("ResourceConflict {}", display_name(c.holder)),
            );
        }
        for (a, _) in refused {
            out.insert(display_name(a), RESOURCE_NOT_PERMITTED.to_string());
        }
        for w in winners {
            out.insert(display_name(w), "client".to_string());
        }
        out
    }

    #[test]
    fn the_operator_and_the_issuer_agree_under_bindings() {
        let hosts = bound("*.example.com=platform tool.example.com=tools,tools-dev");
        let t = |y: u32| Some(format!("20{y}-01-01T00:00:00Z"));
        let apps = [
            app("evil", "a", Some(R), t(20).as_deref()),
            app("tools-dev", "b", Some(R), t(22).as_deref()),
            app("tools", "c", Some(R), t(21).as_deref()),
            app("platform", "d", Some(R), t(19).as_deref()),
            app(
                "platform",
                "e",
                Some("https://x.example.com/"),
                t(23).as_deref(),
            ),
            app(
                "evil",
                "f",
                Some("https://x.EXAMPLE.com/"),
                t(18).as_deref(),
            ),
            app("evil", "g", Some("https://free.test/"), t(24).as_deref()),
            app("evil", "h", Some("not a url"), t(17).as_deref()),
        ];
        let mut pinned = app("tools", "i", Some(R), t(25).as_deref());
        // Pins the client ID of tools/c (older): not a client, so it neither takes nor blocks R.
        pinned.spec.client_id = Some("tools.c".into());
        let mut all: Vec<&ConnectedApp> = apps.iter().collect();
        all.push(&pinned);
        let issuer = issuer_view(&all, &hosts);
        for app in &all {
            assert_eq!(
                operator_view(app, &all, &hosts),
                issuer[&display_name(app)],
                "{}",
                display_name(app)
            );
        }
        let expected: BTreeMap<String, String> = [
            ("evil/a", RESOURCE_NOT_PERMITTED),
            ("tools-dev/b", "ResourceConflict tools/c"),
            ("tools/c", "client"),
            ("platform/d", RESOURCE_NOT_PERMITTED),
            ("platform/e", "client"),
            ("evil/f", RESOURCE_NOT_PERMITTED),
            ("evil/g", "client"),
            ("evil/h", RESOURCE_NOT_PERMITTED),
            ("tools/i", "ClientIDConflict tools/c"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(issuer, expected);
    }
}
