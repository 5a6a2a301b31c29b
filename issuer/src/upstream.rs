//! Federation: people sign in at an upstream OpenID provider (Okta, Google, Entra, Keycloak…)
//! with the code flow and PKCE S256; its ID token (and userinfo) become a keyway session.
//!
//! - `/upstream/start/{provider}?request=…` stores `state`, `nonce`, the PKCE verifier and the pending
//!   authorization request in a short-lived cookie (`keyway_issuer_upstream`) authenticated
//!   with HMAC-SHA256 under a key kept in the keys directory (`cookie.key`), then redirects to
//!   the upstream.
//! - `/upstream/callback` checks the cookie, `state` and RFC 9207 `iss` (required when the
//!   upstream's metadata says `authorization_response_iss_parameter_supported`, compared exactly
//!   whenever present), redeems the code with client_secret_basic, validates the ID token
//!   (signature with the upstream's JWKS, asymmetric algorithms only, `iss`, `aud`, `exp`,
//!   `nonce`), reads userinfo when the upstream has one, maps the groups claim (dotted path,
//!   optional prefix) and creates the session.
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

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::error::{Error, Result, redirect};
use crate::params::{Params, Query};
use crate::server::Shared;
use crate::store::Claims;

/// Name of the cookie carrying the pending upstream sign-in.
pub const COOKIE: &str = "keyway_issuer_upstream";
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

/// Upstream provider settings.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
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
pub const MAX_ID_LEN: usize = 32;

