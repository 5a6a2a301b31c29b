//! Test harness: an issuer with a SQLite store in a temporary directory, driven in-process with
//! `oneshot`, and a tiny browser (cookie jar, form scraping).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use issuer::Issuer;
use issuer::{Args, Config};
use tower::ServiceExt;

pub const ISSUER: &str = "http://127.0.0.1:5556";
pub const PASSWORD: &str = "correct horse";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

const APPS: &str = r#"
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: web}
spec:
  displayName: Team wiki
  redirectURIs: ["https://web.example/cb"]
  postLogoutRedirectURIs: ["https://web.example/bye"]
  scopes: [openid, profile, email, offline_access, "tool:read"]
  resource: https://web.example
  access:
    allowedGroups: [engineering]
    # The agent may obtain people's tokens for the wiki, with the wiki's scopes.
    delegatedClients: [default.agent]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: agent}
spec:
  displayName: Helpful agent
  description: Reads the wiki for you.
  logoURI: https://agent.example/logo.png
  clientType: public
  trust: thirdParty
  redirectURIs: ["http://127.0.0.1:9999/cb"]
  scopes: [openid, email, offline_access, "tool:read"]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: mail}
spec:
  displayName: Mail archive
  redirectURIs: ["https://mail.example/cb"]
  scopes: [openid, email, offline_access]
  access: {allowedEmailDomains: [example.com]}
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: svc}
spec:
  displayName: Batch service
  grantTypes: [client_credentials]
  scopes: ["tool:read", "tool:write"]
"#;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub issuer: Arc<Issuer>,
    pub app: Router,
}

pub async fn harness() -> Harness {
    harness_with(&[]).await
}

pub async fn harness_with(extra: &[&str]) -> Harness {
    harness_wrapped(extra, |s| s).await
}

/// A harness whose store is wrapped (e.g. by a store that can be taken down).
pub async fn harness_wrapped(
    extra: &[&str],
    wrap: impl FnOnce(Arc<dyn issuer::store::Store>) -> Arc<dyn issuer::store::Store>,
) -> Harness {
    build(extra, true, wrap).await
}

/// A harness without `--dcr` (every other harness enables dynamic client registration).
pub async fn harness_without_dcr() -> Harness {
    build(&[], false, |s| s).await
}

async fn build(
    extra: &[&str],
    dcr: bool,
    wrap: impl FnOnce(Arc<dyn issuer::store::Store>) -> Arc<dyn issuer::store::Store>,
) -> Harness {
    try_build(extra, dcr, wrap, "").await.unwrap()
}

/// A harness with more static users (YAML list items, password [`PASSWORD`]: `{hash}` in
/// `users` is replaced by its hash); `Err` with the issuer's start-up problems.
pub async fn harness_with_users(users: &str) -> Result<Harness, Vec<String>> {
    try_build(&[], true, |s| s, users).await
}

async fn try_build(
    extra: &[&str],
    dcr: bool,
    wrap: impl FnOnce(Arc<dyn issuer::store::Store>) -> Arc<dyn issuer::store::Store>,
    more_users: &str,
) -> Result<Harness, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    std::fs::write(clients.join("apps.yaml"), APPS).unwrap();
    std::fs::write(clients.join("default.web.secret"), "web-secret\n").unwrap();
    std::fs::write(clients.join("default.svc.secret"), "svc-secret").unwrap();
    std::fs::write(clients.join("default.mail.secret"), "mail-secret").unwrap();
    let hash = issuer::hash_password(PASSWORD).unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        format!(
            "- {{email: alice@example.com, name: Alice, passwordHash: '{hash}', groups: [engineering]}}\n\
             - {{email: bob@example.com, name: Bob, passwordHash: '{hash}', groups: [sales]}}\n\
             {}",
            more_users.replace("{hash}", &hash)
        ),
    )
    .unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("store.db").display());
    let keys = dir.path().join("keys");
    let mut argv = vec![
        "keyway-issuer".to_string(),
        "--issuer-url".into(),
        ISSUER.into(),
        "--store".into(),
        store_url.clone(),
        "--keys-dir".into(),
        keys.display().to_string(),
        "--clients-dir".into(),
        clients.display().to_string(),
        "--users-file".into(),
        dir.path().join("users.yaml").display().to_string(),
    ];
    if dcr {
        argv.push("--dcr".into());
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let config = Config::from_args(Args::try_parse_from(argv).unwrap()).unwrap();
    let store = wrap(issuer::store::open(&store_url).await.unwrap());
    let issuer = Arc::new(Issuer::new(&config, store)?);
    let app = issuer::router(issuer.clone());
    Ok(Harness { dir, issuer, app })
}

