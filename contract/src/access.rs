//! Access policy: who may sign in to an app, and per-path rules.
//!
//! Semantics (shared by the issuer, which enforces [`Access::may_sign_in`] before issuing a code,
//! and the proxy, which enforces [`Access::authorize`] on every request):
//! - Sign-in: when `allowedGroups`, `allowedEmails` and `allowedEmailDomains` are all empty,
//!   every authenticated person may sign in; otherwise a person must match at least one entry of
//!   any list. Emails and domains compare ASCII case-insensitively; groups exactly.
//! - Machines: a token a client obtained for itself (client_credentials: no person behind it;
//!   its `sub` is its client ID, RFC 9068 §2.2) passes only if that client ID is listed in
//!   `allowedClients` — never by default, since any namespace may register a client naming any
//!   resource. Then public rules and scope requirements apply as for people; a rule that
//!   requires groups refuses machines ([`Access::authorize_client`]).
//! - Delegation: a person's token (one a client obtained for a signed-in person) is for this
//!   app only when the client it was issued to is admitted ([`Access::admits_client`]): the app
//!   itself, a client listed in `delegatedClients`, or — when `dynamicClients` is
//!   `withConsent` — a dynamically registered client (ID prefix [`DYNAMIC_CLIENT_ID_PREFIX`]).
//!   The issuer refuses to issue such a token to anyone else; the proxy refuses one that names
//!   anyone else (defence in depth).
//! - Rules: the rule whose `path` is the longest prefix of the request path on a segment boundary
//!   (`/api` matches `/api` and `/api/x`, not `/apix`) and whose `methods` (empty: all) contain
//!   the request method applies. A `public` rule skips authentication. Otherwise the sign-in
//!   condition must hold, the person must be in one of the rule's `groups` (if any), and the
//!   token must carry every one of the rule's `scopes`.
//! - Methods are matched as tools match them: without regard to case (Flask and Django run the
//!   POST view for `post`; the proxy refuses such methods anyway), and a rule naming `GET` covers
//!   `HEAD`, whose request tools answer with their GET handler. Between rules of the same path,
//!   one naming the method wins over one covering it through `GET`, which wins over one for
//!   every method; then a restricted rule wins over a public one; then the later rule.
//! - Paths: callers normalise them first (the proxy resolves dot segments, percent-encoding and
//!   duplicate slashes, and refuses what it cannot). A restricted rule (not `public`) then
//!   matches the path in any case: Express and ASP.NET route `/ADMIN` and `/Admin` to the
//!   handler of `/admin`, so every case variant gets the rule's protection. Case is compared
//!   ASCII-insensitively, and a path or rule with other characters after Unicode case folding
//!   (lower, upper, lower case: `ſ` is `s`, `ı` is `i`, `K` (Kelvin) is `k`, `ß` is `ss`), so no
//!   framework's case rules find a variant the rule misses. A `public` rule matches exactly as
//!   written: a variant of a public path is not public. So case tricks can only lose access.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may use an app, and per-path rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// Groups whose members may sign in. Empty together with the other two lists: anyone who can
    /// authenticate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_groups: Vec<String>,
    /// Email addresses that may sign in (compared case-insensitively).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_emails: Vec<String>,
    /// Email domains whose addresses may sign in, e.g. `example.com` (exact domain, no subdomains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_email_domains: Vec<String>,
    /// Client IDs whose own tokens (client_credentials, no person involved) may call the app.
    /// Machines are refused unless listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_clients: Vec<String>,
    /// Client IDs (besides the app itself, which always may) that may obtain a signed-in
    /// person's access token for this app's `resource`, e.g. an agent acting for the person.
    /// Any other client is refused (`invalid_target`) before a code is issued, and
    /// keyway-proxy refuses a person's token issued to it. Such a client is always shown the
    /// consent page, and may only be granted scopes listed in this app's `scopes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegated_clients: Vec<String>,
    /// Whether dynamically registered clients (MCP agents that register themselves, client IDs
    /// starting with `dcr.`) may obtain a signed-in person's access token for this app:
    /// `never` (the default) or `withConsent` (each person is asked on the consent page).
    #[serde(default, skip_serializing_if = "DynamicClients::is_never")]
    pub dynamic_clients: DynamicClients,
    /// Per-path rules; the longest matching path prefix wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PathRule>,
}

