//! The negative suite: each case asserts the exact error. Every response is also checked not to
//! be a 500 (by `send`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use issuer::SLOW_DOWN;

const WEB_CB: &str = "https://web.example/cb";

/// An authorization request that must be refused on a page, without any redirect.
async fn page_refusal(extra: &[(&str, &str)], client: &str) {
    let h = harness().await;
    let res = get(&h.app, &authorize_path(client, WEB_CB, extra)).await;
    assert_eq!(
        res.status,
        StatusCode::BAD_REQUEST,
        "{extra:?}: {}",
        res.body
    );
    assert!(res.headers.get("location").is_none());
    assert!(res.body.contains("This sign-in link is not valid"));
}

#[tokio::test]
async fn redirect_uri_prefix_is_refused() {
    page_refusal(
        &[("redirect_uri", "https://web.example/cb/extra")],
        "default.web",
    )
    .await;
}

#[tokio::test]
async fn redirect_uri_trailing_slash_is_refused() {
    page_refusal(
        &[("redirect_uri", "https://web.example/cb/")],
        "default.web",
    )
    .await;
}

#[tokio::test]
async fn redirect_uri_other_port_is_refused() {
    page_refusal(
        &[("redirect_uri", "https://web.example:8443/cb")],
        "default.web",
    )
    .await;
}

#[tokio::test]
async fn redirect_uri_with_userinfo_is_refused() {
    page_refusal(
        &[("redirect_uri", "https://evil@web.example/cb")],
        "default.web",
    )
    .await;
}

#[tokio::test]
async fn redirect_uri_case_variant_is_refused() {
    page_refusal(&[("redirect_uri", "https://WEB.example/cb")], "default.web").await;
}

#[tokio::test]
async fn missing_redirect_uri_is_refused() {
    // `authorize_path` leaves out a parameter given an empty value: no redirect_uri at all.
    let path = authorize_path("default.web", WEB_CB, &[("redirect_uri", "")]);
    assert!(!path.contains("redirect_uri"), "{path}");
    page_refusal(&[("redirect_uri", "")], "default.web").await;
    let h = harness().await;
    let res = get(&h.app, &path).await;
    assert!(
        res.body.contains("The request has no redirect_uri."),
        "{}",
        res.body
    );
}

#[tokio::test]
async fn unknown_client_is_refused() {
    page_refusal(&[], "nobody").await;
}

/// An authorization request refused with a redirect carrying `error`, `state` and `iss`.
async fn redirected_error(client: &str, cb: &str, extra: &[(&str, &str)], error: &str) {
    let h = harness().await;
    let res = get(&h.app, &authorize_path(client, cb, extra)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{extra:?}: {}", res.body);
    let p = res.loc_params();
    assert_eq!(p["error"], error, "{extra:?}");
    assert_eq!(p["state"], "st-1");
    assert_eq!(p["iss"], ISSUER);
    assert!(!p.contains_key("code"));
}

#[tokio::test]
async fn missing_pkce_is_refused() {
    // No code_challenge parameter at all (an empty value makes `authorize_path` leave it out).
    let path = authorize_path("default.web", WEB_CB, &[("code_challenge", "")]);
    assert!(!path.contains("code_challenge="), "{path}");
    redirected_error(
        "default.web",
        WEB_CB,
        &[("code_challenge", "")],
        "invalid_request",
    )
    .await;
    let h = harness().await;
    let p = get(&h.app, &path).await.loc_params();
    assert_eq!(
        p["error_description"],
        "PKCE is required: missing code_challenge"
    );
}

#[tokio::test]
async fn plain_pkce_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("code_challenge_method", "plain")],
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn pkce_without_method_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("code_challenge_method", "")],
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn malformed_challenge_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("code_challenge", "short")],
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn implicit_flow_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("response_type", "token")],
        "unsupported_response_type",
    )
    .await;
}

#[tokio::test]
async fn scope_the_app_may_not_ask_is_refused() {
    redirected_error(
        "default.agent",
        "http://127.0.0.1:9999/cb",
        &[("scope", "openid tool:write")],
        "invalid_scope",
    )
    .await;
}

#[tokio::test]
async fn unknown_resource_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("resource", "https://other.example")],
        "invalid_target",
    )
    .await;
}

