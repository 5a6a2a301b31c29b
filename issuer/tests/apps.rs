//! The seams between apps: a person's token for an app goes only to clients that app admits
//! (`spec.access.delegatedClients`, `dynamicClients`), with the consent page whenever a client
//! asks for a resource it does not hold and scopes limited to what the holder registers; a
//! consent covers only the resources it was given for; dynamically registered clients cannot
//! pass for ConnectedApps, expire when unused, and cross-origin checks look up one origin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;

const TICKETS: &str = "https://tickets.example";
const WEB: &str = "https://web.example";
const MAIL_CB: &str = "https://mail.example/cb";
const HELPER_CB: &str = "https://helper.example/cb";
const AGENT_CB: &str = "http://127.0.0.1:9999/cb";

/// Apps beside the harness's: `tickets` holds a resource and admits `default.helper` (a first
/// party app), `default.agent` and dynamically registered clients; `helper` holds nothing.
fn more_apps(delegated: &str) -> String {
    format!(
        r#"
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {{name: tickets}}
spec:
  displayName: Ticket tracker
  redirectURIs: ["https://tickets.example/cb"]
  scopes: [openid, email, "tickets:read"]
  resource: {TICKETS}
  access:
    delegatedClients: {delegated}
    dynamicClients: withConsent
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {{name: helper}}
spec:
  displayName: Helper
  redirectURIs: ["{HELPER_CB}"]
  scopes: [openid, email, "tickets:read", "tickets:admin"]
"#
    )
}

async fn with_more_apps(delegated: &str) -> Harness {
    let h = harness().await;
    set_more_apps(&h, delegated);
    h
}

fn set_more_apps(h: &Harness, delegated: &str) {
    std::fs::write(h.dir.path().join("clients/more.yaml"), more_apps(delegated)).unwrap();
    std::fs::write(
        h.dir.path().join("clients/default.helper.secret"),
        "helper-secret",
    )
    .unwrap();
    assert_eq!(h.issuer.clients().reload(), Ok(true));
}

/// Signs alice in (through `default.web`'s own flow) so that later requests find a session.
async fn signed_in(h: &Harness) -> Browser {
    let mut b = Browser::default();
    web_code(&mut b, &h.app).await;
    b
}

fn allow_form(page: &Res) -> String {
    form(&[
        ("csrf", &hidden(&page.body, "csrf")),
        ("request", &hidden(&page.body, "request")),
        ("decision", "allow"),
    ])
}

async fn redeem(h: &Harness, code: &str, client: &str, secret: Option<&str>, cb: &str) -> Res {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", cb),
        ("code_verifier", VERIFIER),
    ];
    if secret.is_none() {
        pairs.push(("client_id", client));
    }
    let auth = secret.map(|s| basic(client, s));
    post(&h.app, "/token", &form(&pairs), auth.as_deref()).await
}

/// Item 1: a first-party app asking for another app's resource, with scopes it chose, gets no
/// code and no consent page: `invalid_target`, sent back to it.
#[tokio::test]
async fn an_app_gets_no_persons_token_for_a_resource_that_does_not_admit_it() {
    let h = harness().await;
    let mut b = signed_in(&h).await;
    for (client, cb, scope) in [
        ("default.mail", MAIL_CB, "openid email offline_access"),
        ("default.mail", MAIL_CB, ""),
    ] {
        let res = b
            .get(
                &h.app,
                &authorize_path(client, cb, &[("resource", WEB), ("scope", scope)]),
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let p = res.loc_params();
        assert!(res.location().starts_with(cb), "{}", res.location());
        assert_eq!(p["error"], "invalid_target", "{p:?}");
        assert!(!p.contains_key("code"));
        assert_eq!(p["state"], "st-1");
    }
    // The resource's own app, and a client it admits, still get theirs.
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.web",
                "https://web.example/cb",
                &[("resource", WEB)],
            ),
        )
        .await;
    assert!(res.loc_params().contains_key("code"), "{}", res.location());
}

