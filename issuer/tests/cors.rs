//! CORS: public documents for any origin, client-facing endpoints for the origins of registered
//! redirect URIs (and `--cors-allowed-origins`) only, never with credentials, and nothing at all
//! on the pages and on introspection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use common::*;
use http::{Method, Request, StatusCode};

const WEB: &str = "https://web.example";
const EVIL: &str = "https://evil.example";

async fn preflight(h: &Harness, path: &str, origin: &str) -> Res {
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    send(&h.app, req).await
}

async fn with_origin(h: &Harness, method: Method, path: &str, origin: &str, body: &str) -> Res {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic("default.svc", "svc-secret"))
        .body(Body::from(body.to_string()))
        .unwrap();
    send(&h.app, req).await
}

fn header<'a>(res: &'a Res, name: &str) -> Option<&'a str> {
    res.headers.get(name).map(|v| v.to_str().unwrap())
}

fn no_credentials(res: &Res) {
    assert!(
        !res.headers.contains_key("access-control-allow-credentials"),
        "{:?}",
        res.headers
    );
}

#[tokio::test]
async fn discovery_and_jwks_are_readable_from_any_origin() {
    let h = harness().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/jwks",
    ] {
        let req = Request::get(path)
            .header("origin", EVIL)
            .body(Body::empty())
            .unwrap();
        let res = send(&h.app, req).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
        no_credentials(&res);
        let res = preflight(&h, path, EVIL).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&res, "access-control-allow-methods"), Some("GET"));
        no_credentials(&res);
    }
}

#[tokio::test]
async fn preflight_allows_origins_of_registered_redirect_uris_only() {
    let h = harness().await;
    for path in ["/token", "/revoke", "/register", "/userinfo"] {
        let res = preflight(&h, path, WEB).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&res, "access-control-allow-origin"), Some(WEB));
        let methods = header(&res, "access-control-allow-methods").unwrap();
        assert_eq!(
            methods,
            if path == "/userinfo" {
                "GET, POST"
            } else {
                "POST"
            }
        );
        let allowed = header(&res, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        assert_eq!(header(&res, "access-control-max-age"), Some("600"));
        assert_eq!(header(&res, "vary"), Some("Origin"));
        no_credentials(&res);
        // A loopback redirect URI's origin includes its port.
        let res = preflight(&h, path, "http://127.0.0.1:9999").await;
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("http://127.0.0.1:9999")
        );

        for other in [
            EVIL,
            "http://web.example",
            "https://web.example:8443",
            "http://127.0.0.1:9998",
            "null",
        ] {
            let res = preflight(&h, path, other).await;
            assert_eq!(res.status, StatusCode::NO_CONTENT, "{path} {other}");
            assert!(
                !res.headers
                    .keys()
                    .any(|k| k.as_str().starts_with("access-control-")),
                "{path} {other}: {:?}",
                res.headers
            );
            assert_eq!(header(&res, "vary"), Some("Origin"));
        }
    }
}

#[tokio::test]
async fn actual_requests_echo_allowed_origins_only() {
    let h = harness().await;
    let body = "grant_type=client_credentials";
    let res = with_origin(&h, Method::POST, "/token", WEB, body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(WEB));
    assert_eq!(header(&res, "vary"), Some("Origin"));
    assert!(
        header(&res, "access-control-expose-headers")
            .unwrap()
            .contains("WWW-Authenticate")
    );
    no_credentials(&res);
    // Errors are readable too (the client must see `invalid_client`).
    let req = Request::post("/token")
        .header("origin", WEB)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic("default.svc", "wrong"))
        .body(Body::from(body))
        .unwrap();
    let res = send(&h.app, req).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(WEB));

    // Another origin still gets its answer (CORS is enforced by the browser), but no ACAO.
    let res = with_origin(&h, Method::POST, "/token", EVIL, body).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "vary"), Some("Origin"));
    no_credentials(&res);
    // Without an Origin (not a browser): no CORS headers but Vary, for caches.
    let res = post(
        &h.app,
        "/token",
        body,
        Some(&basic("default.svc", "svc-secret")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "vary"), Some("Origin"));
}

#[tokio::test]
async fn pages_and_introspection_stay_same_origin() {
    let h = harness().await;
    for path in [
        "/introspect",
        "/login",
        "/consent",
        "/authorize",
        "/account/revoke",
        "/logout",
    ] {
        let res = preflight(&h, path, WEB).await;
        assert_ne!(res.status, StatusCode::NO_CONTENT, "{path}");
        assert!(
            !res.headers
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{path}: {:?}",
            res.headers
        );
    }
    let res = with_origin(&h, Method::POST, "/introspect", WEB, "token=x").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    let req = Request::get(authorize_path("default.web", "https://web.example/cb", &[]))
        .header("origin", WEB)
        .body(Body::empty())
        .unwrap();
    let res = send(&h.app, req).await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn register_is_an_unknown_path_without_dcr() {
    let h = harness_without_dcr().await;
    // `/register` answers a preflight (from an origin allowed elsewhere) and a registration
    // exactly as a path that does not exist: 404, no CORS header, no Vary.
    let unknown = preflight(&h, "/nothing-here", WEB).await;
    let res = preflight(&h, "/register", WEB).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{:?}", res.headers);
    assert_eq!(res.status, unknown.status);
    assert_eq!(res.body, unknown.body);
    assert!(
        !res.headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-") || k == "vary"),
        "{:?}",
        res.headers
    );
    let body = r#"{"redirect_uris":["https://web.example/cb"]}"#;
    let req = Request::post("/register")
        .header("origin", WEB)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = send(&h.app, req).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "vary"), None);
    assert_eq!(h.issuer.store().list_clients().await.unwrap().len(), 0);
    // The other client-facing endpoints still answer the same origin.
    let res = preflight(&h, "/token", WEB).await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(WEB));
    // And discovery does not advertise registration.
    let doc = get(&h.app, "/.well-known/openid-configuration")
        .await
        .json();
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
}

