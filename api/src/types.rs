//! The `ConnectedApp` types. Doc comments become the schema's descriptions (`kubectl explain`).

use contract::access::Access;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use contract::duration::DURATION_PATTERN;

/// API group of the custom resource.
pub const GROUP: &str = "keyway.dev";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// The finalizer the operator puts on every ConnectedApp.
pub const FINALIZER: &str = "keyway.dev/cleanup";
/// The `Ready` condition type.
pub const CONDITION_READY: &str = "Ready";

/// Pattern of redirect, post-logout redirect and resource URIs: `https://` with a host, or
/// `http://` on a loopback host (`127.0.0.1`, `[::1]`, `localhost`), an optional port, an
/// optional path (with query) starting with `/`; no user info, no fragment, no whitespace or
/// control characters. Matched exactly as written (no normalisation) by the issuer.
pub const URI_PATTERN: &str = r"^(https://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])|http://(127\.0\.0\.1|\[::1\]|localhost))(:[0-9]{1,5})?(/[^#\s\p{Cc}]*)?$";
/// Pattern of `logoURI`: an https URL (the consent page loads it).
pub const HTTPS_URI_PATTERN: &str = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^#\s\p{Cc}]*)?$";
/// Pattern of a pinned `clientID`. No `/` so that it fits in a path segment, and no `:` so that
/// it never has the shape of a federated person's subject (`<provider id>:<sub>`), which a
/// client's own tokens would then pass for (RFC 9068 §5).
pub const CLIENT_ID_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$";
/// Pattern of a scope token (RFC 6749 section 3.3: `%x21 / %x23-5B / %x5D-7E`).
pub const SCOPE_PATTERN: &str = r"^[!#-\[\]-~]+$";
/// Pattern of a Secret name (DNS-1123 subdomain).
pub const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Limits that keep objects small and CEL rule costs bounded.
pub mod limits {
    /// Maximum length of `displayName`.
    pub const DISPLAY_NAME: usize = 100;
    /// Maximum length of `description`.
    pub const DESCRIPTION: usize = 1000;
    /// Maximum length of a URI.
    pub const URI: usize = 2048;
    /// Maximum number of redirect URIs (each list).
    pub const URIS: usize = 32;
    /// Maximum number of scopes.
    pub const SCOPES: usize = 64;
    /// Maximum length of a scope, a group, an email, a domain, a path or a name.
    pub const NAME: usize = 253;
    /// Maximum number of entries of each `access` list.
    pub const ACCESS_LIST: usize = 256;
    /// Maximum number of access rules.
    pub const RULES: usize = 128;
}

