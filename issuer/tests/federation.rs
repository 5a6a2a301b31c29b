//! Federation against a small upstream OpenID provider served on 127.0.0.1:0 by the test: the
//! sign-in goes out with PKCE, comes back through the callback, the ID token is validated, the
//! groups claim (from userinfo, with a prefix) reaches our tokens, and forged callbacks fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post as route_post};
use axum::{Json, Router};
use common::*;
use http::{HeaderMap, StatusCode};
use issuer::{Alg, SigningKey, Typ};
use serde_json::json;

#[derive(Default)]
struct Up {
    url: String,
    challenge: String,
    nonce: String,
    wrong_nonce: bool,
    /// Metadata says `authorization_response_iss_parameter_supported: true`.
    advertise_iss: bool,
    /// What userinfo says about `email_verified`: `None` leaves it out.
    email_verified: Option<bool>,
    /// An `email` (without `email_verified`) in the ID token.
    id_token_email: Option<String>,
}

async fn fake_upstream() -> (String, Arc<Mutex<Up>>, Arc<SigningKey>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = Arc::new(SigningKey::generate(Alg::Es256, 0).unwrap());
    let state = Arc::new(Mutex::new(Up {
        url: url.clone(),
        email_verified: Some(true),
        ..Up::default()
    }));
    type S = (Arc<Mutex<Up>>, Arc<SigningKey>);
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State((s, _)): State<S>| async move {
                let (u, advertise) = {
                    let up = s.lock().unwrap();
                    (up.url.clone(), up.advertise_iss)
                };
                Json(json!({
                    "issuer": u,
                    "authorization_endpoint": format!("{u}/auth"),
                    "token_endpoint": format!("{u}/token"),
                    "jwks_uri": format!("{u}/jwks"),
                    "userinfo_endpoint": format!("{u}/me"),
                    "authorization_response_iss_parameter_supported": advertise,
                }))
            }),
        )
        .route(
            "/jwks",
            get(|State((_, k)): State<S>| async move { Json(json!({"keys": [k.jwk.clone()]})) }),
        )
        .route(
            "/token",
            route_post(
                |State((s, k)): State<S>, headers: HeaderMap, body: String| async move {
                    let p: std::collections::HashMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    use base64::Engine;
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("keyway:up-secret")
                    );
                    let up = s.lock().unwrap();
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(expected.as_str())
                        || p.get("code").map(String::as_str) != Some("up-code")
                        || oidc::pkce::challenge(&p["code_verifier"]) != up.challenge
                    {
                        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"})));
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let nonce = if up.wrong_nonce { "other".to_string() } else { up.nonce.clone() };
                    let mut claims = json!({"iss": up.url, "aud": "keyway", "sub": "u-123",
                                            "exp": now + 300, "iat": now, "nonce": nonce});
                    if let Some(e) = &up.id_token_email {
                        claims["email"] = json!(e);
                    }
                    let id = k.sign(Typ::Jwt, &claims).unwrap();
                    (
                        StatusCode::OK,
                        Json(json!({"access_token": "up-at", "token_type": "Bearer", "id_token": id})),
                    )
                },
            ),
        )
        .route(
            "/me",
            get(|State((s, _)): State<S>, headers: HeaderMap| async move {
                assert_eq!(headers["authorization"], "Bearer up-at");
                let mut me = json!({"sub": "u-123", "email": "carol@example.com",
                                    "name": "Carol", "groups": ["engineering", "admins"]});
                if let Some(v) = s.lock().unwrap().email_verified {
                    me["email_verified"] = json!(v);
                }
                Json(me)
            }),
        )
        .with_state((state.clone(), key.clone()));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, state, key)
}

async fn federated_harness(up_url: &str) -> Harness {
    harness_with(&[
        "--upstream-issuer",
        up_url,
        "--upstream-client-id",
        "keyway",
        "--upstream-client-secret",
        "up-secret",
        "--upstream-name",
        "Acme SSO",
        "--upstream-groups-prefix",
        "acme:",
    ])
    .await
}

/// Starts the upstream sign-in from the login page; returns the callback path to call.
async fn go_upstream(h: &Harness, b: &mut Browser, up: &Arc<Mutex<Up>>, path: &str) -> String {
    go_upstream_via(h, b, up, path, "default").await
}

