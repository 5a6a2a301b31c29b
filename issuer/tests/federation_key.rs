//! A read-only key directory (the Secret the operator manages) may get `cookie.key` after the
//! issuer started: until then federated sign-in answers 503 and `/readyz` says not ready, and
//! the issuer loads the key as soon as it appears instead of refusing to start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use clap::Parser;
use http::{Request, StatusCode};
use issuer::Issuer;
use issuer::{Alg, Args, Config, Keys};
use tower::ServiceExt;

async fn status(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn federation_waits_for_cookie_key_in_a_read_only_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A signing key as the operator writes it, but no cookie.key yet.
    Keys::open(&keys, Alg::Es256, 30 * 86400, 3600, 86400, now).unwrap();
    assert!(!keys.join("cookie.key").exists());
    let clients = dir.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let argv = [
        "keyway-issuer",
        "--issuer-url",
        "https://id.example.com",
        "--store",
        &store,
        "--keys-dir",
        keys.to_str().unwrap(),
        "--keys-read-only",
        "--clients-dir",
        clients.to_str().unwrap(),
        "--upstream-issuer",
        "http://127.0.0.1:9",
        "--upstream-client-id",
        "keyway",
        "--upstream-client-secret",
        "s3cret",
    ];
    let config = Config::from_args(Args::try_parse_from(argv).unwrap()).unwrap();
    let store = issuer::store::open(&store).await.unwrap();
    let iss = Arc::new(Issuer::new(&config, store).expect("starts without cookie.key"));
    let app = issuer::router(iss.clone());

    let (code, body) = status(&app, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no federation cookie key yet");
    let (code, body) = status(&app, "/upstream/start?request=x").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("not available yet"), "{body}");
    assert!(!iss.load_cookie_key(), "still missing");
    assert!(
        !keys.join("cookie.key").exists(),
        "a read-only directory is never written"
    );

    // The operator adds cookie.key; the next background pass loads it.
    std::fs::write(
        keys.join("cookie.key"),
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )
    .unwrap();
    assert!(iss.load_cookie_key());
    assert!(!iss.load_cookie_key(), "loaded once");
    let (code, body) = status(&app, "/readyz").await;
    assert_ne!(body, "no federation cookie key yet", "{code}");
    // Now the sign-in goes on to the upstream (unreachable here: 502, not 503).
    let (code, _) = status(&app, "/upstream/start?request=x").await;
    assert_eq!(code, StatusCode::BAD_GATEWAY);
}