/// A tool, service or agent that signs people in through keyway (an OAuth 2.1 / OpenID Connect
/// client). The operator registers it (a stable client ID, a generated client secret whose hash
/// is published in status) and writes a Secret with its credentials and access policy for the
/// keyway-proxy sidecar.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "keyway.dev",
    version = "v1alpha1",
    kind = "ConnectedApp",
    plural = "connectedapps",
    singular = "connectedapp",
    shortname = "capp",
    namespaced,
    status = "ConnectedAppStatus",
    derive = "PartialEq",
    doc = "A ConnectedApp: an OAuth 2.1 / OpenID Connect client of the keyway issuer, declared in Kubernetes.",
    printcolumn = r#"{"name":"Client ID","type":"string","description":"The OAuth client ID","jsonPath":".status.clientID"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the app is registered and its Secret written","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"description":"Why the app is (not) ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(self.clientType == 'public' && 'client_credentials' in self.grantTypes)",
        "message": "a public client cannot use the client_credentials grant: it has no secret to authenticate with",
        "fieldPath": ".grantTypes",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "!('authorization_code' in self.grantTypes) || size(self.redirectURIs) > 0",
        "message": "the authorization_code grant needs at least one redirect URI",
        "fieldPath": ".redirectURIs",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "!('refresh_token' in self.grantTypes) || 'authorization_code' in self.grantTypes",
        "message": "the refresh_token grant needs the authorization_code grant (refresh tokens are only issued with a code)",
        "fieldPath": ".grantTypes",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "size(self.postLogoutRedirectURIs) == 0 || 'authorization_code' in self.grantTypes",
        "message": "postLogoutRedirectURIs need the authorization_code grant (only signed-in people log out)",
        "fieldPath": ".postLogoutRedirectURIs",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "!has(self.clientID) || !self.clientID.startsWith('dcr.')",
        "message": "clientID must not start with 'dcr.', which is reserved for dynamically registered clients",
        "fieldPath": ".clientID",
        "reason": "FieldValueInvalid"
    },
    {
        "rule": "self.clientType != 'public' || !has(self.secret.rotation)",
        "message": "a public client has no client secret to rotate: remove secret.rotation",
        "fieldPath": ".secret.rotation",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct ConnectedAppSpec {
    /// Name of the app as shown to people on the consent and account pages.
    #[schemars(length(min = 1, max = limits::DISPLAY_NAME))]
    pub display_name: String,

    /// One or two sentences shown on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::DESCRIPTION))]
    pub description: Option<String>,

    /// URL of the app's logo (https) shown on the consent page.
    #[serde(rename = "logoURI", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::URI), pattern(HTTPS_URI_PATTERN))]
    pub logo_uri: Option<String>,

    /// Pins the OAuth client ID. Default: `<namespace>.<name>`, which stays the same when the app
    /// is deleted and applied again. Letters, digits and `._-` (no `:`, which federated people's
    /// subjects use), starting and ending with a letter or digit; must not start with `dcr.`
    /// (reserved for dynamically registered clients). An ID with a `.` must start with the app's
    /// own `<namespace>.`, so it is never another namespace's default ID (else the app is not a
    /// client: `Ready=False`, reason `InvalidSpec`).
    /// When another app claims the same ID, the one it was issued to keeps it (else the one
    /// created first) and the other is not a client (`Ready=False`, reason `ClientIDConflict`).
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::NAME), pattern(CLIENT_ID_PATTERN))]
    pub client_id: Option<String>,

    /// `confidential` (the default: the app authenticates with a client secret) or `public`
    /// (browser, desktop and CLI apps and agents that cannot keep a secret; PKCE only).
    #[serde(default)]
    pub client_type: ClientType,

    /// `firstParty` (the default: an in-house app; consent is skipped) or `thirdParty` (consent is
    /// always asked).
    #[serde(default)]
    pub trust: Trust,

    /// Redirect URIs, compared exactly as written. https, or http only on a loopback host
    /// (127.0.0.1, [::1], localhost). The sidecar's callback is `<external URL>/oauth2/callback`.
    #[serde(rename = "redirectURIs", default)]
    #[schemars(
        length(max = limits::URIS),
        inner(length(max = limits::URI), pattern(URI_PATTERN))
    )]
    pub redirect_uris: Vec<String>,

    /// Where the issuer may send people after logging out (RP-initiated logout), compared exactly.
    #[serde(rename = "postLogoutRedirectURIs", default)]
    #[schemars(
        length(max = limits::URIS),
        inner(length(max = limits::URI), pattern(URI_PATTERN))
    )]
    pub post_logout_redirect_uris: Vec<String>,

    /// OAuth grant types the app may use. Default: authorization_code and refresh_token.
    #[serde(default = "default_grant_types")]
    #[schemars(length(min = 1, max = 3))]
    pub grant_types: Vec<GrantType>,

    /// Scopes the app may request. Default: openid, profile, email.
    #[serde(default = "default_scopes")]
    #[schemars(
        length(max = limits::SCOPES),
        inner(length(max = limits::NAME), pattern(SCOPE_PATTERN))
    )]
    pub scopes: Vec<String>,

    /// The URL that identifies the protected tool: the audience of access tokens issued for it
    /// (RFC 8707) and the `resource` of its protected resource metadata (RFC 9728). Same rules as
    /// redirect URIs; no fragment. Compared byte for byte: when another app claims the same
    /// resource, the one holding it keeps it (else the one created first) and the other is not a
    /// client (`Ready=False`, reason `ResourceConflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::URI), pattern(URI_PATTERN))]
    pub resource: Option<String>,

    /// Who may sign in to the app, and per-path rules enforced by the sidecar.
    #[serde(default)]
    #[schemars(schema_with = "access_schema")]
    pub access: Access,

    /// Lifetimes of the tokens issued to the app.
    #[serde(default)]
    pub token_lifetimes: TokenLifetimes,

    /// The Secret holding the app's credentials.
    #[serde(default)]
    pub secret: SecretSpec,
}

/// Whether the app can keep a secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientType {
    /// Authenticates with a client secret (client_secret_basic or client_secret_post).
    #[default]
    Confidential,
    /// Cannot keep a secret: no client secret, PKCE only.
    Public,
}

/// Whether people are asked for consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Trust {
    /// An in-house app: consent is skipped.
    #[default]
    FirstParty,
    /// Consent is always asked (and remembered per person and scope set).
    ThirdParty,
}

