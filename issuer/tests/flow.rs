//! End-to-end flows through the router (in-process): sign-in, consent, code, tokens, refresh
//! rotation, userinfo, revocation, introspection, logout, account page, client_credentials, DCR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::{StatusCode, header};

#[tokio::test]
async fn discovery_and_jwks_are_consistent() {
    let h = harness().await;
    let oidc = get(&h.app, "/.well-known/openid-configuration")
        .await
        .json();
    let oauth = get(&h.app, "/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(oidc, oauth);
    assert_eq!(oidc["issuer"], ISSUER);
    assert_eq!(
        oidc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(oidc["registration_endpoint"], format!("{ISSUER}/register"));
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let jwks = get(&h.app, "/jwks").await.json();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn code_flow_refresh_userinfo_revoke_introspect() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let res = redeem_web(&h.app, &code).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.headers["cache-control"], "no-store");
    let t = res.json();
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().unwrap();
    let (hdr, at) = jwt_parts(access);
    assert_eq!(hdr["typ"], "at+jwt");
    assert_eq!(hdr["alg"], "ES256");
    assert_eq!(at["aud"], "https://web.example");
    assert_eq!(at["client_id"], "default.web");
    assert_eq!(at["sub"], "alice@example.com");
    assert_eq!(at["email"], "alice@example.com");
    assert_eq!(at["groups"], serde_json::json!(["engineering"]));
    let (_, id) = jwt_parts(t["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], "default.web");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["iss"], ISSUER);
    assert!(id["sid"].is_string());
    // OIDC Core 3.1.3.6: the left half of SHA-256 (ES256) of the access token, base64url.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(access.as_bytes());
    let expected = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &digest[..16],
    );
    assert_eq!(id["at_hash"], expected.as_str());

    // userinfo
    let ui = send(
        &h.app,
        http::Request::get("/userinfo")
            .header("authorization", format!("Bearer {access}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(ui.status, StatusCode::OK, "{}", ui.body);
    assert_eq!(ui.json()["email"], "alice@example.com");

    // introspection of the access token
    let intro = post(
        &h.app,
        "/introspect",
        &form(&[("token", access)]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(intro.json()["active"], true);
    assert_eq!(intro.json()["sub"], "alice@example.com");

    // refresh rotation
    let r1 = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let app = h.app.clone();
        async move {
            post(
                &app,
                "/token",
                &form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
                Some(&basic("default.web", "web-secret")),
            )
            .await
        }
    };
    let res = refresh(r1.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let r2 = res.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    // within the grace window the old token still works (concurrent refresh)
    let res = refresh(r1.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let r3 = res.json()["refresh_token"].as_str().unwrap().to_string();
    // after the grace window: reuse revokes the family
    h.issuer.clock().advance(60);
    let res = refresh(r1.clone()).await;
    assert_eq!(res.error(), "invalid_grant");
    let res = refresh(r3).await;
    assert_eq!(res.error(), "invalid_grant", "family must be revoked");
    let _ = r2;

    // revocation of the access token
    let res = post(
        &h.app,
        "/revoke",
        &form(&[("token", access)]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
    let intro = post(
        &h.app,
        "/introspect",
        &form(&[("token", access)]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(intro.json()["active"], false);
}

/// A refresh token presented again within `--refresh-grace` (a retry, or concurrent refreshes
/// of one client) gets the same successor as its first presentation, and a presentation of an
/// older token of the chain gets the chain's current one: a family never has two live refresh
/// tokens. After the window, presenting a rotated token revokes the family.
#[tokio::test]
async fn refresh_within_the_grace_window_never_forks_the_family() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let r1 = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let app = h.app.clone();
        async move {
            post(
                &app,
                "/token",
                &form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
                Some(&basic("default.web", "web-secret")),
            )
            .await
        }
    };
    let rt_of = |res: &Res| {
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert!(res.json()["access_token"].is_string());
        res.json()["refresh_token"].as_str().unwrap().to_string()
    };
    let active = |token: String| {
        let app = h.app.clone();
        async move {
            let res = post(
                &app,
                "/introspect",
                &form(&[("token", &token)]),
                Some(&basic("default.web", "web-secret")),
            )
            .await;
            res.json()["active"] == true
        }
    };
    let r2 = rt_of(&refresh(r1.clone()).await);
    assert_ne!(r2, r1);
    // A retry within the window: the same successor, with a new access token.
    assert_eq!(rt_of(&refresh(r1.clone()).await), r2);
    // Concurrent refreshes with the current token: one successor for all.
    let (x, y, z) = tokio::join!(
        refresh(r2.clone()),
        refresh(r2.clone()),
        refresh(r2.clone())
    );
    let r3 = rt_of(&x);
    assert_eq!((rt_of(&y), rt_of(&z)), (r3.clone(), r3.clone()));
    assert_ne!(r3, r2);
    // The first token, still within its window, leads to the chain's current token.
    assert_eq!(rt_of(&refresh(r1.clone()).await), r3);
    let r4 = rt_of(&refresh(r3.clone()).await);
    for spent in [&r1, &r2, &r3] {
        assert!(!active(spent.clone()).await);
    }
    assert!(active(r4.clone()).await, "one live token: the chain's last");
    // After the window: reuse, and the whole family is revoked.
    h.issuer.clock().advance(11);
    let res = refresh(r2.clone()).await;
    assert_eq!(res.error(), "invalid_grant");
    assert!(
        res.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(refresh(r4.clone()).await.error(), "invalid_grant");
    assert!(!active(r4).await);
}

#[tokio::test]
async fn code_replay_revokes_tokens_from_first_use() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let first = redeem_web(&h.app, &code).await.json();
    let again = redeem_web(&h.app, &code).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.error(), "invalid_grant");
    let intro = post(
        &h.app,
        "/introspect",
        &form(&[("token", first["access_token"].as_str().unwrap())]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(intro.json()["active"], false);
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
}

#[tokio::test]
async fn sso_second_authorization_needs_no_login() {
    let h = harness().await;
    let mut b = Browser::default();
    web_code(&mut b, &h.app).await;
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
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.loc_params().contains_key("code"));
    // prompt=login shows the login page again despite the session
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("prompt", "login")],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("name=\"password\""));
    // max_age=0 after a while forces login too
    h.issuer.clock().advance(5);
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("max_age", "1"), ("prompt", "none")],
            ),
        )
        .await;
    assert_eq!(res.loc_params()["error"], "login_required");
}

#[tokio::test]
async fn third_party_consent_is_asked_remembered_and_revocable() {
    let h = harness().await;
    let mut b = Browser::default();
    let path = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[
            ("scope", "openid email tool:read offline_access"),
            ("resource", "https://web.example"),
        ],
    );
    let page = sign_in(&mut b, &h.app, &path, "alice@example.com").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Helpful agent wants access"));
    // Logo, description and each scope in plain words (with its raw name).
    let logo = page
        .body
        .split("<img src=\"")
        .nth(1)
        .map(|s| unescape(&s[..s.find('"').unwrap()]));
    assert_eq!(
        logo.as_deref(),
        Some("https://agent.example/logo.png"),
        "{}",
        page.body
    );
    assert!(page.body.contains("class=\"applogo\""));
    assert!(
        page.body.contains("<p>Reads the wiki for you.</p>"),
        "{}",
        page.body
    );
    for (words, raw) in [
        ("Confirm who you are (sign you in)", "openid"),
        ("See your email address", "email"),
        ("Use the permission \u{201c}tool:read\u{201d}", "tool:read"),
        ("Stay connected when you are not using it", "offline_access"),
    ] {
        let item = format!("{words} <code>{raw}</code>");
        assert!(
            unescape(&page.body).contains(&item),
            "{item}: {}",
            page.body
        );
    }
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let csrf = hidden(&page.body, "csrf");
    let request = hidden(&page.body, "request");
    // missing CSRF token: refused
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[("request", &request), ("decision", "allow")]),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", "allow"),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let code = res.loc_params()["code"].clone();
    // public client redeems with PKCE only
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
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let (_, at) = jwt_parts(t.json()["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "https://web.example");
    assert_eq!(at["scope"], "openid email tool:read offline_access");
    // remembered: no consent page the second time
    let res = b.get(&h.app, &path).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    // account page lists the grant; revoking it kills the refresh token
    let acct = b.get(&h.app, "/account").await;
    assert!(acct.body.contains("Helpful agent"), "{}", acct.body);
    let csrf = hidden(&acct.body, "csrf");
    let res = b
        .post(
            &h.app,
            "/account/revoke",
            &form(&[("csrf", &csrf), ("client_id", "default.agent")]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t.json()["refresh_token"].as_str().unwrap()),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
    // consent asked again
    let res = b.get(&h.app, &path).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("wants access"));
}

#[tokio::test]
async fn consent_denied_gives_access_denied() {
    let h = harness().await;
    let mut b = Browser::default();
    let path = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[("scope", "openid")],
    );
    let page = sign_in(&mut b, &h.app, &path, "alice@example.com").await;
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &hidden(&page.body, "csrf")),
                ("request", &hidden(&page.body, "request")),
                ("decision", "deny"),
            ]),
        )
        .await;
    let p = res.loc_params();
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "st-1");
    assert_eq!(p["iss"], ISSUER);
}