/// Prefix of every client ID the issuer assigns through dynamic client registration (RFC 7591).
/// No ConnectedApp may have a client ID with it, so it tells a registered client from an app.
pub const DYNAMIC_CLIENT_ID_PREFIX: &str = "dcr.";

/// Whether dynamically registered clients may obtain people's tokens for an app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DynamicClients {
    /// No dynamically registered client may.
    #[default]
    Never,
    /// Any dynamically registered client may, once the person consents (the consent page is
    /// always shown to such clients).
    WithConsent,
}

impl DynamicClients {
    fn is_never(&self) -> bool {
        *self == Self::Never
    }
}

/// A rule for requests whose path starts with `path` (on a segment boundary).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathRule {
    /// Normalised absolute path prefix, e.g. `/api` or `/healthz`.
    pub path: String,
    /// HTTP methods the rule applies to (upper case); empty: every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Skip authentication entirely (e.g. health checks). Excludes `groups` and `scopes`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// The person must be in at least one of these groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The access token must carry every one of these scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// The authenticated caller as far as access rules are concerned.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// The (verified) email address, if known.
    pub email: Option<&'a str>,
    /// Group memberships.
    pub groups: &'a [String],
    /// Scopes granted to the token in use.
    pub scopes: &'a [String],
}

/// The outcome of [`Access::authorize`] for an authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// The caller may not sign in to this app at all.
    NotAllowed,
    /// The caller is not in any of the groups the matching rule requires.
    MissingGroup,
    /// The token lacks scopes the matching rule requires (RFC 6750 `insufficient_scope`).
    InsufficientScope {
        /// Every scope the rule requires, for the `scope` attribute of the challenge.
        required: Vec<String>,
    },
}

/// HTTP methods a rule may name.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

