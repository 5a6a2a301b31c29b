//! Who holds a client ID that several ConnectedApps claim.
//!
//! Default client IDs (`<namespace>.<name>`) are unique, but `spec.clientID` can pin another, so
//! two apps (or a pinned ID and another app's default) can name the same client. The operator
//! and the issuer settle it with the same rule, so every replica, every restart and both
//! components agree:
//!
//! 1. An ID already issued stays with its holder: the *incumbent*, an app whose status (written
//!    by the operator) records the ID as its `clientID` with a `Ready` condition whose reason is
//!    not `ClientIDConflict` (see [`incumbent`]). Changing another app's spec, however old that
//!    app is, cannot take the ID (and the refresh tokens issued to it) away.
//! 2. Among claimants that are equally (not) incumbent, the app that claimed first keeps it,
//!    judged by `metadata.creationTimestamp` (older first; an object without one, such as a
//!    local manifest, after every object that has one), then namespace, then name.
//!
//! Every other claimant is not a client. Validity does not matter otherwise: an invalid app
//! still holds the ID it claims, so fixing its spec cannot take the ID away from an app that was
//! serving. One exception: an app whose pinned ID has a dot but does not start with its own
//! `<namespace>.` is invalid ([`foreign_client_id`]) and comes after every other claimant, so it
//! can neither take nor block an ID of another namespace.
//!
//! IDs starting with [`DCR_CLIENT_ID_PREFIX`] belong to dynamically registered clients (RFC 7591)
//! and no ConnectedApp may have one, so a ConnectedApp can never take over a registered client's
//! grants.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use crate::ConnectedApp;

/// Prefix of every client ID the issuer assigns through dynamic client registration. A
/// ConnectedApp's client ID must not start with it: `spec.clientID` is refused by the schema and
/// [`crate::validate`], a default ID in a namespace named `dcr` by [`reserved_client_id`].
pub const DCR_CLIENT_ID_PREFIX: &str = contract::access::DYNAMIC_CLIENT_ID_PREFIX;

/// The problem with `app`'s client ID being reserved for dynamically registered clients, if it
/// is (a pinned one is also reported by [`crate::validate`]).
pub fn reserved_client_id(app: &ConnectedApp) -> Option<String> {
    let id = app.client_id()?;
    if !id.starts_with(DCR_CLIENT_ID_PREFIX) {
        return None;
    }
    Some(if app.spec.client_id.is_some() {
        format!(
            "spec.clientID: {id:?} starts with {DCR_CLIENT_ID_PREFIX:?}, which is reserved for dynamically registered clients"
        )
    } else {
        format!(
            "the default client ID {id:?} starts with {DCR_CLIENT_ID_PREFIX:?}, which is reserved for dynamically registered clients: set spec.clientID"
        )
    })
}

/// The problem with `app`'s pinned client ID naming another namespace, if it does: a pinned ID
/// with a `.` must start with the app's own `<namespace>.`. Default IDs are `<namespace>.<name>`
/// and namespaces contain no dots, so no pinned ID can then be another namespace's default ID.
pub fn foreign_client_id(app: &ConnectedApp) -> Option<String> {
    let pinned = app.spec.client_id.as_deref()?;
    // A `dcr.` one is refused as reserved (`crate::validate`).
    if !foreign(app) || pinned.starts_with(DCR_CLIENT_ID_PREFIX) {
        return None;
    }
    let prefix = format!("{}.", app.namespace().unwrap_or_default());
    Some(format!(
        "spec.clientID: {pinned:?} contains \".\" but does not start with the app's namespace and a dot ({prefix:?}): IDs with a dot belong to their namespace"
    ))
}

fn in_own_namespace(app: &ConnectedApp, pinned: &str) -> bool {
    app.metadata
        .namespace
        .as_deref()
        .and_then(|ns| pinned.strip_prefix(ns))
        .is_some_and(|rest| rest.starts_with('.'))
}

fn foreign(app: &ConnectedApp) -> bool {
    app.spec
        .client_id
        .as_deref()
        .is_some_and(|pinned| pinned.contains('.') && !in_own_namespace(app, pinned))
}

