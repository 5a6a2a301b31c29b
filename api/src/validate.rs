//! Validation in Rust that agrees with the schema (OpenAPI constraints and CEL rules).

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::types::*;
use contract::duration::{DURATION_PATTERN, parse_duration};

/// One thing wrong with a spec: the field (a path below `spec`) and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the field, e.g. `redirectURIs[0]` or `secret.rotation.gracePeriod`.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spec.{}: {}", self.field, self.message)
    }
}

const PATTERNS: [&str; 9] = [
    URI_PATTERN,
    HTTPS_URI_PATTERN,
    CLIENT_ID_PATTERN,
    SCOPE_PATTERN,
    SECRET_NAME_PATTERN,
    DURATION_PATTERN,
    EMAIL_PATTERN,
    EMAIL_DOMAIN_PATTERN,
    RULE_PATH_PATTERN,
];

static REGEXES: LazyLock<Vec<Option<Regex>>> =
    LazyLock::new(|| PATTERNS.iter().map(|p| Regex::new(p).ok()).collect());

/// Whether `text` matches one of the crate's patterns (an unknown or broken pattern matches
/// nothing, so that validation fails closed; a test checks that all of them compile).
fn matches(pattern: &str, text: &str) -> bool {
    PATTERNS
        .iter()
        .position(|p| *p == pattern)
        .and_then(|i| REGEXES.get(i))
        .and_then(Option::as_ref)
        .is_some_and(|re| re.is_match(text))
}

/// Whether `uri` is acceptable where the spec takes a URI ([`URI_PATTERN`]: https, or http on a
/// loopback host; no user info or fragment). The operator checks its issuer URL with it.
pub fn is_acceptable_uri(uri: &str) -> bool {
    uri.len() <= limits::URI && matches(URI_PATTERN, uri)
}

struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn string(&mut self, field: &str, value: &str, max: usize, pattern: Option<(&str, &str)>) {
        if value.chars().count() > max {
            self.push(field, format!("must be at most {max} characters long"));
        } else if let Some((pattern, what)) = pattern
            && !matches(pattern, value)
        {
            self.push(field, format!("{value:?} is not {what}"));
        }
    }

    fn list<T>(
        &mut self,
        field: &str,
        values: &[T],
        max: usize,
        mut each: impl FnMut(&mut Self, &str, &T),
    ) {
        if values.len() > max {
            self.push(field, format!("must have at most {max} entries"));
        }
        for (i, value) in values.iter().enumerate() {
            each(self, &format!("{field}[{i}]"), value);
        }
    }

    fn duration(&mut self, field: &str, value: &str) -> Option<Duration> {
        if !matches(DURATION_PATTERN, value) {
            self.push(
                field,
                format!("{value:?} is not a duration such as 10m, 720h or 1h30m (units h, m, s)"),
            );
            return None;
        }
        match parse_duration(value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }
}

const URI_WHAT: &str = "an https URL, or an http URL on 127.0.0.1, [::1] or localhost, \
    without user info or fragment (e.g. https://tool.example.com/oauth2/callback)";

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// Every problem with a spec, in the order of its fields (empty when valid). Agrees with the
/// schema's constraints and CEL rules, and includes `contract::access::Access::problems`.
pub fn validate(spec: &ConnectedAppSpec) -> Vec<Problem> {
    let mut p = Problems(Vec::new());

    let name_len = spec.display_name.chars().count();
    if name_len == 0 || name_len > limits::DISPLAY_NAME {
        p.push(
            "displayName",
            format!("must be 1 to {} characters long", limits::DISPLAY_NAME),
        );
    }
    if let Some(d) = &spec.description {
        p.string("description", d, limits::DESCRIPTION, None);
    }
    if let Some(logo) = &spec.logo_uri {
        p.string(
            "logoURI",
            logo,
            limits::URI,
            Some((HTTPS_URI_PATTERN, "an https URL")),
        );
    }
    if let Some(id) = &spec.client_id {
        p.string(
            "clientID",
            id,
            limits::NAME,
            Some((
                CLIENT_ID_PATTERN,
                "a client ID (letters, digits and ._- starting and ending with a letter or digit; no ':', which federated people's subjects use)",
            )),
        );
        if id.starts_with(crate::claims::DCR_CLIENT_ID_PREFIX) {
            p.push(
                "clientID",
                format!(
                    "must not start with {:?}, which is reserved for dynamically registered clients",
                    crate::claims::DCR_CLIENT_ID_PREFIX
                ),
            );
        }
    }
    for (field, uris) in [
        ("redirectURIs", &spec.redirect_uris),
        ("postLogoutRedirectURIs", &spec.post_logout_redirect_uris),
    ] {
        p.list(field, uris, limits::URIS, |p, f, u| {
            p.string(f, u, limits::URI, Some((URI_PATTERN, URI_WHAT)));
        });
    }
    if spec.grant_types.is_empty() {
        p.push("grantTypes", "must name at least one grant type");
    } else if spec.grant_types.len() > 3 {
        p.push("grantTypes", "must have at most 3 entries");
    }
    p.list("scopes", &spec.scopes, limits::SCOPES, |p, f, s| {
        p.string(
            f,
            s,
            limits::NAME,
            Some((
                SCOPE_PATTERN,
                "a scope (printable ASCII without spaces, \" or \\)",
            )),
        );
    });
    if let Some(r) = &spec.resource {
        p.string("resource", r, limits::URI, Some((URI_PATTERN, URI_WHAT)));
    }
    access(&mut p, &spec.access);
    lifetimes(&mut p, &spec.token_lifetimes);
    secret(&mut p, &spec.secret);
    cross_field(&mut p, spec);
    p.0
}