impl Access {
    /// Whether a person may sign in to the app at all.
    pub fn may_sign_in(&self, email: Option<&str>, groups: &[String]) -> bool {
        if self.allowed_groups.is_empty()
            && self.allowed_emails.is_empty()
            && self.allowed_email_domains.is_empty()
        {
            return true;
        }
        if groups.iter().any(|g| self.allowed_groups.contains(g)) {
            return true;
        }
        let Some(email) = email else {
            return false;
        };
        if self
            .allowed_emails
            .iter()
            .any(|e| e.eq_ignore_ascii_case(email))
        {
            return true;
        }
        match email.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => self
                .allowed_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain)),
            _ => false,
        }
    }

    /// Whether `client_id` may hold a signed-in person's token for this app, whose own client ID
    /// is `own`: the app itself, a client in `delegatedClients`, or a dynamically registered
    /// client when `dynamicClients` is `withConsent`. Exact, case-sensitive comparison.
    pub fn admits_client(&self, own: &str, client_id: &str) -> bool {
        client_id == own
            || self.delegated_clients.iter().any(|c| c == client_id)
            || (self.dynamic_clients == DynamicClients::WithConsent
                && client_id.starts_with(DYNAMIC_CLIENT_ID_PREFIX)
                && client_id.len() > DYNAMIC_CLIENT_ID_PREFIX.len())
    }

    /// The rule that applies to a request, if any (see the module documentation).
    pub fn rule_for(&self, method: &str, path: &str) -> Option<&PathRule> {
        // Case-folded only when some character is not ASCII (almost never), once.
        let ascii = path.is_ascii();
        let mut folded: Option<String> = None;
        let mut best: Option<(&PathRule, (usize, u8, bool))> = None;
        for rule in &self.rules {
            let Some(covers) = rule.covers(method) else {
                continue;
            };
            let matched = if rule.public {
                prefix_matches(&rule.path, path)
            } else if ascii && rule.path.is_ascii() {
                prefix_matches_ascii_case(&rule.path, path)
            } else {
                let path = folded.get_or_insert_with(|| fold_case(path));
                prefix_matches(&fold_case(&rule.path), path)
            };
            if !matched {
                continue;
            }
            let rank = (rule.path.trim_end_matches('/').len(), covers, !rule.public);
            if best.is_none_or(|(_, r)| rank >= r) {
                best = Some((rule, rank));
            }
        }
        best.map(|(rule, _)| rule)
    }

    /// Whether the request may pass without authentication.
    pub fn is_public(&self, method: &str, path: &str) -> bool {
        self.rule_for(method, path).is_some_and(|r| r.public)
    }

    /// Decides an authenticated request.
    pub fn authorize(&self, method: &str, path: &str, caller: &Caller<'_>) -> Decision {
        self.decide(
            method,
            path,
            || self.may_sign_in(caller.email, caller.groups),
            caller.groups,
            caller.scopes,
        )
    }

    /// Decides a request carrying a client's own token (client_credentials: no person, so no
    /// groups).
    pub fn authorize_client(
        &self,
        method: &str,
        path: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Decision {
        self.decide(
            method,
            path,
            || self.allowed_clients.iter().any(|c| c == client_id),
            &[],
            scopes,
        )
    }

    /// The one decision procedure: public rule, then admission, then the rule's groups and
    /// scopes.
    fn decide(
        &self,
        method: &str,
        path: &str,
        admitted: impl FnOnce() -> bool,
        groups: &[String],
        scopes: &[String],
    ) -> Decision {
        let rule = self.rule_for(method, path);
        if rule.is_some_and(|r| r.public) {
            return Decision::Allow;
        }
        if !admitted() {
            return Decision::NotAllowed;
        }
        let Some(rule) = rule else {
            return Decision::Allow;
        };
        if !rule.groups.is_empty() && !groups.iter().any(|g| rule.groups.contains(g)) {
            return Decision::MissingGroup;
        }
        if rule.scopes.iter().any(|s| !scopes.contains(s)) {
            return Decision::InsufficientScope {
                required: rule.scopes.clone(),
            };
        }
        Decision::Allow
    }

    /// Every problem with the policy, as messages a person can act on (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for domain in &self.allowed_email_domains {
            if domain.is_empty() || domain.contains('@') || domain.starts_with('.') {
                out.push(format!(
                    "access.allowedEmailDomains: {domain:?} must be a bare domain such as example.com"
                ));
            }
        }
        for email in &self.allowed_emails {
            if !email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            {
                out.push(format!(
                    "access.allowedEmails: {email:?} is not an email address"
                ));
            }
        }
        for client in &self.allowed_clients {
            if client.is_empty() || client.chars().any(|c| c.is_whitespace() || c.is_control()) {
                out.push(format!(
                    "access.allowedClients: {client:?} is not a client ID"
                ));
            }
        }
        for client in &self.delegated_clients {
            if client.is_empty() || client.chars().any(|c| c.is_whitespace() || c.is_control()) {
                out.push(format!(
                    "access.delegatedClients: {client:?} is not a client ID"
                ));
            } else if client.starts_with(DYNAMIC_CLIENT_ID_PREFIX) {
                out.push(format!(
                    "access.delegatedClients: {client:?} is a dynamically registered client's ID, which changes with each registration: set dynamicClients: withConsent instead"
                ));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            out.extend(
                rule.problems()
                    .into_iter()
                    .map(|p| format!("access.rules[{i}]: {p}")),
            );
        }
        out
    }
}

impl PathRule {
    /// How this rule's `methods` cover a request method, ranked: `Some(2)` named (in any case),
    /// `Some(1)` a `HEAD` covered by `GET`, `Some(0)` every method; `None`: not covered.
    fn covers(&self, method: &str) -> Option<u8> {
        if self.methods.is_empty() {
            return Some(0);
        }
        if self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Some(2);
        }
        (method.eq_ignore_ascii_case("HEAD")
            && self.methods.iter().any(|m| m.eq_ignore_ascii_case("GET")))
        .then_some(1)
    }

    /// Every problem with this rule (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(why) = path_problem(&self.path) {
            out.push(format!("path {:?} {why}", self.path));
        }
        for m in &self.methods {
            if !METHODS.contains(&m.as_str()) {
                out.push(format!("method {m:?} is not one of {}", METHODS.join(", ")));
            }
        }
        if self.public && (!self.groups.is_empty() || !self.scopes.is_empty()) {
            out.push("a public rule cannot also require groups or scopes".to_string());
        }
        out
    }
}

