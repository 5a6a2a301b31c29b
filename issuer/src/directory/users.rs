//! Static users: a YAML file listing people with argon2 password hashes.
//!
//! ```yaml
//! - email: alice@example.com
//!   name: Alice
//!   passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$…"
//!   groups: [engineering]
//!   sub: alice          # optional; default: the email address
//! ```
//!
//! A subject (`sub`, or the email when `sub` is absent) may not contain `:`: federated people's
//! subjects are `<provider id>:<upstream sub>`, so the two can never collide. Nor may it start
//! with `dcr.` or equal a ConnectedApp's client ID ([`crate::directory::distinct_subjects`]): a client's own tokens
//! carry its ID as `sub`.
//!
//! Unknown emails still cost one argon2 verification (against a fixed dummy hash), so response
//! time does not reveal which accounts exist. Guessing is limited by [`crate::directory::throttle`].

use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use serde::Deserialize;

use crate::store::Claims;

/// One static user.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct User {
    /// Email address (the login name).
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Subject; default: the email.
    #[serde(default)]
    pub sub: Option<String>,
}

impl User {
    /// The stable subject identifier.
    pub(crate) fn subject(&self) -> &str {
        self.sub.as_deref().unwrap_or(&self.email)
    }

    /// The claims snapshot for tokens.
    pub(crate) fn claims(&self) -> Claims {
        Claims {
            email: Some(self.email.clone()),
            email_verified: Some(true),
            name: self.name.clone(),
            preferred_username: self
                .email
                .split_once('@')
                .map(|(local, _)| local.to_string()),
            groups: self.groups.clone(),
        }
    }
}

/// The static users.
#[derive(Clone, Debug, Default)]
pub(crate) struct Users {
    users: Arc<Vec<User>>,
}

// A valid argon2id hash of a random password nobody knows: verified against when the email is
// unknown so that timing does not reveal whether an account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zrsyr7V7k8Bx6Bt2Q5qJbNwqE5ZqyVTRLbPB0Ce5vA";

impl Users {
    /// Users from a YAML file; fails with every problem.
    pub(crate) fn load(path: &Path) -> Result<Self, Vec<String>> {
        let text =
            std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let users: Vec<User> =
            serde_yaml::from_str(&text).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        Self::new(users).map_err(|ps| {
            ps.into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect()
        })
    }

    /// Users from a list; fails with every problem.
    pub(crate) fn new(users: Vec<User>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        for (i, u) in users.iter().enumerate() {
            if !u
                .email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            {
                problems.push(format!(
                    "user {}: email {:?} is not an email address",
                    i + 1,
                    u.email
                ));
            }
            if u.subject().is_empty() || u.subject().len() > 255 || u.subject().contains(':') {
                problems.push(format!(
                    "user {}: subject {:?} (sub, or the email without sub) must be 1 to 255 \
                     characters without `:` (reserved for federated subjects)",
                    i + 1,
                    u.subject()
                ));
            }
            if u.subject().starts_with(api::claims::DCR_CLIENT_ID_PREFIX) {
                problems.push(format!(
                    "user {}: subject {:?} starts with {:?}, the prefix of dynamically registered \
                     clients' IDs (a client's own tokens carry its ID as sub)",
                    i + 1,
                    u.subject(),
                    api::claims::DCR_CLIENT_ID_PREFIX
                ));
            }
            if PasswordHash::new(&u.password_hash).is_err() {
                problems.push(format!("user {}: passwordHash is not a PHC string", i + 1));
            }
            if users[..i]
                .iter()
                .any(|o| o.email.eq_ignore_ascii_case(&u.email) || o.subject() == u.subject())
            {
                problems.push(format!("user {}: email or sub used twice", i + 1));
            }
        }
        if problems.is_empty() {
            Ok(Self {
                users: Arc::new(users),
            })
        } else {
            Err(problems)
        }
    }

    /// Every user, in file order.
    pub(crate) fn all(&self) -> &[User] {
        &self.users
    }

    /// Whether any user is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks credentials (CPU-heavy: call from a blocking thread).
    pub(crate) fn authenticate(&self, email: &str, password: &str) -> Option<User> {
        let user = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()));
        let hash = user.map_or(DUMMY_HASH, |u| u.password_hash.as_str());
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match user {
            Some(u) if ok => Some(u.clone()),
            _ => None,
        }
    }

    /// A user by subject.
    pub(crate) fn by_subject(&self, sub: &str) -> Option<&User> {
        self.users.iter().find(|u| u.subject() == sub)
    }
}

/// Hashes a password with argon2id defaults (for tests and tooling).
pub fn hash_password(password: &str) -> Option<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&crate::random::random_bytes::<16>()).ok()?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn authenticates_only_with_the_right_password() {
        let h = hash_password("pw").unwrap();
        let users = Users::new(vec![User {
            email: "alice@example.com".into(),
            name: Some("Alice".into()),
            password_hash: h,
            groups: vec!["engineering".into()],
            sub: None,
        }])
        .unwrap();
        let u = users.authenticate("Alice@Example.com", "pw").unwrap();
        assert_eq!(u.subject(), "alice@example.com");
        assert_eq!(u.claims().groups, vec!["engineering".to_string()]);
        assert!(users.authenticate("alice@example.com", "wrong").is_none());
        assert!(users.authenticate("nobody@example.com", "pw").is_none());
    }

    #[test]
    fn bad_file_lists_every_problem() {
        let users: Vec<User> = serde_yaml::from_str(
            "- {email: nope, passwordHash: x}\n- {email: a@b.c, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zrsyr7V7k8Bx6Bt2Q5qJbNwqE5ZqyVTRLbPB0Ce5vA'}\n- {email: A@b.c, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Zrsyr7V7k8Bx6Bt2Q5qJbNwqE5ZqyVTRLbPB0Ce5vA'}\n",
        )
        .unwrap();
        let problems = Users::new(users).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn subjects_may_not_contain_the_federation_separator() {
        let user = |email: &str, sub: Option<&str>| User {
            email: email.into(),
            name: None,
            password_hash: DUMMY_HASH.into(),
            groups: vec![],
            sub: sub.map(str::to_string),
        };
        // `default:alice` is what the default upstream's `alice` becomes.
        let problems = Users::new(vec![user("a@x.org", Some("default:alice"))]).unwrap_err();
        assert!(problems[0].contains("without `:`"), "{problems:?}");
        assert!(Users::new(vec![user("a:b@x.org", None)]).is_err());
        assert!(Users::new(vec![user("a@x.org", Some(""))]).is_err());
        assert!(Users::new(vec![user("a:b@x.org", Some("ab"))]).is_ok());
        // `dcr.` starts the IDs of dynamically registered clients.
        let problems = Users::new(vec![user("a@x.org", Some("dcr.abc"))]).unwrap_err();
        assert!(
            problems[0].contains("dynamically registered"),
            "{problems:?}"
        );
    }
}