fn created(app: &ConnectedApp) -> Option<Timestamp> {
    app.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether `app` is the incumbent holder of its client ID: its status records that ID as
/// `clientID` and its `Ready` condition (of any generation, `True` or not) is not the
/// `ClientIDConflict` the operator writes for an app it left without the ID. The operator writes
/// `clientID` only in the status of an app it judged to hold the ID (or, with `ClientIDConflict`,
/// of one it did not), so this is the app the ID was issued to; an app under edit, an invalid
/// one, one whose Secret is missing stays incumbent. A local manifest has no status and never is.
pub fn incumbent(app: &ConnectedApp) -> bool {
    recorded_holder(
        app,
        |s| s.client_id.as_deref(),
        claims,
        &[CLIENT_ID_CONFLICT],
    )
}

/// Whether `app`'s status records a value (`recorded`) that `app` still claims, with a `Ready`
/// condition (of any generation, `True` or not) whose reason is none of `lost`: how an
/// incumbent holder of a client ID or of a resource is recognised.
pub(crate) fn recorded_holder(
    app: &ConnectedApp,
    recorded: impl Fn(&crate::ConnectedAppStatus) -> Option<&str>,
    claims: impl Fn(&ConnectedApp, &str) -> bool,
    lost: &[&str],
) -> bool {
    let Some(status) = &app.status else {
        return false;
    };
    let Some(value) = recorded(status) else {
        return false;
    };
    claims(app, value)
        && status
            .conditions
            .iter()
            .find(|c| c.type_ == crate::CONDITION_READY)
            .is_some_and(|c| !lost.contains(&c.reason.as_str()))
}

/// Reason of the `Ready` condition of an app left without its client ID.
pub const CLIENT_ID_CONFLICT: &str = "ClientIDConflict";

/// The order in which claims are honoured (earlier first): an app pinning another namespace's
/// ID ([`foreign_client_id`], invalid) after every other, then incumbents ([`incumbent`]) before
/// the rest, then [`age_order`].
pub fn claim_order(a: &ConnectedApp, b: &ConnectedApp) -> Ordering {
    foreign(a)
        .cmp(&foreign(b))
        .then_with(|| incumbent(b).cmp(&incumbent(a)))
        .then_with(|| age_order(a, b))
}

/// Creation time (missing last), then namespace, then name.
pub fn age_order(a: &ConnectedApp, b: &ConnectedApp) -> Ordering {
    let time = match (created(a), created(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    time.then_with(|| a.namespace().cmp(&b.namespace()))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// Whether `app`'s client ID is `id` (without building the ID: this runs for every cached app on
/// every reconcile).
pub fn claims(app: &ConnectedApp, id: &str) -> bool {
    if let Some(pinned) = &app.spec.client_id {
        return pinned == id;
    }
    let (Some(ns), Some(name)) = (
        app.metadata.namespace.as_deref(),
        app.metadata.name.as_deref(),
    ) else {
        return false;
    };
    id.strip_prefix(ns)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == name)
}

fn same_object(a: &ConnectedApp, b: &ConnectedApp) -> bool {
    a.namespace() == b.namespace() && a.name_any() == b.name_any()
}

/// The app that holds `app`'s client ID instead of it, if any: the first claimant of the same ID
/// in [`claim_order`] among `others` (which may include `app` itself, under its namespace and
/// name) when it comes before `app`.
pub fn holder_before<'a>(
    app: &ConnectedApp,
    others: impl IntoIterator<Item = &'a ConnectedApp>,
) -> Option<&'a ConnectedApp> {
    let id = app.client_id()?;
    others
        .into_iter()
        .filter(|o| claims(o, &id) && !same_object(o, app))
        .filter(|o| claim_order(o, app) == Ordering::Less)
        .min_by(|a, b| claim_order(a, b))
}

/// A claimant that does not get its client ID.
#[derive(Clone, Copy, Debug)]
pub struct Conflict<'a> {
    /// The app left without its client ID.
    pub loser: &'a ConnectedApp,
    /// The app that holds it.
    pub holder: &'a ConnectedApp,
}

/// Resolves every claim: the apps that hold their client ID (in claim order) and the conflicts
/// (each loser with the holder).
pub fn resolve<'a>(
    apps: impl IntoIterator<Item = &'a ConnectedApp>,
) -> (Vec<&'a ConnectedApp>, Vec<Conflict<'a>>) {
    let mut sorted: Vec<&ConnectedApp> = apps.into_iter().collect();
    sorted.sort_by(|a, b| claim_order(a, b));
    let mut holders: BTreeMap<String, &ConnectedApp> = BTreeMap::new();
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for app in sorted {
        let Some(id) = app.client_id() else {
            continue;
        };
        match holders.get(&id) {
            Some(holder) => conflicts.push(Conflict { loser: app, holder }),
            None => {
                holders.insert(id, app);
                winners.push(app);
            }
        }
    }
    (winners, conflicts)
}