/// An OAuth grant type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// The authorization code flow with PKCE (people signing in).
    AuthorizationCode,
    /// Refresh tokens (with rotation), issued together with codes.
    RefreshToken,
    /// Service-to-service tokens for confidential clients.
    ClientCredentials,
}

impl GrantType {
    /// The grant type as written in OAuth (`authorization_code`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

/// Token lifetimes, as durations such as `10m`, `720h` or `1h30m` (units h, m, s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "duration(self.access) >= duration('1m') && duration(self.access) <= duration('24h')",
        "message": "tokenLifetimes.access must be between 1m and 24h",
        "fieldPath": ".access"
    },
    {
        "rule": "duration(self.refresh) >= duration('1m') && duration(self.refresh) <= duration('8760h')",
        "message": "tokenLifetimes.refresh must be between 1m and 8760h (one year)",
        "fieldPath": ".refresh"
    },
    {
        "rule": "duration(self.idle) >= duration('1m') && duration(self.idle) <= duration(self.refresh)",
        "message": "tokenLifetimes.idle must be at least 1m and at most tokenLifetimes.refresh",
        "fieldPath": ".idle"
    }
]))]
pub struct TokenLifetimes {
    /// Lifetime of access tokens (1m to 24h). Default 10m.
    #[serde(default = "default_access")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub access: String,
    /// Absolute lifetime of a refresh token family from sign-in (1m to 8760h). Default 720h.
    #[serde(default = "default_refresh")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub refresh: String,
    /// A refresh token unused for this long expires (1m up to `refresh`). Default 24h.
    #[serde(default = "default_idle")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub idle: String,
}

fn default_access() -> String {
    "10m".into()
}
fn default_refresh() -> String {
    "720h".into()
}
fn default_idle() -> String {
    "24h".into()
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: default_access(),
            refresh: default_refresh(),
            idle: default_idle(),
        }
    }
}

/// Where the app's credentials live.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.name) && has(self.existingSecret))",
        "message": "secret.name and secret.existingSecret are mutually exclusive",
        "fieldPath": ".existingSecret"
    },
    {
        "rule": "!(has(self.existingSecret) && has(self.rotation))",
        "message": "secret.rotation needs a Secret keyway writes; an existingSecret is rotated by whoever manages it",
        "fieldPath": ".rotation"
    }
]))]
pub struct SecretSpec {
    /// Name of the Secret the operator writes (same namespace). Default: `<app name>-keyway`.
    /// A Secret of that name that keyway does not own is never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::NAME), pattern(SECRET_NAME_PATTERN))]
    pub name: Option<String>,

    /// Use a Secret managed by someone else (e.g. ExternalSecrets) instead of writing one. It must
    /// hold `client-id`, `client-secret` (confidential apps), `issuer-url`, `cookie-secret` and
    /// `policy.json`… see docs/operator.md. The operator waits for it and never invents credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::NAME), pattern(SECRET_NAME_PATTERN))]
    pub existing_secret: Option<String>,

    /// Rotate the client secret periodically. Without it, the secret is never rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// Periodic rotation of the client secret: a new secret replaces the old one in the Secret, and
/// both are accepted by the issuer until the grace period ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "duration(self.interval) >= duration('1h')",
        "message": "secret.rotation.interval must be at least 1h",
        "fieldPath": ".interval"
    },
    {
        "rule": "duration(self.gracePeriod) >= duration('5m') && duration(self.gracePeriod) < duration(self.interval)",
        "message": "secret.rotation.gracePeriod must be at least 5m and shorter than the interval",
        "fieldPath": ".gracePeriod"
    }
]))]
pub struct Rotation {
    /// How often a new client secret is generated, e.g. `720h`. At least 1h.
    #[schemars(pattern(DURATION_PATTERN))]
    pub interval: String,
    /// How long the previous secret stays valid after a rotation, so that running clients pick
    /// up the new one. At least 5m, shorter than the interval. Default 24h.
    #[serde(default = "default_idle")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub grace_period: String,
}

/// Observed state, written by the operator (server-side apply, field manager `keyway-operator`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedAppStatus {
    /// The OAuth client ID.
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The `spec.resource` the app holds: absent while another app holds it (`Ready=False`,
    /// reason `ResourceConflict`). While recorded here, no newer or older app can take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The Secret holding the credentials (written by keyway, or the existingSecret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The issuer URL the app uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, with a reason and message saying why (not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Hashes of the client secrets the issuer accepts (current first); a secret being rotated
    /// out carries the time it stops being accepted. The issuer verifies client authentication
    /// against these and never reads Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_secrets: Vec<ClientSecretHash>,
}

