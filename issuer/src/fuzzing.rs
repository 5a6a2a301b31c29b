//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the issuer's parsers of untrusted
//! input, each taking the fuzzer's bytes. They panic only when a property is broken (a crash for
//! the fuzzer); bad input itself must never panic. Not part of the issuer's API.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::Parser as _;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::config::{Args, Config};
use crate::directory::upstream::{CookieKey, Upstream, UpstreamConfig};
use crate::params::{self, Params};

/// Splits `data` at its first `sep` (all of it and nothing when there is none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Form and query parsing (`Params::parse`, `params::single`, `params::first_repeated`).
/// Properties: parsed parameters are unique and non-empty, and survive re-encoding.
pub fn form(data: &[u8]) {
    let _ = params::single(data, "client_id");
    let _ = params::first_repeated(data);
    let Ok(p) = Params::parse(data) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = p.iter().collect();
    for (i, (name, value)) in pairs.iter().enumerate() {
        assert!(!value.is_empty(), "{name} kept without a value");
        assert!(pairs[..i].iter().all(|(n, _)| n != name), "{name} repeated");
        assert_eq!(p.get(name), Some(*value));
    }
    let again = Params::parse(p.to_query().as_bytes());
    assert_eq!(again.as_ref().ok(), Some(&p), "re-encoding changed {p:?}");
}

/// ConnectedApps of the fuzzed issuer: a confidential first-party app, a public third-party
/// agent and a service (client_credentials).
const APPS: &str = r#"
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: web}
spec:
  displayName: Team wiki
  redirectURIs: ["https://web.example/cb"]
  resource: https://web.example
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: agent}
spec:
  displayName: Helpful agent
  clientType: public
  trust: thirdParty
  redirectURIs: ["http://127.0.0.1:9999/cb"]
  scopes: [openid, email, offline_access]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: svc}
spec:
  displayName: Batch service
  grantTypes: [client_credentials]
  scopes: ["tool:read"]
"#;

/// An issuer (SQLite store in a temporary directory, dynamic client registration on) served
/// in-process, for [`Endpoints::request`].
pub struct Endpoints {
    runtime: tokio::runtime::Runtime,
    app: Router,
    dir: PathBuf,
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Endpoints {
    /// Builds the issuer; `Err` with what failed.
    pub fn new() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("keyway-fuzz-issuer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clients = dir.join("clients");
        std::fs::create_dir_all(&clients).map_err(|e| e.to_string())?;
        let write =
            |path: PathBuf, text: &str| std::fs::write(path, text).map_err(|e| e.to_string());
        write(clients.join("apps.yaml"), APPS)?;
        write(clients.join("default.web.secret"), "web-secret")?;
        write(clients.join("default.svc.secret"), "svc-secret")?;
        let hash = crate::directory::users::hash_password("fuzz").ok_or("no password hash")?;
        write(
            dir.join("users.yaml"),
            &format!("- {{email: alice@example.com, name: Alice, passwordHash: '{hash}'}}\n"),
        )?;
        let store_url = format!("sqlite://{}", dir.join("store.db").display());
        let path = |p: PathBuf| p.display().to_string();
        let args = Args::try_parse_from([
            "keyway-issuer".to_string(),
            "--issuer-url".into(),
            "http://127.0.0.1:5556".into(),
            "--store".into(),
            store_url.clone(),
            "--keys-dir".into(),
            path(dir.join("keys")),
            "--clients-dir".into(),
            path(clients),
            "--users-file".into(),
            path(dir.join("users.yaml")),
            "--dcr".into(),
        ])
        .map_err(|e| e.to_string())?;
        let config = Config::from_args(args).map_err(|p| p.join("; "))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let store = runtime
            .block_on(crate::store::open(&store_url))
            .map_err(|e| e.to_string())?;
        let issuer = crate::Issuer::new(&config, store).map_err(|p| p.join("; "))?;
        let app = crate::router(Arc::new(issuer));
        Ok(Endpoints { runtime, app, dir })
    }

    /// Sends `data` to an endpoint: its first byte picks the endpoint (authorize by GET and
    /// POST, token, register, revoke, introspect, userinfo, token without a form); the rest is an
    /// `Authorization` value, a newline, and the query or body. Properties: no 500; the OAuth
    /// endpoints answer a refusal with an OAuth error object (RFC 6749 §5.2, RFC 7591 §3.2.2).
    pub fn request(&self, data: &[u8]) {
        let Some((&which, rest)) = data.split_first() else {
            return;
        };
        let (auth, payload) = split(rest, b'\n');
        let form = "application/x-www-form-urlencoded";
        let (method, path, content_type) = match which % 8 {
            0 => (Method::GET, "/authorize", None),
            1 => (Method::POST, "/authorize", Some(form)),
            2 => (Method::POST, "/token", Some(form)),
            3 => (Method::POST, "/register", Some("application/json")),
            4 => (Method::POST, "/revoke", Some(form)),
            5 => (Method::POST, "/introspect", Some(form)),
            6 => (Method::GET, "/userinfo", None),
            _ => (Method::POST, "/token", Some("text/plain")),
        };
        let oauth_error = matches!(which % 8, 2..=5 | 7);
        let uri = if method == Method::GET {
            format!("{path}?{}", String::from_utf8_lossy(payload))
        } else {
            path.to_string()
        };
        let Ok(mut req) = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::from(payload.to_vec()))
        else {
            return;
        };
        if let Some(t) = content_type {
            req.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
        }
        if let (false, Ok(v)) = (auth.is_empty(), HeaderValue::from_bytes(auth)) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
        self.runtime.block_on(async {
            let Ok(resp) = self.app.clone().oneshot(req).await;
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
            if oauth_error && (status.is_client_error()) {
                let body = body.unwrap_or_default();
                let json: Value = serde_json::from_slice(&body).unwrap_or_default();
                assert!(
                    json["error"].is_string(),
                    "{method} {path} {status}: not an OAuth error: {body:?}"
                );
            }
        });
    }
}