#[tokio::test]
async fn access_rules_refuse_bob_and_tell_him() {
    let h = harness().await;
    let mut b = Browser::default();
    let res = sign_in(
        &mut b,
        &h.app,
        &authorize_path("default.web", "https://web.example/cb", &[]),
        "bob@example.com",
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(
        res.body.contains("not allowed to use Team wiki"),
        "{}",
        res.body
    );
    assert!(res.body.contains("error=access_denied"));
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
async fn wrong_password_is_refused_without_session() {
    let h = harness().await;
    let mut b = Browser::default();
    let page = b
        .get(
            &h.app,
            &authorize_path("default.web", "https://web.example/cb", &[]),
        )
        .await;
    let res = b
        .post(
            &h.app,
            "/login",
            &form(&[
                ("csrf", &hidden(&page.body, "csrf")),
                ("request", &hidden(&page.body, "request")),
                ("email", "alice@example.com"),
                ("password", "wrong"),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("not correct"));
    assert!(!b.cookies.contains_key("keyway_issuer_session"));
}

#[tokio::test]
async fn client_credentials_and_its_refusals() {
    let h = harness().await;
    let ok = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "client_credentials"),
            ("scope", "tool:read"),
            ("resource", "https://web.example"),
        ]),
        Some(&basic("default.svc", "svc-secret")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let (_, at) = jwt_parts(ok.json()["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], "default.svc");
    assert_eq!(at["aud"], "https://web.example");
    assert_eq!(at["scope"], "tool:read");
    assert!(ok.json().get("refresh_token").is_none());
    // client_secret_post works too
    let ok = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "default.svc"),
            ("client_secret", "svc-secret"),
        ]),
        None,
    )
    .await;
    assert_eq!(ok.json()["scope"], "tool:read tool:write");
}

