//! Upstream OpenID providers (federation): their settings, the relying-party client with its
//! cached metadata and keys, the sealed cookie of a pending sign-in, ID-token validation and
//! the mapping of their claims to ours. The URLs are `crate::endpoints::federation`.
//!
//! People sign in at an upstream OpenID provider (Okta, Google, Entra, Keycloak…) with the code
//! flow and PKCE S256; its ID token (and userinfo) become a keyway session.
//!
//! - `/upstream/start/{provider}?request=…` stores `state`, `nonce`, the PKCE verifier and the pending
//!   authorization request in a short-lived cookie (`keyway_issuer_upstream`) authenticated
//!   with HMAC-SHA256 under a key kept in the keys directory (`cookie.key`), then redirects to
//!   the upstream.
//! - `/upstream/callback` checks the cookie, `state` and RFC 9207 `iss` (required when the
//!   upstream's metadata says `authorization_response_iss_parameter_supported`, compared exactly
//!   whenever present), redeems the code (client_secret_basic, or client_secret_post when that
//!   is all the upstream supports), validates the ID token by the `oidc` crate's rules (the
//!   algorithm is the key's, never the header's; `typ`, `iss`, `aud`, `azp`, `exp`, `nbf`,
//!   `nonce`), reads userinfo when the upstream has one, maps the groups claim (dotted path,
//!   optional prefix) and creates the session.
//! - The upstream's metadata and keys are fetched at the first sign-in and kept; a token naming
//!   an unknown `kid` fetches the keys again, at most once per [`KEY_REFETCH_INTERVAL`].
//! - Subjects are namespaced: keyway's `sub` for a federated person is `<provider id>:<upstream
//!   sub>`. Provider IDs contain no `:` and static users' subjects may not contain one, so no
//!   upstream can produce the `sub` of a static user or of another provider's user (OIDC Core
//!   requires `sub` to be unique within the issuer).
//! - The upstream's `email` is kept only when it says `email_verified: true` (a missing or false
//!   `email_verified` drops the address, so it neither passes `access.allowedEmails` /
//!   `allowedEmailDomains` nor reaches tokens), unless the provider is configured with
//!   `insecureTrustUnverifiedEmail`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use oidc::jwt::{IdTokenCheck, TokenError};
use oidc::{KeySet, Provider};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::store::Claims;

/// Name of the cookie carrying the pending upstream sign-in.
pub(crate) const COOKIE: &str = "keyway_issuer_upstream";
/// Least time between two key fetches an unknown `kid` triggers.
pub(crate) const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Clock skew allowed on an upstream's ID tokens.
const LEEWAY: u64 = 60;

/// Upstream provider settings.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamConfig {
    /// Short identifier (`default` for the one given by flags).
    pub id: String,
    /// Issuer URL (exact).
    pub issuer: String,
    /// Our client ID there.
    pub client_id: String,
    /// Our client secret there.
    pub client_secret: String,
    /// Button text on the login page.
    pub name: String,
    /// Scopes to ask for.
    pub scopes: String,
    /// Claim holding groups (dotted path, e.g. `groups` or `realm_access.roles`).
    pub groups_claim: String,
    /// Prefix added to every upstream group.
    pub groups_prefix: String,
    /// Take the upstream's `email` as verified even without `email_verified: true` (insecure:
    /// anyone who can set an unverified address there passes email-based access rules).
    pub insecure_trust_unverified_email: bool,
}

/// Longest provider ID: keeps `<id>:<upstream sub>` within OIDC's 255 characters for any
/// realistic upstream `sub`.
pub(crate) const MAX_ID_LEN: usize = 32;

/// Whether `id` is a valid provider ID: 1 to [`MAX_ID_LEN`] ASCII letters, digits and `-`
/// (never `:`, which separates it from the upstream `sub` in keyway's subjects).
pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A configured upstream with its HTTP client and cached metadata and keys.
pub(crate) struct Upstream {
    /// Settings.
    pub config: UpstreamConfig,
    pub(crate) client: oidc::Client,
    provider: Mutex<Option<Arc<Provider>>>,
    pub(crate) cookie_key: CookieKey,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Why an upstream ID token was refused.
pub(crate) enum IdTokenError {
    /// Its `nonce` is not this sign-in's.
    Nonce,
    /// Anything else (signature, key, claims).
    Other(String),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) provider: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) request: String,
    pub(crate) exp: i64,
}

