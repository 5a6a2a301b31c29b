//! In-process tests of each pipeline stage: requests are built as values and handed to the
//! stage (or to the whole chain, [`super::route`]); nothing binds a socket. The tool is absent
//! (`--upstream-port 9` on loopback refuses connections), so a request that passes every stage
//! ends as the forwarder's 502: that is how these tests see "let through".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use clap::Parser as _;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::respond::{self, Refusal};
use super::{Connection, Done, authn, authz, guard, route};
use crate::app::App;
use crate::clock::now;
use crate::config::{Cli, load_app};
use crate::forward::{Failed, Peer};
use crate::metrics::Outcome;
use crate::session::{Presence, Session, read_cookies};
use crate::state::Shared;
use crate::wire::{BadHost, Body, ReqBody};
use oidc::jwt::Principal;
use oidc::{KeySet, Provider};

const ISSUER: &str = "https://id.example.com";

/// A proxy for `https://tool.example.com` with an issuer loaded (one Ed25519 key), in memory.
struct Rig {
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    conn: Connection,
    key: Ed25519KeyPair,
}

fn rig() -> Rig {
    rig_with(&[], true)
}

fn rig_with(flags: &[&str], ready: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let policy = serde_json::json!({"resource": "https://tool.example.com",
        "scopes": ["tool:read", "tool:write"],
        "access": {"rules": [{"path": "/healthz", "public": true},
            {"path": "/api", "scopes": ["tool:read"]},
            {"path": "/admin", "groups": ["admins"]}]}});
    for (name, content) in [
        ("client-id", "tool".to_string()),
        ("issuer-url", ISSUER.to_string()),
        ("cookie-secret", STANDARD.encode([7u8; 32])),
        ("policy.json", policy.to_string()),
    ] {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut args = vec![
        "keyway-proxy",
        "--upstream-port",
        "9",
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--external-url",
        "https://tool.example.com",
    ];
    args.extend_from_slice(flags);
    let settings = Cli::try_parse_from(args).unwrap().settings().unwrap();
    let app = App::new(load_app(&settings).unwrap(), &settings).unwrap();
    let shared = Arc::new(Shared::new(settings, app).unwrap());
    let key = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
    if ready {
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
            "alg": "EdDSA", "x": B64.encode(key.public_key().as_ref())}]});
        let metadata = serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/auth"),
            "token_endpoint": format!("{ISSUER}/token"),
            "jwks_uri": format!("{ISSUER}/jwks"),
            "end_session_endpoint": format!("{ISSUER}/end_session"),
        });
        let provider = Provider::new(
            serde_json::from_value(metadata).unwrap(),
            KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap(),
        );
        shared.set_provider(Some(Arc::new(provider)));
    }
    let conn = Connection::new(Peer::new("10.0.0.9:1234".parse().unwrap(), true));
    Rig {
        _dir: dir,
        shared,
        conn,
        key,
    }
}

impl Rig {
    /// The bearer-token stage for `token`, with the issuer's keys and this rig's connection.
    async fn authenticate(&self, token: &[u8]) -> Result<Arc<Principal>, Refusal> {
        let app = self.shared.app();
        let provider = self.shared.provider().unwrap();
        authn::authenticate_bearer(
            &self.shared,
            &self.conn.last_credential,
            &app,
            &provider,
            token,
        )
        .await
    }

    /// An access token for the app, signed by the issuer's key, with `claims` over the usual
    /// ones (`alice`, issued to the app itself, `tool:read`, valid five minutes).
    fn token(&self, claims: serde_json::Value) -> String {
        let mut all = serde_json::json!({"iss": ISSUER, "aud": self.shared.app().cfg.resource,
            "sub": "alice", "exp": now() + 300, "client_id": "tool", "scope": "tool:read"});
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        let head = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k"});
        let input = format!(
            "{}.{}",
            B64.encode(head.to_string()),
            B64.encode(all.to_string())
        );
        let signature = B64.encode(self.key.sign(input.as_bytes()).as_ref());
        format!("{input}.{signature}")
    }