/// Item 1: a client asking for a resource it does not hold sees the consent page, whatever its
/// `trust`; and it is granted no scope the resource's app does not register.
#[tokio::test]
async fn a_delegated_client_always_sees_consent_and_gets_only_the_holders_scopes() {
    let h = with_more_apps("[default.helper, default.agent]").await;
    let mut b = signed_in(&h).await;
    // helper is first party: for its own sign-in (no resource) there is no consent page...
    let res = b
        .get(&h.app, &authorize_path("default.helper", HELPER_CB, &[]))
        .await;
    assert!(res.loc_params().contains_key("code"), "{}", res.body);
    // ...but for the tracker's resource there is.
    let path = authorize_path(
        "default.helper",
        HELPER_CB,
        &[("resource", TICKETS), ("scope", "openid tickets:read")],
    );
    let page = b.get(&h.app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.headers);
    assert!(page.body.contains("Helper wants access"), "{}", page.body);
    assert!(page.body.contains("Ticket tracker"), "{}", page.body);
    // prompt=none cannot skip it.
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.helper",
                HELPER_CB,
                &[("resource", TICKETS), ("prompt", "none")],
            ),
        )
        .await;
    assert_eq!(res.loc_params()["error"], "consent_required");
    let res = b.post(&h.app, "/consent", &allow_form(&page)).await;
    let code = res.loc_params()["code"].clone();
    let t = redeem(
        &h,
        &code,
        "default.helper",
        Some("helper-secret"),
        HELPER_CB,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let (_, claims) = jwt_parts(t.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], TICKETS);
    assert_eq!(claims["client_id"], "default.helper");
    assert_eq!(claims["scope"], "openid tickets:read");

    // tickets:admin is helper's but not the tracker's: refused, before any page.
    let res = b
        .get(
            &h.app,
            &authorize_path(
                "default.helper",
                HELPER_CB,
                &[("resource", TICKETS), ("scope", "openid tickets:admin")],
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.loc_params()["error"], "invalid_scope");
}

