//! The schema's rules, evaluated with a CEL interpreter against valid and invalid objects, agree
//! with `api::validate`.
//!
//! The evaluator below walks the generated CRD schema the way the API server does after
//! defaulting: OpenAPI constraints (`type`, `enum`, `pattern`, `minLength`/`maxLength`,
//! `minItems`/`maxItems`, `required`) and, at every node, the `x-kubernetes-validations` rules
//! with `self` bound to the value at that node. Patterns are evaluated with CEL's `matches` too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api::{ConnectedApp, ConnectedAppSpec, validate};
use cel::{Context, Env, Program, Value as CelValue};
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn spec_schema() -> Value {
    let crd = serde_json::to_value(ConnectedApp::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

struct Evaluator {
    env: Arc<Env>,
}

impl Evaluator {
    fn eval(&self, rule: &str, this: &Value, vars: &[(&str, &str)]) -> Result<bool, String> {
        let program: Program = self
            .env
            .compile(rule)
            .map_err(|e| format!("rule {rule:?} does not compile: {e:?}"))?;
        let mut ctx = Context::with_env(self.env.clone());
        let this = cel::to_value(this).map_err(|e| e.to_string())?;
        ctx.add_variable_from_value("self", this);
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, (*value).to_string());
        }
        match program.execute(&ctx) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("rule {rule:?} returned {other:?}")),
            Err(e) => Err(format!("rule {rule:?} failed: {e:?}")),
        }
    }

    /// Every violation of `schema` by `value`.
    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            out.push(format!("{path}: not in enum"));
        }
        match value {
            Value::String(s) => {
                let len = s.chars().count() as u64;
                if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
                    out.push(format!("{path}: too long"));
                }
                if schema["minLength"].as_u64().is_some_and(|m| len < m) {
                    out.push(format!("{path}: too short"));
                }
                if let Some(p) = schema["pattern"].as_str() {
                    match self.eval("self.matches(pattern)", value, &[("pattern", p)]) {
                        Ok(true) => {}
                        Ok(false) => out.push(format!("{path}: does not match {p}")),
                        Err(e) => out.push(format!("{path}: {e}")),
                    }
                }
                assert_eq!(schema["type"], "string", "{path}");
            }
            Value::Array(items) => {
                let len = items.len() as u64;
                if schema["maxItems"].as_u64().is_some_and(|m| len > m) {
                    out.push(format!("{path}: too many items"));
                }
                if schema["minItems"].as_u64().is_some_and(|m| len < m) {
                    out.push(format!("{path}: too few items"));
                }
                for (i, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Object(map) => {
                for (key, v) in map {
                    let sub = &schema["properties"][key];
                    assert!(!sub.is_null(), "{path}.{key} is not in the schema");
                    self.check(sub, v, &format!("{path}.{key}"), out);
                }
                if let Some(required) = schema["required"].as_array() {
                    for key in required {
                        if !map.contains_key(key.as_str().unwrap()) {
                            out.push(format!("{path}: {key} is required"));
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
            for rule in rules {
                let text = rule["rule"].as_str().unwrap();
                match self.eval(text, value, &[]) {
                    Ok(true) => {}
                    Ok(false) => out.push(format!("{path}: {}", rule["message"])),
                    Err(e) => out.push(format!("{path}: {e}")),
                }
            }
        }
    }
}

/// Applies a JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn base() -> Value {
    json!({
        "displayName": "Grafana",
        "description": "Dashboards",
        "logoURI": "https://grafana.example.com/logo.svg",
        "redirectURIs": ["https://grafana.example.com/oauth2/callback"],
        "postLogoutRedirectURIs": ["https://grafana.example.com/"],
        "scopes": ["openid", "profile", "email", "grafana:read"],
        "resource": "https://grafana.example.com",
        "access": {
            "allowedGroups": ["engineering"],
            "allowedEmails": ["carol@example.org"],
            "allowedEmailDomains": ["example.com"],
            "rules": [
                {"path": "/healthz", "public": true},
                {"path": "/api", "methods": ["POST"], "scopes": ["grafana:write"]},
                {"path": "/admin", "groups": ["admins"]}
            ]
        },
        "tokenLifetimes": {"access": "5m", "refresh": "168h", "idle": "12h"},
        "secret": {"name": "grafana-oauth", "rotation": {"interval": "720h", "gracePeriod": "1h"}}
    })
}

/// (name, merge patch on `base()`, whether the result is valid).
fn cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("base", json!({}), true),
        ("minimal", json!(null), true),
        (
            "public client with PKCE",
            json!({"clientType": "public", "secret": {"rotation": null}}),
            true,
        ),
        (
            "loopback http redirect",
            json!({"redirectURIs": ["http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost:3000/cb"]}),
            true,
        ),
        (
            "service only",
            json!({"grantTypes": ["client_credentials"], "redirectURIs": [], "postLogoutRedirectURIs": []}),
            true,
        ),
        (
            "existing secret",
            json!({"secret": {"name": null, "rotation": null, "existingSecret": "vault-grafana"}}),
            true,
        ),
        ("pinned client id", json!({"clientID": "grafana"}), true),
        ("third party", json!({"trust": "thirdParty"}), true),
        (
            "public client_credentials",
            json!({"clientType": "public", "secret": {"rotation": null}, "grantTypes": ["authorization_code", "client_credentials"]}),
            false,
        ),
        (
            "public with rotation",
            json!({"clientType": "public"}),
            false,
        ),
        ("code without redirect", json!({"redirectURIs": []}), false),
        (
            "refresh without code",
            json!({"grantTypes": ["refresh_token", "client_credentials"], "redirectURIs": [], "postLogoutRedirectURIs": []}),
            false,
        ),
        (
            "logout without code",
            json!({"grantTypes": ["client_credentials"], "redirectURIs": []}),
            false,
        ),
        ("no grant types", json!({"grantTypes": []}), false),
        (
            "http redirect",
            json!({"redirectURIs": ["http://grafana.example.com/cb"]}),
            false,
        ),
        (
            "redirect with fragment",
            json!({"redirectURIs": ["https://grafana.example.com/cb#x"]}),
            false,
        ),
        (
            "redirect with userinfo",
            json!({"redirectURIs": ["https://u@grafana.example.com/cb"]}),
            false,
        ),
        (
            "loopback look-alike",
            json!({"redirectURIs": ["http://localhost.evil.example/cb"]}),
            false,
        ),
        (
            "bad post-logout",
            json!({"postLogoutRedirectURIs": ["javascript:alert(1)"]}),
            false,
        ),
        (
            "http logo",
            json!({"logoURI": "http://grafana.example.com/logo.svg"}),
            false,
        ),
        (
            "resource with fragment",
            json!({"resource": "https://grafana.example.com/#x"}),
            false,
        ),
        ("empty display name", json!({"displayName": ""}), false),
        (
            "long display name",
            json!({"displayName": "x".repeat(101)}),
            false,
        ),
        ("client id with slash", json!({"clientID": "a/b"}), false),
        (
            "client id shaped like a federated subject",
            json!({"clientID": "okta:00u1"}),
            false,
        ),
        (
            "allowed client id with a colon",
            json!({"access": {"allowedClients": ["okta:00u1"]}}),
            false,
        ),
        (
            "delegated clients",
            json!({"access": {"delegatedClients": ["tools.agent", "agent"], "dynamicClients": "withConsent"}}),
            true,
        ),
        (
            "delegated client id with a colon",
            json!({"access": {"delegatedClients": ["okta:00u1"]}}),
            false,
        ),
        (
            "delegated client id of a registered client",
            json!({"access": {"delegatedClients": ["dcr.abc"]}}),
            false,
        ),
        (
            "client id of a registered client",
            json!({"clientID": "dcr.abc"}),
            false,
        ),
        (
            "client id near the dcr prefix",
            json!({"clientID": "dcr-abc"}),
            true,
        ),
        (
            "scope with space",
            json!({"scopes": ["openid profile"]}),
            false,
        ),
        ("scope with quote", json!({"scopes": ["a\"b"]}), false),
        (
            "too many redirects",
            json!({"redirectURIs": (0..33).map(|i| format!("https://x.example.com/{i}")).collect::<Vec<_>>()}),
            false,
        ),
        (
            "access too long",
            json!({"tokenLifetimes": {"access": "25h"}}),
            false,
        ),
        (
            "access too short",
            json!({"tokenLifetimes": {"access": "30s"}}),
            false,
        ),
        (
            "idle above refresh",
            json!({"tokenLifetimes": {"idle": "200h"}}),
            false,
        ),
        (
            "refresh beyond a year",
            json!({"tokenLifetimes": {"refresh": "8761h", "idle": "1h"}}),
            false,
        ),
        (
            "duration in days",
            json!({"tokenLifetimes": {"access": "1d"}}),
            false,
        ),
        (
            "duration with decimals",
            json!({"tokenLifetimes": {"refresh": "1.5h"}}),
            false,
        ),
        (
            "composite durations",
            json!({"tokenLifetimes": {"access": "1h30m", "idle": "90m"}}),
            true,
        ),
        (
            "name and existing",
            json!({"secret": {"rotation": null, "existingSecret": "other"}}),
            false,
        ),
        (
            "existing and rotation",
            json!({"secret": {"name": null, "existingSecret": "other"}}),
            false,
        ),
        (
            "upper-case secret name",
            json!({"secret": {"name": "Grafana"}}),
            false,
        ),
        (
            "rotation too often",
            json!({"secret": {"rotation": {"interval": "30m", "gracePeriod": "5m"}}}),
            false,
        ),
        (
            "grace not shorter",
            json!({"secret": {"rotation": {"interval": "2h", "gracePeriod": "2h"}}}),
            false,
        ),
        (
            "grace too short",
            json!({"secret": {"rotation": {"interval": "2h", "gracePeriod": "1m"}}}),
            false,
        ),
        (
            "grace defaults to 24h",
            json!({"secret": {"rotation": {"interval": "12h", "gracePeriod": null}}}),
            false,
        ),
        (
            "grace default fits",
            json!({"secret": {"rotation": {"interval": "48h", "gracePeriod": null}}}),
            true,
        ),
        (
            "rule path relative",
            json!({"access": {"rules": [{"path": "api"}]}}),
            false,
        ),
        (
            "rule path dot segment",
            json!({"access": {"rules": [{"path": "/a/../b"}]}}),
            false,
        ),
        (
            "rule path double slash",
            json!({"access": {"rules": [{"path": "/a//b"}]}}),
            false,
        ),
        (
            "rule path query",
            json!({"access": {"rules": [{"path": "/a?b"}]}}),
            false,
        ),
        (
            "rule lower-case method",
            json!({"access": {"rules": [{"path": "/a", "methods": ["get"]}]}}),
            false,
        ),
        (
            "public rule with groups",
            json!({"access": {"rules": [{"path": "/a", "public": true, "groups": ["x"]}]}}),
            false,
        ),
        (
            "public rule with scopes",
            json!({"access": {"rules": [{"path": "/a", "public": true, "scopes": ["x"]}]}}),
            false,
        ),
        (
            "domain with at",
            json!({"access": {"allowedEmailDomains": ["@example.com"]}}),
            false,
        ),
        (
            "domain with dot",
            json!({"access": {"allowedEmailDomains": [".example.com"]}}),
            false,
        ),
        (
            "not an email",
            json!({"access": {"allowedEmails": ["nobody"]}}),
            false,
        ),
        (
            "rule scope with space",
            json!({"access": {"rules": [{"path": "/a", "scopes": ["a b"]}]}}),
            false,
        ),
        (
            "root rule",
            json!({"access": {"rules": [{"path": "/", "groups": ["x"]}]}}),
            true,
        ),
    ]
}

