//! The relying party's client against a small provider served by the test on 127.0.0.1:0:
//! discovery checks the issuer exactly, an unknown `kid` refetches the keys at most once per
//! interval, the token endpoint gets the client authentication the metadata asks for, and
//! userinfo carries the access token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use oidc::{Client, OidcError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the provider answers and what it was asked.
#[derive(Default)]
struct Provider {
    /// Path → JSON body (status 200); other paths are 404.
    routes: HashMap<String, Value>,
    /// Every request: path, `Authorization` value, body.
    seen: Vec<(String, Option<String>, String)>,
}

type Shared = Arc<Mutex<Provider>>;

async fn serve(shared: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = conn.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let field = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let length: usize = field("content-length").map_or(0, |v| v.parse().unwrap());
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                let path = head.split(' ').nth(1).unwrap().to_string();
                let answer = {
                    let mut p = shared.lock().unwrap();
                    p.seen
                        .push((path.clone(), field("authorization"), body.clone()));
                    p.routes.get(&path).cloned()
                };
                let (status, body) = match answer {
                    Some(v) => ("200 OK", v.to_string()),
                    None => ("404 Not Found", r#"{"error":"not_found"}"#.to_string()),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

fn ed25519_jwks(kid: &str, seed: u8) -> Value {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
        "x": B64.encode(pair.public_key().as_ref())}]})
}

async fn provider(extra_metadata: Value) -> (String, Shared) {
    let shared: Shared = Arc::default();
    let url = serve(shared.clone()).await;
    let mut metadata = json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/auth"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "userinfo_endpoint": format!("{url}/userinfo"),
        "revocation_endpoint": format!("{url}/revoke"),
    });
    for (k, v) in extra_metadata.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    {
        let mut p = shared.lock().unwrap();
        p.routes
            .insert("/.well-known/openid-configuration".into(), metadata);
        p.routes.insert("/jwks".into(), ed25519_jwks("k1", 1));
    }
    (url, shared)
}

fn count(shared: &Shared, path: &str) -> usize {
    shared
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(p, _, _)| p == path)
        .count()
}