async fn go_upstream_via(
    h: &Harness,
    b: &mut Browser,
    up: &Arc<Mutex<Up>>,
    path: &str,
    provider: &str,
) -> String {
    let page = b.get(&h.app, path).await;
    assert!(
        page.body.contains("Continue with Acme SSO"),
        "{}",
        page.body
    );
    let path_part = if provider == "default" {
        String::new()
    } else {
        format!("/{provider}")
    };
    let marker = format!("href=\"/upstream/start{path_part}?");
    let start = page.body.split(&marker).nth(1).unwrap();
    let start = unescape(&start[..start.find('"').unwrap()]);
    assert!(start.starts_with("request="), "{start}");
    let res = b
        .get(&h.app, &format!("/upstream/start{path_part}?{start}"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let loc = url::Url::parse(&res.location()).unwrap();
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{ISSUER}/upstream/callback"));
    {
        let mut u = up.lock().unwrap();
        u.challenge = q["code_challenge"].clone();
        u.nonce = q["nonce"].clone();
    }
    // The upstream login is the test's business; the upstream then redirects back:
    format!(
        "/upstream/callback?{}",
        form(&[("code", "up-code"), ("state", &q["state"])])
    )
}

#[tokio::test]
async fn upstream_sign_in_maps_groups_into_tokens() {
    let (up_url, up, _) = fake_upstream().await;
    // Groups become acme:engineering; the web app lets `engineering` in, so Carol is refused
    // there, but the third-party agent has no access rules.
    let h = federated_harness(&up_url).await;
    let mut b = Browser::default();
    let path = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[("scope", "openid email")],
    );
    let callback = go_upstream(&h, &mut b, &up, &path).await;
    let res = b.get(&h.app, &callback).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(res.location().starts_with("/authorize?"));
    let consent = b.get(&h.app, &res.location()).await;
    assert!(
        consent.body.contains("Signed in as carol@example.com"),
        "{}",
        consent.body
    );
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &hidden(&consent.body, "csrf")),
                ("request", &hidden(&consent.body, "request")),
                ("decision", "allow"),
            ]),
        )
        .await;
    let code = res.loc_params()["code"].clone();
    let t = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9999/cb"),
            ("code_verifier", VERIFIER),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await;
    let (_, id) = jwt_parts(t.json()["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "default:u-123");
    assert_eq!(id["email"], "carol@example.com");
    // Account page shows the mapped groups.
    let acct = b.get(&h.app, "/account").await;
    assert!(
        acct.body.contains("acme:engineering, acme:admins"),
        "{}",
        acct.body
    );
    // The web app requires `engineering` (unprefixed): refused.
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("prompt", "none")],
            ),
        )
        .await;
    assert_eq!(res.loc_params()["error"], "access_denied");
}

#[tokio::test]
async fn forged_or_replayed_callbacks_fail() {
    let (up_url, up, _) = fake_upstream().await;
    let h = federated_harness(&up_url).await;
    let mut b = Browser::default();
    let path = authorize_path("default.agent", "http://127.0.0.1:9999/cb", &[]);
    let callback = go_upstream(&h, &mut b, &up, &path).await;
    // Wrong state.
    let forged = callback.replace("state=", "state=x");
    assert_eq!(b.get(&h.app, &forged).await.status, StatusCode::BAD_REQUEST);
    // Another browser (no cookie).
    let mut other = Browser::default();
    assert_eq!(
        other.get(&h.app, &callback).await.status,
        StatusCode::BAD_REQUEST
    );
    // Wrong nonce in the ID token (a code injected from another sign-in): a bad request.
    up.lock().unwrap().wrong_nonce = true;
    let res = b.get(&h.app, &callback).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        res.body
            .contains("does not match a sign-in started in this browser")
    );
    assert!(!b.cookies.contains_key("keyway_issuer_session"));
    // Wrong iss parameter (RFC 9207 mix-up defence).
    up.lock().unwrap().wrong_nonce = false;
    let mixed = format!("{callback}&iss=https%3A%2F%2Fevil.example");
    assert_eq!(b.get(&h.app, &mixed).await.status, StatusCode::BAD_REQUEST);
    // The genuine callback still works.
    assert_eq!(b.get(&h.app, &callback).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn several_upstreams_each_get_a_button_and_their_own_callback_check() {
    let (first_url, _first, _) = fake_upstream().await;
    let (second_url, second, _) = fake_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upstreams.yaml");
    std::fs::write(
        &file,
        format!(
            "- {{id: partner, issuer: '{second_url}', clientId: keyway, clientSecret: up-secret, name: Partner IdP}}\n"
        ),
    )
    .unwrap();
    let h = harness_with(&[
        "--upstream-issuer",
        &first_url,
        "--upstream-client-id",
        "keyway",
        "--upstream-client-secret",
        "up-secret",
        "--upstream-name",
        "Acme SSO",
        "--upstreams-file",
        file.to_str().unwrap(),
    ])
    .await;
    let mut b = Browser::default();
    let path = authorize_path("default.agent", "http://127.0.0.1:9999/cb", &[]);
    let page = b.get(&h.app, &path).await;
    assert!(page.body.contains("Continue with Partner IdP"));
    let callback = go_upstream_via(&h, &mut b, &second, &path, "partner").await;
    // The first provider's issuer in `iss` is refused for a sign-in sent to the second one.
    let mixed = format!("{callback}&{}", form(&[("iss", &first_url)]));
    assert_eq!(b.get(&h.app, &mixed).await.status, StatusCode::BAD_REQUEST);
    let res = b.get(&h.app, &callback).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(b.cookies.contains_key("keyway_issuer_session"));
}

#[tokio::test]
async fn missing_iss_is_refused_when_the_upstream_advertises_it() {
    let (up_url, up, _) = fake_upstream().await;
    up.lock().unwrap().advertise_iss = true;
    let h = federated_harness(&up_url).await;
    let mut b = Browser::default();
    let path = authorize_path("default.agent", "http://127.0.0.1:9999/cb", &[]);
    let callback = go_upstream(&h, &mut b, &up, &path).await;
    // RFC 9207 §2.4: advertised, so a response without `iss` is refused…
    let res = b.get(&h.app, &callback).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(!b.cookies.contains_key("keyway_issuer_session"));
    // …and one with the exact issuer goes through.
    let ok = format!("{callback}&{}", form(&[("iss", &up_url)]));
    let res = b.get(&h.app, &ok).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(b.cookies.contains_key("keyway_issuer_session"));
}

/// Signs in through the fake upstream to the agent with `openid email`; returns the ID token's
/// claims.
async fn agent_id_token(up_url: &str, up: &Arc<Mutex<Up>>, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--upstream-issuer",
        up_url,
        "--upstream-client-id",
        "keyway",
        "--upstream-client-secret",
        "up-secret",
        "--upstream-name",
        "Acme SSO",
    ];
    args.extend_from_slice(extra);
    let h = harness_with(&args).await;
    let mut b = Browser::default();
    let path = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[("scope", "openid email")],
    );
    let callback = go_upstream(&h, &mut b, up, &path).await;
    let res = b.get(&h.app, &callback).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let consent = b.get(&h.app, &res.location()).await;
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &hidden(&consent.body, "csrf")),
                ("request", &hidden(&consent.body, "request")),
                ("decision", "allow"),
            ]),
        )
        .await;
    let code = res.loc_params()["code"].clone();
    let t = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9999/cb"),
            ("code_verifier", VERIFIER),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await;
    jwt_parts(t.json()["id_token"].as_str().unwrap()).1
}