fn access(p: &mut Problems, access: &contract::access::Access) {
    p.list(
        "access.allowedGroups",
        &access.allowed_groups,
        limits::ACCESS_LIST,
        |p, f, g| p.string(f, g, limits::NAME, None),
    );
    p.list(
        "access.allowedEmails",
        &access.allowed_emails,
        limits::ACCESS_LIST,
        |p, f, e| p.string(f, e, limits::NAME, None),
    );
    p.list(
        "access.allowedEmailDomains",
        &access.allowed_email_domains,
        limits::ACCESS_LIST,
        |p, f, d| p.string(f, d, limits::NAME, None),
    );
    p.list(
        "access.allowedClients",
        &access.allowed_clients,
        limits::ACCESS_LIST,
        |p, f, c| p.string(f, c, limits::NAME, Some((CLIENT_ID_PATTERN, "a client ID"))),
    );
    p.list(
        "access.delegatedClients",
        &access.delegated_clients,
        limits::ACCESS_LIST,
        |p, f, c| p.string(f, c, limits::NAME, Some((CLIENT_ID_PATTERN, "a client ID"))),
    );
    p.list(
        "access.rules",
        &access.rules,
        limits::RULES,
        |p, f, rule| {
            p.string(&format!("{f}.path"), &rule.path, limits::NAME, None);
            p.list(
                &format!("{f}.methods"),
                &rule.methods,
                limits::ACCESS_LIST,
                |_, _, _| {},
            );
            p.list(
                &format!("{f}.groups"),
                &rule.groups,
                limits::ACCESS_LIST,
                |p, f, g| p.string(f, g, limits::NAME, None),
            );
            p.list(
                &format!("{f}.scopes"),
                &rule.scopes,
                limits::ACCESS_LIST,
                |p, f, s| {
                    p.string(
                        f,
                        s,
                        limits::NAME,
                        Some((
                            SCOPE_PATTERN,
                            "a scope (printable ASCII without spaces, \" or \\)",
                        )),
                    );
                },
            );
        },
    );
    for problem in access.problems() {
        // The contract's messages start with the field path below `access`.
        match problem.split_once(": ") {
            Some((field, message)) => p.push(field, message),
            None => p.push("access", problem),
        }
    }
}

fn lifetimes(p: &mut Problems, t: &TokenLifetimes) {
    if let Some(access) = p.duration("tokenLifetimes.access", &t.access)
        && (access < minutes(1) || access > minutes(24 * 60))
    {
        p.push("tokenLifetimes.access", "must be between 1m and 24h");
    }
    let refresh = p.duration("tokenLifetimes.refresh", &t.refresh);
    if let Some(refresh) = refresh
        && (refresh < minutes(1) || refresh > minutes(8760 * 60))
    {
        p.push(
            "tokenLifetimes.refresh",
            "must be between 1m and 8760h (one year)",
        );
    }
    if let Some(idle) = p.duration("tokenLifetimes.idle", &t.idle)
        && (idle < minutes(1) || refresh.is_some_and(|r| idle > r))
    {
        p.push(
            "tokenLifetimes.idle",
            "must be at least 1m and at most tokenLifetimes.refresh",
        );
    }
}