impl Upstream {
    /// Builds the upstream client (system trust roots).
    pub(crate) fn new(
        config: UpstreamConfig,
        cookie_key: CookieKey,
    ) -> std::result::Result<Self, String> {
        Ok(Self {
            config,
            client: oidc::Client::new(true, None)?,
            provider: Mutex::new(None),
            cookie_key,
        })
    }

    /// The upstream's metadata and keys, fetched at first use (and again after a failure).
    pub(crate) async fn provider(&self) -> std::result::Result<Arc<Provider>, String> {
        let mut cached = self.provider.lock().await;
        if let Some(p) = cached.as_ref() {
            return Ok(p.clone());
        }
        let loaded = Arc::new(
            self.client
                .load(&self.config.issuer)
                .await
                .map_err(|e| e.to_string())?,
        );
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// The pending sign-in, sealed for its cookie (HMAC-SHA256 under the cookie key).
    pub(crate) fn seal(&self, p: &Pending) -> Option<String> {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(p).ok()?);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.cookie_key.get()?).ok()?;
        mac.update(body.as_bytes());
        Some(format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    /// The pending sign-in of a cookie, if its seal holds and it has not expired.
    pub(crate) fn open(&self, sealed: &str, now: i64) -> Option<Pending> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.cookie_key.get()?).ok()?;
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).ok()?;
        let p: Pending = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (p.exp > now).then_some(p)
    }

    /// Validates an upstream ID token ([`oidc::jwt::id_token_claims`]); returns its claims.
    pub(crate) fn validate_id_token(
        &self,
        token: &str,
        keys: &KeySet,
        nonce: &str,
    ) -> std::result::Result<serde_json::Map<String, Value>, IdTokenError> {
        let check = IdTokenCheck {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce: Some(nonce),
            leeway: LEEWAY,
        };
        oidc::jwt::id_token_claims(token, keys, &check).map_err(|e| match e {
            TokenError::Nonce => IdTokenError::Nonce,
            other => IdTokenError::Other(other.to_string()),
        })
    }

    /// Validates `token` with the provider's keys, fetching them again first when the token
    /// names a key they lack.
    pub(crate) async fn checked_id_token(
        &self,
        provider: &Provider,
        token: &str,
        nonce: &str,
    ) -> std::result::Result<serde_json::Map<String, Value>, IdTokenError> {
        let kid = oidc::jwt::head(token).ok().and_then(|h| h.kid);
        if provider.keys().lacks_kid(kid.as_deref()) {
            self.client
                .refetch_keys(provider, KEY_REFETCH_INTERVAL)
                .await;
        }
        self.validate_id_token(token, &provider.keys(), nonce)
    }

    /// Maps upstream claims to ours.
    pub(crate) fn map_claims(&self, c: &serde_json::Map<String, Value>) -> Claims {
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        let mut node = Some(&Value::Object(c.clone())).cloned();
        for part in self.config.groups_claim.split('.') {
            node = node.and_then(|n| n.get(part).cloned());
        }
        let groups = match node {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(|g| format!("{}{g}", self.config.groups_prefix))
                .collect(),
            Some(Value::String(g)) => vec![format!("{}{g}", self.config.groups_prefix)],
            _ => Vec::new(),
        };
        // Only a verified address counts (OIDC Core §5.1 `email_verified`); a missing claim is
        // not a verification.
        let verified = self.config.insecure_trust_unverified_email
            || c.get("email_verified").and_then(Value::as_bool) == Some(true);
        let email = s("email").filter(|_| verified);
        Claims {
            email_verified: email.as_ref().map(|_| true),
            email,
            name: s("name"),
            preferred_username: s("preferred_username"),
            groups,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileEntry {
    id: String,
    issuer: String,
    client_id: String,
    client_secret: String,
    name: Option<String>,
    scopes: Option<String>,
    groups_claim: Option<String>,
    groups_prefix: Option<String>,
    #[serde(default)]
    insecure_trust_unverified_email: bool,
}

/// Reads an upstreams file (see `--upstreams-file`).
pub(crate) fn load_file(
    path: &std::path::Path,
) -> std::result::Result<Vec<UpstreamConfig>, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let entries: Vec<FileEntry> =
        serde_yaml::from_str(&text).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let mut problems = Vec::new();
    let out = entries
        .into_iter()
        .map(|e| {
            if !is_valid_id(&e.id) {
                problems.push(format!(
                    "id {:?}: 1 to {MAX_ID_LEN} letters, digits and - only",
                    e.id
                ));
            }
            UpstreamConfig {
                name: e.name.unwrap_or_else(|| e.id.clone()),
                id: e.id,
                issuer: e.issuer,
                client_id: e.client_id,
                client_secret: e.client_secret,
                scopes: e.scopes.unwrap_or_else(|| "openid email profile".into()),
                groups_claim: e.groups_claim.unwrap_or_else(|| "groups".into()),
                groups_prefix: e.groups_prefix.unwrap_or_default(),
                insecure_trust_unverified_email: e.insecure_trust_unverified_email,
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The key that authenticates the federation cookie, shared by every upstream. With a read-only
/// key directory (a Secret the operator manages) it may appear after start-up: until then
/// federated sign-in answers 503 and `/readyz` says not ready.
#[derive(Clone, Debug, Default)]
pub(crate) struct CookieKey(Arc<OnceLock<[u8; 32]>>);

impl CookieKey {
    /// The key, once loaded.
    pub(crate) fn get(&self) -> Option<&[u8; 32]> {
        self.0.get()
    }

    /// Loads the key from `dir` unless it is loaded already (see [`cookie_key`]).
    pub(crate) fn load(&self, dir: &std::path::Path, create: bool) -> std::io::Result<()> {
        if self.0.get().is_none() {
            let key = cookie_key(dir, create)?;
            let _ = self.0.set(key);
        }
        Ok(())
    }
}

/// Loads (or, when `create`, creates with mode 0600) the cookie-authentication key in the keys
/// directory.
pub(crate) fn cookie_key(dir: &std::path::Path, create: bool) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("cookie.key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(bytes) = STANDARD.decode(text.trim())
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    if !create {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "cookie.key is missing or not 32 bytes in base64",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let key = crate::random::random_bytes::<32>();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(STANDARD.encode(key).as_bytes())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};

    const UP: &str = "https://upstream.example";

    /// An RSA key published for RS256 (the `oidc` crate's test key), and a token signed with
    /// it under `alg`.
    fn rsa_token(alg: &str) -> (String, oidc::KeySet) {
        use contract::signing_keys::{Alg, public_jwk};
        let pem = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../oidc/testdata/rsa-2048.pk8.pem"
        ));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        let jwk = public_jwk(Alg::Rs256, &der).unwrap();
        assert_eq!(jwk["alg"], "RS256");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let head = serde_json::json!({"alg": alg, "kid": jwk["kid"], "typ": "JWT"});
        let claims = serde_json::json!({"iss": UP, "aud": "keyway", "sub": "u-1",
                                        "exp": now + 300, "nonce": "n"});
        let input = format!(
            "{}.{}",
            B64.encode(head.to_string()),
            B64.encode(claims.to_string())
        );
        let padding: &'static dyn ring::signature::RsaEncoding = match alg {
            "RS256" => &ring::signature::RSA_PKCS1_SHA256,
            "RS384" => &ring::signature::RSA_PKCS1_SHA384,
            _ => &ring::signature::RSA_PSS_SHA256,
        };
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(
            padding,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
        (
            format!("{input}.{}", B64.encode(sig)),
            oidc::KeySet::from_jwks(jwks.as_bytes()).unwrap(),
        )
    }

    fn upstream() -> super::Upstream {
        let config = super::UpstreamConfig {
            id: "up".into(),
            issuer: UP.into(),
            client_id: "keyway".into(),
            client_secret: "s".into(),
            name: "Up".into(),
            scopes: "openid".into(),
            groups_claim: "groups".into(),
            groups_prefix: String::new(),
            insecure_trust_unverified_email: false,
        };
        super::Upstream::new(config, super::CookieKey::default()).unwrap()
    }

    #[test]
    fn an_id_token_is_verified_with_its_keys_algorithm_never_its_headers() {
        let up = upstream();
        let (token, jwks) = rsa_token("RS256");
        assert!(up.validate_id_token(&token, &jwks, "n").is_ok());
        assert!(matches!(
            up.validate_id_token(&token, &jwks, "other"),
            Err(super::IdTokenError::Nonce)
        ));
        // The same key, but the header names another algorithm than the key's: refused, so
        // that a token never chooses how it is verified.
        for alg in ["RS384", "PS256"] {
            let (token, jwks) = rsa_token(alg);
            assert!(
                up.validate_id_token(&token, &jwks, "n").is_err(),
                "{alg} accepted with an RS256 key"
            );
        }
    }

    #[test]
    fn cookie_key_is_created_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        // Read-only key directory (a mounted Secret): a missing key is an error, nothing written.
        assert!(super::cookie_key(dir.path(), false).is_err());
        assert!(!dir.path().join("cookie.key").exists());
        let made = super::cookie_key(dir.path(), true).unwrap();
        assert_eq!(super::cookie_key(dir.path(), false).unwrap(), made);
    }
}