/// Cases that only a CEL rule (not a pattern or bound) can catch, with a fragment of its message.
const CEL_CAUGHT: &[(&str, &str)] = &[
    (
        "public client_credentials",
        "public client cannot use the client_credentials",
    ),
    ("public with rotation", "no client secret to rotate"),
    ("code without redirect", "needs at least one redirect URI"),
    (
        "refresh without code",
        "refresh_token grant needs the authorization_code",
    ),
    (
        "logout without code",
        "postLogoutRedirectURIs need the authorization_code",
    ),
    ("access too long", "tokenLifetimes.access must be between"),
    ("access too short", "tokenLifetimes.access must be between"),
    ("idle above refresh", "tokenLifetimes.idle must be"),
    (
        "refresh beyond a year",
        "tokenLifetimes.refresh must be between",
    ),
    ("name and existing", "mutually exclusive"),
    ("existing and rotation", "rotated by whoever manages it"),
    ("rotation too often", "interval must be at least 1h"),
    ("grace not shorter", "shorter than the interval"),
    ("grace too short", "shorter than the interval"),
    ("grace defaults to 24h", "shorter than the interval"),
    ("rule path dot segment", "must not contain . or .. segments"),
    (
        "delegated client id of a registered client",
        "set dynamicClients: withConsent instead",
    ),
    ("public rule with groups", "public rule cannot also require"),
    ("public rule with scopes", "public rule cannot also require"),
];