fn secret(p: &mut Problems, s: &SecretSpec) {
    const WHAT: &str = "a Secret name (lower case letters, digits, - and .)";
    if let Some(name) = &s.name {
        p.string(
            "secret.name",
            name,
            limits::NAME,
            Some((SECRET_NAME_PATTERN, WHAT)),
        );
    }
    if let Some(name) = &s.existing_secret {
        p.string(
            "secret.existingSecret",
            name,
            limits::NAME,
            Some((SECRET_NAME_PATTERN, WHAT)),
        );
    }
    if s.name.is_some() && s.existing_secret.is_some() {
        p.push(
            "secret.existingSecret",
            "secret.name and secret.existingSecret are mutually exclusive",
        );
    }
    let Some(rotation) = &s.rotation else {
        return;
    };
    if s.existing_secret.is_some() {
        p.push(
            "secret.rotation",
            "secret.rotation needs a Secret keyway writes; an existingSecret is rotated by whoever manages it",
        );
    }
    let interval = p.duration("secret.rotation.interval", &rotation.interval);
    if interval.is_some_and(|i| i < minutes(60)) {
        p.push("secret.rotation.interval", "must be at least 1h");
    }
    if let Some(grace) = p.duration("secret.rotation.gracePeriod", &rotation.grace_period)
        && (grace < minutes(5) || interval.is_some_and(|i| grace >= i))
    {
        p.push(
            "secret.rotation.gracePeriod",
            "must be at least 5m and shorter than the interval",
        );
    }
}

fn cross_field(p: &mut Problems, spec: &ConnectedAppSpec) {
    let has = |g: GrantType| spec.grant_types.contains(&g);
    let public = spec.client_type == ClientType::Public;
    if public && has(GrantType::ClientCredentials) {
        p.push(
            "grantTypes",
            "a public client cannot use the client_credentials grant: it has no secret to authenticate with",
        );
    }
    if has(GrantType::AuthorizationCode) && spec.redirect_uris.is_empty() {
        p.push(
            "redirectURIs",
            "the authorization_code grant needs at least one redirect URI",
        );
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        p.push(
            "grantTypes",
            "the refresh_token grant needs the authorization_code grant (refresh tokens are only issued with a code)",
        );
    }
    if !spec.post_logout_redirect_uris.is_empty() && !has(GrantType::AuthorizationCode) {
        p.push(
            "postLogoutRedirectURIs",
            "postLogoutRedirectURIs need the authorization_code grant (only signed-in people log out)",
        );
    }
    if public && spec.secret.rotation.is_some() {
        p.push(
            "secret.rotation",
            "a public client has no client secret to rotate: remove secret.rotation",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for (pattern, re) in PATTERNS.iter().zip(REGEXES.iter()) {
            assert!(re.is_some(), "{pattern}");
        }
    }

    #[test]
    fn uri_pattern() {
        for ok in [
            "https://tool.example.com/oauth2/callback",
            "https://tool.example.com",
            "https://tool.example.com:8443/cb?x=1",
            "https://[2001:db8::1]/cb",
            "http://127.0.0.1:8080/callback",
            "http://[::1]/cb",
            "http://localhost:3000",
        ] {
            assert!(matches(URI_PATTERN, ok), "{ok}");
        }
        for bad in [
            "http://tool.example.com/cb",
            "http://127.0.0.2/cb",
            "http://localhost.evil.com/cb",
            "https://user@tool.example.com/cb",
            "https://tool.example.com/cb#frag",
            "https://tool.example.com/c b",
            "https://tool.example.com/\u{85}",
            "https://",
            "https://-bad.example.com",
            "ftp://tool.example.com",
            "tool.example.com/cb",
            "https://tool.example.com?x",
        ] {
            assert!(!matches(URI_PATTERN, bad), "{bad}");
        }
    }

    #[test]
    fn rule_paths_agree_with_the_contract() {
        let dot_segment = Regex::new(DOT_SEGMENT_PATTERN).unwrap();
        for path in [
            "/",
            "/api",
            "/api/",
            "/a/b",
            "//",
            "/a//b",
            "api",
            "/a/./b",
            "/..",
            "/a?b",
            "/a%2f",
            "/a;b",
            "/a\\b",
            "/a\u{7}b",
            "/a\u{85}b",
            "/...",
            "/.x",
        ] {
            let contract_ok = contract::access::PathRule {
                path: path.into(),
                ..Default::default()
            }
            .problems()
            .is_empty();
            let dot = dot_segment.is_match(path);
            let schema_ok = matches(RULE_PATH_PATTERN, path) && !dot;
            assert_eq!(contract_ok, schema_ok, "{path:?}");
        }
    }

    #[test]
    fn email_patterns_agree_with_the_contract() {
        for value in [
            "a@b", "@b", "a@", "a", "a@b@c", "a\n@b", "a@\n", "", ".x", "x.y", "x@y",
        ] {
            let email = contract::access::Access {
                allowed_emails: vec![value.into()],
                ..Default::default()
            };
            assert_eq!(
                email.problems().is_empty(),
                matches(EMAIL_PATTERN, value),
                "email {value:?}"
            );
            let domain = contract::access::Access {
                allowed_email_domains: vec![value.into()],
                ..Default::default()
            };
            assert_eq!(
                domain.problems().is_empty(),
                matches(EMAIL_DOMAIN_PATTERN, value),
                "domain {value:?}"
            );
        }
    }
}