#[tokio::test]
async fn unverified_upstream_email_is_dropped_unless_trusted() {
    for verified in [Some(false), None] {
        let (up_url, up, _) = fake_upstream().await;
        up.lock().unwrap().email_verified = verified;
        let id = agent_id_token(&up_url, &up, &[]).await;
        assert_eq!(id["sub"], "default:u-123");
        assert!(id.get("email").is_none(), "{verified:?}: {id}");
        assert!(id.get("email_verified").is_none(), "{verified:?}: {id}");
    }
    // Userinfo's `email_verified: true` is about its own address, not another one the ID
    // token carries without `email_verified`.
    let (up_url, up, _) = fake_upstream().await;
    up.lock().unwrap().id_token_email = Some("carol@elsewhere.example".into());
    let id = agent_id_token(&up_url, &up, &[]).await;
    assert!(id.get("email").is_none(), "{id}");
    // The insecure switch takes the upstream's word for it.
    let (up_url, up, _) = fake_upstream().await;
    up.lock().unwrap().email_verified = Some(false);
    let id = agent_id_token(
        &up_url,
        &up,
        &["--upstream-insecure-trust-unverified-email"],
    )
    .await;
    assert_eq!(id["email"], "carol@example.com");
    assert_eq!(id["email_verified"], true);
}

/// Refresh families stored before unverified emails were dropped at sign-in still hold them:
/// the refresh grant's access check and its tokens count only a verified address.
#[tokio::test]
async fn refresh_counts_only_a_verified_email() {
    use issuer::store::{Claims, RefreshFamily, SecretHash};
    let h = harness().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let family = |id: &str, verified: Option<bool>| RefreshFamily {
        id: id.into(),
        client_id: "default.mail".into(),
        subject: format!("default:{id}"),
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        resources: vec![],
        claims: Claims {
            email: Some(format!("{id}@example.com")),
            email_verified: verified,
            ..Claims::default()
        },
        auth_time: now,
        session_id: None,
        created_at: now,
        expires_at: now + 3600,
        idle_expires_at: now + 3600,
        revoked: false,
    };
    let refresh = |token: &'static str| {
        let app = h.app.clone();
        async move {
            post(
                &app,
                "/token",
                &form(&[("grant_type", "refresh_token"), ("refresh_token", token)]),
                Some(&basic("default.mail", "mail-secret")),
            )
            .await
        }
    };
    for (id, verified, token) in [("unv", Some(false), "rt-unv"), ("nov", None, "rt-nov")] {
        h.issuer
            .store()
            .create_refresh_family(&family(id, verified), &SecretHash::of(token))
            .await
            .unwrap();
        let res = refresh(token).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{id}: {}", res.body);
        assert_eq!(res.error(), "invalid_grant");
        assert_eq!(
            res.json()["error_description"],
            "the person may no longer use this app"
        );
    }
    h.issuer
        .store()
        .create_refresh_family(&family("ver", Some(true)), &SecretHash::of("rt-ver"))
        .await
        .unwrap();
    let res = refresh("rt-ver").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let (_, at) = jwt_parts(res.json()["access_token"].as_str().unwrap());
    assert_eq!(at["email"], "ver@example.com");
}