#[tokio::test]
async fn prompt_none_without_session() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("prompt", "none")],
        "login_required",
    )
    .await;
}

#[tokio::test]
async fn prompt_none_with_consent_is_refused() {
    redirected_error(
        "default.web",
        WEB_CB,
        &[("prompt", "none consent")],
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn repeated_and_oversized_parameters_are_refused() {
    let h = harness().await;
    let big = "x".repeat(5000);
    let base = authorize_path("default.web", WEB_CB, &[]);
    // RFC 6749 §4.1.2.1: client and redirect URI are valid and state can be returned exactly,
    // so the error goes back to the client…
    for (extra, error, description) in [
        (
            "&nonce=again",
            "invalid_request",
            "parameter nonce is repeated",
        ),
        (
            &*format!("&x={big}"),
            "invalid_request",
            "a parameter is too long",
        ),
        (
            "&resource=https%3A%2F%2Fweb.example&resource=https%3A%2F%2Fother.example",
            "invalid_target",
            "only one resource per authorization request is supported",
        ),
    ] {
        let res = get(&h.app, &format!("{base}{extra}")).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "{extra:.40}: {}",
            res.body
        );
        assert!(res.location().starts_with("https://web.example/cb?"));
        let p = res.loc_params();
        assert_eq!(p["error"], error);
        assert_eq!(p["error_description"], description);
        assert_eq!(p["state"], "st-1");
        assert_eq!(p["iss"], ISSUER);
        assert!(!p.contains_key("code"));
    }
    // …otherwise the person gets a page and nothing goes anywhere: repeated client_id or
    // redirect_uri, or a state that cannot be returned exactly (repeated or too long).
    for path in [
        format!("{base}&client_id=default.agent"),
        format!("{base}&redirect_uri=https%3A%2F%2Fweb.example%2Fcb"),
        format!("{base}&state=again"),
        authorize_path("default.web", WEB_CB, &[("state", &big)]),
    ] {
        let res = get(&h.app, &path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path:.200}");
        assert!(res.headers.get("location").is_none());
        assert!(
            res.body.contains("The request is malformed"),
            "{}",
            res.body
        );
        assert!(!res.body.contains("again") && !res.body.contains("xxxx"));
    }
    let res = post(
        &h.app,
        "/token",
        &format!("grant_type=client_credentials&x={}", "y".repeat(70_000)),
        None,
    )
    .await;
    assert_eq!(res.error(), "invalid_request");
}

async fn token_error(body: &[(&str, &str)], auth: Option<&str>, status: StatusCode, error: &str) {
    let h = harness().await;
    let res = post(&h.app, "/token", &form(body), auth).await;
    assert_eq!(res.status, status, "{body:?}: {}", res.body);
    assert_eq!(res.error(), error, "{body:?}");
}

#[tokio::test]
async fn wrong_verifier_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", &"a".repeat(43)),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
    assert_eq!(
        res.json()["error_description"],
        "code_verifier does not match the code_challenge"
    );
}

/// A stolen code without the verifier (or redeemed by another client, or with another
/// redirect URI) is refused without being consumed: the legitimate redemption still works, and
/// a replay of that redemption is still detected and revokes its tokens.
#[tokio::test]
async fn refused_redemptions_do_not_burn_the_code() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    type Attempt<'a> = (&'a [(&'a str, &'a str)], Option<String>, &'a str);
    let attempts: [Attempt<'_>; 3] = [
        (
            &[("redirect_uri", WEB_CB), ("code_verifier", &"a".repeat(43))],
            Some(basic("default.web", "web-secret")),
            "code_verifier does not match the code_challenge",
        ),
        (
            &[
                ("redirect_uri", "https://web.example/cb/"),
                ("code_verifier", VERIFIER),
            ],
            Some(basic("default.web", "web-secret")),
            "redirect_uri does not match the authorization request",
        ),
        (
            &[
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
                ("client_id", "default.agent"),
            ],
            None,
            "the code was issued to another client",
        ),
    ];
    for (extra, auth, why) in attempts {
        let mut body = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ];
        body.extend_from_slice(extra);
        let res = post(&h.app, "/token", &form(&body), auth.as_deref()).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
        assert_eq!(res.error(), "invalid_grant");
        assert_eq!(res.json()["error_description"], why);
    }
    let first = redeem_web(&h.app, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = redeem_web(&h.app, &code).await;
    assert_eq!(again.error(), "invalid_grant");
    assert_eq!(
        again.json()["error_description"],
        "the code was already used; tokens issued from it are revoked"
    );
    let intro = post(
        &h.app,
        "/introspect",
        &form(&[("token", first.json()["access_token"].as_str().unwrap())]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(intro.json()["active"], false);
}

#[tokio::test]
async fn malformed_or_missing_verifier_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    for v in ["short", ""] {
        let res = post(
            &h.app,
            "/token",
            &form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", v),
            ]),
            Some(&basic("default.web", "web-secret")),
        )
        .await;
        assert_eq!(res.error(), "invalid_request");
    }
}