/// Whether `id` is a valid provider ID: 1 to [`MAX_ID_LEN`] ASCII letters, digits and `-`
/// (never `:`, which separates it from the upstream `sub` in keyway's subjects).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// A configured upstream with its HTTP client and cached metadata and keys.
pub struct Upstream {
    /// Settings.
    pub config: UpstreamConfig,
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    cache: Mutex<Option<(Metadata, Value)>>,
    cookie_key: CookieKey,
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

impl From<String> for IdTokenError {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

impl From<&str> for IdTokenError {
    fn from(e: &str) -> Self {
        Self::Other(e.to_string())
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    request: String,
    exp: i64,
}

impl Upstream {
    /// Builds the upstream client (system trust roots).
    pub fn new(config: UpstreamConfig, cookie_key: CookieKey) -> std::result::Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            config,
            client,
            cache: Mutex::new(None),
            cookie_key,
        })
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> std::result::Result<(u16, Bytes), String> {
        let res = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = tokio::time::timeout(TIMEOUT, Limited::new(res.into_body(), MAX_BODY).collect())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> std::result::Result<Value, String> {
        let mut b = http::Request::get(url).header(header::ACCEPT, "application/json");
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(format!("{url}: HTTP {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }

    /// Metadata and JWKS, fetched once (and again when `refresh`).
    async fn discovery(&self, refresh: bool) -> std::result::Result<(Metadata, Value), String> {
        let mut cache = self.cache.lock().await;
        if !refresh && let Some(c) = cache.as_ref() {
            return Ok(c.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let md: Metadata = serde_json::from_value(self.get_json(&url, None).await?)
            .map_err(|e| format!("{url}: {e}"))?;
        if md.issuer != self.config.issuer {
            return Err(format!(
                "{url}: issuer {:?} is not the configured one",
                md.issuer
            ));
        }
        let jwks = self.get_json(&md.jwks_uri, None).await?;
        *cache = Some((md.clone(), jwks.clone()));
        Ok((md, jwks))
    }

    fn seal(&self, p: &Pending) -> Option<String> {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(p).ok()?);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.cookie_key.get()?).ok()?;
        mac.update(body.as_bytes());
        Some(format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    pub(crate) fn open(&self, sealed: &str, now: i64) -> Option<Pending> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.cookie_key.get()?).ok()?;
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).ok()?;
        let p: Pending = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (p.exp > now).then_some(p)
    }

    /// Validates an upstream ID token; returns its claims.
    pub(crate) fn validate_id_token(
        &self,
        token: &str,
        jwks: &Value,
        nonce: &str,
    ) -> std::result::Result<serde_json::Map<String, Value>, IdTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err("ID token algorithm not allowed".into());
        }
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(jwks.clone()).map_err(|e| format!("JWKS: {e}"))?;
        let jwk = match &header.kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        }
        .ok_or_else(|| "unknown key".to_string())?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&self.config.client_id]);
        v.set_issuer(&[&self.config.issuer]);
        v.leeway = 60;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v)
            .map_err(|e| e.to_string())?;
        let got = data
            .claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            got.as_bytes(),
            nonce.as_bytes(),
        )) {
            return Err(IdTokenError::Nonce);
        }
        Ok(data.claims)
    }

    /// Maps upstream claims to ours.
    pub fn map_claims(&self, c: &serde_json::Map<String, Value>) -> Claims {
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
pub fn load_file(path: &std::path::Path) -> std::result::Result<Vec<UpstreamConfig>, Vec<String>> {
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
pub struct CookieKey(Arc<OnceLock<[u8; 32]>>);

impl CookieKey {
    /// The key, once loaded.
    pub fn get(&self) -> Option<&[u8; 32]> {
        self.0.get()
    }

    /// Loads the key from `dir` unless it is loaded already (see [`cookie_key`]).
    pub fn load(&self, dir: &std::path::Path, create: bool) -> std::io::Result<()> {
        if self.0.get().is_none() {
            let key = cookie_key(dir, create)?;
            let _ = self.0.set(key);
        }
        Ok(())
    }
}

/// Loads (or, when `create`, creates with mode 0600) the cookie-authentication key in the keys
/// directory.
pub fn cookie_key(dir: &std::path::Path, create: bool) -> std::io::Result<[u8; 32]> {
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
    let key = crate::util::random_bytes::<32>();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(STANDARD.encode(key).as_bytes())?;
    Ok(key)
}

/// A callback that does not belong to a sign-in this browser started (missing, forged or
/// expired cookie, wrong `state` or `iss`, an error from the provider): the request is bad.
fn refused(why: &str) -> Error {
    tracing::warn!(reason = %why, "upstream callback refused");
    Error::page(
        StatusCode::BAD_REQUEST,
        "Sign-in did not complete",
        "This sign-in response does not match a sign-in started in this browser, or the identity \
         provider refused it. Go back to the app and sign in again.",
    )
}

/// The provider could not be reached or answered something invalid.
fn failed(why: &str) -> Error {
    tracing::warn!(reason = %why, "upstream sign-in failed");
    Error::page(
        StatusCode::BAD_GATEWAY,
        "Sign-in did not complete",
        "Signing in with your organisation's identity provider did not work. Go back to the app \
         and try again; if it keeps failing, tell the people who run keyway.",
    )
}

fn not_found() -> Error {
    Error::page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

/// `GET /upstream/start/{provider}?request=…`
pub async fn start_with(
    State(iss): State<Shared>,
    axum::extract::Path(provider): axum::extract::Path<String>,
    Query(q): Query,
) -> Result<Response> {
    let up = iss
        .upstreams
        .iter()
        .find(|u| u.config.id == provider)
        .ok_or_else(not_found)?;
    begin(&iss, up, &q).await
}

/// `GET /upstream/start?request=…`: the first provider.
pub async fn start(State(iss): State<Shared>, Query(q): Query) -> Result<Response> {
    let up = iss.upstreams.first().ok_or_else(not_found)?;
    begin(&iss, up, &q).await
}

async fn begin(iss: &crate::server::Issuer, up: &Upstream, q: &Params) -> Result<Response> {
    if up.cookie_key.get().is_none() {
        return Err(Error::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is starting up",
            "Signing in with your organisation's identity provider is not available yet. Try \
             again in a minute.",
        ));
    }
    let request = q.get("request").unwrap_or("").to_string();
    Params::parse(request.as_bytes())?;
    let (md, _) = up.discovery(false).await.map_err(|e| failed(&e))?;
    let pending = Pending {
        provider: up.config.id.clone(),
        state: crate::util::random_token(),
        nonce: crate::util::random_token(),
        verifier: crate::util::random_token(),
        request,
        exp: iss.clock.now() + 600,
    };
    let mut url =
        url::Url::parse(&md.authorization_endpoint).map_err(|e| failed(&e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &up.config.client_id)
        .append_pair("redirect_uri", &iss.url("/upstream/callback"))
        .append_pair("scope", &up.config.scopes)
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &crate::util::s256(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    let mut res = redirect(url.as_str());
    let secure = if iss.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/upstream; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
        up.seal(&pending)
            .ok_or_else(|| failed("cannot seal the cookie"))?
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /upstream/callback`
pub async fn callback(
    State(iss): State<Shared>,
    headers: HeaderMap,
    Query(q): Query,
) -> Result<Response> {
    let first = iss.upstreams.first().ok_or_else(not_found)?;
    let now = iss.clock.now();
    // Every upstream shares the cookie key; the cookie says which provider this sign-in went to,
    // so a response is only accepted for that provider (and its `iss`).
    let pending = crate::web::cookie(&headers, COOKIE)
        .and_then(|c| first.open(c, now))
        .ok_or_else(|| refused("missing, forged or expired upstream cookie"))?;
    let up = iss
        .upstreams
        .iter()
        .find(|u| u.config.id == pending.provider)
        .ok_or_else(|| refused("unknown provider"))?;
    let state = q.get("state").unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        state.as_bytes(),
        pending.state.as_bytes(),
    )) {
        return Err(refused("state mismatch"));
    }
    let (md, mut jwks) = up.discovery(false).await.map_err(|e| failed(&e))?;
    // RFC 9207 §2.4: compared exactly when present; required when the upstream advertises it.
    match q.get("iss") {
        Some(i) if i != up.config.issuer => return Err(refused("iss mismatch (RFC 9207)")),
        None if md.authorization_response_iss_parameter_supported => {
            return Err(refused("iss missing although advertised (RFC 9207)"));
        }
        _ => {}
    }
    if q.get("error").is_some() {
        return Err(refused("the upstream returned an error"));
    }
    let code = q.get("code").ok_or_else(|| refused("no code"))?;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!(
        "{}:{}",
        enc(&up.config.client_id),
        enc(&up.config.client_secret)
    ));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &iss.url("/upstream/callback"))
        .append_pair("code_verifier", &pending.verifier)
        .finish();
    let req = http::Request::post(&md.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(&e.to_string()))?;
    let (status, body) = up.send(req).await.map_err(|e| failed(&e))?;
    if status != 200 {
        return Err(failed(&format!("token endpoint answered HTTP {status}")));
    }
    let tokens: Value = serde_json::from_slice(&body).map_err(|e| failed(&e.to_string()))?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| failed("no id_token"))?;
    let invalid = |e: IdTokenError| match e {
        // The code was redeemed for a different sign-in (code injection): a bad request.
        IdTokenError::Nonce => refused("ID token nonce mismatch"),
        IdTokenError::Other(e) => failed(&e),
    };
    let mut claims = match up.validate_id_token(id_token, &jwks, &pending.nonce) {
        Ok(c) => c,
        Err(IdTokenError::Other(_)) => {
            // The upstream may have rotated keys: refetch once.
            jwks = up.discovery(true).await.map_err(|e| failed(&e))?.1;
            up.validate_id_token(id_token, &jwks, &pending.nonce)
                .map_err(invalid)?
        }
        Err(e) => return Err(invalid(e)),
    };
    if let (Some(ui), Some(at)) = (
        md.userinfo_endpoint.as_deref(),
        tokens.get("access_token").and_then(Value::as_str),
    ) && let Ok(Value::Object(info)) = up.get_json(ui, Some(at)).await
        && info.get("sub") == claims.get("sub")
    {
        // `email_verified` speaks for the `email` next to it: userinfo's counts only for the
        // address that ends up in the claims.
        let same_email = claims
            .get("email")
            .is_none_or(|e| info.get("email") == Some(e));
        for (k, v) in info {
            if k == "email_verified" && !same_email {
                continue;
            }
            claims.entry(k).or_insert(v);
        }
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(|s| format!("{}:{s}", up.config.id))
        .filter(|s| s.len() > up.config.id.len() + 1 && s.len() <= 255)
        .ok_or_else(|| failed("no sub, or one too long once prefixed with the provider ID"))?;
    let mapped = up.map_claims(&claims);
    let (cookie, _) = crate::authorize::start_session(
        &iss,
        sub,
        mapped,
        format!("upstream:{}", up.config.id),
        now,
    )
    .await?;
    iss.metrics.login("upstream", "ok");
    let request = Params::parse(pending.request.as_bytes())?;
    let target = crate::authorize::resume_target(request);
    let mut res = redirect(&target);
    res.headers_mut()
        .append(header::SET_COOKIE, iss.session_cookie(&cookie));
    let clear = format!("{COOKIE}=; Path=/upstream; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = http::HeaderValue::from_str(&clear) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
