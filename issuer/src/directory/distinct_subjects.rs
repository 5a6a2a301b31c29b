//! People and clients never share an identifier.
//!
//! A client_credentials access token's `sub` is the client ID (RFC 9068 §2.2), and a person's
//! is their subject, so a resource server can tell a client from a person only if no subject is
//! ever a client ID (RFC 9068 §5 asks authorization servers to prevent such confusion). The
//! shapes overlap only partly:
//!
//! - client IDs: `<namespace>.<name>`, a pinned `spec.clientID` (letters, digits, `._-`; with a
//!   `.` only under its namespace, so a pinned ID without `.` may be any such word), or
//!   `dcr.<random>` for dynamically registered clients;
//! - static users' subjects: the email (contains `@`, which no client ID does) or an explicit
//!   `sub` (no `:`; one starting with `dcr.` is refused by [`crate::directory::users`]);
//! - federated people's subjects: `<provider id>:<upstream sub>`.
//!
//! So an explicit static `sub` may equal a ConnectedApp's ID. A client ID with a `:` could equal
//! a federated subject; the CRD refuses one at admission and `api::validate` (which the issuer
//! applies to every ConnectedApp it loads) refuses it too, so the issuer's own check of such IDs
//! is defence in depth. [`clashes`] refuses both at start-up (exit 64); since ConnectedApps and
//! providers change while the issuer runs, every token is checked as well
//! (`Issuer::is_client_id`, `Issuer::is_person_subject` in `crate::state`): neither side gets a token while
//! they clash.

use crate::directory::clients::Registry;
use crate::directory::users::Users;

/// Start-up problems: static users whose subject is a ConnectedApp's ID, and ConnectedApps whose
/// ID has the shape of a configured provider's subjects.
pub(crate) fn clashes(clients: &Registry, users: &Users, upstream_ids: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, u) in users.all().iter().enumerate() {
        if clients.get(u.subject()).is_some() {
            problems.push(format!(
                "user {}: subject {:?} is also a ConnectedApp's client ID, and a client's own \
                 tokens carry its ID as sub (RFC 9068): give the user another sub",
                i + 1,
                u.subject()
            ));
        }
    }
    for c in clients.all() {
        if let Some((p, _)) = c.id.split_once(':')
            && upstream_ids.contains(&p)
        {
            problems.push(format!(
                "client {:?}: the ID has the shape of the subjects of upstream provider {p:?} \
                 (`{p}:<sub>`), so its own tokens could pass for a person's: pin another \
                 spec.clientID",
                c.id
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::directory::users::User;

    #[test]
    fn startup_refuses_subjects_that_are_client_ids_and_ids_shaped_like_federated_subjects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("apps.yaml"),
            "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\n\
             metadata: {name: wiki, namespace: tools}\n\
             spec: {displayName: Wiki, clientType: public, redirectURIs: [\"https://w.example/cb\"]}\n\
             ---\napiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\n\
             metadata: {name: job, namespace: tools}\n\
             spec: {displayName: Job, grantTypes: [client_credentials]}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("tools.job.secret"), "s").unwrap();
        let loaded = Registry::load_dir(dir.path()).unwrap();
        // `api::validate` refuses a `:` in a client ID, so build such a client directly.
        let job = crate::directory::clients::Client {
            id: "okta:00u1".into(),
            ..(*loaded.get("tools.job").unwrap()).clone()
        };
        let clients =
            Registry::from_clients(vec![(*loaded.get("tools.wiki").unwrap()).clone(), job]);
        let user = |sub: &str| {
            User {
            email: format!("{sub}@x.org"),
            name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zrsyr7V7k8Bx6Bt2Q5qJbNwqE5ZqyVTRLbPB0Ce5vA".into(),
            groups: vec![],
            sub: Some(sub.into()),
        }
        };
        let users = Users::new(vec![user("tools.wiki"), user("tools.other")]).unwrap();
        let problems = clashes(&clients, &users, &["okta"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("user 1: subject \"tools.wiki\""),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("client \"okta:00u1\""),
            "{problems:?}"
        );
        // Without that provider, the pinned ID is only a client ID.
        assert_eq!(clashes(&clients, &users, &["google"]).len(), 1);
    }
}