#[tokio::test]
async fn configured_origins_are_allowed() {
    let h = harness_with(&[
        "--cors-allowed-origins",
        "https://spa.example,http://localhost:3000",
    ])
    .await;
    for o in ["https://spa.example", "http://localhost:3000"] {
        let res = preflight(&h, "/token", o).await;
        assert_eq!(header(&res, "access-control-allow-origin"), Some(o));
    }
    let res = preflight(&h, "/token", "https://spa.example.evil").await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
}

#[test]
fn configured_origins_must_be_origins() {
    use clap::Parser;
    for bad in [
        "https://spa.example/",
        "*",
        "spa.example",
        "https://spa.example/app",
    ] {
        let args = issuer::Args::try_parse_from([
            "keyway-issuer",
            "--issuer-url",
            "https://login.example",
            "--cors-allowed-origins",
            bad,
        ])
        .unwrap();
        let problems = issuer::Config::from_args(args).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--cors-allowed-origins")),
            "{bad}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn origins_of_dynamically_registered_clients_are_allowed() {
    let h = harness().await;
    let origin = "http://127.0.0.1:7001";
    assert_eq!(
        header(
            &preflight(&h, "/token", origin).await,
            "access-control-allow-origin"
        ),
        None
    );
    // Registered here: known at once.
    let res = post_json(
        &h.app,
        "/register",
        r#"{"redirect_uris":["http://127.0.0.1:7001/cb"]}"#,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let res = preflight(&h, "/token", origin).await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(origin));

    // Registered by another replica (straight into the shared store): known at once, since
    // each check looks the origin up in the store.
    let other = "https://agent.example";
    let now = h.issuer.clock().now();
    h.issuer
        .store()
        .put_client(&issuer::store::RegisteredClient {
            client_id: "dcr.elsewhere".into(),
            metadata: serde_json::json!({
                "client_id": "dcr.elsewhere",
                "client_name": "Elsewhere",
                "redirect_uris": ["https://agent.example/cb"],
                "grant_types": ["authorization_code"],
                "scope": "openid",
            }),
            created_at: now,
            last_used: now,
        })
        .await
        .unwrap();
    let res = preflight(&h, "/token", other).await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(other));
    // Deleted clients' origins go at once too.
    h.issuer
        .store()
        .delete_client("dcr.elsewhere")
        .await
        .unwrap();
    let res = preflight(&h, "/token", other).await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    // So do those of a client that expired unused (`--dcr-idle-expiry`, 30 days by default).
    h.issuer.clock().advance(31 * 86400);
    let res = preflight(&h, "/token", origin).await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn origins_follow_the_connected_apps_as_they_are_swapped() {
    const NEW: &str = "https://new.example";
    let h = harness().await;
    let allowed = |res: &Res| header(res, "access-control-allow-origin") == Some(NEW);
    assert!(!allowed(&preflight(&h, "/token", NEW).await));
    // A new ConnectedApp manifest appears and the clients are reloaded.
    let file = h.dir.path().join("clients").join("new.yaml");
    std::fs::write(
        &file,
        "apiVersion: keyway.dev/v1alpha1\nkind: ConnectedApp\nmetadata: {name: spa}\n\
         spec: {displayName: SPA, clientType: public, redirectURIs: [\"https://new.example/cb\"]}\n",
    )
    .unwrap();
    assert_eq!(h.issuer.clients().reload(), Ok(true));
    assert!(allowed(&preflight(&h, "/token", NEW).await));
    let spa = h.issuer.clients().get("default.spa").unwrap();
    // Removed: refused again.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(h.issuer.clients().reload(), Ok(true));
    assert!(!allowed(&preflight(&h, "/token", NEW).await));
    // The same through the Kubernetes watch's swap.
    let mut all: Vec<_> = h
        .issuer
        .clients()
        .all()
        .iter()
        .map(|c| (**c).clone())
        .collect();
    all.push((*spa).clone());
    h.issuer.clients().replace(all.clone());
    assert!(allowed(&preflight(&h, "/token", NEW).await));
    all.pop();
    h.issuer.clients().replace(all);
    assert!(!allowed(&preflight(&h, "/token", NEW).await));
    assert!(
        header(
            &preflight(&h, "/token", WEB).await,
            "access-control-allow-origin"
        ) == Some(WEB)
    );
}