#[tokio::test]
async fn logout_with_id_token_hint_ends_the_session() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let path = format!(
        "/end_session?{}",
        form(&[
            ("id_token_hint", t["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", "https://web.example/bye"),
            ("state", "bye-1"),
        ])
    );
    let res = b.get(&h.app, &path).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "https://web.example/bye?state=bye-1");
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
    assert_eq!(res.loc_params()["error"], "login_required");
    // an unregistered post-logout URI is refused
    let bad = format!(
        "/end_session?{}",
        form(&[
            ("id_token_hint", t["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", "https://web.example/bye/"),
        ])
    );
    assert_eq!(b.get(&h.app, &bad).await.status, StatusCode::BAD_REQUEST);
}

/// RP-initiated logout ends a session at once only when the request proves it is the person's
/// own: the browser's session cookie matches the hint's `sub` and `sid`, and the hint has not
/// expired. Otherwise nothing ends on a GET: a browser without the session (a stranger holding
/// the ID token, a cross-site POST without the Lax cookie) ends nothing, and the person's own
/// browser with an expired or older hint is asked to confirm with a CSRF-protected form.
#[tokio::test]
async fn logout_by_id_token_hint_alone_is_confirmed() {
    let h = harness().await;
    let mut alice = Browser::default();
    let code = web_code(&mut alice, &h.app).await;
    let hint = redeem_web(&h.app, &code).await.json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let end = |hint: &str| {
        form(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "https://web.example/bye"),
            ("state", "bye-1"),
        ])
    };
    let none = authorize_path(
        "default.web",
        "https://web.example/cb",
        &[("prompt", "none")],
    );
    let app = h.app.clone();
    let signed_in = |b: &Browser| {
        let (mut b, app, none) = (b.clone(), app.clone(), none.clone());
        async move { b.get(&app, &none).await.loc_params().contains_key("code") }
    };
    assert!(signed_in(&alice).await);

    // Another browser holding alice's ID token, and a cross-site POST (no Lax cookie): back to
    // the app, and alice's session is untouched.
    let mut stranger = Browser::default();
    let res = stranger
        .get(&h.app, &format!("/end_session?{}", end(&hint)))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "https://web.example/bye?state=bye-1");
    let res = post(&h.app, "/end_session", &end(&hint), None).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(
        signed_in(&alice).await,
        "a hint alone ends nobody's session"
    );

    // Alice's own browser, once the hint has expired: a confirmation page; the GET changes
    // nothing.
    h.issuer.clock().advance(601);
    let page = alice
        .get(&h.app, &format!("/end_session?{}", end(&hint)))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
    assert!(page.body.contains("action=\"/logout\""), "{}", page.body);
    assert!(page.headers.get(header::LOCATION).is_none());
    assert!(signed_in(&alice).await, "not signed out before confirming");
    let confirm = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            (
                "post_logout_redirect_uri",
                &hidden(&page.body, "post_logout_redirect_uri"),
            ),
            ("client_id", &hidden(&page.body, "client_id")),
            ("state", &hidden(&page.body, "state")),
        ])
    };
    // A forged confirmation (another site cannot know the CSRF token) is refused.
    let res = alice
        .post(&h.app, "/logout", &confirm(&"x".repeat(43)))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(signed_in(&alice).await);
    let res = alice
        .post(&h.app, "/logout", &confirm(&hidden(&page.body, "csrf")))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "https://web.example/bye?state=bye-1");
    assert!(!signed_in(&alice).await);

    // A fresh hint from an earlier session, in the browser of a newer one (another `sid`):
    // asked to confirm too.
    let code = web_code(&mut alice, &h.app).await;
    let older = redeem_web(&h.app, &code).await.json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = alice
        .get(&h.app, &format!("/end_session?{}", end(&older)))
        .await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "the hint's own session: at once"
    );
    assert!(!signed_in(&alice).await);
    let code = web_code(&mut alice, &h.app).await;
    redeem_web(&h.app, &code).await;
    let page = alice
        .get(&h.app, &format!("/end_session?{}", end(&older)))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
    assert!(signed_in(&alice).await);
}