/// `namespace/name` of an app, for messages.
pub fn display_name(app: &ConnectedApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn app(ns: &str, name: &str, pinned: Option<&str>, created: Option<&str>) -> ConnectedApp {
        crate::test_support::app(ns, name, "clientID", pinned, created)
    }

    #[test]
    fn the_oldest_claimant_holds_the_id_whatever_the_names() {
        let old = app("z", "zeta", Some("shared"), Some("2026-01-01T00:00:00Z"));
        let new = app("a", "alpha", Some("shared"), Some("2026-01-02T00:00:00Z"));
        let other = app("a", "other", None, Some("2025-01-01T00:00:00Z"));
        let all = [new.clone(), other.clone(), old.clone()];
        assert!(holder_before(&old, &all).is_none());
        assert_eq!(holder_before(&new, &all).unwrap().name_any(), "zeta");
        assert!(holder_before(&other, &all).is_none());
        let (winners, conflicts) = resolve(&all);
        assert_eq!(winners.len(), 2);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(display_name(conflicts[0].loser), "a/alpha");
        assert_eq!(display_name(conflicts[0].holder), "z/zeta");
    }

    #[test]
    fn ties_go_by_namespace_then_name_and_missing_times_last() {
        let t = Some("2026-01-01T00:00:00Z");
        let b = app("ns", "b", Some("x"), t);
        let a = app("ns", "a", Some("x"), t);
        let a_other_ns = app("mm", "z", Some("x"), t);
        let untimed = app("aa", "a", Some("x"), None);
        let all = [b.clone(), a.clone(), untimed.clone(), a_other_ns.clone()];
        let (winners, conflicts) = resolve(&all);
        assert_eq!(display_name(winners[0]), "mm/z");
        let losers: Vec<_> = conflicts.iter().map(|c| display_name(c.loser)).collect();
        assert_eq!(losers, ["ns/a", "ns/b", "aa/a"]);
        assert!(conflicts.iter().all(|c| display_name(c.holder) == "mm/z"));
        assert_eq!(display_name(holder_before(&untimed, &all).unwrap()), "mm/z");
    }

    #[test]
    fn a_pinned_id_equal_to_another_apps_default_conflicts() {
        let default = app("tools", "wiki", None, Some("2026-01-01T00:00:00Z"));
        let pinned = app(
            "other",
            "x",
            Some("tools.wiki"),
            Some("2026-01-03T00:00:00Z"),
        );
        assert_eq!(
            display_name(holder_before(&pinned, [&default, &pinned]).unwrap()),
            "tools/wiki"
        );
        // The app itself (even an older copy of it) is never its own rival.
        let mut stale = pinned.clone();
        stale.metadata.creation_timestamp = default.metadata.creation_timestamp.clone();
        assert!(holder_before(&pinned, [&stale]).is_none());
    }

    /// `app` as the operator leaves it: status `clientID` = its ID, `Ready` with `reason`.
    fn with_status(mut app: ConnectedApp, ready: &str, reason: &str) -> ConnectedApp {
        app.status = Some(
            serde_json::from_value(serde_json::json!({
                "clientID": app.client_id().unwrap(),
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": ready, "reason": reason, "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }],
            }))
            .unwrap(),
        );
        app
    }

    #[test]
    fn an_issued_id_stays_with_its_holder_against_an_older_app() {
        // B (newer) was issued its default ID; A (older, another namespace) then pins it.
        let b = with_status(
            app("b", "tool", None, Some("2026-02-01T00:00:00Z")),
            "True",
            "Registered",
        );
        let a = with_status(
            app("a", "x", Some("b.tool"), Some("2025-01-01T00:00:00Z")),
            "True",
            "Registered",
        );
        // A's status still records its former ID: A is not incumbent for "b.tool".
        let mut a_before = a.clone();
        a_before.status.as_mut().unwrap().client_id = Some("a.x".into());
        assert!(incumbent(&b));
        assert!(!incumbent(&a_before));
        assert_eq!(
            display_name(holder_before(&a_before, [&b, &a_before]).unwrap()),
            "b/tool"
        );
        assert!(holder_before(&b, [&b, &a_before]).is_none());
        let (winners, conflicts) = resolve([&a_before, &b]);
        assert_eq!(
            winners.iter().map(|w| display_name(w)).collect::<Vec<_>>(),
            ["b/tool"]
        );
        assert_eq!(display_name(conflicts[0].loser), "a/x");
        // The operator then records A's conflict (clientID "b.tool", ClientIDConflict): still not
        // incumbent, B keeps the ID.
        let a_conflict = with_status(a.clone(), "False", CLIENT_ID_CONFLICT);
        assert!(!incumbent(&a_conflict));
        assert_eq!(
            display_name(holder_before(&a_conflict, [&b]).unwrap()),
            "b/tool"
        );
        // B stays incumbent while not Ready for another reason (edited, invalid, Secret missing).
        let b_invalid = with_status(b.clone(), "False", "InvalidSpec");
        assert!(incumbent(&b_invalid));
        assert!(holder_before(&b_invalid, [&a_before]).is_none());
        // A local manifest (no status) and an app without a Ready condition are not incumbent.
        let mut b_bare = b.clone();
        b_bare.status.as_mut().unwrap().conditions.clear();
        assert!(!incumbent(&b_bare));
        assert!(!incumbent(&app("b", "tool", None, None)));
    }

    #[test]
    fn among_several_incumbents_or_none_the_oldest_wins() {
        let old = app("z", "zeta", Some("shared"), Some("2026-01-01T00:00:00Z"));
        let new = app("a", "alpha", Some("shared"), Some("2026-01-02T00:00:00Z"));
        // Both claim incumbency (a buggy past): age decides.
        let old_i = with_status(old.clone(), "True", "Registered");
        let new_i = with_status(new.clone(), "True", "Registered");
        assert_eq!(
            display_name(holder_before(&new_i, [&old_i]).unwrap()),
            "z/zeta"
        );
        assert!(holder_before(&old_i, [&new_i]).is_none());
        // Only the newer one is incumbent: it wins; the older one's conflict status changes nothing.
        let old_c = with_status(old, "False", CLIENT_ID_CONFLICT);
        assert_eq!(
            display_name(holder_before(&old_c, [&new_i]).unwrap()),
            "a/alpha"
        );
        let (winners, _) = resolve([&old_c, &new_i]);
        assert_eq!(display_name(winners[0]), "a/alpha");
        // A status recording another ID than the one claimed does not count.
        let mut stale = with_status(new, "True", "Registered");
        stale.status.as_mut().unwrap().client_id = Some("other".into());
        assert!(!incumbent(&stale));
    }

    #[test]
    fn a_pinned_id_with_a_dot_must_start_with_the_own_namespace() {
        for ok in [
            None,
            Some("tools.x"),
            Some("tools.a.b"),
            Some("plain"),
            Some("a:b-c"),
        ] {
            assert!(
                foreign_client_id(&app("tools", "wiki", ok, None)).is_none(),
                "{ok:?}"
            );
        }
        for bad in ["other.wiki", "toolsx.wiki", "tool.swiki", "a.b"] {
            let problem = foreign_client_id(&app("tools", "wiki", Some(bad), None)).unwrap();
            assert!(
                problem.starts_with("spec.clientID") && problem.contains("\"tools.\""),
                "{problem}"
            );
        }
    }

    #[test]
    fn a_foreign_pin_neither_takes_nor_blocks_another_namespaces_id() {
        // Older, and even with a status claiming the ID: still after the default ID's app.
        let squatter = with_status(
            app("a", "x", Some("b.tool"), Some("2025-01-01T00:00:00Z")),
            "True",
            "Registered",
        );
        let owner = app("b", "tool", None, Some("2026-01-01T00:00:00Z"));
        assert!(holder_before(&owner, [&squatter]).is_none());
        assert_eq!(
            display_name(holder_before(&squatter, [&owner]).unwrap()),
            "b/tool"
        );
        let (winners, conflicts) = resolve([&squatter, &owner]);
        assert_eq!(display_name(winners[0]), "b/tool");
        assert_eq!(display_name(conflicts[0].loser), "a/x");
        // Alone, it is the only claimant (and invalid: the operator and the issuer refuse it).
        assert!(holder_before(&squatter, []).is_none());
    }

    #[test]
    fn claims_matches_client_id() {
        for (a, ids) in [
            (
                app("tools", "wiki", None, None),
                ["tools.wiki", "tools.wik", "tool.swiki"],
            ),
            (
                app("tools", "wiki", Some("x.y"), None),
                ["x.y", "tools.wiki", "x.y."],
            ),
        ] {
            for id in ids {
                assert_eq!(claims(&a, id), a.client_id().as_deref() == Some(id), "{id}");
            }
        }
    }

    #[test]
    fn dcr_ids_are_reserved() {
        assert!(reserved_client_id(&app("tools", "wiki", None, None)).is_none());
        let pinned = reserved_client_id(&app("tools", "wiki", Some("dcr.abc"), None)).unwrap();
        assert!(pinned.starts_with("spec.clientID"), "{pinned}");
        let default = reserved_client_id(&app("dcr", "wiki", None, None)).unwrap();
        assert!(default.contains("\"dcr.wiki\""), "{default}");
        assert!(reserved_client_id(&app("dcr", "wiki", Some("wiki"), None)).is_none());
    }
}