/// One accepted client secret, as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretHash {
    /// `contract::secret::hash_client_secret` of the secret: `sha256:` and lowercase hex.
    pub hash: String,
    /// When the issuer stops accepting it (absent: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

impl ConnectedApp {
    /// The OAuth client ID: `spec.clientID`, or `<namespace>.<name>` (namespaces contain no dots,
    /// so distinct apps get distinct IDs). `None` only for an object without a namespace.
    pub fn client_id(&self) -> Option<String> {
        if let Some(pinned) = &self.spec.client_id {
            return Some(pinned.clone());
        }
        let ns = self.metadata.namespace.as_deref()?;
        Some(format!("{ns}.{}", self.name_any()))
    }

    /// The name of the Secret with the app's credentials: `spec.secret.existingSecret`, else
    /// `spec.secret.name`, else `<name>-keyway`.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret
            .existing_secret
            .clone()
            .or_else(|| self.spec.secret.name.clone())
            .unwrap_or_else(|| format!("{}-keyway", self.name_any()))
    }

    /// Whether the `Ready` condition is `True` for the current generation.
    pub fn is_ready(&self) -> bool {
        let Some(status) = &self.status else {
            return false;
        };
        status.observed_generation == self.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == CONDITION_READY && c.status == "True")
    }
}

impl ConnectedAppSpec {
    /// Whether the app has a client secret.
    pub fn is_confidential(&self) -> bool {
        self.client_type == ClientType::Confidential
    }

    /// The policy the sidecar reads from the Secret's `policy.json`.
    pub fn app_policy(&self) -> contract::secret::AppPolicy {
        contract::secret::AppPolicy {
            resource: self.resource.clone(),
            scopes: self.scopes.clone(),
            access: self.access.clone(),
        }
    }
}

/// Pattern of an allowed email address (as `contract::access` checks it).
pub const EMAIL_PATTERN: &str = r"^[^@]+@[\s\S]+$";
/// Pattern of an allowed email domain (as `contract::access` checks it).
pub const EMAIL_DOMAIN_PATTERN: &str = r"^[^@.][^@]*$";
/// Pattern of a rule path (as `contract::access` checks it, except for `.`/`..` segments, which a
/// CEL rule excludes).
pub const RULE_PATH_PATTERN: &str = r"^/([^/?#%;\\\p{Cc}]+/?)*$";
/// Pattern that finds a `.` or `..` segment in a rule path.
pub const DOT_SEGMENT_PATTERN: &str = "/[.][.]?(/|$)";