#[tokio::test]
async fn discovery_checks_the_issuer_exactly() {
    let (url, _) = provider(json!({})).await;
    let client = Client::new(false, None).unwrap();
    let loaded = client.load(&url).await.unwrap();
    assert_eq!(loaded.metadata.issuer, url);
    assert_eq!(
        loaded.metadata.userinfo_endpoint.as_deref(),
        Some(format!("{url}/userinfo").as_str())
    );
    assert!(!loaded.keys().lacks_kid(Some("k1")));
    // The same provider under another spelling of its issuer is not it.
    let err = client.discover(&format!("{url}/")).await.unwrap_err();
    assert!(matches!(err, OidcError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_at_most_once_per_interval() {
    let (url, shared) = provider(json!({})).await;
    let client = Client::new(false, None).unwrap();
    let loaded = client.load(&url).await.unwrap();
    assert_eq!(count(&shared, "/jwks"), 1);
    // The provider rotates to k2; a token naming k2 asks for a refetch.
    shared
        .lock()
        .unwrap()
        .routes
        .insert("/jwks".into(), ed25519_jwks("k2", 2));
    assert!(loaded.keys().lacks_kid(Some("k2")));
    // Within the interval since the last fetch: no request.
    assert!(
        !client
            .refetch_keys(&loaded, Duration::from_secs(3600))
            .await
    );
    assert_eq!(count(&shared, "/jwks"), 1);
    assert!(client.refetch_keys(&loaded, Duration::ZERO).await);
    assert_eq!(count(&shared, "/jwks"), 2);
    assert!(!loaded.keys().lacks_kid(Some("k2")));
    // A failed refetch keeps the keys and counts as a fetch.
    shared.lock().unwrap().routes.remove("/jwks");
    assert!(!client.refetch_keys(&loaded, Duration::ZERO).await);
    assert!(!loaded.keys().lacks_kid(Some("k2")));
    assert!(
        !client
            .refetch_keys(&loaded, Duration::from_secs(3600))
            .await
    );
    assert_eq!(count(&shared, "/jwks"), 3);
}

#[tokio::test]
async fn the_token_endpoint_gets_the_client_authentication_the_metadata_asks_for() {
    for (methods, basic) in [
        (json!(null), true),
        (json!(["client_secret_basic", "client_secret_post"]), true),
        (json!(["client_secret_post"]), false),
    ] {
        let (url, shared) =
            provider(json!({ "token_endpoint_auth_methods_supported": methods })).await;
        shared.lock().unwrap().routes.insert(
            "/token".into(),
            json!({"access_token": "at", "token_type": "Bearer", "id_token": "idt"}),
        );
        let client = Client::new(false, None).unwrap();
        let loaded = client.load(&url).await.unwrap();
        let tokens = client
            .token(
                &loaded.metadata,
                "app id",
                Some("s&cret"),
                &[("grant_type", "authorization_code"), ("code", "c")],
            )
            .await
            .unwrap();
        assert_eq!(tokens.access_token, "at");
        assert_eq!(tokens.id_token.as_deref(), Some("idt"));
        let (_, authorization, body) = shared
            .lock()
            .unwrap()
            .seen
            .iter()
            .find(|(p, _, _)| p == "/token")
            .cloned()
            .unwrap();
        if basic {
            // RFC 6749 section 2.3.1: both form-encoded before base64.
            let expected = format!("Basic {}", STANDARD.encode("app+id:s%26cret"));
            assert_eq!(authorization.as_deref(), Some(expected.as_str()));
            assert_eq!(body, "grant_type=authorization_code&code=c");
        } else {
            assert_eq!(authorization, None);
            assert_eq!(
                body,
                "grant_type=authorization_code&code=c&client_id=app+id&client_secret=s%26cret"
            );
        }
    }
}

#[tokio::test]
async fn a_token_response_that_is_not_bearer_or_not_200_is_an_error() {
    let (url, shared) = provider(json!({})).await;
    let client = Client::new(false, None).unwrap();
    let loaded = client.load(&url).await.unwrap();
    let token = || client.token(&loaded.metadata, "app", Some("s"), &[("grant_type", "x")]);
    let err = token().await.unwrap_err();
    assert!(
        matches!(err, OidcError::Status { status: 404, .. }),
        "{err}"
    );
    shared.lock().unwrap().routes.insert(
        "/token".into(),
        json!({"access_token": "at", "token_type": "DPoP"}),
    );
    let err = token().await.unwrap_err();
    assert!(matches!(err, OidcError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn userinfo_carries_the_access_token_and_revocation_the_refresh_token() {
    let (url, shared) = provider(json!({})).await;
    shared.lock().unwrap().routes.insert(
        "/userinfo".into(),
        json!({"sub": "alice", "groups": ["eng"]}),
    );
    shared
        .lock()
        .unwrap()
        .routes
        .insert("/revoke".into(), json!({}));
    let client = Client::new(false, None).unwrap();
    let loaded = client.load(&url).await.unwrap();
    let info = client
        .userinfo(&format!("{url}/userinfo"), "the-at")
        .await
        .unwrap();
    assert_eq!(info["sub"], "alice");
    assert!(
        client
            .revoke_refresh_token(&loaded.metadata, "app", None, "the-rt")
            .await
            .unwrap()
    );
    let seen = shared.lock().unwrap().seen.clone();
    let userinfo = seen.iter().find(|(p, _, _)| p == "/userinfo").unwrap();
    assert_eq!(userinfo.1.as_deref(), Some("Bearer the-at"));
    let revoke = seen.iter().find(|(p, _, _)| p == "/revoke").unwrap();
    assert_eq!(
        revoke.2,
        "token=the-rt&token_type_hint=refresh_token&client_id=app"
    );
}