fn object(patch: &Value) -> Value {
    if patch.is_null() {
        return json!({"displayName": "Minimal", "redirectURIs": ["https://m.example.com/cb"]});
    }
    let mut v = base();
    merge(&mut v, patch);
    v
}

#[test]
fn cel_rules_agree_with_validate() {
    let schema = spec_schema();
    let evaluator = Evaluator {
        env: Arc::new(Env::stdlib()),
    };
    let mut failures = Vec::new();
    for (name, patch, expect_valid) in cases() {
        let raw = object(&patch);
        // Defaulting, as the API server does before validating: the serde defaults are the
        // schema's defaults.
        let spec: ConnectedAppSpec = serde_json::from_value(raw).unwrap();
        let defaulted = serde_json::to_value(&spec).unwrap();
        let mut schema_errors = Vec::new();
        evaluator.check(&schema, &defaulted, "spec", &mut schema_errors);
        let problems = validate(&spec);
        let rust_valid = problems.is_empty();
        let schema_valid = schema_errors.is_empty();
        if let Some((_, fragment)) = CEL_CAUGHT.iter().find(|(case, _)| *case == name)
            && !schema_errors.iter().any(|e| e.contains(fragment))
        {
            failures.push(format!(
                "{name}: expected the CEL rule {fragment:?} to fire, got {schema_errors:?}"
            ));
        }
        if rust_valid != expect_valid || schema_valid != expect_valid {
            failures.push(format!(
                "{name}: expected valid={expect_valid}, validate={rust_valid} {problems:?}, schema={schema_valid} {schema_errors:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_rule_compiles_and_has_a_message() {
    fn walk(schema: &Value, env: &Arc<Env>, count: &mut usize) {
        if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
            for rule in rules {
                let text = rule["rule"].as_str().unwrap();
                assert!(env.compile(text).is_ok(), "{text}");
                assert!(rule["message"].as_str().is_some_and(|m| !m.is_empty()));
                *count += 1;
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            props.values().for_each(|s| walk(s, env, count));
        }
        if !schema["items"].is_null() {
            walk(&schema["items"], env, count);
        }
    }
    let env = Arc::new(Env::stdlib());
    let mut count = 0;
    walk(&spec_schema(), &env, &mut count);
    assert_eq!(count, 16);
}

#[test]
fn unknown_enum_values_are_rejected_by_both() {
    // The typed API refuses what the schema's `enum` refuses.
    for (field, value) in [
        ("clientType", "secret"),
        ("trust", "full"),
        ("grantTypes", "implicit"),
        ("access", "always"),
    ] {
        let mut raw = base();
        raw[field] = if field == "grantTypes" {
            json!([value])
        } else if field == "access" {
            json!({"dynamicClients": value})
        } else {
            json!(value)
        };
        assert!(serde_json::from_value::<ConnectedAppSpec>(raw.clone()).is_err());
        let evaluator = Evaluator {
            env: Arc::new(Env::stdlib()),
        };
        let mut errors = Vec::new();
        evaluator.check(&spec_schema(), &raw, "spec", &mut errors);
        assert!(!errors.is_empty(), "{field}");
    }
}