/// The schema of `access`: `contract::access::Access` with bounds (the API server budgets CEL
/// costs by list and string sizes) and the constraints of `Access::problems`.
fn access_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    use serde_json::json;
    let mut schema = <Access as JsonSchema>::json_schema(generator);
    let string_list = |pattern: Option<&str>| {
        let mut items = json!({"type": "string", "maxLength": limits::NAME});
        if let (Some(pattern), Some(obj)) = (pattern, items.as_object_mut()) {
            obj.insert("pattern".into(), json!(pattern));
        }
        json!({"type": "array", "maxItems": limits::ACCESS_LIST, "items": items})
    };
    let methods: Vec<&str> = contract::access::METHODS.to_vec();
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        let mut set = |key: &str, value: serde_json::Value| {
            if let Some(obj) = props.get_mut(key).and_then(|v| v.as_object_mut())
                && let Some(extra) = value.as_object()
            {
                for (k, v) in extra {
                    obj.insert(k.clone(), v.clone());
                }
            }
        };
        set("allowedGroups", string_list(None));
        set("allowedEmails", string_list(Some(EMAIL_PATTERN)));
        set(
            "allowedEmailDomains",
            string_list(Some(EMAIL_DOMAIN_PATTERN)),
        );
        set("allowedClients", string_list(Some(CLIENT_ID_PATTERN)));
        let mut delegated = string_list(Some(CLIENT_ID_PATTERN));
        if let Some(obj) = delegated.as_object_mut() {
            obj.insert(
                "x-kubernetes-validations".into(),
                json!([{
                    "rule": format!("self.all(c, !c.startsWith('{}'))", contract::access::DYNAMIC_CLIENT_ID_PREFIX),
                    "message": "access.delegatedClients: a dynamically registered client's ID changes with each registration: set dynamicClients: withConsent instead"
                }]),
            );
        }
        set("delegatedClients", delegated);
        set("rules", json!({"maxItems": limits::RULES}));
        if let Some(rule) = props
            .get_mut("rules")
            .and_then(|r| r.get_mut("items"))
            .and_then(|i| i.as_object_mut())
        {
            rule.insert(
                "x-kubernetes-validations".into(),
                json!([
                    {
                        "rule": format!("!self.path.matches('{DOT_SEGMENT_PATTERN}')"),
                        "message": "access.rules: path must not contain . or .. segments",
                        "fieldPath": ".path"
                    },
                    {
                        "rule": "!(has(self.public) && self.public) || ((!has(self.groups) || size(self.groups) == 0) && (!has(self.scopes) || size(self.scopes) == 0))",
                        "message": "access.rules: a public rule cannot also require groups or scopes"
                    }
                ]),
            );
            if let Some(rule_props) = rule.get_mut("properties").and_then(|p| p.as_object_mut()) {
                rule_props.insert(
                    "path".into(),
                    json!({
                        "type": "string",
                        "description": "Normalised absolute path prefix, e.g. `/api` or `/healthz`.",
                        "maxLength": limits::NAME,
                        "pattern": RULE_PATH_PATTERN,
                    }),
                );
                let mut list = |key: &str, items: serde_json::Value| {
                    if let Some(obj) = rule_props.get_mut(key).and_then(|v| v.as_object_mut()) {
                        obj.insert("maxItems".into(), json!(limits::ACCESS_LIST));
                        obj.insert("items".into(), items);
                    }
                };
                list("methods", json!({"type": "string", "enum": methods}));
                list(
                    "groups",
                    json!({"type": "string", "maxLength": limits::NAME}),
                );
                list(
                    "scopes",
                    json!({"type": "string", "maxLength": limits::NAME, "pattern": SCOPE_PATTERN}),
                );
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MANIFEST: &str = r#"
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata:
  name: grafana
  namespace: tools
spec:
  displayName: Grafana
  redirectURIs: [https://grafana.example.com/oauth2/callback]
  access:
    allowedGroups: [engineering]
    rules:
      - {path: /healthz, public: true}
"#;

    #[test]
    fn a_manifest_reads_with_defaults() {
        let app: ConnectedApp = serde_yaml::from_str(MANIFEST).unwrap();
        assert_eq!(app.client_id().as_deref(), Some("tools.grafana"));
        assert_eq!(app.secret_name(), "grafana-keyway");
        assert_eq!(app.spec.client_type, ClientType::Confidential);
        assert_eq!(app.spec.trust, Trust::FirstParty);
        assert_eq!(
            app.spec.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(app.spec.scopes, ["openid", "profile", "email"]);
        assert_eq!(app.spec.token_lifetimes, TokenLifetimes::default());
        assert!(app.spec.access.rules[0].public);
        assert!(crate::validate(&app.spec).is_empty());
        assert!(!app.is_ready());
    }

    #[test]
    fn secret_name_and_client_id_overrides() {
        let mut app: ConnectedApp = serde_yaml::from_str(MANIFEST).unwrap();
        app.spec.secret.name = Some("creds".into());
        assert_eq!(app.secret_name(), "creds");
        app.spec.secret.name = None;
        app.spec.secret.existing_secret = Some("vault".into());
        assert_eq!(app.secret_name(), "vault");
        app.spec.client_id = Some("grafana".into());
        assert_eq!(app.client_id().as_deref(), Some("grafana"));
        app.metadata.namespace = None;
        app.spec.client_id = None;
        assert_eq!(app.client_id(), None);
    }

    #[test]
    fn ready_means_ready_for_the_current_generation() {
        let mut app: ConnectedApp = serde_yaml::from_str(MANIFEST).unwrap();
        app.metadata.generation = Some(2);
        let condition = |status: &str| Condition {
            type_: CONDITION_READY.into(),
            status: status.into(),
            reason: "Registered".into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        app.status = Some(ConnectedAppStatus {
            observed_generation: Some(1),
            conditions: vec![condition("True")],
            ..ConnectedAppStatus::default()
        });
        assert!(!app.is_ready(), "status of an older generation");
        app.status.as_mut().unwrap().observed_generation = Some(2);
        assert!(app.is_ready());
        app.status.as_mut().unwrap().conditions = vec![condition("False")];
        assert!(!app.is_ready());
    }

    #[test]
    fn status_serialises_in_the_documented_shape() {
        let status = ConnectedAppStatus {
            client_id: Some("tools.grafana".into()),
            client_secrets: vec![ClientSecretHash {
                hash: "sha256:00".into(),
                expires_at: Some(Time("2026-01-01T00:00:00Z".parse().unwrap())),
            }],
            ..ConnectedAppStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"clientID": "tools.grafana",
                "clientSecrets": [{"hash": "sha256:00", "expiresAt": "2026-01-01T00:00:00Z"}]})
        );
    }
}