/// The federated provider of [`upstream_documents`], and the key its ID tokens are signed with.
struct Federation {
    upstream: Upstream,
    key: Ed25519KeyPair,
    jwks: oidc::KeySet,
}

const UPSTREAM: &str = "https://upstream.example";

static FEDERATION: LazyLock<Option<Federation>> = LazyLock::new(|| {
    let key = Ed25519KeyPair::from_seed_unchecked(&[5; 32]).ok()?;
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "alg": "EdDSA", "x": B64.encode(key.public_key().as_ref())}]});
    let jwks = oidc::KeySet::from_jwks(jwks.to_string().as_bytes()).ok()?;
    let config = UpstreamConfig {
        id: "up".into(),
        issuer: UPSTREAM.into(),
        client_id: "keyway".into(),
        client_secret: "s".into(),
        name: "Upstream".into(),
        scopes: "openid email".into(),
        groups_claim: "realm_access.roles".into(),
        groups_prefix: "up:".into(),
        insecure_trust_unverified_email: false,
    };
    let cookie_key = CookieKey::default();
    let dir = std::env::temp_dir().join(format!("keyway-fuzz-upstream-{}", std::process::id()));
    let loaded = cookie_key.load(&dir, true).is_ok();
    let _ = std::fs::remove_dir_all(&dir);
    if !loaded {
        return None;
    }
    let upstream = Upstream::new(config, cookie_key).ok()?;
    Some(Federation {
        upstream,
        key,
        jwks,
    })
});

/// The documents and tokens of an upstream OpenID provider the issuer federates with: `data` is
/// discovery metadata, a JWKS and ID-token claims, separated by NULs. The claims are signed with
/// the provider's key and checked against both the fuzzed JWKS and the provider's, then mapped
/// to keyway's claims; the metadata is also read as the sealed sign-in cookie
/// (`keyway_issuer_upstream`).
pub fn upstream_documents(data: &[u8]) {
    let Some(f) = FEDERATION.as_ref() else {
        return;
    };
    let (metadata, rest) = split(data, 0);
    let (jwks, claims) = split(rest, 0);
    if let Ok(v) = serde_json::from_slice::<Value>(metadata) {
        let _ = serde_json::from_value::<oidc::Metadata>(v);
    }
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"EdDSA","kid":"k","typ":"JWT"}"#),
        B64.encode(claims)
    );
    let token = format!("{input}.{}", B64.encode(f.key.sign(input.as_bytes())));
    if let Ok(jwks) = oidc::KeySet::from_jwks(jwks) {
        let _ = f.upstream.validate_id_token(&token, &jwks, "n");
    }
    if let Ok(claims) = f.upstream.validate_id_token(&token, &f.jwks, "n") {
        let _ = f.upstream.map_claims(&claims);
    }
    if let Ok(text) = std::str::from_utf8(metadata) {
        let _ = f.upstream.open(text, 0);
    }
}