    /// A sealed session cookie (`name=value`) for `alice` in `groups`, granted `tool:read`.
    fn session_cookie(&self, groups: &[&str]) -> String {
        let app = self.shared.app();
        let s = Session {
            sid: "sid".into(),
            who: Principal {
                sub: "alice".into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                scopes: vec!["tool:read".into()],
                ..Default::default()
            },
            at: None,
            rt: None,
            exp: now() + 300,
            end: now() + 3600,
        };
        let set = app.session_cookies(&s, now(), &Presence::default());
        set[0].split(';').next().unwrap().to_string()
    }

    /// The whole chain for a request.
    async fn route(&self, req: Request<ReqBody>) -> Done {
        route(&self.shared, &self.conn, req).await
    }
}

/// A request as either parser hands it up (HTTP/1.1, one valid `Host`, no body).
fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<ReqBody> {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri)
        .header(header::HOST, "tool.example.com");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(ReqBody::Empty).unwrap()
}

async fn json(resp: Response<Body>) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn field(resp: &Response<Body>, name: header::HeaderName) -> &str {
    resp.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

// --- guard ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_guard_refuses_before_any_path_is_matched() {
    let r = rig();
    let settings = &r.shared.settings;
    let mut bad_host = request("GET", "/", &[]);
    bad_host.extensions_mut().insert(BadHost);
    assert!(matches!(
        guard::check(settings, &bad_host),
        Err(Refusal::BadHost)
    ));
    let huge = "x".repeat(settings.max_header_bytes);
    let too_large = request("GET", "/", &[("x-big", &huge)]);
    assert!(matches!(
        guard::check(settings, &too_large),
        Err(Refusal::HeadTooLarge)
    ));
    assert!(matches!(
        guard::check(settings, &request("post", "/", &[])),
        Err(Refusal::LowerCaseMethod)
    ));
    assert!(matches!(
        guard::check(settings, &request("GET", "/a%2Fb", &[])),
        Err(Refusal::MalformedPath)
    ));
    let path = guard::check(settings, &request("GET", "/a/./b//c", &[])).unwrap();
    assert_eq!(path.forward, "/a/b/c");

    // Through the chain: the status, and the connection closed after a bad Host.
    let d = r.route(bad_host).await;
    assert_eq!(d.resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(field(&d.resp, header::CONNECTION), "close");
    assert_eq!(d.outcome, Outcome::bad_request);
    let d = r.route(too_large).await;
    assert_eq!(d.resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let d = r.route(request("GET", "/a%2Fb", &[])).await;
    assert_eq!(json(d.resp).await["error"], "invalid_request");
}

// --- own endpoints -------------------------------------------------------------------------

#[tokio::test]
async fn own_endpoints_answer_before_the_rules() {
    let r = rig();
    let d = r
        .route(request("GET", "/.well-known/oauth-protected-resource", &[]))
        .await;
    assert_eq!(d.outcome, Outcome::metadata);
    assert_eq!(field(&d.resp, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let doc = json(d.resp).await;
    assert_eq!(doc["resource"], "https://tool.example.com");
    assert_eq!(doc["authorization_servers"][0], ISSUER);
    let d = r
        .route(request(
            "POST",
            "/.well-known/oauth-protected-resource",
            &[],
        ))
        .await;
    assert_eq!(d.resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    let d = r
        .route(request("GET", "/oauth2/start?rd=/api/x", &[]))
        .await;
    assert_eq!(d.resp.status(), StatusCode::FOUND);
    assert_eq!(d.outcome, Outcome::login_redirect);
    assert!(field(&d.resp, header::LOCATION).starts_with(&format!("{ISSUER}/auth?")));
    assert!(field(&d.resp, header::SET_COOKIE).starts_with("__Host-_keyway_proxy_login_"));

    let d = r.route(request("GET", "/oauth2/callback", &[])).await;
    assert_eq!(d.resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(d.outcome, Outcome::callback_error);
    assert_eq!(json(d.resp).await["error_description"], "state missing");

    let foreign = [("origin", "https://evil.example")];
    let d = r.route(request("POST", "/oauth2/sign_out", &foreign)).await;
    assert_eq!(d.resp.status(), StatusCode::FORBIDDEN);
    let d = r.route(request("GET", "/oauth2/sign_out", &[])).await;
    assert_eq!(d.resp.status(), StatusCode::OK);
    assert_eq!(d.outcome, Outcome::sign_out);
    assert!(field(&d.resp, header::CONTENT_TYPE).starts_with("text/html"));
    let own = [("sec-fetch-site", "same-origin")];
    let d = r.route(request("POST", "/oauth2/sign_out", &own)).await;
    assert_eq!(d.resp.status(), StatusCode::FOUND);
    assert!(field(&d.resp, header::LOCATION).starts_with(&format!("{ISSUER}/end_session?")));
    let d = r.route(request("PUT", "/oauth2/sign_out", &[])).await;
    assert_eq!(d.resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    // An unknown path under the prefix is the tool's (and so needs credentials).
    let d = r.route(request("GET", "/oauth2/other", &[])).await;
    assert_eq!(d.resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn until_the_issuer_is_loaded_sign_in_and_credentials_wait() {
    let r = rig_with(&[], false);
    for uri in ["/oauth2/start", "/oauth2/callback?state=s", "/api"] {
        let d = r.route(request("GET", uri, &[])).await;
        assert_eq!(d.resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(d.outcome, Outcome::not_ready);
        assert_eq!(field(&d.resp, header::RETRY_AFTER), "1");
    }
    // Public paths do not need the issuer.
    let d = r.route(request("GET", "/healthz", &[])).await;
    assert_eq!(
        d.outcome,
        Outcome::upstream_error,
        "forwarded to the (absent) tool"
    );
}

// --- authorisation without authentication --------------------------------------------------

#[tokio::test]
async fn public_rules_and_preflights_pass_without_credentials() {
    let r = rig_with(&["--skip-auth-preflight"], true);
    let app = r.shared.app();
    let settings = &r.shared.settings;
    let none = HeaderMap::new();
    let mut preflight = HeaderMap::new();
    preflight.insert("origin", "https://other.example".parse().unwrap());
    preflight.insert("access-control-request-method", "POST".parse().unwrap());
    let pass = |m: Method, h: &HeaderMap, p: &str| authz::unauthenticated(settings, &app, &m, h, p);
    assert_eq!(pass(Method::GET, &none, "/healthz"), Some(Outcome::public));
    assert_eq!(
        pass(Method::OPTIONS, &preflight, "/api"),
        Some(Outcome::preflight)
    );
    assert_eq!(pass(Method::OPTIONS, &none, "/api"), None);
    assert_eq!(pass(Method::GET, &none, "/api"), None);

    let d = r.route(request("GET", "/healthz", &[])).await;
    assert_eq!(d.resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(d.outcome, Outcome::upstream_error);
}

// --- authentication ------------------------------------------------------------------------

#[tokio::test]
async fn without_credentials_a_browser_signs_in_and_an_api_client_gets_a_challenge() {
    let r = rig();
    let html = [("accept", "text/html")];
    let d = r.route(request("GET", "/api/x?q=1", &html)).await;
    assert_eq!(d.resp.status(), StatusCode::FOUND);
    assert_eq!(d.outcome, Outcome::login_redirect);
    let d = r
        .route(request(
            "GET",
            "/api/x",
            &[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
        ))
        .await;
    assert_eq!(d.resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(d.outcome, Outcome::unauthenticated);
    let challenge = field(&d.resp, header::WWW_AUTHENTICATE);
    let metadata = "https://tool.example.com/.well-known/oauth-protected-resource";
    let expected = format!("Bearer resource_metadata=\"{metadata}\"");
    assert!(challenge.starts_with(&expected), "{challenge}");
    assert!(challenge.contains("scope=\"tool:read\""), "{challenge}");
}

#[tokio::test]
async fn bearer_tokens_are_parsed_validated_and_cached() {
    let r = rig();
    let bearer = |v: &str| authn::bearer(&request("GET", "/", &[("authorization", v)]));
    assert!(
        bearer("Basic dXNlcjpwdw==").unwrap().is_none(),
        "the tool's business"
    );
    assert!(bearer("Bearer").is_err());
    assert!(bearer("Bearer ").is_err());
    assert!(bearer("bearer  abc").unwrap().is_some());
    let two = {
        let mut req = request("GET", "/", &[("authorization", "Bearer a")]);
        req.headers_mut()
            .append(header::AUTHORIZATION, "Bearer b".parse().unwrap());
        req
    };
    assert!(authn::bearer(&two).is_err());

    let good = r.token(serde_json::json!({}));
    let who = r.authenticate(good.as_bytes()).await.unwrap();
    assert_eq!(who.sub, "alice");
    assert_eq!(r.shared.tokens.len(), 1, "cached");
    let expired = r.token(serde_json::json!({"exp": now() - 3600}));
    let refused = r.authenticate(expired.as_bytes()).await;
    assert!(matches!(refused, Err(Refusal::InvalidToken(_))));
    let junk = r.authenticate(b"a b").await;
    assert!(matches!(junk, Err(Refusal::MalformedAuthorization)));

    // Through the chain: let through (to the absent tool), refused, malformed.
    let auth = format!("Bearer {good}");
    let d = r
        .route(request("GET", "/api/x", &[("authorization", &auth)]))
        .await;
    assert_eq!(d.outcome, Outcome::upstream_error);
    let auth = format!("Bearer {expired}");
    let d = r
        .route(request("GET", "/api/x", &[("authorization", &auth)]))
        .await;
    assert_eq!(d.resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(d.outcome, Outcome::invalid_token);
    assert!(field(&d.resp, header::WWW_AUTHENTICATE).contains("error=\"invalid_token\""));
    let d = r
        .route(request(
            "GET",
            "/api/x",
            &[("authorization", "Bearer a\"b")],
        ))
        .await;
    assert_eq!(d.resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(d.outcome, Outcome::bad_request);
    assert!(field(&d.resp, header::WWW_AUTHENTICATE).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn session_cookies_are_opened_or_cleared() {
    let r = rig();
    let app = r.shared.app();
    let provider = r.shared.provider().unwrap();
    let open = |cookie: String| {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, cookie.parse().unwrap());
        let (r, app, provider) = (&r, &app, &provider);
        async move {
            let cookies = read_cookies(&headers, &app.names);
            authn::session(&r.shared, &r.conn.last_credential, app, provider, &cookies).await
        }
    };
    let (s, set) = open(r.session_cookie(&[])).await;
    assert_eq!(s.unwrap().who.sub, "alice");
    assert!(set.is_empty());
    let (s, set) = open("__Host-_keyway_proxy=tampered".into()).await;
    assert!(s.is_none());
    assert!(set[0].contains("Max-Age=0"), "{set:?}");

    let cookie = r.session_cookie(&[]);
    let d = r
        .route(request("GET", "/api/x", &[("cookie", &cookie)]))
        .await;
    assert_eq!(d.outcome, Outcome::upstream_error, "let through");
    let d = r
        .route(request(
            "GET",
            "/api/x",
            &[("cookie", "__Host-_keyway_proxy=tampered")],
        ))
        .await;
    assert_eq!(d.resp.status(), StatusCode::UNAUTHORIZED);
    assert!(field(&d.resp, header::SET_COOKIE).contains("Max-Age=0"));
}

// --- authorisation -------------------------------------------------------------------------

#[tokio::test]
async fn the_access_rules_and_the_tokens_client_decide() {
    let r = rig();
    let app = r.shared.app();
    let alice = |scopes: &[&str], groups: &[&str], client: &str| Principal {
        sub: "alice".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        client: Some(client.into()),
        ..Default::default()
    };
    assert!(authz::authorize(&app, "GET", "/api/x", &alice(&["tool:read"], &[], "tool")).is_ok());
    let missing = authz::authorize(&app, "GET", "/api/x", &alice(&[], &[], "tool"));
    assert!(matches!(missing, Err(Refusal::InsufficientScope(s)) if s == ["tool:read"]));
    let denied = authz::authorize(&app, "GET", "/admin", &alice(&[], &["staff"], "tool"));
    assert!(matches!(denied, Err(Refusal::Denied)));
    assert!(authz::authorize(&app, "GET", "/admin", &alice(&[], &["admins"], "tool")).is_ok());
    assert!(authz::admits_client(&app, &alice(&[], &[], "tool")).is_ok());
    let other = authz::admits_client(&app, &alice(&[], &[], "ns.other"));
    assert!(matches!(other, Err(Refusal::InvalidToken(_))));

    // Through the chain.
    let auth = format!("Bearer {}", r.token(serde_json::json!({"scope": "openid"})));
    let d = r
        .route(request("GET", "/api/x", &[("authorization", &auth)]))
        .await;
    assert_eq!(d.resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(d.outcome, Outcome::insufficient_scope);
    assert_eq!(d.user.as_deref(), Some("alice"));
    let challenge = field(&d.resp, header::WWW_AUTHENTICATE).to_string();
    assert!(
        challenge.contains("scope=\"tool:read\", error=\"insufficient_scope\""),
        "{challenge}"
    );
    let auth = format!(
        "Bearer {}",
        r.token(serde_json::json!({"client_id": "ns.other"}))
    );
    let d = r
        .route(request("GET", "/api/x", &[("authorization", &auth)]))
        .await;
    assert_eq!(d.resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(d.outcome, Outcome::invalid_token);
    let cookie = r.session_cookie(&["staff"]);
    let d = r
        .route(request("GET", "/admin", &[("cookie", &cookie)]))
        .await;
    assert_eq!(d.resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(d.outcome, Outcome::forbidden);
    assert_eq!(json(d.resp).await["error"], "access_denied");
}

// --- respond ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_refusal_has_its_status_and_generic_body() {
    let r = rig();
    let app = r.shared.app();
    let cases = [
        (
            Refusal::NotReady,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        ),
        (
            Refusal::LowerCaseMethod,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Refusal::CrossOriginSignOut,
            StatusCode::FORBIDDEN,
            "access_denied",
        ),
        (Refusal::Denied, StatusCode::FORBIDDEN, "access_denied"),
        (
            Refusal::Forward(Failed::BadTarget),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Refusal::Forward(Failed::BodyStalled),
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
        ),
        (
            Refusal::Forward(Failed::Timeout),
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        ),
        (
            Refusal::Login(crate::login::Failure::NotSignedIn { denied: true }),
            StatusCode::FORBIDDEN,
            "access_denied",
        ),
        (
            Refusal::Login(crate::login::Failure::IssuerMetadata),
            StatusCode::BAD_GATEWAY,
            "server_error",
        ),
    ];
    for (refusal, status, code) in cases {
        let what = format!("{refusal:?}");
        let resp = respond::respond(refusal, &app, "GET", "/api");
        assert_eq!(resp.status(), status, "{what}");
        assert_eq!(field(&resp, header::CACHE_CONTROL), "no-store", "{what}");
        assert_eq!(
            field(&resp, header::CONTENT_TYPE),
            "application/json",
            "{what}"
        );
        let body = json(resp).await;
        assert_eq!(body["error"], code, "{what}");
        assert!(body["error_description"].is_string(), "{what}");
    }
    let stalled = respond::respond(Refusal::Forward(Failed::BodyStalled), &app, "GET", "/");
    assert_eq!(field(&stalled, header::CONNECTION), "close");
    let unauthenticated = respond::respond(Refusal::Unauthenticated, &app, "GET", "/api");
    let challenge = field(&unauthenticated, header::WWW_AUTHENTICATE);
    assert!(
        !challenge.contains("error="),
        "no error without credentials: {challenge}"
    );
}

#[tokio::test]
async fn with_the_token_cache_off_a_valid_token_is_accepted_and_nothing_is_kept() {
    let r = rig_with(&["--token-cache-size", "0"], true);
    let good = r.token(serde_json::json!({}));
    for _ in 0..2 {
        let who = r.authenticate(good.as_bytes()).await.unwrap();
        assert_eq!(who.sub, "alice");
    }
    assert_eq!(r.shared.tokens.len(), 0);
    assert_eq!(r.shared.metrics.cache_hits.get(), 0, "validated both times");
    assert_eq!(r.shared.metrics.cache_misses.get(), 2);
}

#[tokio::test]
async fn the_admin_listener_answers_probes_and_metrics() {
    use crate::server::admin_response;
    let text = |resp: Response<http_body_util::Full<bytes::Bytes>>| async move {
        let status = resp.status();
        let ct = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    };
    let waiting = rig_with(&[], false);
    let (status, _, body) = text(admin_response(&waiting.shared, "/readyz")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "issuer not loaded\n")
    );
    let (status, _, body) = text(admin_response(&waiting.shared, "/healthz")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok\n"),
        "alive while waiting"
    );

    let r = rig();
    let (status, _, body) = text(admin_response(&r.shared, "/readyz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    let (status, ct, body) = text(admin_response(&r.shared, "/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(
        body.contains("\nkeyway_proxy_token_cache_entries 0\n"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (status, _, _) = text(admin_response(&r.shared, "/metrics/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