#[tokio::test]
async fn dynamic_registration_then_code_flow() {
    let h = harness().await;
    let reg = send(
        &h.app,
        http::Request::post("/register")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"redirect_uris":["http://127.0.0.1:7777/cb"],"client_name":"CLI","scope":"openid email","grant_types":["authorization_code","refresh_token"]}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.body);
    let id = reg.json()["client_id"].as_str().unwrap().to_string();
    assert_eq!(reg.json()["token_endpoint_auth_method"], "none");
    let mut b = Browser::default();
    let page = sign_in(
        &mut b,
        &h.app,
        &authorize_path(
            &id,
            "http://127.0.0.1:7777/cb",
            &[("scope", "openid email")],
        ),
        "alice@example.com",
    )
    .await;
    assert!(page.body.contains("CLI wants access"), "{}", page.body);
}

#[tokio::test]
async fn health_ready_metrics() {
    let h = harness().await;
    assert_eq!(get(&h.app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&h.app, "/readyz").await.status, StatusCode::OK);
    post(&h.app, "/token", "grant_type=client_credentials", None).await;
    let m = get(&h.app, "/metrics").await;
    assert!(
        m.body.contains("keyway_issuer_token_requests_total"),
        "{}",
        m.body
    );
    assert!(!m.body.contains("secret"));
}