/// Why a rule path is not a normalised absolute path, if it is not.
fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must start with /");
    }
    if path.contains("//") {
        return Some("must not contain empty segments (//)");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Some("must not contain . or .. segments");
    }
    if path
        .chars()
        .any(|c| matches!(c, '?' | '#' | '%' | ';' | '\\') || c.is_control())
    {
        return Some("must not contain ?, #, %, ;, \\ or control characters");
    }
    None
}

/// `prefix` matches `path` when equal, or when `path` continues with a new segment.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// [`prefix_matches`] with ASCII letters compared without regard to case.
fn prefix_matches_ascii_case(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    if prefix.is_empty() {
        return path.first() == Some(&b'/');
    }
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(path.get(prefix.len()), None | Some(b'/'))
}

/// Unicode case folding as lower, upper, then lower case (full mappings), which makes every
/// pair that some framework's case-insensitive comparison equates equal: ASCII case, .NET's and
/// JavaScript's upper-case mappings (`ſ` and `s`, `ı` and `i`), simple folding (`K` Kelvin and
/// `k`), full folding (`ß` and `ss`, `ẞ`). Never produces `/`.
fn fold_case(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    fn policy() -> Access {
        Access {
            allowed_groups: s(&["engineering"]),
            allowed_emails: s(&["Carol@Example.org"]),
            allowed_email_domains: s(&["partner.example"]),
            allowed_clients: Vec::new(),
            delegated_clients: Vec::new(),
            dynamic_clients: DynamicClients::Never,
            rules: vec![
                PathRule {
                    path: "/healthz".into(),
                    public: true,
                    ..Default::default()
                },
                PathRule {
                    path: "/api".into(),
                    scopes: s(&["tool:read"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/api/admin".into(),
                    groups: s(&["admins"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/api".into(),
                    methods: s(&["POST"]),
                    scopes: s(&["tool:read", "tool:write"]),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn sign_in_matches_any_list() {
        let p = policy();
        assert!(p.may_sign_in(None, &s(&["engineering"])));
        assert!(p.may_sign_in(Some("carol@example.ORG"), &[]));
        assert!(p.may_sign_in(Some("dan@PARTNER.example"), &[]));
        assert!(!p.may_sign_in(Some("dan@sub.partner.example"), &[]));
        assert!(!p.may_sign_in(Some("@partner.example"), &[]));
        assert!(!p.may_sign_in(Some("bob@example.com"), &s(&["sales"])));
        assert!(!p.may_sign_in(None, &[]));
        assert!(Access::default().may_sign_in(None, &[]));
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let p = policy();
        assert_eq!(
            p.rule_for("GET", "/api/admin/x").map(|r| r.path.as_str()),
            Some("/api/admin")
        );
        assert_eq!(
            p.rule_for("GET", "/api/x").map(|r| r.path.as_str()),
            Some("/api")
        );
        assert!(p.rule_for("GET", "/apix").is_none());
        assert!(p.is_public("GET", "/healthz"));
        assert!(p.is_public("GET", "/healthz/live"));
        assert!(!p.is_public("GET", "/healthzz"));
        assert!(!p.is_public("GET", "/HEALTHZ"));
        assert!(!p.is_public("GET", "/"));
    }

    #[test]
    fn methods_are_matched_as_tools_match_them() {
        let p = policy();
        // Flask and Django run the POST view for `post`.
        for post in ["POST", "post", "Post"] {
            assert_eq!(
                p.rule_for(post, "/api/x").map(|r| r.scopes.len()),
                Some(2),
                "{post}"
            );
        }
        // A GET rule covers HEAD; a rule naming HEAD beats it; GET does not cover others.
        let mut rules = vec![
            PathRule {
                path: "/reports".into(),
                public: true,
                ..Default::default()
            },
            PathRule {
                path: "/reports".into(),
                methods: s(&["GET"]),
                groups: s(&["admins"]),
                ..Default::default()
            },
        ];
        let groups = |a: &Access, m: &str| a.rule_for(m, "/reports/q1").map(|r| r.groups.clone());
        let a = Access {
            rules: rules.clone(),
            ..Default::default()
        };
        assert_eq!(groups(&a, "HEAD"), Some(s(&["admins"])));
        assert_eq!(groups(&a, "head"), Some(s(&["admins"])));
        assert_eq!(groups(&a, "OPTIONS"), Some(vec![]));
        rules.push(PathRule {
            path: "/reports".into(),
            methods: s(&["HEAD"]),
            groups: s(&["auditors"]),
            ..Default::default()
        });
        let a = Access {
            rules: rules.clone(),
            ..Default::default()
        };
        assert_eq!(groups(&a, "HEAD"), Some(s(&["auditors"])));
        // The most specific rule wins whatever the order they are listed in.
        rules.reverse();
        let a = Access {
            rules,
            ..Default::default()
        };
        assert_eq!(groups(&a, "HEAD"), Some(s(&["auditors"])));
        assert_eq!(groups(&a, "GET"), Some(s(&["admins"])));
        assert!(a.is_public("PUT", "/reports"));
        let mut reversed = policy();
        reversed.rules.reverse();
        assert_eq!(
            reversed.rule_for("POST", "/api/x").map(|r| r.scopes.len()),
            Some(2)
        );
    }

    #[test]
    fn restricted_rules_match_every_case_and_public_rules_stay_exact() {
        let p = policy();
        let admin = |path: &str| p.rule_for("GET", path).map(|r| r.path.as_str());
        for variant in [
            "/api/admin",
            "/API/ADMIN",
            "/Api/Admin/x",
            "/api/aDMIN/",
            // .NET and JavaScript upper-case `ı` (dotless i) to `I`.
            "/api/adm\u{131}n",
        ] {
            assert_eq!(admin(variant), Some("/api/admin"), "{variant}");
        }
        assert_eq!(admin("/api/adminx"), Some("/api"));
        assert_eq!(admin("/api/ADMINX"), Some("/api"));
        assert_eq!(admin("/apix"), None);
        // Public rules stay exact: a variant of a public path is not public.
        assert!(p.is_public("GET", "/healthz"));
        for variant in ["/HEALTHZ", "/Healthz/live", "/healthZ"] {
            assert!(!p.is_public("GET", variant), "{variant}");
        }
        let unicode = Access {
            rules: vec![
                PathRule {
                    path: "/secret".into(),
                    groups: s(&["admins"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/kelvin".into(),
                    groups: s(&["admins"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/straße".into(),
                    groups: s(&["admins"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/public".into(),
                    public: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        for (variant, rule) in [
            ("/\u{17f}ecret", "/secret"),
            ("/SECRET/x", "/secret"),
            ("/\u{212a}elvin", "/kelvin"),
            ("/STRASSE", "/straße"),
            ("/stra\u{1e9e}e/x", "/straße"),
        ] {
            assert_eq!(
                unicode.rule_for("GET", variant).map(|r| r.path.as_str()),
                Some(rule),
                "{variant}"
            );
        }
        assert!(!unicode.is_public("GET", "/publıc"));
        assert!(unicode.rule_for("GET", "/secrets").is_none());
        // At the same path, a restricted rule wins over a public one.
        let clash = Access {
            rules: vec![
                PathRule {
                    path: "/Admin".into(),
                    groups: s(&["admins"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/admin".into(),
                    public: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert!(!clash.is_public("GET", "/admin"));
    }

    #[test]
    fn authorize_checks_groups_then_scopes() {
        let p = policy();
        let eng = s(&["engineering"]);
        let read = s(&["tool:read"]);
        let caller = Caller {
            email: None,
            groups: &eng,
            scopes: &read,
        };
        assert_eq!(p.authorize("GET", "/api/x", &caller), Decision::Allow);
        assert_eq!(
            p.authorize("POST", "/api/x", &caller),
            Decision::InsufficientScope {
                required: s(&["tool:read", "tool:write"])
            }
        );
        assert_eq!(
            p.authorize("GET", "/api/admin", &caller),
            Decision::MissingGroup
        );
        let sales = s(&["sales"]);
        let outsider = Caller {
            email: Some("bob@example.com"),
            groups: &sales,
            scopes: &read,
        };
        assert_eq!(p.authorize("GET", "/", &outsider), Decision::NotAllowed);
        assert_eq!(p.authorize("GET", "/healthz", &outsider), Decision::Allow);
    }

    #[test]
    fn machines_need_to_be_listed() {
        let mut p = policy();
        let read = s(&["tool:read"]);
        assert_eq!(
            p.authorize_client("GET", "/api/x", "ns.job", &read),
            Decision::NotAllowed
        );
        assert_eq!(
            p.authorize_client("GET", "/healthz", "ns.job", &[]),
            Decision::Allow
        );
        assert_eq!(
            Access::default().authorize_client("GET", "/", "ns.job", &[]),
            Decision::NotAllowed
        );
        p.allowed_clients = s(&["ns.job"]);
        assert_eq!(
            p.authorize_client("GET", "/api/x", "ns.job", &read),
            Decision::Allow
        );
        assert_eq!(
            p.authorize_client("GET", "/api/x", "ns.other", &read),
            Decision::NotAllowed
        );
        assert_eq!(
            p.authorize_client("GET", "/api/x", "ns.job", &[]),
            Decision::InsufficientScope {
                required: read.clone()
            }
        );
        assert_eq!(
            p.authorize_client("GET", "/api/admin", "ns.job", &read),
            Decision::MissingGroup
        );
        assert_eq!(
            p.authorize_client("GET", "/", "ns.job", &[]),
            Decision::Allow
        );
        // A person is never let in by a client listing.
        let none: Vec<String> = Vec::new();
        let person = Caller {
            email: Some("x@y.z"),
            groups: &none,
            scopes: &read,
        };
        assert_eq!(p.authorize("GET", "/", &person), Decision::NotAllowed);
        p.allowed_clients = s(&["", "a b"]);
        assert_eq!(p.problems().len(), 2);
    }

    #[test]
    fn delegated_tokens_need_the_client_admitted() {
        let mut p = policy();
        // By default only the app itself.
        assert!(p.admits_client("ns.tool", "ns.tool"));
        assert!(!p.admits_client("ns.tool", "ns.other"));
        assert!(!p.admits_client("ns.tool", "dcr.abc"));
        assert!(!p.admits_client("ns.tool", "NS.TOOL"));
        p.delegated_clients = s(&["ns.agent"]);
        assert!(p.admits_client("ns.tool", "ns.agent"));
        assert!(!p.admits_client("ns.tool", "ns.agent2"));
        assert!(!p.admits_client("ns.tool", "dcr.abc"));
        p.dynamic_clients = DynamicClients::WithConsent;
        assert!(p.admits_client("ns.tool", "dcr.abc"));
        assert!(!p.admits_client("ns.tool", "dcr."));
        assert!(!p.admits_client("ns.tool", "ns.other"));
        // Machines are a separate list: a delegated client is not a machine and vice versa.
        assert_eq!(
            p.authorize_client("GET", "/", "ns.agent", &[]),
            Decision::NotAllowed
        );
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        p.delegated_clients = s(&["", "a b", "dcr.abc"]);
        let problems = p.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[2].contains("dynamicClients"), "{problems:?}");
        // The wire form (policy.json and the CRD) is camelCase, and absent when default.
        let json = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(json["dynamicClients"], "withConsent");
        let none = serde_json::to_value(Access::default()).unwrap_or_default();
        assert_eq!(none, serde_json::json!({}));
    }

    #[test]
    fn problems_name_the_field() {
        let bad = Access {
            allowed_email_domains: s(&["@example.com"]),
            allowed_emails: s(&["nobody"]),
            rules: vec![
                PathRule {
                    path: "api".into(),
                    ..Default::default()
                },
                PathRule {
                    path: "/a/../b".into(),
                    methods: s(&["get"]),
                    ..Default::default()
                },
                PathRule {
                    path: "/p".into(),
                    public: true,
                    groups: s(&["x"]),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[2].starts_with("access.rules[0]: path \"api\" must start with /"));
        assert!(policy().problems().is_empty());
    }
}