/// Item 1: the token endpoint decides again. A code or a refresh token never yields a token for
/// a resource whose app no longer admits the client (the family is revoked).
#[tokio::test]
async fn codes_and_refresh_tokens_stop_when_the_resource_no_longer_admits_the_client() {
    let h = with_more_apps("[default.helper]").await;
    let mut b = signed_in(&h).await;
    let path = authorize_path(
        "default.helper",
        HELPER_CB,
        &[("resource", TICKETS), ("scope", "openid email")],
    );
    let page = b.get(&h.app, &path).await;
    let res = b.post(&h.app, "/consent", &allow_form(&page)).await;
    let first = res.loc_params()["code"].clone();
    let t = redeem(
        &h,
        &first,
        "default.helper",
        Some("helper-secret"),
        HELPER_CB,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let rt = t.json()["refresh_token"].as_str().unwrap().to_string();
    // Consent remembered: the next code comes at once.
    let res = b.get(&h.app, &path).await;
    let second = res.loc_params()["code"].clone();

    set_more_apps(&h, "[]");
    let res = redeem(
        &h,
        &second,
        "default.helper",
        Some("helper-secret"),
        HELPER_CB,
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert_eq!(res.error(), "invalid_grant");
    let refresh = |rt: String| {
        let app = h.app.clone();
        async move {
            post(
                &app,
                "/token",
                &form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
                Some(&basic("default.helper", "helper-secret")),
            )
            .await
        }
    };
    let res = refresh(rt.clone()).await;
    assert_eq!(res.error(), "invalid_grant", "{}", res.body);
    // Admitted again, the revoked family stays revoked.
    set_more_apps(&h, "[default.helper, default.agent]");
    assert_eq!(refresh(rt).await.error(), "invalid_grant");
    // And a new authorization request is refused at once while not admitted.
    set_more_apps(&h, "[default.agent]");
    let res = b.get(&h.app, &path).await;
    assert_eq!(res.loc_params()["error"], "invalid_target");
}

/// Item 2: a consent given for one resource does not cover another.
#[tokio::test]
async fn consent_is_per_resource() {
    let h = with_more_apps("[default.agent]").await;
    let mut b = signed_in(&h).await;
    let ask = |resource: &'static str| {
        authorize_path(
            "default.agent",
            AGENT_CB,
            &[("resource", resource), ("scope", "openid email")],
        )
    };
    let page = b.get(&h.app, &ask(WEB)).await;
    assert!(page.body.contains("wants access"), "{}", page.body);
    assert!(page.body.contains(WEB), "{}", page.body);
    let res = b.post(&h.app, "/consent", &allow_form(&page)).await;
    assert!(res.loc_params().contains_key("code"));
    // Remembered for the wiki...
    let res = b.get(&h.app, &ask(WEB)).await;
    assert!(res.loc_params().contains_key("code"), "{}", res.body);
    // ...but the tracker is another resource: asked again.
    let page = b.get(&h.app, &ask(TICKETS)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.headers);
    assert!(page.body.contains("wants access"), "{}", page.body);
    assert!(page.body.contains(TICKETS), "{}", page.body);
    let res = b.post(&h.app, "/consent", &allow_form(&page)).await;
    assert!(res.loc_params().contains_key("code"));
    for r in [WEB, TICKETS] {
        let res = b.get(&h.app, &ask(r)).await;
        assert!(res.loc_params().contains_key("code"), "{r}: {}", res.body);
    }
    // More scopes for one resource are asked for that resource only.
    let page = b
        .get(
            &h.app,
            &authorize_path(
                "default.agent",
                AGENT_CB,
                &[("resource", WEB), ("scope", "openid email offline_access")],
            ),
        )
        .await;
    assert!(page.body.contains("wants access"), "{}", page.body);
    // The account page lists the agent once, and revoking forgets both resources.
    let account = b.get(&h.app, "/account").await;
    assert_eq!(
        account.body.matches("value=\"default.agent\"").count(),
        1,
        "{}",
        account.body
    );
    let res = b
        .post(
            &h.app,
            "/account/revoke",
            &form(&[
                ("csrf", &hidden(&account.body, "csrf")),
                ("client_id", "default.agent"),
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    for r in [WEB, TICKETS] {
        let page = b.get(&h.app, &ask(r)).await;
        assert!(page.body.contains("wants access"), "{r}: {}", page.body);
    }
}

async fn register(h: &Harness, name: &str, redirect: &str) -> Res {
    post_json(
        &h.app,
        "/register",
        &serde_json::json!({
            "client_name": name,
            "redirect_uris": [redirect],
            "scope": "openid email",
            "grant_types": ["authorization_code", "refresh_token"],
        })
        .to_string(),
    )
    .await
}

/// Items 1 and 5: a registered client gets a person's token only for an app whose
/// `dynamicClients` is `withConsent`, and the consent page says it is unverified and where the
/// code will go.
#[tokio::test]
async fn registered_clients_need_the_app_to_accept_them_and_are_marked_unverified() {
    let h = with_more_apps("[]").await;
    let mut b = signed_in(&h).await;
    let reg = register(&h, "Ticket helper", "https://agent.evil.example/cb").await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.body);
    let id = reg.json()["client_id"].as_str().unwrap().to_string();
    let cb = "https://agent.evil.example/cb";
    // The wiki does not accept registered clients.
    let res = b
        .get(
            &h.app,
            &authorize_path(&id, cb, &[("resource", WEB), ("scope", "openid")]),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.loc_params()["error"], "invalid_target");
    // The tracker does, with consent.
    let page = b
        .get(
            &h.app,
            &authorize_path(&id, cb, &[("resource", TICKETS), ("scope", "openid email")]),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.headers);
    let text = unescape(&page.body);
    assert!(text.contains("Ticket helper wants access"), "{text}");
    assert!(text.contains("not verified"), "{text}");
    assert!(text.contains("agent.evil.example"), "{text}");
    let res = b.post(&h.app, "/consent", &allow_form(&page)).await;
    let t = redeem(&h, &res.loc_params()["code"], &id, None, cb).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    // A ConnectedApp's consent page is not marked.
    let page = b
        .get(
            &h.app,
            &authorize_path("default.agent", AGENT_CB, &[("resource", WEB)]),
        )
        .await;
    assert!(page.body.contains("wants access"), "{}", page.body);
    assert!(
        !unescape(&page.body).contains("not verified"),
        "{}",
        page.body
    );
}

/// Item 5: a registration whose `client_name` is a ConnectedApp's display name (ignoring case,
/// spacing and punctuation) is refused.
#[tokio::test]
async fn a_registered_client_cannot_take_an_apps_name() {
    let h = harness().await;
    for name in [
        "Team wiki",
        "team WIKI",
        "  Team   wiki ",
        "Team-Wiki",
        "TEAM.WIKI!",
    ] {
        let res = register(&h, name, "https://x.example/cb").await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name}: {}", res.body);
        assert_eq!(res.error(), "invalid_client_metadata", "{name}");
        assert!(
            res.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("client_name"),
            "{}",
            res.body
        );
    }
    for name in ["Team wiki helper", "Wiki"] {
        let res = register(&h, name, "https://x.example/cb").await;
        assert_eq!(res.status, StatusCode::CREATED, "{name}: {}", res.body);
    }
    assert_eq!(h.issuer.store().list_clients().await.unwrap().len(), 2);
}

/// Item 5: a registered client unused for `--dcr-idle-expiry` (30 days by default) is gone; each
/// token it obtains keeps it.
#[tokio::test]
async fn unused_registered_clients_expire() {
    const DAY: i64 = 86400;
    let h = with_more_apps("[]").await;
    let cb = "http://127.0.0.1:7777/cb";
    let reg = register(&h, "Laptop agent", cb).await;
    let id = reg.json()["client_id"].as_str().unwrap().to_string();
    // Signs alice in again (sessions last hours, not days) and asks for a code.
    let code_for = || {
        let path = authorize_path(&id, cb, &[("resource", TICKETS), ("scope", "openid")]);
        let h = &h;
        async move {
            let mut b = signed_in(h).await;
            let page = b.get(&h.app, &path).await;
            if page.status == StatusCode::OK && page.body.contains("wants access") {
                b.post(&h.app, "/consent", &allow_form(&page)).await
            } else {
                page
            }
        }
    };
    // Used on day 20: still there on day 49.
    h.issuer.clock().advance(20 * DAY);
    let res = code_for().await;
    let t = redeem(&h, &res.loc_params()["code"], &id, None, cb).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let rt = t.json()["refresh_token"].as_str().unwrap().to_string();
    h.issuer.clock().advance(29 * DAY);
    let res = code_for().await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(res.loc_params().contains_key("code"), "{}", res.location());
    // Unused since day 20: gone on day 51, for /authorize and for /token alike.
    h.issuer.clock().advance(2 * DAY);
    let res = code_for().await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(res.body.contains("not registered"), "{}", res.body);
    let res = post(
        &h.app,
        "/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &id),
        ]),
        None,
    )
    .await;
    assert_eq!(res.error(), "invalid_client", "{}", res.body);
}

/// Item 5: whether an origin may call the token endpoint is one lookup of that origin, not a
/// read of every registered client: a registration row that cannot even be read does not stop
/// another client's origin.
#[tokio::test]
async fn cross_origin_checks_look_up_one_origin() {
    let h = harness().await;
    let origin = "http://127.0.0.1:7002";
    let res = post_json(
        &h.app,
        "/register",
        r#"{"redirect_uris":["http://127.0.0.1:7002/cb"]}"#,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    // Another row, written by something else, that is not JSON.
    let db = h.dir.path().join("store.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO registered_clients (client_id, metadata, created_at) VALUES ('dcr.broken', 'not json', 0)")
        .execute(&pool)
        .await
        .unwrap();
    // Past any cache interval.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let req = http::Request::builder()
        .method(http::Method::OPTIONS)
        .uri("/token")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = send(&h.app, req).await;
    assert_eq!(
        res.headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(origin),
        "{:?}",
        res.headers
    );
}