#[tokio::test]
async fn login_hint_prefills_the_email_escaped() {
    let h = harness().await;
    let res = get(
        &h.app,
        &authorize_path(
            "default.web",
            "https://web.example/cb",
            &[("login_hint", "a\"><script>@example.com")],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(!res.body.contains("<script>"));
    assert_eq!(hidden(&res.body, "csrf").len(), 43);
    assert!(
        res.body
            .contains("value=\"a&#34;&#62;&#60;script&#62;@example.com\"")
            || res.body.contains("a&quot;&gt;&lt;script&gt;"),
        "{}",
        res.body
    );
}

/// RFC 7662 §4: a client learns about a token only when it is the token's client or the
/// resource server the token is for; anyone else gets exactly the answer for an unknown token.
#[tokio::test]
async fn introspection_answers_the_tokens_client_and_resource_server_only() {
    let h = harness().await;
    let introspect = |token: String, id: &'static str, secret: &'static str| {
        let app = h.app.clone();
        async move {
            let res = post(
                &app,
                "/introspect",
                &form(&[("token", &token)]),
                Some(&basic(id, secret)),
            )
            .await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            res
        }
    };
    let web = |t: &str| introspect(t.to_string(), "default.web", "web-secret");
    let svc = |t: &str| introspect(t.to_string(), "default.svc", "svc-secret");
    let unknown = svc("not-a-token").await.body;
    assert_eq!(unknown, r#"{"active":false}"#);

    // alice's token for default.web (aud https://web.example): svc is a third party.
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let own = web(at).await.json();
    assert_eq!(own["active"], true);
    assert_eq!(own["email"], "alice@example.com");
    assert_eq!(own["groups"], serde_json::json!(["engineering"]));
    assert_eq!(svc(at).await.body, unknown);
    assert_eq!(web(rt).await.json()["active"], true);
    assert_eq!(svc(rt).await.body, unknown);

    // The public agent's token for the resource https://web.example: default.web is its
    // resource server and sees it; svc does not; nobody but the agent owns its refresh token.
    let path = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[
            ("scope", "openid email offline_access"),
            ("resource", "https://web.example"),
        ],
    );
    let page = b.get(&h.app, &path).await;
    assert!(page.body.contains("wants access"), "{}", page.body);
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &hidden(&page.body, "csrf")),
                ("request", &hidden(&page.body, "request")),
                ("decision", "allow"),
            ]),
        )
        .await;
    let t = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &res.loc_params()["code"]),
            ("redirect_uri", "http://127.0.0.1:9999/cb"),
            ("code_verifier", VERIFIER),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await
    .json();
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let seen = web(at).await.json();
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], "default.agent");
    assert_eq!(seen["aud"], "https://web.example");
    assert_eq!(seen["email"], "alice@example.com");
    assert_eq!(svc(at).await.body, unknown);
    assert_eq!(web(rt).await.body, unknown);

    // svc's own client_credentials tokens: for web's resource, and for itself.
    let cc = |resource: Option<&'static str>| {
        let app = h.app.clone();
        async move {
            let mut p = vec![("grant_type", "client_credentials"), ("scope", "tool:read")];
            p.extend(resource.map(|r| ("resource", r)));
            let res = post(
                &app,
                "/token",
                &form(&p),
                Some(&basic("default.svc", "svc-secret")),
            )
            .await;
            res.json()["access_token"].as_str().unwrap().to_string()
        }
    };
    let for_web = cc(Some("https://web.example")).await;
    assert_eq!(svc(&for_web).await.json()["active"], true);
    assert_eq!(web(&for_web).await.json()["client_id"], "default.svc");
    let for_itself = cc(None).await;
    assert_eq!(svc(&for_itself).await.json()["aud"], "default.svc");
    assert_eq!(web(&for_itself).await.body, unknown);
    // A revoked token stays inactive for its resource server too.
    let res = post(
        &h.app,
        "/revoke",
        &form(&[("token", &for_web)]),
        Some(&basic("default.svc", "svc-secret")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(web(&for_web).await.body, unknown);
}

/// Two tabs: two apps (or one app twice) send the person to the issuer before they sign in.
/// The second arrival keeps the browser's CSRF token, so the first tab's form still works; so
/// does the second's. The same for two consent pages.
#[tokio::test]
async fn two_tabs_share_one_csrf_token() {
    let h = harness().await;
    let mut b = Browser::default();
    let first = b
        .arrive(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("state", "tab-1")],
            ),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let set = first.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let second = b
        .arrive(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("state", "tab-2")],
            ),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(second.headers.get(header::SET_COOKIE).is_none());
    let login = |page: &Res| {
        form(&[
            ("csrf", &hidden(&page.body, "csrf")),
            ("request", &hidden(&page.body, "request")),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
        ])
    };
    let res = b.post(&h.app, "/login", &login(&first)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = b.get(&h.app, &res.location()).await;
    assert_eq!(res.loc_params()["state"], "tab-1");
    let res = b.post(&h.app, "/login", &login(&second)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = b.get(&h.app, &res.location()).await;
    assert_eq!(res.loc_params()["state"], "tab-2");

    // Signed in: two consent pages of a third-party app, the first one answered first.
    let consent = |state: &str| {
        authorize_path(
            "default.agent",
            "http://127.0.0.1:9999/cb",
            &[("scope", "openid email"), ("state", state)],
        )
    };
    let first = b.arrive(&h.app, &consent("c-1")).await;
    let second = b.arrive(&h.app, &consent("c-2")).await;
    assert!(first.body.contains("wants access"), "{}", first.body);
    assert!(second.body.contains("wants access"), "{}", second.body);
    let allow = |page: &Res| {
        form(&[
            ("csrf", &hidden(&page.body, "csrf")),
            ("request", &hidden(&page.body, "request")),
            ("decision", "allow"),
        ])
    };
    let res = b.post(&h.app, "/consent", &allow(&first)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.loc_params()["state"], "c-1");
    assert!(res.loc_params().contains_key("code"));
    let res = b.post(&h.app, "/consent", &allow(&second)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.loc_params()["state"], "c-2");

    // Still a double submit: another browser's token is refused.
    let mut other = Browser::default();
    let page = other.arrive(&h.app, &consent("c-3")).await;
    let theirs = hidden(&page.body, "csrf");
    let wider = authorize_path(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[("scope", "openid email offline_access")],
    );
    let page = b.arrive(&h.app, &wider).await;
    assert!(page.body.contains("wants access"), "{}", page.body);
    let res = b
        .post(
            &h.app,
            "/consent",
            &form(&[
                ("csrf", &theirs),
                ("request", &hidden(&page.body, "request")),
                ("decision", "allow"),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(set.starts_with("keyway_issuer_csrf="), "{set}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
}

/// The refresh grant evaluates the access rules of the app owning each granted resource, as
/// the authorization endpoint does (the web app admits only `engineering`).
#[tokio::test]
async fn refresh_checks_the_resource_owners_access_rules() {
    use issuer::store::{Claims, RefreshFamily, SecretHash};
    let h = harness().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let family = |id: &str, groups: &[&str]| RefreshFamily {
        id: id.into(),
        client_id: "default.agent".into(),
        subject: format!("{id}@example.com"),
        scopes: vec!["openid".into(), "offline_access".into()],
        resources: vec!["https://web.example".into()],
        claims: Claims {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Claims::default()
        },
        auth_time: now,
        session_id: None,
        created_at: now,
        expires_at: now + 3600,
        idle_expires_at: now + 3600,
        revoked: false,
    };
    for (id, groups, token, ok) in [
        ("bob", &["sales"][..], "rt-bob", false),
        ("alice", &["engineering"][..], "rt-alice", true),
    ] {
        h.issuer
            .store()
            .create_refresh_family(&family(id, groups), &SecretHash::of(token))
            .await
            .unwrap();
        let res = post(
            &h.app,
            "/token",
            &form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "default.agent"),
            ]),
            None,
        )
        .await;
        if ok {
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            let (_, at) = jwt_parts(res.json()["access_token"].as_str().unwrap());
            assert_eq!(at["aud"], "https://web.example");
        } else {
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
            assert_eq!(
                res.json()["error_description"],
                "the person may no longer use this app"
            );
            // The family is revoked, not just this attempt refused.
            let f = h
                .issuer
                .store()
                .get_refresh_family(id)
                .await
                .unwrap()
                .unwrap();
            assert!(f.revoked);
        }
    }
}