pub struct Res {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Res {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    pub fn location(&self) -> String {
        self.headers[header::LOCATION].to_str().unwrap().to_string()
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
    /// Query parameters of the Location.
    pub fn loc_params(&self) -> HashMap<String, String> {
        let u = url::Url::parse(&self.location())
            .or_else(|_| url::Url::parse(&format!("{ISSUER}{}", self.location())))
            .unwrap();
        u.query_pairs().into_owned().collect()
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Res {
    let res: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "500: {body:?}");
    Res {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub async fn post(app: &Router, path: &str, body: &str, auth: Option<&str>) -> Res {
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    send(app, b.body(Body::from(body.to_string())).unwrap()).await
}

pub async fn post_json(app: &Router, path: &str, body: &str) -> Res {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

pub async fn get(app: &Router, path: &str) -> Res {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A browser: a cookie jar that knows which cookies are `SameSite=Strict`.
#[derive(Default, Clone)]
pub struct Browser {
    pub cookies: HashMap<String, String>,
    pub strict: std::collections::HashSet<String>,
    /// The TCP peer address the issuer sees (`None`: no connection info, as with `oneshot`).
    pub peer: Option<std::net::SocketAddr>,
    /// An `X-Forwarded-For` header to send.
    pub forwarded_for: Option<String>,
}

impl Browser {
    fn absorb(&mut self, res: &Res) {
        for c in res.headers.get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
                self.strict.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
                if attrs.to_ascii_lowercase().contains("samesite=strict") {
                    self.strict.insert(k.to_string());
                } else {
                    self.strict.remove(k);
                }
            }
        }
    }
    fn cookie_header(&self, cross_site: bool) -> String {
        self.cookies
            .iter()
            .filter(|(k, _)| !(cross_site && self.strict.contains(*k)))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub async fn get(&mut self, app: &Router, path: &str) -> Res {
        self.navigate(app, path, false).await
    }
    /// A top-level GET started from another site (an app sending the person to `/authorize`):
    /// as browsers do, `SameSite=Strict` cookies are left out.
    pub async fn arrive(&mut self, app: &Router, path: &str) -> Res {
        self.navigate(app, path, true).await
    }
    /// Browses from `ip` (as the TCP peer address the issuer sees).
    pub fn from_ip(ip: &str) -> Self {
        Self {
            peer: Some(std::net::SocketAddr::new(ip.parse().unwrap(), 40000)),
            ..Self::default()
        }
    }
    fn with_peer(&self, mut req: Request<Body>) -> Request<Body> {
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        if let Some(xff) = &self.forwarded_for {
            req.headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        req
    }
    async fn navigate(&mut self, app: &Router, path: &str, cross_site: bool) -> Res {
        let req = Request::get(path)
            .header(header::COOKIE, self.cookie_header(cross_site))
            .body(Body::empty())
            .unwrap();
        let res = send(app, self.with_peer(req)).await;
        self.absorb(&res);
        res
    }
    pub async fn post(&mut self, app: &Router, path: &str, body: &str) -> Res {
        let req = Request::post(path)
            .header(header::COOKIE, self.cookie_header(false))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = send(app, self.with_peer(req)).await;
        self.absorb(&res);
        res
    }
}

/// The value of a hidden input in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + needle.len();
    let end = start + page[start..].find('"').unwrap();
    unescape(&page[start..end])
}

pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap();
        let ent = &tail[1..end];
        let ch = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            other => panic!("entity {other}"),
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn authorize_path(client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
        ("nonce", "n-1"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("/authorize?{}", form(&pairs))
}

/// Signs in through the login page and returns the response that follows the login.
pub async fn sign_in(b: &mut Browser, app: &Router, path: &str, email: &str) -> Res {
    let page = b.get(app, path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Sign in"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let request = hidden(&page.body, "request");
    let res = b
        .post(
            app,
            "/login",
            &form(&[
                ("csrf", &csrf),
                ("request", &request),
                ("email", email),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    b.get(app, &res.location()).await
}

/// Runs the whole code flow for `default.web` as alice; returns the code.
pub async fn web_code(b: &mut Browser, app: &Router) -> String {
    let res = sign_in(
        b,
        app,
        &authorize_path("default.web", "https://web.example/cb", &[]),
        "alice@example.com",
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let p = res.loc_params();
    assert_eq!(p["state"], "st-1");
    assert_eq!(p["iss"], ISSUER);
    p["code"].clone()
}

pub async fn redeem_web(app: &Router, code: &str) -> Res {
    post(
        app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "https://web.example/cb"),
            ("code_verifier", VERIFIER),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await
}

/// Decodes a JWT's header and payload without verifying (tests verify separately).
pub fn jwt_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let p = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
    )
}