#[tokio::test]
async fn code_used_by_another_client_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
}

#[tokio::test]
async fn redirect_uri_mismatch_at_token_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://web.example/cb/"),
            ("code_verifier", VERIFIER),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
}

#[tokio::test]
async fn expired_code_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    h.issuer.clock().advance(61);
    assert_eq!(redeem_web(&h.app, &code).await.error(), "invalid_grant");
}

#[tokio::test]
async fn wrong_client_secret_is_refused_with_challenge() {
    let h = harness().await;
    let res = post(
        &h.app,
        "/token",
        &form(&[("grant_type", "client_credentials")]),
        Some(&basic("default.svc", "wrong")),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error(), "invalid_client");
    assert_eq!(res.headers["www-authenticate"], "Basic realm=\"keyway\"");
}

#[tokio::test]
async fn wrong_client_secret_post_is_refused() {
    token_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "default.svc"),
            ("client_secret", "nope"),
        ],
        None,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn unknown_client_at_token_is_refused() {
    token_error(
        &[("grant_type", "client_credentials")],
        Some(&basic("ghost", "x")),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn confidential_client_without_secret_is_refused() {
    token_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "default.svc"),
        ],
        None,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn public_client_cannot_use_client_credentials() {
    token_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "default.agent"),
        ],
        None,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
}

#[tokio::test]
async fn client_without_the_grant_cannot_use_client_credentials() {
    token_error(
        &[("grant_type", "client_credentials")],
        Some(&basic("default.web", "web-secret")),
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
}

#[tokio::test]
async fn two_authentication_methods_are_refused() {
    token_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", "svc-secret"),
        ],
        Some(&basic("default.svc", "svc-secret")),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn unsupported_and_missing_grant_type() {
    token_error(
        &[("grant_type", "password")],
        Some(&basic("default.svc", "svc-secret")),
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    token_error(
        &[],
        Some(&basic("default.svc", "svc-secret")),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn client_credentials_with_oidc_scope_is_refused() {
    token_error(
        &[
            ("grant_type", "client_credentials"),
            ("scope", "openid tool:read"),
        ],
        Some(&basic("default.svc", "svc-secret")),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
}

#[tokio::test]
async fn malformed_basic_header_is_refused() {
    token_error(
        &[("grant_type", "client_credentials")],
        Some("Basic %%%"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn json_body_at_token_is_refused() {
    let h = harness().await;
    let res = send(
        &h.app,
        http::Request::post("/token")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.error(), "invalid_request");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", "default.agent"),
        ]),
        None,
    )
    .await;
    assert_eq!(res.error(), "invalid_grant");
    // and the rightful client can still use it
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_with_wider_scope_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("scope", "openid groups"),
        ]),
        Some(&basic("default.web", "web-secret")),
    )
    .await;
    assert_eq!(res.error(), "invalid_scope");
}

#[tokio::test]
async fn expired_and_forged_access_tokens_are_refused_at_userinfo() {
    let h = harness().await;
    let mut b = Browser::default();
    let code = web_code(&mut b, &h.app).await;
    let t = redeem_web(&h.app, &code).await.json();
    let access = t["access_token"].as_str().unwrap();
    let userinfo = |tok: String| {
        let app = h.app.clone();
        async move {
            send(
                &app,
                http::Request::get("/userinfo")
                    .header("authorization", format!("Bearer {tok}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
        }
    };
    // alg none with the same claims
    let (_, claims) = jwt_parts(access);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        b64.encode(claims.to_string())
    );
    let res = userinfo(none).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error(), "invalid_token");
    // the ID token is not an access token
    let res = userinfo(t["id_token"].as_str().unwrap().to_string()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // expired
    h.issuer.clock().advance(601);
    let res = userinfo(access.to_string()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

async fn register(h: &Harness, body: &str) -> Res {
    post_json(&h.app, "/register", body).await
}

#[tokio::test]
async fn dcr_with_bad_redirect_is_refused() {
    let h = harness().await;
    for uri in [
        "http://evil.example/cb",
        "https://app.example/cb#frag",
        "javascript:alert(1)",
        "https://u@app.example/cb",
    ] {
        let res = register(&h, &format!(r#"{{"redirect_uris":["{uri}"]}}"#)).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(res.error(), "invalid_redirect_uri", "{uri}");
    }
}

#[tokio::test]
async fn dcr_confidential_or_broad_scope_is_refused() {
    let h = harness().await;
    let res = register(
        &h,
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#,
    )
    .await;
    assert_eq!(res.error(), "invalid_client_metadata");
    let res = register(
        &h,
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"scope":"openid admin"}"#,
    )
    .await;
    assert_eq!(res.error(), "invalid_client_metadata");
    let res = register(
        &h,
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["client_credentials"]}"#,
    )
    .await;
    assert_eq!(res.error(), "invalid_client_metadata");
    let res = register(&h, "not json").await;
    assert_eq!(res.error(), "invalid_client_metadata");
}

/// Registers from the TCP peer address `peer`.
async fn register_from(h: &Harness, peer: &str, body: &str) -> Res {
    let mut req = http::Request::post("/register")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let peer = std::net::SocketAddr::new(peer.parse().unwrap(), 40000);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    send(&h.app, req).await
}

/// Moves the harness clock to the start of the next window of `secs`, so that a test's calls
/// all fall in one window.
fn start_of_window(h: &Harness, secs: i64) {
    let now = h.issuer.clock().now();
    h.issuer.clock().advance(secs - now.rem_euclid(secs));
}

/// A 429 with `temporarily_unavailable` and a `Retry-After` within `range`.
fn assert_rate_limited(res: &Res, range: std::ops::RangeInclusive<u64>) {
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert_eq!(res.error(), "temporarily_unavailable");
    let after: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(range.contains(&after), "Retry-After: {after}");
}

#[tokio::test]
async fn dcr_is_rate_limited() {
    let h = harness_with(&["--dcr-rate", "2"]).await;
    start_of_window(&h, 60);
    let body = r#"{"redirect_uris":["http://127.0.0.1/cb"]}"#;
    assert_eq!(register(&h, body).await.status, StatusCode::CREATED);
    assert_eq!(
        register_from(&h, "192.0.2.1", body).await.status,
        StatusCode::CREATED
    );
    assert_rate_limited(&register_from(&h, "192.0.2.2", body).await, 50..=60);
}

#[tokio::test]
async fn dcr_is_rate_limited_per_client_address() {
    let h = harness_with(&[
        "--dcr-rate-per-address",
        "2",
        "--trusted-proxies",
        "10.0.0.0/8",
    ])
    .await;
    start_of_window(&h, 3600);
    let body = r#"{"redirect_uris":["http://127.0.0.1/cb"]}"#;
    for _ in 0..2 {
        let res = register_from(&h, "2001:db8:7:7::1", body).await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    // The same /64 is the same client, and so is one seen through the trusted ingress.
    assert_rate_limited(
        &register_from(&h, "2001:db8:7:7::2", body).await,
        3500..=3600,
    );
    let mut req = http::Request::post("/register")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "2001:db8:7:7:abcd::1")
        .body(axum::body::Body::from(body))
        .unwrap();
    let ingress = std::net::SocketAddr::new("10.1.2.3".parse().unwrap(), 40000);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(ingress));
    assert_rate_limited(&send(&h.app, req).await, 3500..=3600);
    // Another client still registers, and its registration does not reset the exhausted one.
    let res = register_from(&h, "2001:db8:7:8::1", body).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_rate_limited(
        &register_from(&h, "2001:db8:7:7::1", body).await,
        3500..=3600,
    );
    h.issuer.clock().advance(3600);
    let res = register_from(&h, "2001:db8:7:7::1", body).await;
    assert_eq!(res.status, StatusCode::CREATED);
}

#[tokio::test]
async fn csrf_missing_on_login_is_refused() {
    let h = harness().await;
    let mut b = Browser::default();
    b.get(&h.app, &authorize_path("default.web", WEB_CB, &[]))
        .await;
    let res = b
        .post(
            &h.app,
            "/login",
            &form(&[("email", "alice@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(!b.cookies.contains_key("keyway_issuer_session"));
}

#[tokio::test]
async fn public_client_cannot_introspect() {
    let h = harness().await;
    let res = post(
        &h.app,
        "/introspect",
        &form(&[("token", "x"), ("client_id", "default.agent")]),
        None,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error(), "invalid_client");
}

#[tokio::test]
async fn bad_id_token_hint_is_refused() {
    let h = harness().await;
    let res = get(&h.app, "/end_session?id_token_hint=abc.def.ghi").await;
    assert_eq!(res.error(), "invalid_request");
}

#[tokio::test]
async fn garbage_never_gives_500() {
    let h = harness().await;
    let bodies = [
        "",
        "%",
        "%zz=1",
        "a=%FF%FE",
        "=&=&&",
        "grant_type=authorization_code&code=%00&redirect_uri=%00&code_verifier=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "grant_type=refresh_token&refresh_token=\u{1F600}",
        "token=a.b.c&client_id=default.agent",
    ];
    for path in [
        "/token",
        "/revoke",
        "/introspect",
        "/login",
        "/consent",
        "/logout",
        "/account/revoke",
        "/authorize",
        "/end_session",
        "/userinfo",
    ] {
        for body in bodies {
            let res = post(&h.app, path, body, None).await;
            assert!(
                res.status.is_client_error()
                    || res.status.is_redirection()
                    || res.status == StatusCode::OK,
                "{path} {body}: {}",
                res.status
            );
            let res = post(&h.app, path, body, Some("Basic ZGVmYXVsdC5zdmM6")).await;
            assert!(res.status.as_u16() < 500, "{path}");
        }
    }
    for q in [
        "?",
        "?%",
        "?client_id=%FF",
        "?client_id=default.web&redirect_uri=%0a",
        "?prompt=%00",
    ] {
        let res = get(&h.app, &format!("/authorize{q}")).await;
        assert!(res.status.as_u16() < 500);
        assert!(!res.body.contains('\u{0}'));
    }
}

/// The sign-in form of one authorization request, posted as a browser at any client address.
struct LoginForm {
    app: axum::Router,
    browser: Browser,
    csrf: String,
    request: String,
}

impl LoginForm {
    async fn open(h: &Harness) -> Self {
        let mut browser = Browser::default();
        let page = browser
            .get(&h.app, &authorize_path("default.web", WEB_CB, &[]))
            .await;
        LoginForm {
            app: h.app.clone(),
            browser,
            csrf: hidden(&page.body, "csrf"),
            request: hidden(&page.body, "request"),
        }
    }

    /// Posts `email` and `password` from `peer`, with `X-Forwarded-For: xff` when given.
    async fn post(&self, peer: &str, xff: Option<&str>, email: &str, password: &str) -> Res {
        let mut b = self.browser.clone();
        b.peer = Browser::from_ip(peer).peer;
        b.forwarded_for = xff.map(str::to_string);
        let body = form(&[
            ("csrf", &self.csrf),
            ("request", &self.request),
            ("email", email),
            ("password", password),
        ]);
        b.post(&self.app, "/login", &body).await
    }
}

#[tokio::test]
async fn password_guessing_is_throttled() {
    let h = harness().await;
    let login = LoginForm::open(&h).await;
    let attempt = |peer, email, password| login.post(peer, None, email, password);
    let (attacker, victim) = ("192.0.2.66", "198.51.100.7");
    for _ in 0..5 {
        let res = attempt(attacker, "alice@example.com", "wrong").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = attempt(attacker, "alice@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.body.contains("Too many failed attempts"));
    // The owner, elsewhere, is not locked out by the attacker's failures.
    let res = attempt(victim, "alice@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    h.issuer.clock().advance(300);
    let res = attempt(attacker, "alice@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_counted() {
    let h = harness_with(&["--trusted-proxies", "10.0.0.0/8"]).await;
    let login = LoginForm::open(&h).await;
    let attempt = |peer, xff, password| login.post(peer, Some(xff), "alice@example.com", password);
    // Through the ingress (10.0.0.5), an attacker at 192.0.2.66 uses up its own budget.
    for _ in 0..5 {
        let res = attempt("10.0.0.5", "192.0.2.66", "wrong").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = attempt("10.0.0.5", "192.0.2.66", PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // The owner, through the same ingress from elsewhere, is not locked out.
    let res = attempt("10.0.0.5", "198.51.100.7", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    // A client that is not a trusted proxy cannot pick its address with the header.
    for _ in 0..5 {
        let res = attempt("203.0.113.9", "198.51.100.50", "wrong").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = attempt("203.0.113.9", "198.51.100.51", PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Guessing at one account from many addresses, beyond the account's shared budget, does not
/// lock its owner out: on a new device at a new address they are slowed down but let in, and in
/// a browser they signed in with before they are let in at once, even from an address whose
/// own budgets the attacker has used up.
#[tokio::test]
async fn many_addresses_cannot_lock_a_person_out() {
    let h = harness_with(&["--trusted-proxies", "10.0.0.0/8"]).await;
    let ingress = "10.0.0.5";
    let slow_down = SLOW_DOWN;
    // Alice signs in once on her laptop.
    let mut laptop = Browser::from_ip(ingress);
    laptop.forwarded_for = Some("198.51.100.7".into());
    let res = sign_in(
        &mut laptop,
        &h.app,
        &authorize_path("default.web", WEB_CB, &[]),
        "alice@example.com",
    )
    .await;
    assert!(res.loc_params().contains_key("code"), "{}", res.body);
    // 21 addresses, five wrong passwords each: 105 failures, more than the account's shared
    // budget (the last address's five at once).
    let login = LoginForm::open(&h).await;
    let attacker = |i: usize| format!("203.0.113.{i}");
    for i in 0..20 {
        for _ in 0..5 {
            let res = login
                .post(ingress, Some(&attacker(i)), "alice@example.com", "wrong")
                .await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
        }
    }
    let last =
        (0..5).map(|_| login.post(ingress, Some("203.0.113.20"), "alice@example.com", "wrong"));
    for res in futures::future::join_all(last).await {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    }
    // Each of those addresses is refused for her account now, even with the right password.
    let res = login
        .post(ingress, Some(&attacker(3)), "alice@example.com", PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    // Alice on a new device at a new address: slowed down, not refused.
    let start = std::time::Instant::now();
    let res = login
        .post(
            ingress,
            Some("198.51.100.99"),
            "alice@example.com",
            PASSWORD,
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(start.elapsed() >= slow_down, "{:?}", start.elapsed());
    // On her laptop, even at one of the attacker's addresses: let in at once.
    laptop.forwarded_for = Some(attacker(3));
    let page = laptop
        .get(
            &h.app,
            &authorize_path("default.web", WEB_CB, &[("prompt", "login")]),
        )
        .await;
    let start = std::time::Instant::now();
    let res = laptop
        .post(
            &h.app,
            "/login",
            &form(&[
                ("csrf", &hidden(&page.body, "csrf")),
                ("request", &hidden(&page.body, "request")),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(start.elapsed() < slow_down, "{:?}", start.elapsed());
    // Bob, whom nobody attacked, is not slowed down from the same new address.
    let start = std::time::Instant::now();
    let res = login
        .post(ingress, Some("198.51.100.99"), "bob@example.com", PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(start.elapsed() < slow_down, "{:?}", start.elapsed());
}

#[tokio::test]
async fn one_address_spraying_passwords_is_throttled() {
    let h = harness().await;
    let login = LoginForm::open(&h).await;
    // Below the per-(email, address) limit for each account, but 30 failures from one host.
    for i in 0..30 {
        let res = login
            .post(
                "2001:db8::1",
                None,
                &format!("user{i}@example.com"),
                "wrong",
            )
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    // Its /64 is refused, even for an account it never tried and with the right password.
    let res = login
        .post("2001:db8::2", None, "bob@example.com", PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    let res = login
        .post("2001:db8:0:1::1", None, "bob@example.com", PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}
